"""Recipes and `factory run`: every recipe plans; the demo pipeline runs end to end with small settings,
re-runs nothing when nothing changed, and re-runs exactly the steps downstream of a deleted output."""

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
import transformers
from click.testing import CliRunner
from conftest import one_error_line, word_shards

from factory.cli.main import cli
from factory.model import load_model
from factory.model.presets import VocabSize, count_parameters, get_preset

RECIPES = sorted(Path(__file__).parents[1].joinpath("recipes").glob("*.yaml"))
DEMO = Path(__file__).parents[1] / "recipes" / "demo.yaml"
# The demo, smaller: fewer pre-training steps and a smaller batch, one fine-tuning epoch.
SMALL = [
    "--set", "steps.pretrain.max_steps=12",
    "--set", "steps.pretrain.batch=8",
    "--set", "steps.pretrain.warmup=2",
    "--set", "steps.pretrain.save_every=6",
    "--set", "steps.vocab.size=1000",
    "--set", "steps.eval.xnli.set=[epochs=1, learning_rate=0.002]",
]  # fmt: skip


def run(*args):
    return CliRunner().invoke(cli, ["run", *map(str, args)])


def test_recipes_ship_for_every_family():
    names = {p.stem for p in RECIPES}
    for family in ("deberta-v3-xsmall", "deberta-v3-small", "deberta-v3-base", "deberta-v3-large",
                   "mdeberta-v3-base", "debertina-xsmall", "debertina-base", "debertina-base-128k",
                   "debertina-large", "demo"):  # fmt: skip
        assert family in names


# The published models recipes continue (`init_from`): preset and embedding rows (docs/derive.md#published-layouts)
PUBLISHED = {"microsoft/deberta-v3-xsmall": ("xsmall", 128100), "microsoft/deberta-v3-small": ("small", 128100),
             "microsoft/deberta-v3-base": ("base", 128100), "microsoft/deberta-v3-large": ("large", 128100),
             "microsoft/mdeberta-v3-base": ("base", 251000)}  # fmt: skip


def cache_published_configs(cache: Path, repo_id: str, tokenizer: Path) -> VocabSize:
    """What a dry run of `init_from: REPO` reads, in the Hub cache: the published config.json and
    generator_config.json at the model's sizes (no weights: a plan reads none), and an spm.model."""
    from published import hub_cache, published_config

    preset, rows = PUBLISHED[repo_id]
    config = get_preset(preset).config(VocabSize(pieces=1000, rows=rows, layout="official"))
    folder = cache.parent / "configs"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(published_config(config)))
    generator = published_config(config.replace(num_hidden_layers=get_preset(preset).generator_layers))
    (folder / "generator_config.json").write_text(json.dumps(generator))
    (folder / "spm.model").write_bytes((tokenizer / "spm.model").read_bytes())
    hub_cache(cache, repo_id, folder)
    return VocabSize(pieces=1000, rows=rows, layout="official")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_dry_runs_with_the_presets_parameter_counts(recipe, tmp_path, hf_cache, tiny_vocab):
    import yaml

    spec = yaml.safe_load(recipe.read_text())
    derived = next((step for step in ("trim", "transplant") if step in spec["steps"]), None)
    if derived is not None:  # the pre-training plan needs the derived model's config, which a dry run cannot make
        result = run(recipe, "--dry-run", "--run-dir", tmp_path / "run")
        assert result.exit_code == 0, result.output
        assert f"factory {derived} " in result.output and not (tmp_path / "run").exists()
        assert "pretrain" not in spec["steps"] or f"after the {derived} step has written" in result.output
        return
    pretrain = spec["steps"]["pretrain"]
    if pretrain.get("init_from"):  # the shape and the vocabulary are the published model's
        vocab = cache_published_configs(hf_cache, pretrain["init_from"], tiny_vocab)
        preset = PUBLISHED[pretrain["init_from"]][0]
    else:
        vocab = VocabSize.parse(str(spec["steps"]["vocab"]["size"]), pretrain.get("layout", "official"))
        preset = pretrain["preset"]
    result = run(recipe, "--dry-run", "--run-dir", tmp_path)
    assert result.exit_code == 0, result.output
    counts = count_parameters(get_preset(preset).config(vocab))
    line = next(x for x in result.output.splitlines() if x.startswith("exported model"))
    printed = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]{3,}", line)]
    assert printed[-3:] == [counts["backbone"], counts["embedding"], counts["total"]], line
    assert "FLOPs/step" in result.output and "disk:" in result.output
    assert not (tmp_path / "vocab").exists()  # a dry run writes nothing


