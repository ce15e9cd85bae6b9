"""Pre-training end to end on CPU: learning, exact resume after SIGKILL, 2 processes = 1, HF loading, bad input.

Micro settings everywhere (debug preset: hidden 64, 2 + 1 layers; 32-token sequences; a few steps).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import one_error_line, word_shards

from factory.cli.main import cli
from factory.shards.config import ShardsConfig
from factory.shards.run import build_shards

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("mlm_loss", "rtd_loss", "rtd_accuracy")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shards(tiny_vocab, tmp_path_factory):
    return word_shards(tiny_vocab, tmp_path_factory.mktemp("pretrain-data"), lines=200, words=1200)


def args(vocab, shards, out, *extra):
    base = ["pretrain", "--vocab", str(vocab), "--shards", str(shards), "--preset", "debug", "--out", str(out)]
    base += ["--batch", "8", "--warmup", "2", "--lr", "3e-3", "--log-every", "1", "--mixed-precision", "no"]
    return base + list(extra)


def invoke(argv):
    result = CliRunner().invoke(cli, argv)
    return result


def log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=atol, rtol=0, msg=name)


def assert_same_run(straight: Path, other: Path, steps: int, atol: float = 1e-6) -> None:
    """`other` logged every step of `straight` with its losses, and ended with its weights (last checkpoint)."""
    a, b = log(straight), log(other)
    assert [r["step"] for r in b] == list(range(1, steps + 1))
    for ra, rb in zip(a, b, strict=True):
        for key in LOSSES:
            assert abs(ra[key] - rb[key]) <= atol, (ra["step"], key)
    last = f"checkpoints/step-{steps:08d}/model.safetensors"
    assert_same_weights(straight / last, other / last, atol=atol)


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


# ---- 1. a tiny model learns ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny_vocab, shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    result = invoke(
        args(tiny_vocab, shards, out, "--max-steps", "120", "--batch", "16", "--dropout", "0", "--log-every", "20")
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_tiny_model_learns(trained):
    records = log(trained)
    first, last = records[0], records[-1]
    assert last["mlm_loss"] < first["mlm_loss"] - 1.0  # generator
    assert last["rtd_loss"] < first["rtd_loss"]  # discriminator
    assert last["rtd_accuracy"] > last["rtd_baseline"] + 0.005  # beats answering "original" everywhere
    manifest = json.loads((trained / "factory.json").read_text())
    for key in (
        "preset",
        "vocab_size",
        "seq_len",
        "batch",
        "lr",
        "sharing",
        "rtd_lambda",
        "steps",
        "tokens",
        "hardware",
    ):
        assert key in manifest, key
    assert manifest["steps"] == 120 and manifest["tokens"] == 120 * 16 * 32 and manifest["tokens_per_s"] > 0
    assert (trained / "discriminator" / "spm.model").is_file()


# ---- 5. the exports load in transformers -------------------------------------------------------
@pytest.mark.slow
def test_exports_load_in_transformers(trained):
    import transformers

    from factory.model import load_model

    ids = torch.randint(4, 1000, (2, 40), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[1, 30:] = 1, 0
    mask = (ids != 0).long()
    hf = transformers.AutoModel.from_pretrained(trained / "discriminator").eval()
    ours = load_model(trained / "discriminator", head="none")
    with torch.no_grad():
        a = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        b = ours(ids, mask).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(a[keep], b[keep], atol=1e-4, rtol=0)
    gen = transformers.DebertaV2ForMaskedLM.from_pretrained(trained / "generator").eval()
    ours_gen = load_model(trained / "generator")
    with torch.no_grad():
        torch.testing.assert_close(
            gen(input_ids=ids, attention_mask=mask).logits[keep], ours_gen(ids, mask).logits[keep], atol=1e-4, rtol=0
        )
    assert gen.config.num_hidden_layers == 1 and hf.config.num_hidden_layers == 2


# ---- 3. exact resume after SIGKILL ---------------------------------------------------------------
@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tiny_vocab, shards, tmp_path):
    steps = ["--max-steps", "10", "--save-every", "2", "--keep", "2"]
    straight = tmp_path / "straight"
    assert invoke(args(tiny_vocab, shards, straight, *steps)).exit_code == 0
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "factory", *args(tiny_vocab, shards, killed, *steps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=ROOT)
    first = killed / "checkpoints" / "step-00000002" / "trainer.json"  # there once the checkpoint is complete
    while proc.poll() is None and not first.is_file():
        time.sleep(0.005)
    if proc.poll() is None:  # the first checkpoint is on disk: kill at once, mid-run
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "discriminator").exists()
    resumed = invoke(args(tiny_vocab, shards, killed, *steps, "--resume", "auto"))
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(straight, killed, 10)
    assert len(list((killed / "checkpoints").glob("step-*"))) == 2  # --keep 2


# ---- 4. two processes = one --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(target: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    """`python TARGET` in a subprocess (TARGET: ["-m", "factory", ...] or a script and its arguments), under
    torchrun with `processes` CPU processes when more than one; asserts it succeeded.

    accelerate launch --cpu needs MPI for several processes; torchrun is what it uses for --multi_gpu, and
    Accelerate picks the processes up from its environment (gloo on CPU)."""
    command = [sys.executable]
    if processes > 1:
        port = str(free_port())
        command += ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", port]
    done = subprocess.run([*command, *target], env={**env(), "ACCELERATE_USE_CPU": "true"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_processes_match_one(tiny_vocab, shards, tmp_path):
    extra = ["--max-steps", "4", "--save-every", "4", "--dropout", "0", "--micro-batch", "4"]
    one = tmp_path / "one"
    assert invoke(args(tiny_vocab, shards, one, *extra)).exit_code == 0  # 1 process x 2 accumulation steps
    two = tmp_path / "two"
    launch(["-m", "factory", *args(tiny_vocab, shards, two, *extra)], processes=2)
    manifest = json.loads((two / "factory.json").read_text())
    assert manifest["processes"] == 2 and manifest["accumulation"] == 1
    for ra, rb in zip(log(one), log(two), strict=True):
        for key in LOSSES:
            assert abs(ra[key] - rb[key]) <= 1e-5, (ra["step"], key)
    last = "checkpoints/step-00000004/model.safetensors"
    assert_same_weights(one / last, two / last, atol=1e-5)


# ---- 6. one learning-rate schedule --------------------------------------------------------------------
def test_one_lr_schedule_gives_pretrainings_and_finetunings_factors_bitwise():
    """factory/core/lr_schedule.py's schedule for both: pre-training's (step + 1) / W (or step / W from zero), then
    (T - s) / (T - W); fine-tuning's step / max(1, W), then the same decay, as each computed it on its own."""
    import torch

    from factory.evaluate.finetune import Schedule, linear_schedule
    from factory.pretrain.optim import make_schedule

    def pretraining(step, warmup, steps, from_zero):  # pretrain/optim.py's factor before the one module
        if step < warmup:
            return (step + (0 if from_zero else 1)) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    def finetuning(step, warmup, total):  # evaluate/finetune.py's
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    for warmup, total in [(0, 1), (0, 7), (1, 1), (3, 10), (10, 10), (7, 3), (10_000, 125_000)]:
        for from_zero in (False, True):
            optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
            lambdas = make_schedule(optimizer, warmup, total, from_zero).lr_lambdas[0]
            for step in {*range(min(total, 30) + 2), warmup - 1, warmup, warmup + 1, total - 1, total, total + 5}:
                if step >= 0:
                    assert lambdas(step) == pretraining(step, warmup, total, from_zero), (warmup, total, step)
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
        lambdas = linear_schedule(optimizer, Schedule(1, total, warmup)).lr_lambdas[0]
        for step in {*range(min(total, 30) + 2), warmup - 1, warmup, warmup + 1, total - 1, total, total + 5}:
            if step >= 0:
                assert lambdas(step) == finetuning(step, warmup, total), (warmup, total, step)


