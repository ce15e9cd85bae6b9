"""What factory says must be what it did: a resume that would train with settings other than the ones it records,
two writers on one folder, an empty override, counts written as people write them, a vocabulary report that
rewards [UNK], and the faults (a full disk, Ctrl-C, no network) that must be one line with the right exit code."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import model_folder, one_error_line, pseudo_text, word_shards
from test_pretrain import args as pretrain_args
from test_pretrain import env, log

from factory.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shards(tiny_vocab, tmp_path_factory):
    return word_shards(tiny_vocab, tmp_path_factory.mktemp("truth-data"), lines=200, words=1200)


def invoke(argv):
    return CliRunner().invoke(cli, [str(a) for a in argv])


# ---- 1. resume trains with what it records ----------------------------------------------------------
@pytest.mark.slow
def test_a_resume_with_another_lr_or_seed_is_refused_and_what_may_change_is_recorded(tiny_vocab, shards, tmp_path):
    out = tmp_path / "r"
    first = pretrain_args(tiny_vocab, shards, out, "--max-steps", "4", "--save-every", "2")
    assert invoke(first).exit_code == 0
    more = pretrain_args(tiny_vocab, shards, out, "--max-steps", "6", "--save-every", "2", "--resume", "auto")
    line = one_error_line([*more, "--lr", "0.01"])  # args() gave --lr 3e-3
    assert "trained with --lr 0.003, this run asks 0.01" in line and "start a new --out" in line
    other = tmp_path / "other"  # another run's checkpoint, another seed
    checkpoint = out / "checkpoints" / "step-00000004"
    line = one_error_line([*pretrain_args(tiny_vocab, shards, other, "--max-steps", "6"), "--resume", checkpoint,
                           "--seed", "7"])  # fmt: skip
    assert "trained with --seed 0, this run asks 7" in line and not other.exists()
    assert invoke([*more, "--micro-batch", "4"]).exit_code == 0  # what may change is recorded, session by session
    manifest = json.loads((out / "factory.json").read_text())
    assert manifest["sessions"] == [{"from_step": 0, "changed": {}},
                                    {"from_step": 4, "changed": {"max_steps": 6, "micro_batch": 4}}]  # fmt: skip
    assert manifest["lr"] == 0.003 and manifest["steps"] == 6


# ---- 2. one writer per folder ---------------------------------------------------------------------------
def test_a_folder_being_written_is_refused_by_every_long_step(tiny_vocab, shards, tmp_path):
    from factory.core.outputs import output_lock

    out = tmp_path / "busy"
    commands = [
        pretrain_args(tiny_vocab, shards, out, "--max-steps", "1"),
        ["shards", "--vocab", tiny_vocab, "--corpus", DEMO / "corpus" / "en.txt", "--out", out],
        ["vocab", "--lang", "en", "--size", "1000", "--corpus", DEMO / "corpus" / "en.txt", "--out", out],
        ["trim", model_folder(tmp_path / "t", tokenizer=tiny_vocab), "--langs", "en", "--corpus",
         DEMO / "corpus" / "en.txt", "--out", out],
        ["transplant", tmp_path / "t", "--vocab", tiny_vocab, "--out", out],
    ]
    with output_lock(out):
        for command in commands:
            line = one_error_line(command, out=out)
            assert f"--out {out} is being written by another factory process (pid {os.getpid()})" in line
    model = model_folder(tmp_path / "m", tokenizer=tiny_vocab)
    for command in (["eval", "xnli", "--model", model, "--data", DEMO / "nli", "--out", out],
                    ["eval", "retrieval", "--model", model, "--data", DEMO / "nli", "--out", out]):  # fmt: skip
        with output_lock(out):
            one_error_line(command, "is being written by another factory process", out=out)
    with output_lock(tmp_path / "runs"):
        one_error_line(["run", "demo", "--run-dir", tmp_path / "runs"], "--run-dir", "another factory process",
                       alone=False)  # after the plan's first line
    assert not list(tmp_path.glob(".*.lock"))  # released and removed on a normal exit


@pytest.mark.slow
def test_two_pretrainings_on_one_folder_the_second_stops(tiny_vocab, shards, tmp_path):
    """The case found in review: two `--resume auto` on one --out both ran and interleaved train.jsonl."""
    out = tmp_path / "twice"
    argv = [sys.executable, "-m", "factory", *map(str, pretrain_args(tiny_vocab, shards, out, "--max-steps", "30",
            "--save-every", "10", "--resume", "auto"))]  # fmt: skip
    first = subprocess.Popen(argv, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lock = tmp_path / ".twice.lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(argv, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]
    assert second.returncode == 2 and "is being written by another factory process" in second.stderr
    assert [r["step"] for r in log(out)] == list(range(1, 31))  # one writer: every step once, in order
    assert not lock.exists()


# ---- 3. an empty override ----------------------------------------------------------------------------------
def test_an_empty_set_value_is_refused():
    line = one_error_line(["run", "demo", "--set", "steps.pretrain.max_steps=", "--dry-run"])
    assert "has no value" in line and "steps.pretrain.max_steps=null" in line


# ---- 4. the demo is multilingual where it counts ----------------------------------------------------------
@pytest.mark.slow
def test_the_demo_routes_each_language_into_its_own_shards(tmp_path):
    from factory.recipe.run import build_plan, load_recipe, run_step

    plan = {step.name: step for step in build_plan(load_recipe("demo"), tmp_path / "demo")}
    corpus = plan["shards"].config.corpus
    langs = ["en", "pt", "es", "fr", "de", "ru", "ar", "zh"]
    assert [c.split("=", 1)[0] for c in corpus] == langs
    assert plan["pretrain"].config.alpha == 0.3
    run_step(plan["vocab"])
    run_step(plan["shards"])
    from factory.shards.read import ShardSet

    shards = ShardSet(plan["shards"].config.out)
    assert sorted(shards.languages) == sorted(langs)
    assert all(shards.corpus_tokens[lang] > 1000 for lang in langs), shards.corpus_tokens


# ---- 5. one count grammar ------------------------------------------------------------------------------------
def test_counts_read_the_same_everywhere(tmp_path):
    from factory.core.options import parse_count

    assert [parse_count(t) for t in ("10M", "2B", "1e9", "1.5k", "300")] == [10**7, 2 * 10**9, 10**9, 1500, 300]
    plan = invoke(["pretrain", "--preset", "debug", "--vocab-size", "1k", "--tokens", "2B", "--dry-run", "--out",
                   tmp_path / "p"])  # fmt: skip
    assert plan.exit_code == 0, plan.output
    steps = invoke(["pretrain", "--preset", "debug", "--vocab-size", "1k", "--max-steps", "10k", "--dry-run", "--out",
                    tmp_path / "p"])  # fmt: skip
    assert "schedule: 10,000 steps" in steps.output
    line = one_error_line(["pretrain", "--preset", "debug", "--vocab-size", "1k", "--tokens", "2X", "--dry-run",
                           "--out", tmp_path / "p"])  # fmt: skip
    assert "'2X' is not a number (or a count: 10M, 2B, 1e9)" in line
    vocab = invoke(["vocab", "--lang", "en", "--size", "1000", "--corpus", DEMO / "corpus" / "en.txt",
                    "--max-sentences", "10M", "--out", tmp_path / "v"])  # fmt: skip
    assert "is not a number" not in vocab.output  # the README's first journey, as written, parses


# ---- 6. a vocabulary report that does not reward [UNK] ------------------------------------------------------
def test_fertility_counts_what_an_unk_hides(tiny_vocab):
    from factory.vocab.report import FIGURES, segmentation_figures

    texts = {"zh": ["中文的文本没有空格所以一个词很长", "这是第二句话"]}  # no piece of tiny_vocab covers Chinese
    report = segmentation_figures(tiny_vocab, texts)["zh"]
    assert report["char_coverage"] == 0.0 and report["unk_rate"] > 0
    characters = sum(len(t) for t in texts["zh"])  # each word is all [UNK]: its characters are its pieces
    assert report["fertility"] >= characters / len(texts["zh"])
    assert FIGURES[0] == "char_coverage"  # the first table of the report


# ---- 7. faults: a full disk, Ctrl-C, no network --------------------------------------------------------
def test_a_full_disk_in_a_checkpoint_is_one_line_and_the_run_resumes_exactly(tiny_vocab, shards, tmp_path,
                                                                              monkeypatch):  # fmt: skip
    from accelerate import Accelerator

    steps = ["--max-steps", "4", "--save-every", "2"]
    straight = tmp_path / "straight"
    assert invoke(pretrain_args(tiny_vocab, shards, straight, *steps)).exit_code == 0
    out = tmp_path / "full"
    real, calls = Accelerator.save_state, []

    def save_state(self, *args, **kwargs):  # what torch.save says when the disk fills in its zip writer
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 0 vs 64: file write failed")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    result = invoke(pretrain_args(tiny_vocab, shards, out, *steps))
    one_error_line(result, "the disk is full", "--resume auto", code=1, alone=False)
    monkeypatch.undo()
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == ["step-00000002"]  # the whole one stands
    assert invoke([*pretrain_args(tiny_vocab, shards, out, *steps), "--resume", "auto"]).exit_code == 0
    assert [r["rtd_loss"] for r in log(out)] == [r["rtd_loss"] for r in log(straight)]


@pytest.mark.parametrize("step", ["vocab", "shards"])
def test_a_full_disk_while_writing_is_one_line_exit_1(tiny_vocab, tmp_path, monkeypatch, step):
    full = OSError(errno.ENOSPC, "No space left on device")
    if step == "vocab":
        import factory.vocab.train

        def train_spm(*args, **kwargs):
            raise RuntimeError("INTERNAL: src/trainer_interface.cc(783) [output->WriteLine(...)]")

        monkeypatch.setattr(factory.vocab.train, "train_spm", train_spm)
        command = ["vocab", "--lang", "en", "--size", "1000", "--corpus", DEMO / "corpus" / "en.txt"]
    else:
        from factory.shards.pack import ShardWriter

        def write(self, rows):
            raise full

        monkeypatch.setattr(ShardWriter, "write", write)
        command = ["shards", "--vocab", tiny_vocab, "--corpus", DEMO / "corpus" / "en.txt", "--rows-per-shard", "4"]
    out = tmp_path / step
    line = one_error_line([*command, "--out", out], "the disk is full", "free some space", code=1, out=out, alone=False)
    # what a rerun keeps is the command's own: the shard build resumes, a vocabulary starts over
    assert ("resumes the build" in line) == (step == "shards") and ("nothing to resume" in line) == (step == "vocab")
    assert "pretrain" not in line, line


@pytest.mark.slow
def test_ctrl_c_in_a_shard_build_is_one_line_and_the_rerun_resumes(tiny_vocab, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(pseudo_text(40000, seed=3)) + "\n")  # long enough to be caught mid-build
    out = tmp_path / "s"
    argv = [sys.executable, "-m", "factory", "shards", "--vocab", str(tiny_vocab), "--corpus", str(corpus),
            "--num-proc", "2", "--seq-len", "64", "--out", str(out)]  # fmt: skip  (cleaning, de-duplication: processes)
    environ = {**env(), "FACTORY_SHARDS_CHECKPOINT_S": "0.05"}
    proc = subprocess.Popen(argv, env=environ, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    state = out.parent / f".{out.name}.shards-work" / "state.npz"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group, workers included
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert [line for line in err.splitlines() if line.startswith("Error: ")] == [f"Error: {_interrupted()}"]
    rerun = subprocess.run(argv, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "resuming" in rerun.stderr, rerun.stderr[-2000:]


def _interrupted() -> str:
    from factory.cli.main import rerun

    return f"interrupted; {rerun('shards')}"


def test_no_network_is_one_line_exit_1_and_a_missing_dataset_exit_2(tiny_vocab, tmp_path, monkeypatch):
    import factory.corpus.reading as reading

    def unreachable(spec):
        raise ConnectionError("Couldn't reach 'allenai/c4' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(reading, "_builder", unreachable)
    reading.open_stream.cache_clear()
    out = tmp_path / "s"
    command = ["-q", "shards", "--vocab", tiny_vocab, "--corpus", "pt=hf:allenai/c4:pt", "--out", out]
    one_error_line(command, "could not reach the Hugging Face Hub", "check the network", code=1, out=out)

    def missing(spec):
        raise FileNotFoundError("Dataset 'nobody/nothing' doesn't exist on the Hub or cannot be accessed.")

    monkeypatch.setattr(reading, "_builder", missing)
    reading.open_stream.cache_clear()
    line = one_error_line(["shards", "--vocab", tiny_vocab, "--corpus", "pt=hf:nobody/nothing", "--out", out], out=out)
    assert "doesn't exist on the Hub" in line
    reading.open_stream.cache_clear()


def test_the_hubs_retry_lines_are_hidden_unless_verbose(monkeypatch):
    from factory.cli.main import VERBOSITY, configure_logging

    for variable in VERBOSITY:
        monkeypatch.delenv(variable, raising=False)
    configure_logging(verbose=0, quiet=True)
    assert all(os.environ[v] == "error" for v in VERBOSITY)
    for variable in VERBOSITY:
        monkeypatch.delenv(variable, raising=False)
    configure_logging(verbose=1, quiet=False)
    assert not any(v in os.environ for v in VERBOSITY)
