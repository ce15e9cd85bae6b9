"""The model and its optimizer as the paper trains them: AdamW, linear warm-up and decay, clipping per group.

`setup` (loop.py) builds them for a run; `build_rtd` and `rtd_step` give benchmarks (bench/step.py) and tests
the same model and the same step without a run folder.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from factory.configs import RTD_LAMBDA
from factory.presets import Shape, VocabSize, as_shape
from factory.pretrain.plan import model_config

if TYPE_CHECKING:
    import torch

    from factory.rtd import RTDModel

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

    For benchmarks (bench/step.py) and tests; `config_overrides` go to ModelConfig (e.g. num_hidden_layers).
    """
    from factory.rtd import build_rtd_model

    shape, vocab = as_shape(shape), VocabSize.from_pieces(vocab_pieces)
    config = model_config(shape, vocab)
    config = config.replace(**config_overrides) if config_overrides else config
    return build_rtd_model(config, shape.generator_layers, sharing, seed)


def make_optimizer(model: torch.nn.Module, lr: float, fused: bool | None = None):
    """AdamW(0.9, 0.98, eps 1e-6), weight decay 0.01 on matrices only (not biases, LayerNorms); fused on CUDA."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS, fused=fused or None)


def make_schedule(optimizer, warmup: int, steps: int):
    """Linear warm-up to the peak lr, then linear decay to 0 at `steps`."""
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_gradients(acc, model) -> float:
    """Clip each of the RTD model's groups to CLIP on its own; returns the overall norm (for the log).
    FSDP can only clip the whole sharded model, so there it falls back to one global clip."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.FSDP:
        return float(acc.clip_grad_norm_(model.parameters(), CLIP))
    norms = [float(acc.clip_grad_norm_(group, CLIP)) for group in acc.unwrap_model(model).clip_groups()]
    return math.sqrt(sum(n * n for n in norms))


def rtd_step(model, optimizer, ids: torch.Tensor, rtd_lambda: float = RTD_LAMBDA, step: int = 0, seed: int = 0):
    """One full training step on one batch of token ids (B, L): mask, generator + discriminator forward,
    backward, clip, AdamW step. For benchmarks (bench/step.py); returns (mlm_loss, rtd_loss) as floats."""
    import torch

    from factory.rtd import make_step_noise, rtd_loss

    noise = make_step_noise(ids, model.mask_id, seed, step, 0)
    out = model(ids, noise.masked, noise.uniforms)
    masked, tokens = out.masked.clamp(min=1), out.tokens.clamp(min=1)
    rtd_loss(out.mlm_loss_sum, out.rtd_loss_sum, masked, tokens, rtd_lambda).backward()
    for group in model.clip_groups():
        torch.nn.utils.clip_grad_norm_(group, CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out.mlm_loss_sum.detach() / masked), float(out.rtd_loss_sum.detach() / tokens)