# ---- 7. bad input: one line, exit 2, nothing lost ------------------------------------------------
def one_line_error(result, *needles, code: int = 2):
    one_error_line(result, *needles, code=code, alone=False)  # a run that fails part-way has printed progress first


def test_shards_from_another_vocabulary(tiny_vocab, shards, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_vocab, other)
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((other / "spm.model").read_bytes())
    proto.pieces[10].score += 0.5  # a valid vocabulary of the same size, but another one (another fingerprint)
    (other / "spm.model").write_bytes(proto.SerializeToString())
    one_line_error(invoke(args(other, shards, tmp_path / "r", "--max-steps", "1")), "another vocabulary")
    assert not (tmp_path / "r").exists()


def test_seq_len_above_the_model_maximum(tiny_vocab, shards, tmp_path):
    long = tmp_path / "long"
    build_shards(ShardsConfig(vocab=tiny_vocab, corpus=[str(shards.parent / "corpus.txt")], seq_len=1024, out=long))
    one_line_error(invoke(args(tiny_vocab, long, tmp_path / "r", "--max-steps", "1")), "--seq-len 1024", "512")
    assert not (tmp_path / "r").exists()


def test_empty_shard_folder(tiny_vocab, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(invoke(args(tiny_vocab, tmp_path / "empty", tmp_path / "r", "--max-steps", "1")), "no shards")


def test_resume_from_another_preset(tiny_vocab, shards, tmp_path):
    out = tmp_path / "r"
    assert invoke(args(tiny_vocab, shards, out, "--max-steps", "1", "--save-every", "1")).exit_code == 0
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    other = args(tiny_vocab, shards, out, "--max-steps", "2", "--resume", "auto")
    other[other.index("debug")] = "xsmall"
    one_line_error(invoke(other), "preset")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    one_line_error(invoke(args(tiny_vocab, shards, out, "--max-steps", "2")), "--resume auto")


def test_resume_from_an_older_trainer_format_is_refused(tiny_vocab, shards, tmp_path):
    """Format 1 drew every step's noise from one generator over the whole batch: it cannot resume exactly now.
    One line that says what to do; the checkpoints stay; another --masking is refused too."""
    out = tmp_path / "r"
    assert invoke(args(tiny_vocab, shards, out, "--max-steps", "1", "--save-every", "1")).exit_code == 0
    state_file = out / "checkpoints" / "step-00000001" / "trainer.json"
    state = json.loads(state_file.read_text())
    assert state["format"] == 2 and state["masking"] == "spread"
    one_line_error(invoke(args(tiny_vocab, shards, out, "--max-steps", "2", "--resume", "auto", "--masking",
                               "official")), "another run", "--masking")  # fmt: skip
    del state["format"]
    state_file.write_text(json.dumps(state))
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    resumed = invoke(args(tiny_vocab, shards, out, "--max-steps", "2", "--resume", "auto"))
    one_line_error(resumed, "trainer format 1", "cannot resume exactly", "--force")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before


def test_custom_shape_trains_exports_and_resumes_only_as_itself(tiny_vocab, shards, tmp_path):
    """--layers 3 --hidden 96 --heads 4 --ffn 200: both exports have those sizes (the generator half the depth,
    at least 1), load in transformers, and say "custom" with their base preset; a resume with another shape
    of the same preset is refused, and so is one of the preset itself."""
    import transformers

    from factory.publish.card import collect_facts

    out = tmp_path / "r"
    shape = ["--layers", "3", "--hidden", "96", "--heads", "4", "--ffn", "200"]
    result = invoke(args(tiny_vocab, shards, out, "--max-steps", "2", "--save-every", "1", *shape))
    assert result.exit_code == 0, result.output
    disc = transformers.AutoModel.from_pretrained(out / "discriminator").config
    gen = transformers.AutoModelForMaskedLM.from_pretrained(out / "generator").config
    assert (disc.num_hidden_layers, disc.hidden_size, disc.num_attention_heads, disc.intermediate_size) == (
        3,
        96,
        4,
        200,
    )
    assert (gen.num_hidden_layers, gen.hidden_size, gen.intermediate_size) == (1, 96, 200)
    sizes = {"layers": 3, "hidden": 96, "heads": 4, "ffn": 200, "generator_layers": 1}
    for folder in (out, out / "discriminator", out / "generator"):
        manifest = json.loads((folder / "factory.json").read_text())
        assert (manifest["preset"], manifest["base_preset"], manifest["shape"]) == ("custom", "debug", sizes)
    assert json.loads((out / "discriminator" / "config.json").read_text())["factory"]["preset"] == "custom"
    assert collect_facts(out / "discriminator", "me/x").preset.startswith("custom (3 layers, hidden 96")
    other = args(tiny_vocab, shards, out, "--max-steps", "3", "--resume", "auto", *shape[:-2], "--ffn", "300")
    one_line_error(invoke(other), "another run", "--layers/--hidden/--heads/--ffn")
    one_line_error(invoke(args(tiny_vocab, shards, out, "--max-steps", "3", "--resume", "auto")), "shape")
    resumed = invoke(args(tiny_vocab, shards, out, "--max-steps", "3", "--resume", "auto", *shape))
    assert resumed.exit_code == 0, resumed.output
    assert [r["step"] for r in log(out)][-1] == 3


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_vocab, shards, tmp_path):
    out = tmp_path / "r"
    result = invoke(
        args(tiny_vocab, shards, out, "--max-steps", "20", "--save-every", "1", "--lr", "1e30", "--warmup", "0")
    )
    one_line_error(result, "non-finite", "step-00000001", code=1)  # a runtime failure, not a user mistake: exit 1
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000001"]
    state = json.loads((out / "checkpoints" / "step-00000001" / "trainer.json").read_text())
    assert state["step"] == 1
    assert all(torch.isfinite(t).all() for t in weights(out / "checkpoints/step-00000001/model.safetensors").values())


