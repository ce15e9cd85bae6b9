"""Accelerate backends train what one process trains: DDP and FSDP2 over gloo (2 CPU processes via torchrun),
fp16's loss scaling, DeepSpeed's accumulation boundaries and what factory refuses under DeepSpeed and FSDP1.

The torchrun tests run tests/distributed_worker.py (the loop's own `setup` + `train_step`). Accelerate never
selects FSDP or DeepSpeed on a CPU: for FSDP2 the worker turns the Accelerator into an FSDP2 one before
`prepare` (Accelerate then shards with the real `fully_shard`, gloo underneath); DeepSpeed is not installed,
so its tests drive Accelerate's DeepSpeed code paths (`backward`, `clip_grad_norm_`) with a recording engine.
"""

import json
from pathlib import Path

import pytest
import torch
from conftest import one_error_line, word_shards
from test_pretrain import args as cli_args
from test_pretrain import invoke, launch

import factory.pretrain.loop as loop
from factory.pretrain.backends import configure_deepspeed, make_accelerator
from factory.pretrain.config import RTD_LAMBDA, PretrainConfig
from factory.pretrain.optim import CLIP

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
STEPS = 3

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shards(tiny_vocab, tmp_path_factory):
    return word_shards(tiny_vocab, tmp_path_factory.mktemp("dist-data"), lines=200, words=1200)


def config(tiny_vocab, shards, out: Path, **overrides) -> dict:
    """Batch 8 in micro-batches of 2: one process accumulates 4, each of two processes 2."""
    base = {"vocab": str(tiny_vocab), "shards": str(shards), "out": str(out), "preset": "debug", "batch": 8,
            "micro_batch": 2, "warmup": 2, "lr": 3e-3, "max_steps": STEPS, "mixed_precision": "no",
            "dropout": 0.0, "log_every": 1}  # fmt: skip
    return {**base, **overrides}


def run_worker(backend: str, runs: list[dict], folder: Path, argv: list[str] | None = None) -> dict[str, dict]:
    """The worker on one process ("one") or two under torchrun; returns each run's result by name. `argv`: a
    whole `factory` command instead."""
    spec = folder / "spec.json"
    command = {"argv": [str(a) for a in argv]} if argv else {}
    spec.write_text(json.dumps({"backend": backend, "out": str(folder), "runs": runs, **command}))
    launch([str(WORKER), str(spec)], processes=1 if backend == "one" else 2)
    return {r["name"]: torch.load(folder / f"{r['name']}.pt", weights_only=False) for r in runs}


def lambda_runs(tiny_vocab, shards, folder: Path) -> list[dict]:
    main = {"name": "main", "steps": STEPS, "config": config(tiny_vocab, shards, folder / "main")}
    one_step = [
        {"name": f"lambda{w:g}", "steps": 1, "config": config(tiny_vocab, shards, folder / f"l{w:g}", rtd_lambda=w)}
        for w in (1.0, 1000.0)
    ]
    return [main, *one_step]


@pytest.fixture(scope="module")
def one_process(tiny_vocab, shards, tmp_path_factory):
    folder = tmp_path_factory.mktemp("one")
    return run_worker("one", lambda_runs(tiny_vocab, shards, folder), folder)


