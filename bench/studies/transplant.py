"""A new language three ways, on real text: from scratch, `transplant --init random`, `transplant --init mean`.

    python -m bench.studies.transplant --parent P --vocab V --shards S --held-out H --out W [--steps 300 --batch 16 ...]

P is a model `factory pretrain` made on other languages (its run folder), V a vocabulary of the new language
(`factory vocab`), S and H shards of the new language cut with V (training text and held-out text). Each arm
trains for the same steps on the same batches (same --seed, so the same rows and masks), with the same
settings and shape:

- scratch: `factory pretrain` with P's shape (--preset debug --layers --hidden --heads), random weights;
- random:  `factory transplant P --vocab V --init random`, then `factory pretrain --init-from` it;
- mean:    `factory transplant P --vocab V --init mean` (FVT), then `factory pretrain --init-from` it.

Every --save-every steps (and at step 0, the start each arm's `factory pretrain` builds) the RTD model is scored
on H with the same masks and sampling draws for every arm and step: the generator's MLM loss (mean cross-entropy
over the masked positions) and the discriminator's RTD loss (mean BCE over the tokens). The curves go to
OUT/curves.json and a plot OUT/transplant-curves.png; the CPU seconds of every command are recorded.
`--arms scratch --train-only` trains one arm (three processes can share the work); a last run without
--train-only scores them all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench.cli import make_parser
from bench.timing import run_timed, timed

ARMS = ("scratch", "random", "mean")


def run_command(args: list[str], log: Path) -> dict:
    """A `factory` command as a child process, its output in `log`; wall and CPU seconds."""
    command = [sys.executable, "-m", "factory", *map(str, args)]
    with open(log, "w") as f:
        done, t = run_timed(command, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")
    return {"command": "factory " + " ".join(map(str, args)), "wall_s": round(t.wall_s, 1),
            "cpu_s": round(t.children_cpu_s, 1)}  # fmt: skip


def parent_shape(parent: Path) -> list[str]:
    """P's shape as `factory pretrain` flags (its manifest's preset and sizes)."""
    m = json.loads((parent / "factory.json").read_text())
    shape = m["shape"]
    return ["--preset", m["base_preset"] or m["preset"], "--layers", shape["layers"], "--hidden", shape["hidden"],
            "--heads", shape["heads"], "--ffn", shape["ffn"]]  # fmt: skip


def train_arms(a: argparse.Namespace) -> dict:
    """The three runs (each skipped when its factory.json exists: the script can be run again)."""
    common = ["--shards", a.shards, "--batch", a.batch, "--max-steps", a.steps, "--lr", a.lr, "--warmup", a.warmup,
              "--seq-len", a.seq_len, "--save-every", a.save_every, "--keep", 1000, "--log-every", a.save_every,
              "--seed", a.seed]  # fmt: skip
    costs = {}
    for arm in a.arms.split(","):
        out = a.out / arm
        if (out / "pretrain" / "factory.json").is_file():
            continue
        out.mkdir(parents=True, exist_ok=True)
        if arm == "scratch":
            start = ["--vocab", a.vocab, *parent_shape(a.parent)]
        else:
            costs[f"{arm}/transplant"] = run_command(["transplant", a.parent, "--vocab", a.vocab, "--init", arm,
                                                      "--seed", a.seed, "--out", out / "model", "--force"],
                                                     out / "transplant.log")  # fmt: skip
            start = ["--init-from", out / "model"]
        costs[f"{arm}/pretrain"] = run_command(["pretrain", *start, *common, "--out", out / "pretrain", "--force"],
                                               out / "pretrain.log")  # fmt: skip
    return costs


def held_out_batch(shards: Path) -> torch.Tensor:
    """Every row of the held-out shards (B, L)."""
    from factory.shards.read import ShardSet

    data = ShardSet(shards)
    return data.rows(range(len(data)))


def score(model, ids: torch.Tensor, seed: int) -> dict:
    """Held-out MLM and RTD losses of an RTD model, with the masks and sampling draws of (seed, step 0)."""
    from factory.pretrain.rtd import make_step_noise

    model.eval()
    totals = {"mlm": 0.0, "rtd": 0.0, "masked": 0, "tokens": 0, "rtd_correct": 0.0, "replaced": 0.0}
    with torch.no_grad():
        for start in range(0, len(ids), 32):
            rows = ids[start : start + 32]
            noise = make_step_noise(rows, model.mask_id, seed, 0, rows=start)
            out = model(rows, noise.masked, noise.uniforms)
            totals["mlm"] += float(out.mlm_loss_sum)
            totals["rtd"] += float(out.rtd_loss_sum)
            totals["masked"] += int(out.masked)
            totals["tokens"] += int(out.tokens)
            totals["rtd_correct"] += float(out.rtd_correct)
            totals["replaced"] += float(out.replaced)
    return {
        "mlm_loss": totals["mlm"] / totals["masked"],
        "rtd_loss": totals["rtd"] / totals["tokens"],
        "rtd_accuracy": totals["rtd_correct"] / totals["tokens"],
        "replaced": totals["replaced"] / totals["masked"],
    }


def arm_config(run: Path):
    """The resolved PretrainConfig an arm ran with (its manifest's arguments)."""
    from factory.core.options import Layer, resolve
    from factory.pretrain.config import PretrainConfig

    values = json.loads((run / "factory.json").read_text())["arguments"]
    values = {k: v for k, v in values.items() if k != "schema" and v is not None and v != [] and k != "dry_run"}
    return resolve(PretrainConfig, [Layer(values)])


def curves(a: argparse.Namespace) -> dict:
    """Held-out losses of every arm at step 0 (the start `factory pretrain` builds) and every checkpoint."""
    from safetensors.torch import load_file

    from factory.pretrain.checkpoint import checkpoint_dirs
    from factory.pretrain.loop import build_model
    from factory.pretrain.plan import make_plan

    ids = held_out_batch(a.held_out)
    out = {}
    for arm in ARMS:
        run = a.out / arm / "pretrain"
        config = arm_config(run)
        model = build_model(config, make_plan(config, a.seq_len))
        points = [{"step": 0, **score(model, ids, a.eval_seed)}]
        for folder in checkpoint_dirs(run):
            model.load_state_dict(load_file(str(folder / "model.safetensors")))
            points.append({"step": int(folder.name.split("-")[1]), **score(model, ids, a.eval_seed)})
        out[arm] = points
    return {"held_out_tokens": int((ids != 0).sum()), "held_out_rows": len(ids), "arms": out}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for arm, points in result["arms"].items():
        steps = [p["step"] for p in points]
        axes[0].plot(steps, [p["mlm_loss"] for p in points], marker="o", label=arm)
        axes[1].plot(steps, [p["rtd_loss"] for p in points], marker="o", label=arm)
    axes[0].set_title("held-out generator MLM loss")
    axes[1].set_title("held-out discriminator RTD loss")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("a new language (pt) three ways: scratch, transplant --init random, --init mean")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__spec__, __doc__)
    parser.add_argument("--parent", type=Path, required=True, help="the parent's `factory pretrain` run folder")
    parser.add_argument("--vocab", type=Path, required=True, help="the new language's vocabulary")
    parser.add_argument("--shards", type=Path, required=True, help="its training shards (cut with --vocab)")
    parser.add_argument("--held-out", type=Path, required=True, help="its held-out shards (cut with --vocab)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--save-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=1234, help="masks and draws of the held-out scoring")
    parser.add_argument("--arms", default=",".join(ARMS), help="train only these (e.g. one per process)")
    parser.add_argument("--train-only", action="store_true", help="train, do not score (score when all are done)")
    a = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    a.out.mkdir(parents=True, exist_ok=True)
    costs = train_arms(a)
    if a.train_only:
        (a.out / f"costs-{a.arms.replace(',', '-')}.json").write_text(json.dumps(costs, indent=2) + "\n")
        return
    for part in a.out.glob("costs-*.json"):  # runs trained by --train-only processes
        costs = {**json.loads(part.read_text()), **costs}
    with timed() as t:
        result = {"settings": {k: str(v) for k, v in vars(a).items()}, "costs": costs, **curves(a)}
    result["eval_cpu_s"] = round(t.cpu_s, 1)
    previous = a.out / "curves.json"
    if previous.is_file():  # a rerun keeps the costs of the runs it skipped
        result["costs"] = {**json.loads(previous.read_text()).get("costs", {}), **costs}
    previous.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, a.out / "transplant-curves.png")
    for arm, points in result["arms"].items():
        print(arm, " ".join(f"{p['step']}:{p['mlm_loss']:.3f}/{p['rtd_loss']:.3f}" for p in points))


if __name__ == "__main__":
    main()
