"""The model and its optimizer as the paper trains them: AdamW, linear warm-up and decay, clipping per group.

`setup` (loop.py) builds them for a run; `build_rtd` and `rtd_step` give benchmarks (bench/speed/step.py) and tests
the same model and the same step without a run folder.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from factory.model.presets import Shape, VocabSize, as_shape
from factory.pretrain.config import RTD_LAMBDA
from factory.pretrain.plan import model_config

if TYPE_CHECKING:
    import torch

    from factory.pretrain.rtd import RTDModel

# The paper's optimiser (docs/pretraining.md#hyper-parameters): AdamW(0.9, 0.98), eps 1e-6, weight decay 0.01
# (not biases or LayerNorms), gradients clipped to 1.0 (each network on its own, as the official code does).
BETAS = (0.9, 0.98)
EPS = 1e-6
WEIGHT_DECAY = 0.01
CLIP = 1.0


def build_rtd(
    shape: Shape | str, vocab_pieces: int, sharing: str = "gdes", seed: int = 0, **config_overrides
) -> RTDModel:
    """The RTD model (generator + discriminator) of a shape or preset for a vocabulary of `vocab_pieces` pieces.

    For benchmarks (bench/speed/step.py) and tests; `config_overrides` go to ModelConfig (e.g. num_hidden_layers).
    """
    from factory.pretrain.rtd import build_rtd_model

    shape, vocab = as_shape(shape), VocabSize.from_pieces(vocab_pieces)
    config = model_config(shape, vocab)
    config = config.replace(**config_overrides) if config_overrides else config
    return build_rtd_model(config, shape.generator_layers, sharing, seed)


def make_optimizer(model: torch.nn.Module, lr: float, fused: bool | None = None, keep=None):
    """AdamW(0.9, 0.98, eps 1e-6), weight decay 0.01 on matrices only (not biases, LayerNorms); fused on CUDA.
    `keep(parameter)`: only the parameters it accepts (the official update order's per-network optimizers).

    The official XAdam differs in one way this keeps: it has no bias correction (DeBERTa/optims/xadam.py passes
    bias_correction 0), so its first updates are smaller; under a 10k-step warm-up from lr 0 the difference is
    gone long before the peak (docs/derive.md#the-official-procedure)."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or (keep is not None and not keep(p)):
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS, fused=fused or None)


def make_schedule(optimizer, warmup: int, steps: int, from_zero: bool = False):
    """Linear warm-up to the peak lr, then linear decay to 0 at `steps`. The first step takes peak/warmup, or with
    `from_zero` 0, as the official schedule (warmup_linear of step/total, DeBERTa/optims/lr_schedulers.py); the
    same schedule as fine-tuning's (factory/core/lr_schedule.py)."""
    from factory.core.lr_schedule import linear_warmup_decay

    return linear_warmup_decay(optimizer, warmup, steps, from_zero)


def clip_gradients(acc, model, optimizer) -> float:
    """Unscale once, then clip each of the RTD model's groups to CLIP on its own; returns the overall norm (for
    the log). The same on every backend factory allows: plain gradients (one process, DDP) and FSDP2's DTensor
    shards. Under DeepSpeed the engine has already clipped, in the step it took at the last micro-batch
    (backends.py allows it only for a model with one group): its norm is returned."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.DEEPSPEED:
        norm = acc.clip_grad_norm_(model.parameters(), CLIP)
        return math.nan if norm is None else float(norm)
    unscale_once(acc, optimizer)
    norms = clip_groups_(acc.unwrap_model(model).clip_groups(), CLIP)
    return math.sqrt(sum(n * n for n in norms))


def unscale_once(acc, optimizer) -> None:
    """fp16: divide the gradients by the loss scale, once per step, before any norm is taken.

    `GradScaler.unscale_` refuses a second call before `update()`, and `accelerator.clip_grad_norm_` calls it
    each time, so per-group clipping cannot go through it. The scaler remembers the call: the optimizer step
    (`scaler.step` in AcceleratedOptimizer) does not unscale again and still skips a step with inf/nan grads.
    Whenever Accelerate made a scaler (fp16 on a GPU) its own gate passes, so testing for the scaler is the same.
    """
    from accelerate.optimizer import AcceleratedOptimizer

    if acc.scaler is None:
        return
    while isinstance(optimizer, AcceleratedOptimizer):
        optimizer = optimizer.optimizer
    acc.scaler.unscale_(optimizer)


def clip_groups_(groups: list[list[torch.nn.Parameter]], max_norm: float) -> list[float]:
    """Clip each group's gradients to `max_norm` on its own; returns each group's norm before clipping.

    FSDP2's gradients are DTensor shards: torch's clip_grad_norm_ takes the norm of the local shards and
    all-reduces their squared norms over the mesh, so each group's norm (and scale) is that of the whole
    gradient, the same on every process. One process and DDP hold plain tensors: the same call.
    """
    import torch

    norms = []
    for group in groups:
        norm = torch.nn.utils.clip_grad_norm_(group, max_norm)
        norms.append(float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm))  # DTensor: Replicate
    return norms


def rtd_step(model, optimizer, ids: torch.Tensor, rtd_lambda: float = RTD_LAMBDA, step: int = 0, seed: int = 0):
    """One full training step on one batch of token ids (B, L): mask, generator + discriminator forward,
    backward, clip, AdamW step. For benchmarks (bench/speed/step.py); returns (mlm_loss, rtd_loss) as floats."""
    from factory.pretrain.rtd import make_step_noise, rtd_loss

    noise = make_step_noise(ids, model.mask_id, seed, step, 0)
    out = model(ids, noise.masked, noise.uniforms)
    masked, tokens = out.masked.clamp(min=1), out.tokens.clamp(min=1)
    rtd_loss(out.mlm_loss_sum, out.rtd_loss_sum, masked, tokens, rtd_lambda).backward()
    clip_groups_(model.clip_groups(), CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out.mlm_loss_sum.detach() / masked), float(out.rtd_loss_sum.detach() / tokens)