@pytest.fixture(scope="module")
def fsdp(tiny_vocab, shards, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fsdp")
    return run_worker("fsdp", lambda_runs(tiny_vocab, shards, folder), folder)


def losses(result: dict) -> list[tuple[float, float, float]]:
    records = result["records"]
    return [(r["mlm_loss_sum"] / r["masked"], r["rtd_loss_sum"] / r["tokens"], r["grad_norm"]) for r in records]


def assert_same_training(a: dict, b: dict, atol: float = 1e-5) -> None:
    """The same losses and gradient norms at every step, the same weights after, one AdamW step per global step."""
    assert len(a["records"]) == len(b["records"]) == STEPS
    for la, lb in zip(losses(a), losses(b), strict=True):
        assert la == pytest.approx(lb, abs=atol)
    assert a["weights"].keys() == b["weights"].keys()
    for name in a["weights"]:
        torch.testing.assert_close(a["weights"][name], b["weights"][name], atol=atol, rtol=0, msg=name)
    for result in (a, b):
        assert result["optimizer_steps"] == [STEPS] and result["hook_calls"] == STEPS


# ---- DDP and FSDP2 over gloo ---------------------------------------------------------------------
@pytest.mark.slow
def test_ddp_two_processes_with_accumulation_match_one(one_process, tiny_vocab, shards, tmp_path):
    """2 processes x 2 micro-batches = 1 process x 4, over 3 steps; AdamW took exactly 3 steps in both."""
    main = {"name": "main", "steps": STEPS, "config": config(tiny_vocab, shards, tmp_path / "main")}
    ddp = run_worker("ddp", [main], tmp_path)["main"]
    assert (ddp["processes"], ddp["accumulation"]) == (2, 2) and ddp["sync"] == [False, True] * STEPS
    assert (one_process["main"]["processes"], one_process["main"]["accumulation"]) == (1, 4)
    assert_same_training(one_process["main"], ddp)


@pytest.mark.slow
def test_fsdp_two_processes_match_one(one_process, fsdp):
    assert (fsdp["main"]["processes"], fsdp["main"]["accumulation"]) == (2, 2)
    assert fsdp["main"]["distributed_type"] == "FSDP"  # still, after `prepare` and 3 steps
    assert fsdp["main"]["sync"] == [False, True] * STEPS  # the first micro-batch under no_sync (FSDP2: no reduce)
    assert_same_training(one_process["main"], fsdp["main"])


@pytest.mark.slow
def test_fsdp_wraps_each_layer_and_keeps_the_embeddings_in_the_root(fsdp):
    """factory's policy replaced the size-based one the worker's plugin held: a unit per encoder layer, and the
    word embeddings (read by both networks under GDES) in the root unit."""
    assert fsdp["main"]["fsdp_units"] == [
        "",
        "generator.deberta.encoder.layer.0",
        "discriminator.deberta.encoder.layer.0",
        "discriminator.deberta.encoder.layer.1",
    ]


@pytest.mark.slow
def test_fsdp_generator_update_is_independent_of_the_rtd_weight(one_process, fsdp):
    """test_rtd's property under FSDP2: with each group clipped on its own (norms from the sharded gradients),
    the generator's clipped gradient is the same for lambda 1 and 1000, and the one process's."""
    low, high = fsdp["lambda1"], fsdp["lambda1000"]
    torch.testing.assert_close(low["generator_grads"], high["generator_grads"], atol=1e-6, rtol=0)
    torch.testing.assert_close(low["generator_grads"], one_process["lambda1"]["generator_grads"], atol=1e-6, rtol=0)
    generator_low, discriminator_low = low["clipped_norms"][0]
    generator_high, discriminator_high = high["clipped_norms"][0]
    assert discriminator_high == pytest.approx(CLIP, abs=1e-5) and discriminator_low < 0.9 * CLIP  # lambda matters
    assert generator_low == pytest.approx(generator_high, abs=1e-6)


@pytest.mark.slow
def test_fsdp_command_checkpoints_resumes_and_exports_as_one_process(tiny_vocab, shards, tmp_path):
    """The whole `factory pretrain` under FSDP2 (sharded checkpoints through Accelerate's save_state): a run
    resumed from its step-2 checkpoint logs the losses and exports the networks of one straight process."""
    import shutil

    from test_pretrain import assert_same_weights, log

    extra = ["--max-steps", "4", "--save-every", "2", "--dropout", "0", "--micro-batch", "2"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert invoke(cli_args(tiny_vocab, shards, one, *extra)).exit_code == 0
    run_worker("fsdp", [], tmp_path, argv=cli_args(tiny_vocab, shards, two, *extra))
    for done in ("checkpoints/step-00000004", "discriminator", "generator"):
        shutil.rmtree(two / done)
    run_worker("fsdp", [], tmp_path, argv=cli_args(tiny_vocab, shards, two, *extra, "--resume", "auto"))
    assert [r["step"] for r in log(two)] == [1, 2, 3, 4]
    for ra, rb in zip(log(one), log(two), strict=True):
        for key in ("mlm_loss", "rtd_loss", "rtd_accuracy"):
            assert abs(ra[key] - rb[key]) <= 1e-5, (ra["step"], key)
    for net in ("discriminator", "generator"):
        assert_same_weights(one / net / "model.safetensors", two / net / "model.safetensors", atol=1e-5)


# ---- fp16: a real GradScaler through the loop's clip path ----------------------------------------
def training(tiny_vocab, shards, out: Path, monkeypatch, scaler=None, **overrides):
    """`setup` for an in-process run (optionally with `scaler` injected before `prepare`, as Accelerate does
    for fp16 on a GPU), and a record of the gradients AdamW applies at each step."""
    if scaler is not None:

        def with_scaler(*a, **k):
            acc = make_accelerator(*a, **k)
            acc.scaler = scaler
            return acc

        monkeypatch.setattr(loop, "make_accelerator", with_scaler)
    cfg = config(tiny_vocab, shards, out, micro_batch=4, **overrides)
    run = loop.setup(PretrainConfig(**{**cfg, **{k: Path(cfg[k]) for k in ("vocab", "shards", "out")}}))
    monkeypatch.setattr(loop, "make_accelerator", make_accelerator)
    model, applied = run.accelerator.unwrap_model(run.model), []

    def before_step(optimizer, args, kwargs):
        applied.append([float(torch.nn.utils.get_total_norm([p.grad for p in g])) for g in model.clip_groups()])

    run.optimizer.optimizer.register_step_pre_hook(before_step)
    return run, applied


def test_fp16_scaler_unscales_once_and_clips_each_group(tiny_vocab, shards, tmp_path, monkeypatch):
    """3 steps with a real torch.amp.GradScaler in the Accelerator: no "unscale_() has already been called", both
    groups clipped to 1.0 on their own (a global clip would leave each below 1), and the same losses and weights
    as without the scaler (so the gradients were unscaled exactly once before the norms)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    run, applied = training(tiny_vocab, shards, tmp_path / "fp16", monkeypatch, scaler=scaler)
    assert run.accelerator.scaler is scaler and run.optimizer.scaler is scaler
    scaled = [loop.train_step(run, step) for step in range(STEPS)]
    plain_run, _ = training(tiny_vocab, shards, tmp_path / "plain", monkeypatch)
    assert plain_run.accelerator.scaler is None
    plain = [loop.train_step(plain_run, step) for step in range(STEPS)]
    assert len(applied) == STEPS and scaler.get_scale() == 2.0**12  # no step skipped
    for generator, discriminator in applied:
        assert generator == pytest.approx(CLIP, abs=1e-5) and discriminator == pytest.approx(CLIP, abs=1e-5)
    for a, b in zip(scaled, plain, strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    for (name, p), q in zip(run.model.named_parameters(), plain_run.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)


# ---- DeepSpeed: the boundaries Accelerate is told, and the refusals --------------------------------
class RecordingEngine:
    """Stands in for DeepSpeed's engine behind Accelerate's real DeepSpeedEngineWrapper: records the boundary
    Accelerate passes with each micro-batch, the loss it hands over (which the engine divides by its
    accumulation count), and its steps."""

    def __init__(self, accumulation: int):
        self.accumulation, self.boundaries, self.losses, self.steps = accumulation, [], [], 0

    def set_gradient_accumulation_boundary(self, is_boundary: bool) -> None:
        self.boundaries.append(is_boundary)

    def backward(self, loss):
        self.losses.append(float(loss.detach()) / self.accumulation)
        (loss / self.accumulation).backward()

    def step(self):
        self.steps += 1

    def get_global_grad_norm(self):
        return 0.25


def test_accumulation_boundaries_reach_accelerate_and_deepspeed(tiny_vocab, shards, tmp_path, monkeypatch):
    """Exactly one sync_gradients per global step, at its last micro-batch, even when a resumed checkpoint
    restored an accumulation counter that is not a multiple of this run's; under DeepSpeed the engine is told
    the same boundaries, steps once per global step, and gets the loss it divides back to the global mean."""
    from accelerate.utils import DistributedType
    from accelerate.utils.deepspeed import DeepSpeedEngineWrapper

    run, _ = training(tiny_vocab, shards, tmp_path / "r", monkeypatch)
    acc = run.accelerator
    assert acc.gradient_accumulation_steps == run.plan.accumulation == 2
    seen, backward = [], acc.backward
    monkeypatch.setattr(acc, "backward", lambda loss, **k: (seen.append(acc.sync_gradients), backward(loss, **k)))
    acc.step = 3
    loop.train_step(run, 0)
    assert seen == [False, True]

    engine = RecordingEngine(acc.gradient_accumulation_steps)
    monkeypatch.setattr(acc.state, "distributed_type", DistributedType.DEEPSPEED)
    monkeypatch.setattr(acc.state, "deepspeed_plugins", deepspeed_plugin(), raising=False)
    monkeypatch.setattr(acc, "deepspeed_engine_wrapped", DeepSpeedEngineWrapper(engine), raising=False)
    records = [loop.train_step(run, step) for step in range(1, 1 + STEPS)]
    assert engine.boundaries == [False, True] * STEPS and engine.steps == STEPS
    assert seen == [False, True] * (1 + STEPS)
    for step, record in enumerate(records):
        mean = record["mlm_loss_sum"] / record["masked"] + RTD_LAMBDA * record["rtd_loss_sum"] / record["tokens"]
        assert sum(engine.losses[2 * step : 2 * step + 2]) == pytest.approx(mean, rel=1e-6)
        assert record["grad_norm"] == 0.25  # the engine's norm: it clipped, factory did not clip again


def fake_backend(monkeypatch, kind: str, plugin) -> None:
    """Make `setup`'s Accelerator report DeepSpeed or FSDP with `plugin`, as `accelerate config` would."""
    from accelerate.utils import DistributedType

    def accelerator(*a, **k):
        acc = make_accelerator(*a, **k)
        if kind == "deepspeed":
            monkeypatch.setattr(acc.state, "deepspeed_plugins", plugin, raising=False)
        else:
            monkeypatch.setattr(acc.state, "fsdp_plugin", plugin, raising=False)
        monkeypatch.setattr(acc.state, "distributed_type", getattr(DistributedType, kind.upper()))
        return acc

    monkeypatch.setattr(loop, "make_accelerator", accelerator)


def deepspeed_plugin(stage: int = 2, **config):
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(zero_stage=stage)
    plugin.deepspeed_config.update(config)
    return plugin


@pytest.mark.parametrize(
    ("sharing", "plugin", "needles"),
    [
        ("gdes", lambda: deepspeed_plugin(), ("DeepSpeed clips the whole model", "--sharing gdes", "FSDP")),
        ("nes", lambda: deepspeed_plugin(), ("--sharing nes", "--sharing es")),
        ("es", lambda: deepspeed_plugin(3), ("ZeRO-3", "stage 2")),
        ("es", lambda: deepspeed_plugin(train_micro_batch_size_per_gpu=3), ("per_gpu 3", "--micro-batch")),
        ("es", lambda: deepspeed_plugin(optimizer={"type": "Adam"}), ("its own `optimizer`", "remove `optimizer`")),
    ],
    ids=["gdes", "nes", "zero3", "micro-batch", "optimizer"],
)  # fmt: skip
def test_what_deepspeed_cannot_train_is_refused_in_one_line(tiny_vocab, shards, tmp_path, monkeypatch, sharing, plugin,
                                                            needles):  # fmt: skip
    fake_backend(monkeypatch, "deepspeed", plugin())
    out = tmp_path / "r"
    result = invoke(cli_args(tiny_vocab, shards, out, "--max-steps", "1", "--sharing", sharing))
    one_error_line(result, *needles, out=out)


def test_fsdp_version_1_is_refused_in_one_line(tiny_vocab, shards, tmp_path, monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin

    fake_backend(monkeypatch, "fsdp", FullyShardedDataParallelPlugin(fsdp_version=1))
    out = tmp_path / "r"
    one_error_line(invoke(cli_args(tiny_vocab, shards, out, "--max-steps", "1")), "fsdp_version: 2", out=out)


def test_deepspeed_gets_the_plans_sizes(tiny_vocab):
    """--sharing es (one clip group) under ZeRO-2: the config's `auto` sizes become the plan's, so `prepare`
    needs no dataloader and the engine accumulates and clips as the loop does."""
    from factory.pretrain.plan import make_plan
    from factory.pretrain.rtd import build_rtd_model

    args = PretrainConfig(vocab=tiny_vocab, preset="debug", batch=16, micro_batch=2, sharing="es", out=Path("unused"))
    plan = make_plan(args, 32, processes=2)
    model = build_rtd_model(loop.model_config(plan.shape, plan.vocab, 0.0), 1, "es")
    plugin = deepspeed_plugin()
    configure_deepspeed(plugin, model, plan)
    assert not plugin.is_auto("train_micro_batch_size_per_gpu")
    got = {k: plugin.deepspeed_config[k] for k in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                                                   "train_batch_size", "gradient_clipping")}  # fmt: skip
    assert got == {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 4, "train_batch_size": 16,
                   "gradient_clipping": CLIP}  # fmt: skip
