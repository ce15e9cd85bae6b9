"""Recipes: a model family as data, run step by step with `factory run`.

A recipe is YAML with one section per pipeline step. Each section's keys are the options of that step's
own command (`corpus` for `--corpus`, `seq_len` for `--seq-len`), so a recipe can do exactly what the
commands can and nothing else: an unknown key is an error that lists the valid ones. `factory run` fills in
the folders that connect the steps (vocab -> shards -> pretrain -> eval -> publish) under one run folder.

A step is skipped when its output folder holds a manifest and neither its arguments nor the manifests of
the steps it reads have changed since it ran; so deleting one step's output re-runs that step and the ones
after it, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.outputs import MANIFEST
from factory.resources import find

STEPS = ("vocab", "shards", "pretrain", "eval", "publish")
TOP_KEYS = {"name", "description", "run_dir", "corpus", "steps", "card"}


class RecipeError(FactoryError):
    """A recipe that cannot be run as written."""


@dataclass
class Step:
    """One command of the plan: which command, its arguments, what it reads and where it writes."""

    name: str  # "vocab", "shards", "pretrain", "eval.xnli", "publish"
    command: str  # COMMANDS key, or "eval xnli"
    options: dict[str, Any]
    out: Path
    reads: list[str] = field(default_factory=list)  # names of the steps whose outputs it uses
    positional: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        """The command line: each key becomes the command's own option string (`set` -> `--set`)."""
        params = _options(_command(self.command))
        args = list(self.positional)
        for key, value in self.options.items():
            option = params[key]
            flag = max(option.opts, key=len)
            if isinstance(value, bool) or option.is_flag:
                if value:
                    args.append(flag)
                elif option.secondary_opts:
                    args.append(option.secondary_opts[0])
            elif isinstance(value, (list, tuple)):
                for item in value:
                    args += [flag, str(item)]
            elif value is not None:
                args += [flag, str(value)]
        return args


