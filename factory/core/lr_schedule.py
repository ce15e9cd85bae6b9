"""The learning-rate schedule of pre-training and of fine-tuning, one for both: linear warm-up, then linear decay.

Shared ground because two steps use it (factory/pretrain/optim.py, factory/evaluate/finetune.py) and neither may
import the other. No torch at import time (torch is imported by `linear_warmup_decay` when it builds one)."""

from __future__ import annotations


def lr_factor(step: int, warmup: int, total: int, from_zero: bool = False) -> float:
    """The learning rate at optimizer step `step` (0-based) as a fraction of the peak: linear warm-up over `warmup`
    steps, then linear decay, (total - step) / (total - warmup), to 0 at `total`. The first step takes 1/warmup
    (pre-training's default), or with `from_zero` 0 (fine-tuning, as HF's get_linear_schedule_with_warmup; and
    pre-training's --warmup-from-zero, as the official warmup_linear of DeBERTa/optims/lr_schedulers.py)."""
    if step < warmup:
        return (step + (0 if from_zero else 1)) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def linear_warmup_decay(optimizer, warmup: int, total: int, from_zero: bool = False):
    """A torch LambdaLR of `lr_factor` for `optimizer`."""
    import functools

    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(lr_factor, warmup=warmup, total=total, from_zero=from_zero)
    )
