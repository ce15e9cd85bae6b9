"""A training worker for tests/test_distributed.py: `setup` + `train_step`, the loop's own code, on one process
or under torchrun (gloo), with what the tests compare written to OUT/<run>.pt by rank 0.

    python tests/distributed_worker.py SPEC.json                                   # one process
    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py SPEC.json

SPEC: {"backend": "one" | "ddp" | "fsdp", "out": DIR, "runs": [{"name", "steps", "config": {PretrainConfig}}]},
or {"backend", "argv": [...]}: a whole `factory pretrain ...` command (checkpoints, resume, exports).
Accelerate picks DDP on CPU processes by itself but never FSDP, so for "fsdp" the worker turns the
Accelerator it makes into an FSDP2 one (the distributed type, and an FSDP2 plugin with a size-based policy as a
user's `accelerate config` might hold) before factory's `prepare_backend` and Accelerate's own `prepare` run:
the sharding, the wrap policy, the accumulation and the clipping are then those of a real FSDP2 run.
"""

import json
import sys
from pathlib import Path

import torch


def fsdp_accelerator(*args, **kwargs):
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    from factory.pretrain.backends import make_accelerator

    acc = make_accelerator(*args, **kwargs)
    acc.state.fsdp_plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="size_based_wrap", min_num_params=1000
    )
    acc.state.distributed_type = DistributedType.FSDP
    PartialState().distributed_type = DistributedType.FSDP  # as Accelerate does: a later AcceleratorState() copies it
    return acc


def full(t: torch.Tensor) -> torch.Tensor:
    """A DTensor shard gathered into the whole tensor (a collective: every process calls it)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def train(name: str, steps: int, config: dict, out: Path) -> None:
    from torch.distributed.fsdp import FSDPModule

    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.loop import setup, train_step

    paths = {k: Path(v) for k, v in config.items() if k in ("vocab", "shards", "out")}
    run = setup(PretrainConfig(**{**config, **paths}))
    model = run.accelerator.unwrap_model(run.model)
    inner = run.optimizer.optimizer
    seen: dict = {"clipped_norms": [], "generator_grads": None, "hook_calls": 0}

    def before_step(optimizer, args, kwargs):  # the gradients AdamW applies: after unscaling and clipping
        seen["hook_calls"] += 1
        norms = [float(full(torch.nn.utils.get_total_norm([p.grad for p in g if p.grad is not None])))
                 for g in model.clip_groups()]  # fmt: skip
        seen["clipped_norms"].append(norms)
        if seen["generator_grads"] is None:
            seen["generator_grads"] = torch.cat([full(p.grad).flatten() for p in model.generator.parameters()])

    inner.register_step_pre_hook(before_step)
    acc, backward, seen["sync"] = run.accelerator, run.accelerator.backward, []
    acc.backward = lambda loss, **k: (seen["sync"].append(acc.sync_gradients), backward(loss, **k))
    records = [train_step(run, step) for step in range(steps)]
    weights = {k: full(v).detach().clone() for k, v in model.state_dict().items()}
    if run.accelerator.is_main_process:
        result = {
            "records": records,
            "weights": weights,
            "optimizer_steps": sorted({int(s["step"]) for s in inner.state.values()}),
            "fsdp_units": [n for n, m in model.named_modules() if isinstance(m, FSDPModule)],
            "processes": run.accelerator.num_processes,
            "accumulation": run.accelerator.gradient_accumulation_steps,
            "distributed_type": run.accelerator.distributed_type.value,
            **seen,
        }
        torch.save(result, out / f"{name}.pt")
    run.accelerator.wait_for_everyone()


def main(spec_path: str) -> None:
    import factory.pretrain.loop as loop

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    if spec["backend"] == "fsdp":
        loop.make_accelerator = fsdp_accelerator
    if "argv" in spec:  # the whole command: checkpoints, resume and exports too
        from factory.cli.main import cli

        cli.main(args=spec["argv"], standalone_mode=False)
    for run in spec.get("runs", []):
        train(run["name"], run["steps"], run["config"], Path(spec["out"]))


if __name__ == "__main__":
    main(sys.argv[1])
