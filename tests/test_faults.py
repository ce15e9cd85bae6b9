"""Faults and bad input that once gave a traceback, a hang, wrong numbers or N runs for one: each is now one line
and the right exit code, with nothing lost (docs/promises.md lists the promises and the tests that keep them).

1. a launch Accelerate does not join; 2. a kill inside a log record, a checkpoint, the pruning of old checkpoints,
a shard checkpoint; 3. labels that cannot be used; 4. unreadable files and unusable paths; 5. shapes too large
to build; 6. an output inside its corpus, a sequence length pre-training refuses.
"""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import model_folder, one_error_line, word_shards
from test_pretrain import args as pretrain_args
from test_pretrain import assert_same_run, assert_same_weights, env, free_port, log

from factory.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
FAULTS = Path(__file__).with_name("faults.py")
DEMO = ROOT / "recipes" / "demo"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shards(tiny_vocab, tmp_path_factory):
    return word_shards(tiny_vocab, tmp_path_factory.mktemp("faults-data"), lines=200, words=1200)


@pytest.fixture(scope="module")
def model(tiny_vocab, tmp_path_factory):
    return model_folder(tmp_path_factory.mktemp("faults-model") / "m", tokenizer=tiny_vocab)


def run_with_fault(where: str, argv: list, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """`factory ARGV` in a subprocess that SIGKILLs itself at `where` (tests/faults.py)."""
    command = [sys.executable, str(FAULTS), where, *map(str, argv)]
    return subprocess.run(command, env={**env(), **(extra_env or {})}, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


# ---- 1. a launch Accelerate does not join --------------------------------------------------------
@pytest.mark.slow
def test_a_cpu_launch_without_accelerate_use_cpu_stops_before_writing(tiny_vocab, shards, tmp_path):
    """torchrun x2 on a machine without a GPU and without ACCELERATE_USE_CPU: each process would train alone and
    write the same --out (exit 0, twice). Now: exit 2 from both, the one line says how to launch, no --out."""
    out = tmp_path / "split"
    port = str(free_port())
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
               "-m", "factory", *pretrain_args(tiny_vocab, shards, out, "--max-steps", "2")]  # fmt: skip
    environ = {k: v for k, v in env().items() if k != "ACCELERATE_USE_CPU"}
    done = subprocess.run(command, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2 and errors[0] == errors[1], done.stderr[-3000:]  # one line from each process
    assert "launcher started 2 processes but Accelerate joined 1" in errors[0]
    assert "ACCELERATE_USE_CPU=true" in errors[0]
    assert not out.exists()


def test_check_launch_reads_the_launchers_variables():
    from factory.core.errors import ConfigError
    from factory.core.launch import check_launch, is_main_process, launched_processes

    assert launched_processes({}) == 1 and launched_processes({"WORLD_SIZE": "4"}) == 4
    assert launched_processes({"OMPI_COMM_WORLD_SIZE": "3"}) == 3 and launched_processes({"PMI_SIZE": "x"}) == 1
    check_launch(4, "x", {"WORLD_SIZE": "4"})  # joined: fine
    check_launch(1, "x", {})  # no launcher: fine
    with pytest.raises(ConfigError, match="started 2 processes but Accelerate joined 1"):
        check_launch(1, "x", {"WORLD_SIZE": "2"})
    assert is_main_process({}) and is_main_process({"RANK": "0"}) and not is_main_process({"RANK": "1"})
    assert not is_main_process({"OMPI_COMM_WORLD_RANK": "2"})


def test_eval_under_a_launch_it_does_not_join_writes_nothing(model, tmp_path, monkeypatch):
    """What every `eval` does when the launcher's WORLD_SIZE is not what Accelerate joined (on a GPU machine
    whose devices the processes do not see, say): one line, no --out."""
    import factory.evaluate.runner as runner

    class Alone:
        num_processes = 1

    monkeypatch.setattr(runner, "make_accelerator", lambda precision: Alone())
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "e"
    args = ["eval", "xnli", "--model", model, "--data", DEMO / "nli", "--out", out]
    one_error_line(args, "started 2 processes but Accelerate joined 1", out=out)
    line = one_error_line(["eval", "retrieval", "--model", model, "--data", tmp_path, "--out", out], out=out)
    assert "retrieval runs in one process" in line
    # a benchmark with retrieval tasks says so before it fine-tunes anything (its other tasks could have run)
    monkeypatch.setattr(runner, "make_accelerator", lambda precision: pytest.fail("a benchmark task was prepared"))
    (tmp_path / "bench" / "tatoeba").mkdir(parents=True)  # checked first: its files are not read
    args = ["eval", "xtreme", "--model", model, "--tasks", "tatoeba", "--data", tmp_path / "bench", "--out", out]
    line = one_error_line(args, "retrieval runs in one process", out=out)
    assert "leave tatoeba out of --tasks" in line


def test_only_the_main_process_prints_the_summary(tiny_vocab, shards, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process
    result = CliRunner().invoke(cli, pretrain_args(tiny_vocab, shards, tmp_path / "r1", "--max-steps", "1"))
    assert result.exit_code == 0, result.output
    assert "wrote" not in result.output


# ---- 2. kills inside a write -------------------------------------------------------------------
@pytest.mark.slow
def test_kills_inside_the_log_a_checkpoint_and_the_pruning_resume_to_the_straight_run(tiny_vocab, shards, tmp_path):
    """Four sessions, three of them killed by SIGKILL in the middle of a write: a train.jsonl record torn in half,
    a checkpoint whose files are written but not yet complete, an old checkpoint half removed. Each
    `--resume auto` continues; the log and the weights are the straight run's."""
    steps = ["--max-steps", "10", "--save-every", "2", "--keep", "2"]
    straight = tmp_path / "straight"
    assert CliRunner().invoke(cli, pretrain_args(tiny_vocab, shards, straight, *steps)).exit_code == 0
    out = tmp_path / "killed"
    first = pretrain_args(tiny_vocab, shards, out, *steps)
    resume = [*first, "--resume", "auto"]
    for where, argv in (("log:3", first), ("save:2", resume), ("prune:1", resume)):
        done = run_with_fault(where, argv)
        assert done.returncode == -signal.SIGKILL, (where, done.stderr[-2000:])
        if where == "log:3":
            assert not (out / "train.jsonl").read_text().endswith("\n")  # record 3 torn in half
            assert [p.name for p in (out / "checkpoints").glob("step-*")] == ["step-00000002"]
    done = subprocess.run([sys.executable, "-m", "factory", *map(str, resume)], env=env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(straight, out, 10)
    assert_same_weights(straight / "discriminator/model.safetensors", out / "discriminator/model.safetensors", 1e-6)


def test_a_torn_last_record_is_dropped_with_one_warning(tmp_path, caplog):
    from factory.pretrain.loop import JsonlLog, read_records

    caplog.set_level(logging.WARNING, logger="factory")  # an earlier command may have left the logger quieter
    path = tmp_path / "train.jsonl"
    whole = "".join(json.dumps({"step": s, "mlm_loss": 1.0}) + "\n" for s in (1, 2, 3))
    path.write_text(whole + '{"step": 4, "mlm_lo')
    assert [r["step"] for r in read_records(path)] == [1, 2, 3]
    assert "line 4 is not a whole record" in caplog.text
    JsonlLog(path, enabled=True, resume_step=2)  # a resume from step 2 keeps what came before it
    assert path.read_text() == "".join(json.dumps({"step": s, "mlm_loss": 1.0}) + "\n" for s in (1, 2))


def test_resume_auto_before_the_first_checkpoint_starts_over(tiny_vocab, shards, tmp_path):
    """A job that always passes --resume auto, killed before its first checkpoint: the next start trains from
    step 0 (the leftovers cleared), where it used to say 'pass --resume auto' to a command that had it."""
    out = tmp_path / "early"
    out.mkdir()
    (out / "train.jsonl").write_text('{"step": 1, "mlm_lo')
    result = CliRunner().invoke(cli, pretrain_args(tiny_vocab, shards, out, "--max-steps", "2", "--resume", "auto"))
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in log(out)] == [1, 2]
    import shutil

    shutil.rmtree(out / "checkpoints")  # a finished run whose checkpoints were removed is never restarted silently
    line = one_error_line([*pretrain_args(tiny_vocab, shards, out, "--max-steps", "2"), "--resume", "auto"])
    assert "holds a finished run and no checkpoint to resume; pass --force" in line


def test_a_damaged_trainer_state_is_one_line(tiny_vocab, shards, tmp_path):
    out = tmp_path / "d"
    assert CliRunner().invoke(cli, pretrain_args(tiny_vocab, shards, out, "--max-steps", "2")).exit_code == 0
    (out / "checkpoints" / "step-00000002" / "trainer.json").write_text('{"step": 2, "form')
    line = one_error_line([*pretrain_args(tiny_vocab, shards, out, "--max-steps", "4"), "--resume", "auto"])
    assert "trainer.json cannot be read" in line and "--resume PATH" in line


@pytest.mark.slow
def _small_build(tmp_path, lines: int = 6000) -> list:
    """A 1,000-piece vocabulary and `lines` English lines: the argv of a shard build that checkpoints often."""
    sys.path.insert(0, str(Path(__file__).parent))
    import textgen

    from factory.vocab.train import SpmSettings, train_spm, write_hf_files

    vocab = tmp_path / "v"
    vocab.mkdir()
    sample = tmp_path / "sample.txt"
    sample.write_text("\n".join(textgen.generate("en", 3000, seed=1)) + "\n")
    train_spm(sample, 3000, vocab, SpmSettings(pieces=1000, threads=2))
    write_hf_files(vocab)
    corpus = tmp_path / "en.txt"
    corpus.write_text("\n".join(textgen.generate("en", lines, seed=2)) + "\n")
    return ["shards", "--vocab", vocab, "--corpus", f"en={corpus}", "--seq-len", "64", "--rows-per-shard", "200",
            "--no-langid"]  # fmt: skip


def _rerun_equals_a_straight_build(argv: list, tmp_path, quick: dict) -> None:
    rerun = subprocess.run([sys.executable, "-m", "factory", *map(str, argv), "--out", str(tmp_path / "killed")],
                           env={**env(), **quick}, cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0 and "resuming" in rerun.stderr, rerun.stderr[-2000:]
    straight = CliRunner().invoke(cli, [*map(str, argv), "--out", str(tmp_path / "straight")])
    assert straight.exit_code == 0, straight.output
    names = sorted(p.name for p in (tmp_path / "straight").glob("shard-*.arrow"))
    assert len(names) > 2 and names == sorted(p.name for p in (tmp_path / "killed").glob("shard-*.arrow"))
    for name in names:
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


def test_a_kill_inside_a_shard_checkpoint_then_rerun_writes_the_same_bytes(tmp_path):
    """SIGKILL while state.npz's new copy is half written: the rerun resumes from the last whole one and the
    shards are byte-identical to a build that was never interrupted."""
    argv = [*_small_build(tmp_path), "--num-proc", "1"]
    quick = {"FACTORY_SHARDS_CHECKPOINT_S": "0"}
    done = run_with_fault("write:3", [*argv, "--out", tmp_path / "killed"], quick)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    _rerun_equals_a_straight_build(argv, tmp_path, quick)


def test_a_killed_worker_process_is_one_line_and_the_rerun_resumes(tmp_path):
    """The out-of-memory killer takes a worker process mid-build: multiprocessing.Pool would wait for its answer
    forever; the build stops with one line (exit 1), and the rerun resumes to the bytes of a straight build."""
    argv = [*_small_build(tmp_path, 12000), "--num-proc", "2"]  # cleaning and de-duplication on: processes
    quick = {"FACTORY_SHARDS_CHECKPOINT_S": "0"}
    done = run_with_fault("worker:3", [*argv, "--out", tmp_path / "killed"], quick)  # 6 chunks, 2 workers: one gets 3
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        "Error: a worker process was killed by SIGKILL (out of memory?) before answering; what was built up to the "
        "last checkpoint is kept: run the same command again to resume"
    ], done.stderr
    _rerun_equals_a_straight_build(argv, tmp_path, quick)


# ---- 3. labels ------------------------------------------------------------------------------------
def _classify(model, tmp_path, train: list, test: list, *extra) -> list:
    def write(name, labels):
        path = tmp_path / name
        path.write_text("".join(json.dumps({"text": f"t{i}", "label": v, "language": "en"}) + "\n"
                                for i, v in enumerate(labels)))  # fmt: skip
        return path

    return ["eval", "classify", "--model", model, "--train", write("train.jsonl", train),
            "--test", write("test.jsonl", test), "--out", tmp_path / "out", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "train, test, needles",
    [
        ([0, "neutral", 1], [0, 1], ["train.jsonl line 2", "'neutral' is a name", "line 1 has the id 0"]),
        (["neutral", 0], ["neutral"], ["train.jsonl line 2", "label 0 is an id", "line 1 has the name 'neutral'"]),
        ([0, 1, float("nan")], [0, 1], ["train.jsonl line 3", "NaN"]),
        ([0, 1, 1.5], [0, 1], ["train.jsonl line 3", "1.5 is not an integer id"]),
        (["a", "b", "a"], ["a", "c"], ["test.jsonl line 2", "label 'c' never occurs in the en train examples (a, b)"]),
        ([0, 1, 0], [0, 2], ["test.jsonl line 2", "label '2' never occurs"]),
        ([True, False], [True], ["train.jsonl line 1", "boolean"]),
    ],
)
def test_labels_that_cannot_be_used_are_one_line(model, tmp_path, train, test, needles):
    out = tmp_path / "out"
    one_error_line(_classify(model, tmp_path, train, test), *needles, out=out)


@pytest.mark.parametrize("labels", [(), ("--labels", "neg,pos")])
def test_an_empty_classify_file_is_named(model, tmp_path, labels):
    """An empty --train is one line naming it as empty, with or without --labels; before, it read as no rows and
    was reported as a train split without the train language ("pick another --train-lang")."""
    line = one_error_line(_classify(model, tmp_path, [], [0, 1], *labels), out=tmp_path / "out")
    assert line == f"Error: {tmp_path / 'train.jsonl'} is empty (no rows); put one example per row in it", line


def test_given_labels_are_checked_the_same_way(model, tmp_path):
    args = _classify(model, tmp_path, ["neg", 1, "neg"], ["neg"], "--labels", "neg,pos")
    one_error_line(args, "train.jsonl line 2", "is an id", out=tmp_path / "out")
    args = _classify(model, tmp_path, ["neg", "pos", "neg"], ["pos", "neg", "neutral"], "--labels", "neg,pos")
    one_error_line(args, "test.jsonl line 3", "'neutral' is neither one of neg, pos", out=tmp_path / "out")


# ---- 4. files that cannot be read, paths that cannot be written ---------------------------------------
@pytest.fixture
def broken_models(model, tmp_path):
    import shutil

    folders = {}
    for kind in ("empty", "truncated"):
        folder = tmp_path / kind
        shutil.copytree(model, folder)
        data = (model / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(b"" if kind == "empty" else data[: len(data) * 9 // 10])
        folders[kind] = folder
    return folders


@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_empty_or_truncated_weights_are_one_line(broken_models, tmp_path, kind):
    folder, out = broken_models[kind], tmp_path / "o"
    for args in (["eval", "xnli", "--model", folder, "--data", DEMO / "nli", "--out", out],
                 ["eval", "retrieval", "--model", folder, "--data", DEMO / "nli", "--out", out],
                 ["publish", folder, "--repo-id", "a/b", "--dry-run", "--staging", out]):  # fmt: skip
        line = one_error_line(args, "model.safetensors", "cannot be read as weights", out=out)
        assert "export or download it again" in line


def test_an_empty_spm_model_is_one_line(tiny_vocab, tmp_path):
    import shutil

    vocab = tmp_path / "v"
    shutil.copytree(tiny_vocab, vocab)
    (vocab / "spm.model").write_bytes(b"")
    line = one_error_line(["vocab", "report", vocab, "--corpus", DEMO / "corpus" / "en.txt"])
    assert "spm.model is empty (0 bytes)" in line


def test_an_out_that_is_a_file(tiny_vocab, shards, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    report = ["vocab", "report", tiny_vocab, "--corpus", DEMO / "corpus" / "en.txt", "--out", taken]
    for args, flag in ((pretrain_args(tiny_vocab, shards, taken, "--max-steps", "1"), "--out"), (report, "--out"),
                       (["run", "demo", "--run-dir", taken], "--run-dir"),
                       (["run", "demo", "--run-dir", taken, "--dry-run"], "--run-dir")):  # fmt: skip
        one_error_line(args, f"{flag} {taken} is a file")
    assert taken.read_text() == "mine"


def test_a_name_over_the_file_systems_limit(tiny_vocab, shards, tmp_path):
    long = "x" * 300
    line = one_error_line(pretrain_args(tiny_vocab, shards, tmp_path / long, "--max-steps", "1"))
    assert "a name of 300 bytes, over the" in line and long not in line  # the name is shortened in the line
    line = one_error_line(["vocab", "--lang", "en", "--size", "1000", "--corpus", tmp_path / f"{long}.txt",
                           "--out", tmp_path / "v"], out=tmp_path / "v")  # fmt: skip
    assert "File name too long" in line
    room = "y" * 240  # fits the file system, but not with the staged copy's `.NAME.tmp-XXXXXXXX` beside it
    line = one_error_line(["init", "--preset", "debug", "--vocab-size", "1k", "--out", tmp_path / room])
    assert "for the staged copy" in line


def test_an_out_this_user_may_not_write(tiny_vocab, shards, tmp_path, monkeypatch):
    parent = tmp_path / "locked"
    parent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == parent else real(p, mode))
    line = one_error_line(pretrain_args(tiny_vocab, shards, parent / "run", "--max-steps", "1"))
    assert f"this user may not write in {parent}" in line
    monkeypatch.undo()
    # where the check cannot tell (root passes os.access), the OS's own refusal is still one line, exit 2
    result = CliRunner().invoke(cli, ["init", "--preset", "debug", "--vocab-size", "1k", "--out", "/sys/factory-x"])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "Traceback" not in result.output


def test_os_errors_say_whose_problem_they_are():
    import errno

    from factory.core.errors import FactoryError, RunFailure, os_failure

    full = os_failure(OSError(errno.ENOSPC, "No space left on device", "/data/run/x.bin"))
    assert isinstance(full, RunFailure) and "No space left on device: /data/run/x.bin; free some space" in str(full)
    denied = os_failure(PermissionError(errno.EACCES, "Permission denied", "/srv/x"))
    assert isinstance(denied, FactoryError) and not isinstance(denied, RunFailure)
    long = os_failure(OSError(errno.ENAMETOOLONG, "File name too long", "/a/" + "z" * 300))
    assert "z" * 41 not in str(long) and "(300 bytes)" in str(long)


# ---- 5. shapes too large to build ---------------------------------------------------------------
def test_a_huge_shape_is_refused_before_anything_is_built(tmp_path):
    out = tmp_path / "big"
    for command in (["init", "--preset", "debug", "--layers", "100000", "--out", out],
                    ["pretrain", "--dry-run", "--preset", "debug", "--layers", "100000", "--vocab-size", "1k",
                     "--out", out]):  # fmt: skip
        line = one_error_line(command, out=out)
        assert "--layers 100000 is over factory's bound of 1024" in line and "48 layers" in line
    line = one_error_line(["init", "--preset", "base", "--layers", "1000", "--hidden", "16384", "--heads", "128",
                           "--out", out], out=out)  # fmt: skip
    assert "GiB available" in line  # within the bounds, but not within this machine's memory


def test_parameter_counts_by_layer_equal_a_whole_meta_model():
    """`count_parameters` and `count_rtd_parameters` count one layer and multiply: the same as a whole model."""
    import torch

    from factory.model.encoder import DebertaModel
    from factory.model.presets import PRESETS, VocabSize, count_parameters, get_shape
    from factory.pretrain.plan import count_rtd_parameters, model_config
    from factory.pretrain.rtd import RTDModel

    vocab = VocabSize.parse("2k")
    for name in PRESETS:
        config = PRESETS[name].config(vocab)
        with torch.device("meta"):
            whole = sum(p.numel() for p in DebertaModel(config).parameters())
        assert count_parameters(config)["total"] == whole, name
    shape = get_shape("debug", layers=5, hidden=96, heads=4, ffn=200)
    for sharing in ("gdes", "es", "nes"):
        with torch.device("meta"):
            rtd = RTDModel(model_config(shape, vocab), shape.generator_layers, sharing)
        counts = count_rtd_parameters(shape, vocab, sharing)
        assert counts["total"] == sum(p.numel() for p in rtd.parameters()), sharing
        assert counts["generator"] == sum(p.numel() for p in rtd.generator.parameters()), sharing


# ---- 6. an output inside its corpus, shards pre-training would refuse ---------------------------------------
def test_an_out_inside_the_corpus_folder(tiny_vocab, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "en.txt").write_text((DEMO / "corpus" / "en.txt").read_text())
    model = model_folder(tmp_path / "m", tokenizer=tiny_vocab)
    for command in (["vocab", "--lang", "en", "--size", "1000", "--corpus", corpus, "--out", corpus / "v"],
                    ["shards", "--vocab", tiny_vocab, "--corpus", f"en={corpus}", "--out", corpus / "s"],
                    ["trim", model, "--langs", "en", "--corpus", f"en={corpus}", "--out", corpus / "t"]):  # fmt: skip
        one_error_line(command, "is inside the corpus", out=corpus / command[-1].name)
    line = one_error_line(["vocab", "--lang", "en", "--size", "1000", "--corpus", corpus / "en.txt", "--out", corpus,
                           "--force"])  # fmt: skip
    assert "holds the corpus" in line and (corpus / "en.txt").is_file()


def test_shards_longer_than_pretraining_takes(tiny_vocab, tmp_path):
    out = tmp_path / "s"
    line = one_error_line(["shards", "--vocab", tiny_vocab, "--corpus", DEMO / "corpus" / "en.txt", "--seq-len",
                           "100000", "--out", out], out=out)  # fmt: skip
    assert "--seq-len 100000 is over 512" in line
