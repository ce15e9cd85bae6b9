"""The run folder and its checkpoints: start, start over (--force), resume, save, keep the last N.

A checkpoint is Accelerate's `save_state` (weights, optimizer, schedule, every RNG: dropout included) plus
`trainer.json`, which says where the data stream stands and what the run was. Saving goes to a temporary
folder that is renamed when complete, so a checkpoint is whole or absent, even after SIGKILL; and a resume
refuses a checkpoint of another run (preset, shape, vocabulary, sizes, masking) instead of silently training
something else.

`trainer.json` carries `format`, the version of what a resume relies on besides the files: how a step's rows and
noise are drawn. Format 2 draws masks and sampling uniforms per row of the global batch (a counter-based hash,
factory/pretrain/rtd.py) where format 1 (no `format` key) drew them for the whole batch from one torch.Generator; a
format-1 run resumed now would not continue as it started, so it is refused in one line.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ConfigError
from factory.core.manifest import MANIFEST
from factory.core.options import to_json
from factory.core.outputs import check_target, is_lock_file, replace_folder

if TYPE_CHECKING:
    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.mixing import Mix
    from factory.pretrain.plan import Plan
    from factory.pretrain.state import Run

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
SHARDS = "shards"  # `factory pretrain --corpus` builds its shards here
TRAINER_STATE = "trainer.json"
TRAINER_FORMAT = 2  # bump when a resumed run would draw other rows or noise than the run that saved it


def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are ignored)."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    done = [p for p in folder.glob("step-*") if (p / TRAINER_STATE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's trainer.json, or one line saying the checkpoint cannot be resumed from."""
    path = checkpoint / TRAINER_STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path} cannot be read ({type(e).__name__}: {str(e)[:80]}); resume from another checkpoint with "
            "--resume PATH, or start over with --force"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ConfigError(f"{path} is not a trainer state (no step); resume from another checkpoint with --resume PATH")
    return state


def find_resume(out: Path, resume: str | None) -> Path | None:
    """The checkpoint --resume names: the newest complete one for "auto" (None if there is none yet)."""
    if resume is None:
        return None
    if resume == "auto":
        found = checkpoint_dirs(out)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise ConfigError(
            f"--resume {resume} is not a checkpoint (no {TRAINER_STATE}); use --resume auto or a step-* folder"
        )
    return path


def check_resume(
    state: dict, config: PretrainConfig, plan: Plan, vocab_fingerprint: str | None, path: Path, mix: Mix | None = None
) -> None:
    """Refuse a checkpoint whose run does not match this one (another format, preset, vocabulary, sizes, mix)."""
    check_format(state, path)
    mine = {
        "preset": config.preset or state.get("preset"),  # --init-from: None, the model's own (compared as `shape`)
        "shape": plan.shape.sizes(),
        "sharing": config.sharing,
        "seq_len": plan.seq_len,
        "batch": plan.batch,
        "vocab_fingerprint": vocab_fingerprint,
        "vocab_rows": plan.vocab.rows,
        "masking": config.masking,
    }
    for key, value in mine.items():
        if state.get(key) != value:
            flag = FLAGS.get(key, f"--{key.replace('_', '-')}")
            raise ConfigError(
                f"checkpoint {path} is from another run ({key} {state.get(key)!r}, this run {value!r}); "
                f"resume with the same {flag} or start a new --out"
            )
    if mix is not None:
        check_mix(state, mix, path)
    check_trajectory(state, config, plan, path)


# What a resumed run cannot change: the optimizer's state, the schedule and every random stream were saved with
# these, so a resume under other values would train with the checkpoint's while the manifest said the new ones.
# (Others may change and are recorded per session: `sessions`.) The plan's resolved value where the checkpoint
# recorded it, else the argument as given.
TRAJECTORY = {"lr": "--lr", "warmup": "--warmup", "seed": "--seed", "rtd_lambda": "--rtd-lambda",
              "dropout": "--dropout"}  # fmt: skip
# Arguments that are about this invocation, not the run: never compared or recorded
INVOCATION = {"schema", "out", "resume", "force", "dry_run"}


