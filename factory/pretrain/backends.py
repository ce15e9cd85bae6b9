"""What each Accelerate backend needs so that it trains what one process would (docs/pretraining.md#scale-out).

`make_accelerator` gives Accelerate the run's accumulation count, so `accumulate` knows where a global batch
ends (the loop, loop.py, marks it) and DeepSpeed's engine steps once per global batch. `prepare_backend` runs
before `prepare`, once the backend is known:

- DDP: nothing more.
- FSDP: version 2 only (its gradients are DTensor shards, which `optim.clip_groups_` clips per group), and
  factory's own wrap policy: one unit per `EncoderLayer` of either network, everything else (the word
  embeddings, the relative-position table, the heads, the GDES delta) in the root unit. The root is unsharded
  for the whole forward and backward, so the discriminator can read the generator's table (GDES, ES) where
  RTDModel.forward takes it; a size-based policy could put that table in a unit resharded after the
  generator's forward.
- DeepSpeed: the engine clips the whole model as one vector inside its step, so factory's per-network
  clipping cannot happen there: it is refused unless the model has a single clip group (--sharing es), and
  ZeRO-3 is refused (it partitions the shared table outside the module that owns it). When it runs, the config
  gets the run's micro-batch, accumulation and clipping (there is no dataloader to infer them from).

Every refusal is one ConfigError line that says what to use instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ConfigError
from factory.pretrain.optim import CLIP

if TYPE_CHECKING:
    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.plan import Plan
    from factory.pretrain.rtd import RTDModel

FSDP_UNIT = "EncoderLayer"  # factory.model.encoder.EncoderLayer: the class FSDP wraps alone (transformer_based_wrap)


def make_accelerator(config: PretrainConfig, plan: Plan, mixed_precision: str, project_dir: Path):
    """The Accelerator, told the plan's accumulation count. The count comes from --batch / --micro-batch /
    processes, never from Accelerate's own setting; the schedule is stepped by the loop once per global step,
    so Accelerate does not adjust it, and with no dataloader nothing but the count ends an accumulation."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, GradientAccumulationPlugin

    accumulation = GradientAccumulationPlugin(
        num_steps=plan.accumulation, adjust_scheduler=False, sync_with_dataloader=False
    )
    # A step in two halves (--update-order official, a generator-only warm-up) uses one network per forward:
    # DDP must not wait for the other network's gradients
    halves = config.update_order == "official" or plan.generator_warmup > 0
    return Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_plugin=accumulation,
        log_with=list(config.log_with) or None,
        project_dir=str(project_dir),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)] if halves else None,
    )


def prepare_backend(accelerator, model: RTDModel, plan: Plan, update_order: str = "joint") -> None:
    """Before `accelerator.prepare`: FSDP's wrap policy, DeepSpeed's sizes; refuse what a backend cannot
    train exactly. Also (re)states the accumulation count, which `make_plan` may have changed for the
    processes Accelerate found."""
    from accelerate.utils import DistributedType

    accelerator.gradient_accumulation_steps = plan.accumulation
    if update_order == "official" and accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise ConfigError(
            f"--update-order official keeps two optimizers (one per network), and Accelerate's "
            f"{accelerator.distributed_type.value} checkpoints hold one optimizer per model; use DDP, or "
            "--update-order joint (with GDES the two orders differ only in the E_G the discriminator reads)"
        )
    if accelerator.distributed_type == DistributedType.FSDP:
        configure_fsdp(accelerator.state.fsdp_plugin)
    elif accelerator.distributed_type == DistributedType.DEEPSPEED:
        configure_deepspeed(accelerator.state.deepspeed_plugin, model, plan)


def configure_fsdp(plugin) -> None:
    """FSDP2 with one unit per encoder layer (the embeddings stay in the root unit); FSDP1 is refused."""
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    if plugin.fsdp_version != 2:
        raise ConfigError(
            f"FSDP version {plugin.fsdp_version} keeps flat parameters, so the generator and the discriminator "
            "cannot be clipped apart; set fsdp_version: 2 in `accelerate config` (or FSDP_VERSION=2), or use DDP"
        )
    plugin.auto_wrap_policy = transformer_auto_wrap_policy
    plugin.transformer_cls_names_to_wrap = [FSDP_UNIT]


# DeepSpeed config keys factory sets, the plan's value for each, and the flag that decides it
def _deepspeed_sizes(plan: Plan) -> list[tuple[str, Any, str]]:
    return [
        ("train_micro_batch_size_per_gpu", plan.micro_batch, "--micro-batch"),
        ("gradient_accumulation_steps", plan.accumulation, "--batch / --micro-batch"),
        ("train_batch_size", plan.batch, "--batch"),
        ("gradient_clipping", CLIP, "factory's clipping"),
    ]


def configure_deepspeed(plugin, model: RTDModel, plan: Plan) -> None:
    """Refuse what DeepSpeed cannot train as one process would; fill in the sizes Accelerate cannot infer."""
    if len(model.clip_groups()) > 1:
        raise ConfigError(
            f"DeepSpeed clips the whole model as one, but --sharing {model.sharing} clips the generator and the "
            "discriminator apart (else lambda x RTD would shrink the generator's update); use FSDP (fsdp_version: "
            "2) or DDP in `accelerate config`, or --sharing es"
        )
    if plugin.zero_stage == 3:
        raise ConfigError(
            "DeepSpeed ZeRO-3 partitions the generator's embedding, which the discriminator reads outside the "
            "generator; use ZeRO stage 2 or FSDP (fsdp_version: 2)"
        )
    config = plugin.deepspeed_config
    for key in ("optimizer", "scheduler"):
        if key in config:
            raise ConfigError(
                f"the DeepSpeed config has its own `{key}`, but factory brings its AdamW and schedule (--lr, "
                f"--warmup): remove `{key}` from the DeepSpeed config"
            )
    for key, mine, flag in _deepspeed_sizes(plan):
        theirs = config.get(key, "auto")
        if theirs != "auto" and theirs != mine:
            raise ConfigError(
                f"the DeepSpeed config sets {key} {theirs}, but this run needs {mine} ({flag}); set it to auto"
            )
        config[key] = mine