def load_recipe(path: Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Read a recipe and apply `--set key.sub=value` overrides (values parsed as YAML scalars)."""
    import yaml

    path = find("recipe", path)  # a bundled name (demo) or a file
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise RecipeError(f"{path} is not a text file; a recipe is YAML (see recipes/*.yaml)") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path} must be a mapping with 'name' and 'steps' (see recipes/demo.yaml)")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set {item!r} must look like key=value (e.g. steps.pretrain.max_steps=100)")
        _assign(recipe, key.strip().split("."), yaml.safe_load(raw), item)
    unknown = set(recipe) - TOP_KEYS
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {sorted(unknown)}; a recipe has {sorted(TOP_KEYS)}")
    if not recipe.get("steps"):
        raise RecipeError(f"{path} has no 'steps'; a recipe names at least one of {', '.join(STEPS)}")
    unknown = set(recipe.get("steps") or {}) - set(STEPS)
    if unknown:
        raise RecipeError(f"{path}: unknown step(s) {sorted(unknown)}; steps are {', '.join(STEPS)}")
    recipe.setdefault("name", path.stem)
    recipe["_dir"] = str(path.parent)
    return recipe


def _assign(tree: dict, keys: list[str], value: Any, item: str) -> None:
    for key in keys[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise RecipeError(f"--set {item!r}: {key!r} is not a section")
        tree = node
    tree[keys[-1]] = value


def fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_fingerprint(folder: Path) -> str | None:
    path = Path(folder) / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


# Options `factory run` sets itself, per step: they connect the steps and must not appear in a recipe.
WIRED = {
    "vocab": {"out", "force"},
    "shards": {"vocab", "out", "force"},
    "pretrain": {"vocab", "shards", "out", "force", "resume", "corpus", "dry_run"},
    "eval": {"model", "out", "force"},
    "publish": {"dir", "generator", "results", "staging", "dry_run", "tokenizer"},
}


def _command(name: str):
    """The click command behind a step name ("vocab", "eval xnli", ...)."""
    from factory.cli import cli

    group, _, sub = name.partition(" ")
    command = cli.get_command(None, group)
    return command.get_command(None, sub) if sub else command


def _options(command) -> dict[str, Any]:
    """A command's options under their flag names (`seq_len` for `--seq-len`) and parameter names."""
    import click

    out: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            out[param.name] = param
            for opt in param.opts:
                out[opt.lstrip("-").replace("-", "_")] = param
    return out


def _flag_name(option) -> str:
    return max(option.opts, key=len).lstrip("-").replace("-", "_")


def _check_options(step: str, command_name: str, options: dict[str, Any], where: str) -> dict[str, Any]:
    """Every key must name an option of the step's command and not one that `factory run` wires;
    returns the options keyed by flag name."""
    command = _command(command_name)
    if command is None:
        raise RecipeError(f"{where}: there is no command `factory {command_name}`")
    known = _options(command)
    wired = {known[w].name for w in WIRED[step.split(".")[0]] if w in known}
    checked = {}
    for key, value in options.items():
        if key not in known:
            valid = sorted({_flag_name(o) for o in known.values() if o.name not in wired})
            raise RecipeError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        if known[key].name in wired:
            raise RecipeError(f"{where}: {key!r} is set by `factory run` (it connects the steps); remove it")
        checked[_flag_name(known[key])] = value
    return checked


def _resolve(value: Any, base: Path) -> Any:
    """Relative paths (also in `lang=path`) that exist beside the recipe file are taken from there, so a
    recipe runs from any folder; Hub sources and anything else are left as written."""
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    if not isinstance(value, str) or value.startswith("hf:"):
        return value
    match = re.fullmatch(r"([a-z]{2,3}(?:[-_][A-Za-z]+)?=)(.+)", value)
    prefix, path = (match.group(1), match.group(2)) if match else ("", value)
    candidate = base / path
    if not Path(path).is_absolute() and not path.startswith("hf:") and candidate.exists():
        return f"{prefix}{candidate}"
    return value


def build_plan(recipe: dict[str, Any], run_dir: Path, publish: bool = False) -> list[Step]:
    """The recipe as a list of commands under `run_dir`, in pipeline order, every key checked."""
    base = Path(recipe["_dir"])
    steps_cfg = {k: dict(v or {}) for k, v in (recipe.get("steps") or {}).items()}
    corpus = _resolve(recipe.get("corpus"), base)
    plan: list[Step] = []
    vocab_dir, shards_dir, pretrain_dir = run_dir / "vocab", run_dir / "shards", run_dir / "pretrain"

    if "vocab" in steps_cfg:
        opts = steps_cfg["vocab"]
        opts = {k: _resolve(v, base) for k, v in _check_options("vocab", "vocab", opts, "steps.vocab").items()}
        opts.setdefault("corpus", corpus)
        plan.append(Step("vocab", "vocab", {**opts, "out": vocab_dir, "force": True}, vocab_dir))
    if "shards" in steps_cfg:
        opts = steps_cfg["shards"]
        opts = {k: _resolve(v, base) for k, v in _check_options("shards", "shards", opts, "steps.shards").items()}
        opts.setdefault("corpus", corpus)
        plan.append(
            Step(
                "shards",
                "shards",
                {"vocab": vocab_dir, **opts, "out": shards_dir, "force": True},
                shards_dir,
                reads=["vocab"],
            )
        )
    if "pretrain" in steps_cfg:
        opts = steps_cfg["pretrain"]
        opts = _check_options("pretrain", "pretrain", opts, "steps.pretrain")
        wired = {"vocab": vocab_dir, "shards": shards_dir, "out": pretrain_dir, "resume": "auto"}
        plan.append(Step("pretrain", "pretrain", {**opts, **wired}, pretrain_dir, reads=["vocab", "shards"]))
    model_dir = pretrain_dir / "discriminator"
    results = []
    for suite, opts in (steps_cfg.get("eval") or {}).items():
        name = f"eval.{suite}"
        opts = _check_options(name, f"eval {suite}", dict(opts or {}), f"steps.eval.{suite}")
        opts = {k: _resolve(v, base) for k, v in opts.items()}
        out = run_dir / "eval" / suite
        plan.append(
            Step(
                name, f"eval {suite}", {"model": model_dir, **opts, "out": out, "force": True}, out, reads=["pretrain"]
            )
        )
        results.append(out / "results.json")
    if "publish" in steps_cfg:
        opts = steps_cfg["publish"]
        opts = _check_options("publish", "publish", opts, "steps.publish")
        staging = run_dir / "hub"
        wired = {
            "generator": pretrain_dir / "generator",
            "results": results,
            "staging": staging,
            "dry_run": not publish,
        }
        plan.append(
            Step(
                "publish",
                "publish",
                {**opts, **wired},
                staging,
                positional=[str(model_dir)],
                reads=["pretrain", *[s.name for s in plan if s.name.startswith("eval.")]],
            )
        )
    return plan


# ---- running the plan ----------------------------------------------------------------------------
STATE_FILE = "run-state.json"


def step_state(step: Step, plan: list[Step]) -> dict[str, Any]:
    """What a step's output depends on: its own arguments and the manifests of the steps it reads."""
    outs = {s.name: s.out for s in plan}
    return {
        "argv": step.argv(),
        "inputs": {r: manifest_fingerprint(outs[r]) for r in step.reads if r in outs},
        "files": _local_files(step, [s.out for s in plan]),
    }


def _local_files(step: Step, produced: list[Path]) -> dict[str, list[int]]:
    """Size and modification time of every local file a step's arguments name (a folder: its files), so an
    edited corpus re-runs its step even though the command line is the same. Folders the plan itself
    writes are left out: their manifests stand for them."""
    found: dict[str, list[int]] = {}
    values = [*step.positional, *step.options.values()]
    for value in values:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            text = str(item).split("=", 1)[-1] if isinstance(item, str) else str(item)
            path = Path(text)
            if not isinstance(item, (str, Path)) or not path.exists():
                continue
            if any(path == out or out in path.parents for out in produced):
                continue
            for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if f.is_file() and ".tmp-" not in str(f):
                    stat = f.stat()
                    found[str(f)] = [stat.st_size, stat.st_mtime_ns]
    return found


def is_done(step: Step, state: dict[str, Any], saved: dict[str, Any]) -> bool:
    finished = (step.out / MANIFEST).is_file() or (step.name == "publish" and (step.out / "README.md").is_file())
    return finished and saved.get(step.name) == state


def run_plan(plan: list[Step], run_dir: Path, resume: bool, echo) -> list[str]:
    """Run the steps in order, skipping those whose output is up to date; returns the names that ran."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE_FILE
    saved = json.loads(state_path.read_text()) if state_path.is_file() else {}
    ran: list[str] = []
    for i, step in enumerate(plan, 1):
        state = step_state(step, plan)
        if is_done(step, state, saved):
            echo(f"[{i}/{len(plan)}] {step.name}: up to date, skipped ({step.out})")
            continue
        if step.name == "pretrain" and not resume:
            step.options = {**step.options, "resume": None, "force": True}  # start over, not continue
        argv = step.argv()
        echo(f"[{i}/{len(plan)}] {step.name}: factory {step.command} {' '.join(argv)}")
        _command(step.command).main(args=argv, prog_name=f"factory {step.command}", standalone_mode=False)
        saved[step.name] = state  # computed after the steps before it ran: the inputs it actually read
        state_path.write_text(json.dumps(saved, indent=2) + "\n")
        ran.append(step.name)
    return ran


def print_plan(plan: list[Step], recipe: dict[str, Any], echo) -> None:
    """Print every command, then the pre-training plan (parameters, tokens, FLOPs, time) and disk needed."""
    for i, step in enumerate(plan, 1):
        echo(f"[{i}/{len(plan)}] {step.name}: factory {step.command} {' '.join(step.argv())}")
    pretrain = next((s for s in plan if s.name == "pretrain"), None)
    if pretrain is None:
        return
    from factory.presets import VocabSize, count_parameters, get_preset
    from factory.pretrain import count_rtd_parameters

    opts = {k: v for k, v in pretrain.options.items() if k not in ("vocab", "shards", "resume")}
    steps = recipe.get("steps") or {}
    size = (steps.get("vocab") or {}).get("size", "128k")
    if "seq_len" in (steps.get("shards") or {}):  # the shards do not exist yet: take their length
        opts.setdefault("seq_len", steps["shards"]["seq_len"])
    layout = opts.get("layout", "official")
    opts.update(vocab_size=size, dry_run=True)
    echo("")
    echo("pre-training plan:")
    _command("pretrain").main(
        args=Step("pretrain", "pretrain", opts, pretrain.out).argv(),
        prog_name="factory pretrain",
        standalone_mode=False,
    )
    preset, vocab = opts.get("preset", "base"), VocabSize.parse(size, layout)
    model = count_parameters(get_preset(preset).config(vocab))
    echo(
        f"exported model ({preset}, {vocab.pieces:,} pieces): backbone {model['backbone']:,} + embedding "
        f"{model['embedding']:,} = {model['total']:,} parameters"
    )
    params = count_rtd_parameters(preset, vocab, opts.get("sharing", "gdes"))
    keep = int(opts.get("keep", 3))
    checkpoints = keep * 16 * params["total"]  # fp32 weights + grads + Adam moments, per kept checkpoint
    exports = 4 * (params["generator"] + params["discriminator"])
    echo(
        f"disk: ~{(checkpoints + exports) / 2**30:.1f} GiB for {keep} checkpoints and the two exported models, "
        "plus 4 bytes per corpus token for the shards"
    )