def trajectory(config: PretrainConfig, plan: Plan) -> dict[str, Any]:
    return {"lr": plan.lr, "warmup": plan.warmup, "seed": config.seed, "rtd_lambda": config.rtd_lambda,
            "dropout": config.dropout}  # fmt: skip


def check_trajectory(state: dict, config: PretrainConfig, plan: Plan, path: Path) -> None:
    theirs, mine = state.get("trajectory"), trajectory(config, plan) if "trajectory" in state else None
    if theirs is None:  # a checkpoint from before the trajectory was recorded: its arguments as given, if any
        recorded = state.get("arguments")
        if recorded is None:
            return
        given = to_json(config)
        theirs, mine = {k: recorded.get(k) for k in TRAJECTORY}, {k: given[k] for k in TRAJECTORY}
    for key, flag in TRAJECTORY.items():
        was, now = theirs.get(key), mine[key]
        if was != now:
            raise ConfigError(
                f"checkpoint {path} was trained with {flag} {_shown(was)}, this run asks {_shown(now)}: a resume keeps "
                f"the checkpoint's optimizer, schedule and random streams, so resume with {flag} {_shown(was)}, or "
                "start a new --out to train with another"
            )


def _shown(value: Any) -> str:
    return "default" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def resumed_sessions(state: dict, config: PretrainConfig) -> list[dict[str, Any]]:
    """The sessions so far (from the checkpoint) plus this one, with the arguments it changed."""
    before = state.get("arguments", {})
    changed = {k: v for k, v in to_json(config).items() if k not in INVOCATION and before.get(k) != v}
    return [*state.get("sessions", [{"from_step": 0, "changed": {}}]), {"from_step": state["step"], "changed": changed}]


def check_start(state: dict, run: Run, path: Path) -> None:
    """A resume must start from what the checkpoint's run started from: the same --init-from (the same commit of a
    Hub id), generator and update order; a checkpoint from before these keys was a joint run from scratch."""
    mine = {"update_order": run.config.update_order, "init_from": _start_key(run.start),
            "generator_warmup": run.plan.generator_warmup}  # fmt: skip
    theirs = {"update_order": state.get("update_order", "joint"), "init_from": _start_key(state.get("init_from")),
              "generator_warmup": state.get("generator_warmup", 0)}  # fmt: skip
    for key, value in mine.items():
        if theirs[key] != value:
            flag = {"init_from": "--init-from/--init-generator"}.get(key, f"--{key.replace('_', '-')}")
            raise ConfigError(
                f"checkpoint {path} is from another run ({key} {theirs[key]!r}, this run {value!r}); resume with the "
                f"same {flag} or start a new --out"
            )


def _start_key(record: dict | None) -> tuple | None:
    """What identifies a start: the model (a Hub id's commit), the generator and the decoder."""
    if not record:
        return None
    source = record["source"]
    return (source.get("repo_id") or source.get("given"), source.get("revision"), record.get("generator"),
            record.get("generator_rule"), record.get("emd"))  # fmt: skip


def check_mix(state: dict, mix: Mix, path: Path) -> None:
    """The language mix decides every batch: a resume with another α, schedule (whose phases are fractions of
    --max-steps) or shard languages would read other rows than the straight run did."""
    from factory.pretrain.mixing import FLAGS

    theirs = state.get("mixing")  # absent: a checkpoint from before mixing, which read one language's order
    if theirs == mix.state():
        return
    was = theirs.get("describe", "another mix") if theirs else "one language"
    if was == mix.describe():
        what = f"the same sampling ({was}) over other shards (languages, rows or corpus tokens per language)"
    else:
        what = f"language sampling {was}, this run {mix.describe()}"
    raise ConfigError(
        f"checkpoint {path} was trained with {what}; resume with the same shards and {FLAGS} (and --max-steps "
        "with a schedule) or start a new --out"
    )


