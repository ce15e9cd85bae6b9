"""Recipes: a model family as data, run step by step with `factory run`.

A recipe is YAML with one section per pipeline step. Each section's keys are the fields of that step's config
(factory/*/config.py), which are also the command's options (`corpus` for `--corpus`, `seq_len` for
`--seq-len`), so a recipe can do exactly what the commands can and nothing else. The sections are resolved by
the same resolver as the flags (factory/core/options.py), every problem of every step reported in one error, and
each step calls the library with its config: no command line is built. `factory run` fills in the folders
that connect the steps (vocab -> shards -> pretrain -> eval -> publish) under one run folder.

A step is skipped when its output folder holds a manifest and neither its config nor the manifests of
the steps it reads have changed since it ran; so deleting one step's output re-runs that step and the ones
after it, and nothing else. Pre-training is the exception, as its checkpoints are days of work: its folder's
run is continued (`--resume auto`) when the recipe started it with the same settings and inputs, and is
otherwise refused, never deleted (`check_pretrain_folder`; `factory run --resume` continues it anyway).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError, RecipeError, short_path, short_value
from factory.core.manifest import find_manifest, manifest_fingerprint
from factory.core.options import Layer, check, command_line, fail, load_yaml, to_json, to_values
from factory.core.outputs import check_target, output_lock, write_whole
from factory.core.resources import find
from factory.core.vocab_sizes import DEFAULT_VOCAB_SIZE
from factory.evaluate.config import EvalConfig, RetrievalConfig
from factory.pretrain.config import PretrainConfig
from factory.publish.config import PublishConfig
from factory.shards.config import ShardsConfig
from factory.vocab.config import VocabConfig

log = logging.getLogger(__name__)

STEPS = ("vocab", "trim", "transplant", "shards", "pretrain", "eval", "publish")
TOP_KEYS = {"name", "description", "run_dir", "corpus", "steps", "card"}


@dataclass
class Step:
    """One step of the plan: its resolved config, the library function that runs it, what it reads."""

    name: str  # "vocab", "shards", "pretrain", "eval.xnli", "publish"
    command: str  # "vocab", "eval xnli", ...: the command that would do the same (shown in the plan)
    config: Any  # the step's resolved config (factory/*/config.py)
    out: Path
    reads: list[str] = field(default_factory=list)  # names of the steps whose outputs it uses

    def command_line(self) -> str:
        positional = [str(self.config.model_dir)] if self.name == "publish" else []
        positional = [self.config.source] if self.name in ("trim", "transplant") else positional
        return " ".join(["factory", self.command, *positional, *command_line(self.config)])


def load_recipe(path: Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Read a recipe and apply `--set key.sub=value` overrides (values parsed as YAML scalars)."""
    import yaml

    path = find("recipe", path)  # a bundled name (demo) or a file
    try:
        recipe = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise RecipeError(f"{path} is not a text file; a recipe is YAML (see recipes/*.yaml)") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path} must be a mapping with 'name' and 'steps' (see recipes/demo.yaml)")
    for item in overrides:
        key, sep, raw = item.partition("=")
        shown = short_value(item)
        if not sep or not key:
            raise RecipeError(f"--set {shown} must look like key=value (e.g. steps.pretrain.max_steps=100)")
        if not raw.strip():  # YAML reads nothing as null, which would silently fall back to the default
            name = short_value(key.strip(), 30, quote=False)
            raise RecipeError(
                f"--set {shown} has no value; give one ({name}=100), or {name}=null to drop the recipe's value and "
                "use factory's default"
            )
        try:
            value = load_yaml(raw)
        except yaml.YAMLError as e:
            raise RecipeError(f"--set {shown}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
        _assign(recipe, key.strip().split("."), value, item)
    problems = _shape_problems(recipe, path)
    if problems:
        fail(problems)
    recipe.setdefault("name", path.stem)
    recipe["_dir"] = str(path.parent)
    return recipe


def _shape_problems(recipe: dict[str, Any], path: Path) -> list[str]:
    """The recipe's own keys: known, of the right kind, every step section a mapping (all reported at once)."""
    problems = [
        f"{path}: unknown key {short_value(k)}; a recipe has {', '.join(sorted(TOP_KEYS))}"
        for k in recipe
        if k not in TOP_KEYS
    ]
    for key in ("name", "description", "run_dir"):
        if recipe.get(key) is not None and not isinstance(recipe[key], str):
            problems.append(f"{path}: {key} must be text, not {short_value(recipe[key])}")
    steps = recipe.get("steps")
    if not isinstance(steps, dict) or not steps:
        return [*problems, f"{path} has no 'steps' mapping; a recipe names at least one of {', '.join(STEPS)}"]
    for name, section in steps.items():
        if name not in STEPS:
            problems.append(f"{path}: unknown step {short_value(name)}; steps are {', '.join(STEPS)}")
        elif section is not None and not isinstance(section, dict):
            problems.append(f"steps.{name} must be a mapping of settings, not {short_value(section)}")
        elif name == "eval":
            bad = [s for s, v in (section or {}).items() if v is not None and not isinstance(v, dict)]
            problems += [
                f"steps.eval.{short_value(s, quote=False)} must be a mapping of settings (e.g. data: DIR)" for s in bad
            ]
    return problems


def _assign(tree: dict, keys: list[str], value: Any, item: str) -> None:
    for key in keys[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise RecipeError(f"--set {short_value(item)}: {short_value(key)} is not a section")
        tree = node
    tree[keys[-1]] = value


def fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    if not Path(path).is_absolute() and not path.startswith("hf:") and _exists(candidate):
        return f"{prefix}{candidate}"
    return value


def _exists(path: Path) -> bool:
    """Whether a recipe's value names a file beside it; a value no file system takes as a name (over 255 bytes)
    is not one, and is left to its option's checks (exists() raises OSError for it)."""
    try:
        return path.exists()
    except OSError:
        return False


def build_plan(recipe: dict[str, Any], run_dir: Path, publish: bool = False) -> list[Step]:
    """The recipe as a list of resolved steps under `run_dir`, in pipeline order; every key of every step is
    checked, and all the problems are reported in one error. A run folder that cannot be one is refused first."""
    check_target(run_dir, "--run-dir")
    planner = _Planner(recipe, run_dir)
    plan = [step for step in planner.steps(publish) if step.config is not None]
    if planner.problems:
        fail(list(dict.fromkeys(planner.problems)))  # the recipe's corpus feeds two steps: say it once
    return plan


class _Planner:
    """Builds the steps in pipeline order, collecting the problems of every step so they are reported at once."""

    def __init__(self, recipe: dict[str, Any], run_dir: Path):
        self.base = Path(recipe["_dir"])
        self.sections = {k: dict(v or {}) for k, v in (recipe.get("steps") or {}).items()}
        self.corpus = _resolve(recipe.get("corpus"), self.base)
        self.run_dir = run_dir
        self.problems: list[str] = []

    def layers(self, key: str, section: dict[str, Any], paths: bool = True, corpus: bool = False) -> list[Layer]:
        values = {k: _resolve(v, self.base) for k, v in section.items()} if paths else section
        below = [Layer({"corpus": self.corpus}, "recipe ")] if corpus and self.corpus else []
        return [*below, Layer(values, f"steps.{key}.")]

    def config(self, cls: type, layers: list[Layer], fixed: dict[str, Any]):
        config, problems = check(cls, layers, fixed, "`factory run` (it connects the steps)")
        self.problems += problems
        return config

    def steps(self, publish: bool) -> list[Step]:
        from factory.vocab.train import with_spec

        sec, run_dir = self.sections, self.run_dir
        vocab_dir, shards_dir, pretrain_dir = run_dir / "vocab", run_dir / "shards", run_dir / "pretrain"
        model_dir = pretrain_dir / "discriminator"
        init_from = (sec.get("pretrain") or {}).get("init_from")
        if init_from and "vocab" not in sec:  # continued pre-training: the model's own vocabulary, no vocab step
            vocab_dir = None  # shards read init_from's spm.model; pretrain defaults to it (docs/derive.md)
        plan: list[Step] = []
        if "vocab" in sec:
            layers = with_spec(self.layers("vocab", sec["vocab"], corpus=True))
            config = self.config(VocabConfig, layers, {"out": vocab_dir, "force": True})
            plan.append(Step("vocab", "vocab", config, vocab_dir))
        derived = self._derive(plan, vocab_dir)
        tokenizer_step = "vocab"  # the step whose tokenizer cuts the shards
        if derived is not None:
            if "pretrain" not in sec:  # the derived model is the one evaluated and published
                model_dir = derived.out
            if "vocab" not in sec:  # the derived model's tokenizer cuts the shards
                vocab_dir, tokenizer_step = derived.out, derived.name
        if "shards" in sec:
            fixed = {"vocab": vocab_dir or init_from, "out": shards_dir, "force": True}
            config = self.config(ShardsConfig, self.layers("shards", sec["shards"], corpus=True), fixed)
            plan.append(Step("shards", "shards", config, shards_dir, reads=[tokenizer_step]))
        if "pretrain" in sec:
            fixed = {"vocab": vocab_dir, "shards": shards_dir, "out": pretrain_dir, "resume": "auto", "force": False,
                     "corpus": [], "dry_run": False}  # fmt: skip
            reads = ["vocab", "shards"] if vocab_dir else ["shards"]
            if derived is not None:  # continue the trimmed or transplanted model
                fixed["init_from"] = str(derived.out)
                reads = [derived.name, "shards", *(["vocab"] if "vocab" in sec else [])]
            config = self.config(PretrainConfig, self.layers("pretrain", sec["pretrain"], paths=False), fixed)
            plan.append(Step("pretrain", "pretrain", config, pretrain_dir, reads=reads))
        model_step = "pretrain" if "pretrain" in sec or derived is None else derived.name
        evals = []
        for suite, section in (sec.get("eval") or {}).items():
            out = run_dir / "eval" / suite
            fixed = {"model": model_dir, "out": out, "force": True}
            kind = RetrievalConfig if suite == "retrieval" else EvalConfig  # retrieval fine-tunes nothing
            config = self.config(kind, self.layers(f"eval.{suite}", dict(section or {})), fixed)
            if config is not None and kind is EvalConfig:
                self._check_suite(suite, config)
            evals.append(Step(f"eval.{suite}", f"eval {suite}", config, out, reads=[model_step]))
        plan += evals
        if "publish" in sec:
            fixed = {
                "model_dir": model_dir,
                "generator": pretrain_dir / "generator" if model_step == "pretrain" else None,  # else DIR's own
                "staging": run_dir / "hub",
                "results": [s.out / "results.json" for s in evals],
                "dry_run": not publish,
                "tokenizer": None,
            }
            config = self.config(PublishConfig, self.layers("publish", sec["publish"], paths=False), fixed)
            reads = [model_step, *[s.name for s in evals]]
            plan.append(Step("publish", "publish", config, run_dir / "hub", reads=reads))  # fmt: skip
        return plan

    def _derive(self, plan: list[Step], vocab_dir: Path) -> Step | None:
        """steps.trim or steps.transplant (one of them): a model derived from a published one, into run_dir/trim or
        run_dir/transplant; transplant takes the recipe's vocabulary when it builds one."""
        from factory.derive.config import TransplantConfig, TrimConfig

        sec = self.sections
        if "trim" in sec and "transplant" in sec:
            self.problems.append("steps.trim and steps.transplant: a recipe derives its model one way; keep one")
        if "trim" in sec:
            out = self.run_dir / "trim"
            config = self.config(TrimConfig, self.layers("trim", sec["trim"], corpus=True), {"out": out, "force": True})
            plan.append(Step("trim", "trim", config, out))
        elif "transplant" in sec:
            out = self.run_dir / "transplant"
            fixed = {"out": out, "force": True, **({"vocab": str(vocab_dir)} if "vocab" in sec else {})}
            config = self.config(TransplantConfig, self.layers("transplant", sec["transplant"]), fixed)
            plan.append(Step("transplant", "transplant", config, out, reads=["vocab"] if "vocab" in sec else []))
        else:
            return None
        return plan[-1]

    def _check_suite(self, suite: str, config) -> None:
        """The suite exists and the recipe's `set:` names its settings (found now, not when the step starts)."""
        from factory.evaluate.entry import setting_layer
        from factory.evaluate.suite import load_suite

        try:
            settings = load_suite(suite).settings
            self.problems += check(type(settings), [Layer(to_values(settings)), setting_layer(config.set)])[1]
        except FactoryError as e:
            self.problems.append(f"steps.eval.{suite}: {e}")


# ---- running the plan ----------------------------------------------------------------------------
STATE_FILE = "run-state.json"


def step_state(step: Step, plan: list[Step]) -> dict[str, Any]:
    """What a step's output depends on: its own config and the manifests of the steps it reads."""
    outs = {s.name: s.out for s in plan}
    return {
        "config": to_json(step.config),
        "inputs": {r: manifest_fingerprint(outs[r]) for r in step.reads if r in outs},
        "files": _local_files(step, [s.out for s in plan]),
    }


def _local_files(step: Step, produced: list[Path]) -> dict[str, list[int]]:
    """Size and modification time of every local file a step's config names (a folder: its files), so an
    edited corpus re-runs its step even though the config is the same. Folders the plan itself writes are
    left out: their manifests stand for them."""
    from factory.core.outputs import file_stats

    paths = []
    for value in to_values(step.config).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(item, (str, Path)):
                continue
            path = Path(str(item).split("=", 1)[-1] if isinstance(item, str) else item)
            if not path.exists() or any(path == out or out in path.parents for out in produced):
                continue
            paths.append(path)
    return file_stats(paths)


def is_done(step: Step, state: dict[str, Any], saved: dict[str, Any]) -> bool:
    """Up to date: run with the same state, and its output complete (a manifest this factory reads; publish,
    which writes none, its card). A manifest of another version means the step runs again and rewrites it."""
    from factory.core.errors import ManifestError
    from factory.recipe.steps import spec_of

    schema = spec_of(step.name).manifest_class()
    try:
        finished = find_manifest(step.out, schema) is not None if schema else (step.out / "README.md").is_file()
    except ManifestError:
        finished = False
    return finished and saved.get(step.name) == state


def run_step(step: Step) -> None:
    """Call the step's library function with its config: the same code the command runs."""
    from factory.recipe.steps import spec_of

    suite = step.name.split(".", 1)[1] if step.name.startswith("eval.") else None
    spec_of(step.name).run_with(step.config, suite)


def run_plan(plan: list[Step], run_dir: Path, resume: bool) -> list[str]:
    """Run the steps in order, skipping those whose output is up to date; returns the names that ran. One
    `factory run` per run folder at a time (its lock; each step locks its own folder too). `resume`: continue
    the pre-training in the run folder even though its settings or inputs changed (`check_pretrain_folder`)."""
    with output_lock(run_dir, "--run-dir"):
        return _run_steps(plan, run_dir, resume)


STARTED = "started"  # run-state.json: what each step was last started with (its state), finished or not


def _run_steps(plan: list[Step], run_dir: Path, resume: bool) -> list[str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE_FILE
    saved = read_state(state_path)
    started = saved.setdefault(STARTED, {})
    pretrain = next((s for s in plan if s.name == "pretrain"), None)
    if pretrain is not None and not resume:  # before any step runs, on the inputs there now
        check_pretrain_folder(pretrain, step_state(pretrain, plan), saved)
    ran: list[str] = []
    for i, step in enumerate(plan, 1):
        state = step_state(step, plan)  # computed after the steps before it ran: the inputs it actually reads
        if is_done(step, state, saved):
            log.info("[%d/%d] %s: up to date, skipped (%s)", i, len(plan), step.name, step.out)
            continue
        if step.name == "pretrain" and not resume:  # again: a step before it may have rewritten its inputs
            check_pretrain_folder(step, state, saved)
        log.info("[%d/%d] %s: %s", i, len(plan), step.name, step.command_line())
        started[step.name] = state
        write_state(state_path, saved)
        run_step(step)
        saved[step.name] = state
        write_state(state_path, saved)
        ran.append(step.name)
    return ran


def read_state(path: Path) -> dict[str, Any]:
    """run-state.json ({} where there is none); a damaged one is one line saying what to do."""
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        why = "" if isinstance(saved, dict) and isinstance(saved.get(STARTED, {}), dict) else "it is not a mapping"
    except (OSError, ValueError) as e:  # ValueError: invalid JSON, or bytes that are not UTF-8
        saved, why = None, f"not readable JSON: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    if why:
        raise RecipeError(
            f"{short_path(path)} is damaged ({why}): fix it, or delete it, and `factory run` runs every step again "
            "(a pre-training it finds in the run folder then needs --resume to continue)"
        )
    return saved


def write_state(path: Path, saved: dict[str, Any]) -> None:
    """run-state.json written whole (outputs.write_whole: a kill mid-write keeps the old)."""
    write_whole(path, json.dumps(saved, indent=2) + "\n")


def check_pretrain_folder(step: Step, state: dict[str, Any], saved: dict[str, Any]) -> None:
    """`factory run` never starts a pre-training over the run in its folder: the step always runs with `--resume
    auto` (as the planner fixes it) and never `--force`. Continuing is right when this recipe started that run with
    the same settings and inputs: an interrupted step. When they changed, continuing would mix two runs and
    starting over would delete the checkpoints, so it is refused, saying how to go on (`factory run --resume`
    continues it anyway: pretrain then refuses what a checkpoint cannot continue, such as another batch)."""
    from factory.pretrain.checkpoint import checkpoint_dirs, holds_run

    started = saved[STARTED].get(step.name, saved.get(step.name))  # (run-state.json before STARTED: the finished)
    if is_done(step, state, saved) or started == state or not holds_run(step.out):
        return
    found = checkpoint_dirs(step.out)
    last = f" (last checkpoint: step {int(found[-1].name.split('-')[1])})" if found else ""
    why = "this recipe did not start"
    if started is not None:
        why = f"started with other settings or inputs ({_changes(started, state)})"
    raise RecipeError(
        f"{short_path(step.out)} holds a pre-training run{last} {why}, which `factory run` does not delete: pass "
        "--resume to continue it with the recipe's settings, or move that folder away (or use another --run-dir) to "
        "start over"
    )


def _changes(before: dict[str, Any], now: dict[str, Any]) -> str:
    """What differs between two states of the pre-training step, for a message: the settings (with their values),
    the steps whose outputs it reads, the files it reads."""
    was, config = before.get("config", {}), now["config"]
    changes = [f"steps.pretrain.{k} {short_value(was.get(k), 20)} -> {short_value(config.get(k), 20)}"
               for k in _differ(was, config)]  # fmt: skip
    changes += [f"the {name} step's output" for name in _differ(before.get("inputs", {}), now["inputs"])]
    changes += ["the files it reads"] if _differ(before.get("files", {}), now["files"]) else []
    return ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def _differ(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys whose values differ between two mappings (a key only one has differs)."""
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def plan_lines(plan: list[Step], recipe: dict[str, Any]) -> list[str]:
    """Every step's command, then the pre-training plan (parameters, tokens, FLOPs, time) and the disk needed."""
    lines = [f"[{i}/{len(plan)}] {step.name}: {step.command_line()}" for i, step in enumerate(plan, 1)]
    pretrain = next((s for s in plan if s.name == "pretrain"), None)
    if pretrain is None:
        return lines
    derived = next((s for s in plan if s.name in ("trim", "transplant")), None)
    if derived is not None and not (derived.out / "config.json").is_file():
        return [*lines, "", f"pre-training plan: after the {derived.name} step has written {derived.out} (the model's "
                "shape and vocabulary come from it); run the recipe up to there, or `factory pretrain --init-from "
                f"{derived.out} --dry-run`"]  # fmt: skip
    from factory.model.presets import VocabSize, count_parameters, shape_of
    from factory.pretrain.plan import count_rtd_parameters, dry_run_lines

    vocab = next((s.config for s in plan if s.name == "vocab"), None)
    shards = next((s.config for s in plan if s.name == "shards"), None)
    size = vocab.size if vocab is not None else DEFAULT_VOCAB_SIZE
    config = dataclasses.replace(pretrain.config, vocab=None, shards=None, vocab_size=size, dry_run=True,
                                 seq_len=pretrain.config.seq_len or (shards.seq_len if shards else None))  # fmt: skip
    if config.init_from:  # the shape and the vocabulary are the starting model's (its configs are read now)
        from factory.pretrain.start import open_start

        config = dataclasses.replace(config, vocab_size=None)
        start = open_start(config)
        shape, size = start.shape, start.vocab_size
    lines += ["", "pre-training plan:", *dry_run_lines(config)]
    if not config.init_from:
        shape, size = shape_of(config), VocabSize.parse(size, config.layout)  # the preset, or steps.pretrain's
    model = count_parameters(shape.config(size))
    lines.append(
        f"exported model ({shape.describe()}, {size.pieces:,} pieces): backbone {model['backbone']:,} + embedding "
        f"{model['embedding']:,} = {model['total']:,} parameters"
    )
    params = count_rtd_parameters(shape, size, config.sharing)
    checkpoints = config.keep * 16 * params["total"]  # fp32 weights + grads + Adam moments, per kept checkpoint
    exports = 4 * (params["generator"] + params["discriminator"])
    lines.append(
        f"disk: ~{(checkpoints + exports) / 2**30:.1f} GiB for {config.keep} checkpoints and the two exported "
        "models, plus 4 bytes per corpus token for the shards"
    )
    return lines