def test_tracker_that_is_not_installed(tiny_vocab, shards, tmp_path):
    result = invoke(args(tiny_vocab, shards, tmp_path / "r", "--log-with", "nosuchtracker"))
    one_line_error(result, "--log-with nosuchtracker")
    assert not (tmp_path / "r").exists()


def test_dry_run_prints_the_plan(tmp_path):
    result = invoke(["pretrain", "--preset", "base", "--vocab-size", "128k", "--dry-run", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output.strip().splitlines()[-1])
    assert plan["steps"] == 500_000 and plan["batch"] == 8192 and plan["lr"] == 5e-4 and plan["warmup"] == 10_000
    assert 80e6 < plan["parameters"]["discriminator_body"] < 90e6  # v3-base: 86M backbone
    assert plan["flops_per_step"] > 6 * 8192 * 512 * 86e6
    assert "FLOPs/step" in result.output and "memory" in result.output and "days" in result.output
    assert not (tmp_path / "r").exists()


# ---- 7. the speed flags change nothing but speed ------------------------------------------------
@pytest.mark.slow
def test_compile_and_gradient_checkpointing_train_the_same(tiny_vocab, shards, tmp_path):
    """--compile (every layer through torch.compile, fullgraph) and --gradient-checkpointing, together: the same
    losses and weights as the plain eager run."""
    extra = ["--max-steps", "3", "--save-every", "3", "--dropout", "0"]
    plain, fast = tmp_path / "plain", tmp_path / "fast"
    assert invoke(args(tiny_vocab, shards, plain, *extra)).exit_code == 0
    result = invoke(args(tiny_vocab, shards, fast, *extra, "--compile", "--gradient-checkpointing"))
    assert result.exit_code == 0, result.output
    for ra, rb in zip(log(plain), log(fast), strict=True):
        for key in LOSSES:
            assert abs(ra[key] - rb[key]) <= 1e-5, (ra["step"], key)
    last = "checkpoints/step-00000003/model.safetensors"
    assert_same_weights(plain / last, fast / last, atol=1e-5)