def check_format(state: dict, path: Path) -> None:
    """A checkpoint of another trainer format cannot resume exactly: say what to do instead."""
    found = state.get("format", 1)
    if found > TRAINER_FORMAT:
        raise ConfigError(
            f"checkpoint {path} has trainer format {found}, newer than this factory's {TRAINER_FORMAT}; "
            "resume it with the factory version that wrote it"
        )
    if found < TRAINER_FORMAT:
        raise ConfigError(
            f"checkpoint {path} has trainer format {found}: this factory ({TRAINER_FORMAT}) draws masks and sampling "
            "noise differently, so the run cannot resume exactly; finish it with the factory version that started "
            "it, or start over with --force (or a new --out)"
        )


FLAGS = {"shape": "--layers/--hidden/--heads/--ffn", "vocab_fingerprint": "--vocab"}


def prepare_out(config: PretrainConfig) -> Path | None:
    """The run folder: new (or --force to start over), or resumed from a checkpoint in it. `--resume auto` in a
    folder whose run was stopped before its first checkpoint starts over (what a job that always passes
    --resume auto needs); a finished run is never restarted without --force. When this returns None, whatever
    is in the folder may be cleared (`clear_run`)."""
    out = Path(config.out)
    check_target(out)
    resume = find_resume(out, config.resume)
    if resume is not None or not holds_run(out) or config.force:
        return resume
    finished = (out / MANIFEST).is_file()  # the run's manifest is written last
    if config.resume == "auto" and not finished:
        log.info("%s has no complete checkpoint yet: starting from step 0", out)
        return None
    if config.resume == "auto":
        raise ConfigError(f"--out {out} holds a finished run and no checkpoint to resume; pass --force to restart")
    raise ConfigError(f"--out {out} holds an earlier run; pass --resume auto to continue it or --force to restart")


def holds_run(out: Path) -> bool:
    """Whether `out` holds anything of a run: checkpoints, logs, exports (not shards --corpus built into it)."""
    return out.is_dir() and any(not _kept(p) for p in out.iterdir())


def _kept(path: Path) -> bool:
    """Not part of a run: shards `--corpus` built into the folder, and the lock of such a build."""
    return path.name == SHARDS or is_lock_file(path.name)


def clear_run(out: Path) -> None:
    """--force: remove an earlier run's checkpoints, logs and exports (shards built into the folder stay)."""
    for p in out.iterdir() if out.is_dir() else []:
        if not _kept(p):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def trainer_state(run: Run, step: int, elapsed: float) -> dict[str, Any]:
    """Stored with each checkpoint: where the data stream stands, and what the run was (checked on resume)."""
    return {
        "format": TRAINER_FORMAT,
        "step": step,
        "sequences_seen": step * run.plan.batch,
        "tokens_seen": step * run.plan.tokens_per_step,
        "elapsed_s": elapsed,
        "preset": run.config.preset,
        "shape": run.plan.shape.sizes(),
        "sharing": run.config.sharing,
        "seq_len": run.plan.seq_len,
        "batch": run.plan.batch,
        "vocab_fingerprint": run.vocab_fingerprint,
        "vocab_rows": run.plan.vocab.rows,
        "masking": run.config.masking,
        "mixing": run.mix.state(),
        "sequences_seen_per_language": run.mix.counts(step),
        "trajectory": trajectory(run.config, run.plan),
        "sessions": run.sessions,
        "update_order": run.config.update_order,
        "generator_warmup": run.plan.generator_warmup,
        "init_from": run.start,
        "arguments": to_json(run.config),
    }


def save_checkpoint(accelerator, out: Path, step: int, state: dict, keep: int) -> Path:
    """`save_state` into a temporary folder, then rename: a checkpoint is complete or absent. Keeps the last `keep`."""
    folder = out / CHECKPOINTS
    final = folder / f"step-{step:08d}"
    tmp = folder / f".step-{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n")  # last: it marks the folder complete
        replace_folder(tmp, final)  # an older save of this step is renamed aside first: one of them is always whole
        for old in checkpoint_dirs(out)[:-keep] if keep > 0 else []:
            (old / TRAINER_STATE).unlink()  # incomplete from here on, so a kill inside rmtree leaves no half resume
            shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final
