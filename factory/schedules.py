"""The grammar of pre-training's language mixing flags (`--alpha`, `--alpha-schedule`, `--language-schedule`):
below factory.configs (whose `problems()` reports them with the other options) and factory.pretrain.mixing (which
builds the mix from them), so neither imports the other for it. No torch (but in `linear_warmup_decay`).

And the learning-rate schedule of pre-training and of fine-tuning, one for both: linear warm-up, linear decay."""

from __future__ import annotations

import math


def parse_alpha_schedule(items: list[str]) -> list[tuple[float, float]]:
    """`0:0.7,0.6:0.5,0.9:0.3` -> [(0.0, 0.7), (0.6, 0.5), (0.9, 0.3)]: (fraction of the run, α) from there on."""
    phases = []
    for item in items:
        start, sep, alpha = item.partition(":")
        if not sep:
            raise ValueError(
                f"--alpha-schedule {item!r} is not FRACTION:ALPHA (e.g. 0:0.7,0.6:0.5,0.9:0.3; in YAML quote it, "
                "or 0:0.7 reads as a base-60 number)"
            )
        phases.append((_number(start, "a fraction of the run", f"--alpha-schedule {item!r}"),
                       _number(alpha, "an alpha", f"--alpha-schedule {item!r}")))  # fmt: skip
    if not phases or phases[0][0] != 0:
        raise ValueError("--alpha-schedule must start at 0 (the first phase begins with the run)")
    for (a, _), (b, _) in zip(phases, phases[1:], strict=False):
        if b <= a:
            raise ValueError(f"--alpha-schedule: the fractions must increase ({a:g} then {b:g})")
    for start, alpha in phases:
        if not 0 <= start < 1:
            raise ValueError(f"--alpha-schedule: {start:g} is not a fraction of the run in [0, 1)")
        _check_alpha(alpha, "--alpha-schedule")
    return phases


def parse_language_schedule(items: list[str]) -> dict[str, float]:
    """`sw:0.6,yo:0.9` -> {"sw": 0.6, "yo": 0.9}: the fraction of the run from which each language is drawn."""
    entries: dict[str, float] = {}
    for item in items:
        lang, sep, start = item.rpartition(":")
        if not sep or not lang:
            raise ValueError(f"--language-schedule {item!r} is not LANG:FRACTION (e.g. sw:0.6)")
        if lang in entries:
            raise ValueError(f"--language-schedule names {lang} twice")
        entries[lang] = _number(start, "a fraction of the run", f"--language-schedule {item!r}")
        if not 0 <= entries[lang] < 1:
            raise ValueError(f"--language-schedule {item!r}: {start} is not a fraction of the run in [0, 1)")
    return entries


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not {what}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} is not a finite number")
    return value


def _check_alpha(alpha: float, flag: str) -> None:
    if not 0 < alpha <= 1:
        raise ValueError(f"{flag}: alpha {alpha:g} must be > 0 and <= 1 (p_i ∝ n_i^alpha)")


def mixing_problems(config) -> list[str]:
    """The mixing flags' own problems, for PretrainConfig.problems() (the shards' languages are checked by
    factory.pretrain.mixing.build_mix)."""
    problems = []
    if config.alpha is not None and config.alpha_schedule:
        problems.append("give --alpha or --alpha-schedule, not both")
    for parse, value in ((parse_alpha_schedule, config.alpha_schedule),
                         (parse_language_schedule, config.language_schedule)):  # fmt: skip
        try:
            parse(value) if value else None
        except ValueError as e:
            problems.append(str(e))
    return problems


# ---- the learning rate --------------------------------------------------------------------------
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