def test_set_overrides_and_unknown_keys(tmp_path):
    result = run(DEMO, "--dry-run", "--run-dir", tmp_path, "--set", "steps.pretrain.max_steps=7")
    assert result.exit_code == 0 and "--max-steps 7 " in result.output
    bad = run(DEMO, "--dry-run", "--set", "steps.pretrain.max_stepz=7")
    assert bad.exit_code == 2 and "unknown key 'max_stepz'" in bad.output and "max_steps" in bad.output
    wired = run(DEMO, "--dry-run", "--set", "steps.pretrain.out=elsewhere")
    assert wired.exit_code == 2 and "set by `factory run`" in wired.output
    assert run(DEMO, "--set", "nonsense").exit_code == 2
    assert run(DEMO, "--dry-run", "--set", "steps.train.lr=1").exit_code == 2
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\nstpes: {}\n")
    result = run(recipe, "--dry-run")
    assert result.exit_code == 2 and "unknown key" in result.output and len(result.output.splitlines()) == 1


def _ran(output: str) -> list[str]:
    return re.search(r"done: ran (.*);", output).group(1).split(", ")


@pytest.mark.slow
def test_demo_pipeline_small(tmp_path):
    run_dir = tmp_path / "demo"
    result = run(DEMO, "--run-dir", run_dir, *SMALL)
    assert result.exit_code == 0, result.output[-2000:]
    assert _ran(result.output) == ["vocab", "shards", "pretrain", "eval.xnli", "publish"]

    # the discriminator loads in transformers and gives our hidden states
    disc = run_dir / "pretrain" / "discriminator"
    ours = load_model(disc, head="none")
    theirs = transformers.AutoModel.from_pretrained(disc).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(disc)
    batch = tokenizer(["The old man reads a book.", "Маленькая компания пишет письмо."], padding=True,
                      return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        a = ours(batch["input_ids"], batch["attention_mask"]).last_hidden_state
        b = theirs(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert (a - b).abs().max() <= 1e-4
    # an XNLI-style table with its chart, and a card
    results = json.loads((run_dir / "eval" / "xnli" / "results.json").read_text())
    assert {"en", "es", "de", "ru"} <= set(results["results"])
    assert (run_dir / "eval" / "xnli" / "results.md").is_file()
    assert list((run_dir / "eval" / "xnli").glob("*.png"))
    # the recipe asks for the random-init control: the same languages, and the gain beside them
    assert set(results["control"]) == set(results["results"]) and "avg" in results["gain"]
    from huggingface_hub import ModelCard

    card = ModelCard.load(run_dir / "hub" / "README.md")
    assert card.data.language[:3] == ["multilingual", "en", "pt"]  # from the vocabulary, through pre-training
    assert {r.dataset_config for r in card.data.eval_results} == {"en", "es", "de", "ru"}
    assert all(r.dataset_type == "local:nli" for r in card.data.eval_results)  # local data is not called XNLI's
    # the card's pre-training numbers are the real manifest's, not invented
    manifest = json.loads((disc / "factory.json").read_text())
    body = card.text
    assert "| random-init control |" in body and "| gain over the control (points) |" in body
    assert "| Steps | 12 |" in body and f"| Sequence length | {manifest['seq_len']} |" in body
    assert "CPU cores" in body and "±" not in body  # one fine-tuning run: no standard deviation

    # nothing changed: every step is skipped, quickly
    start = time.perf_counter()
    again = run(DEMO, "--run-dir", run_dir, *SMALL)
    assert again.exit_code == 0 and "ran nothing" in again.output, again.output
    assert time.perf_counter() - start < 10

    # one output deleted: that step and those after it run again, nothing else
    shutil.rmtree(run_dir / "eval" / "xnli")
    third = run(DEMO, "--run-dir", run_dir, *SMALL)
    assert third.exit_code == 0, third.output[-2000:]
    assert _ran(third.output) == ["eval.xnli", "publish"]
    shutil.rmtree(run_dir / "shards")  # further up: the pre-training run downstream is not started over by itself
    line = one_error_line(run(DEMO, "--run-dir", run_dir, *SMALL), "the shards step's output", "--resume", alone=False)
    assert "pretrain holds a pre-training run (last checkpoint: step 12)" in line and not (run_dir / "shards").exists()
    shutil.rmtree(run_dir / "pretrain")  # moved away: everything downstream of the shards runs, not the vocabulary
    fourth = run(DEMO, "--run-dir", run_dir, *SMALL)
    assert fourth.exit_code == 0, fourth.output[-2000:]
    assert _ran(fourth.output) == ["shards", "pretrain", "eval.xnli", "publish"]


@pytest.mark.usefixtures("one_thread")
def test_an_interrupted_pretraining_continues_and_is_never_deleted(tiny_vocab, tmp_path, monkeypatch):
    """Ctrl-C after the step-4 checkpoint, then `factory run` again: it used to re-run pretrain with --force from
    step 0, deleting the checkpoints. Now the same settings continue from step 4; other settings are refused in one
    line with the checkpoints untouched, and --resume continues the run under them."""
    import factory.pretrain.loop as loop

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_vocab, run_dir / "vocab")  # the recipe's steps before pretrain, already done
    shutil.move(word_shards(tiny_vocab, tmp_path, lines=200, words=300), run_dir / "shards")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsteps:\n  pretrain: {preset: debug, layers: 1, batch: 4, max_steps: 6, save_every: 2, "
                      "warmup: 1, mixed_precision: 'no'}\n")  # fmt: skip
    save = loop.save_checkpoint

    def save_then_interrupt(accelerator, out, step, state, keep):
        saved = save(accelerator, out, step, state, keep)
        if step == 4:
            raise KeyboardInterrupt
        return saved

    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    assert run(recipe, "--run-dir", run_dir).exit_code == 130
    monkeypatch.undo()
    checkpoint = run_dir / "pretrain" / "checkpoints" / "step-00000004" / "trainer.json"
    written = checkpoint.stat().st_mtime_ns

    line = one_error_line(run(recipe, "--run-dir", run_dir, "--set", "steps.pretrain.max_steps=8"), alone=False)
    assert "pretrain holds a pre-training run (last checkpoint: step 4)" in line and "max_steps 6 -> 8" in line, line
    assert "--resume" in line and checkpoint.stat().st_mtime_ns == written

    again = run(recipe, "--run-dir", run_dir)
    assert again.exit_code == 0 and _ran(again.output) == ["pretrain"], again.output
    manifest = json.loads((run_dir / "pretrain" / "factory.json").read_text())
    assert [s["from_step"] for s in manifest["sessions"]] == [0, 4]
    assert checkpoint.stat().st_mtime_ns == written  # continued from it, not written again
    assert "ran nothing" in run(recipe, "--run-dir", run_dir).output

    longer = run(recipe, "--run-dir", run_dir, "--set", "steps.pretrain.max_steps=8", "--resume")
    assert longer.exit_code == 0, longer.output
    manifest = json.loads((run_dir / "pretrain" / "factory.json").read_text())
    assert [s["from_step"] for s in manifest["sessions"]] == [0, 4, 6] and manifest["sessions"][2]["changed"] == {
        "max_steps": 8
    }


@pytest.mark.parametrize("text", ['{"started": {"vocab"', "[1, 2]", '{"started": [1]}', "\udcff"])
def test_a_damaged_run_state_is_one_line(tmp_path, text):
    """A run-state.json that is not JSON (a kill mid-write used to leave one), not a mapping, or not UTF-8: one line
    naming it and what to do, before any step runs (it was a traceback)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    state = run_dir / "run-state.json"
    state.write_bytes(text.encode("utf-8", "surrogateescape"))
    line = one_error_line(run(DEMO, "--run-dir", run_dir, *SMALL), f"{state} is damaged", "delete it", alone=False)
    assert "not a mapping" in line if text.startswith(("[", '{"started": [')) else "not readable JSON" in line
    assert sorted(p.name for p in run_dir.iterdir()) == ["run-state.json"]  # nothing ran


def test_run_state_is_written_whole(tmp_path, monkeypatch):
    """Written to a temporary file and renamed: a write cut short leaves the last whole run-state.json."""
    from factory.recipe.run import read_state, write_state

    state = tmp_path / "run-state.json"
    write_state(state, {"started": {"vocab": {"config": 1}}})
    real = Path.write_text

    def cut_short(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(KeyboardInterrupt):
        write_state(state, {"started": {"vocab": {"config": 2}}, "vocab": {"config": 2}})
    monkeypatch.undo()
    assert read_state(state) == {"started": {"vocab": {"config": 1}}}


def test_a_recipe_can_evaluate_retrieval(tmp_path):
    """An `eval: retrieval:` section is resolved by the retrieval config (no suite file, no fine-tuning)."""
    from factory.evaluate.config import RetrievalConfig
    from factory.recipe.run import build_plan, load_recipe

    recipe = load_recipe(DEMO, ["steps.eval.retrieval={data: demo/corpus, control: random}"])
    plan = build_plan(recipe, tmp_path)
    step = next(s for s in plan if s.name == "eval.retrieval")
    assert isinstance(step.config, RetrievalConfig) and step.config.control == "random"
    line = step.command_line()
    assert line.startswith("factory eval retrieval --model ") and "recipes/demo/corpus --control random" in line
    bad = load_recipe(DEMO, ["steps.eval.retrieval={data: demo/corpus, layer: 2}"])
    with pytest.raises(Exception, match=r"steps.eval.retrieval.layer: 2 must be <= 1"):
        build_plan(bad, tmp_path)
