"""Click commands, one module per pipeline step; `factory/cli.py` registers them."""

from __future__ import annotations

import math

import click

# The size presets, for click.Choice (shell completion, one-line errors). A literal because importing
# factory.presets pulls in torch and `--help` must stay instant; tests/test_cli.py checks it equals PRESETS.
PRESET_NAMES = ["debug", "xsmall", "small", "base", "large", "xlarge", "xxlarge"]

layout_option = click.option(
    "--layout",
    type=click.Choice(["official", "pad128"]),
    default="official",
    show_default=True,
    help="Embedding rows: as published (128k -> 128100) or padded to a multiple of 128 (faster on GPU).",
)


class Number(click.ParamType):
    """A finite float within bounds: click's FloatRange lets NaN through (every comparison with NaN is false),
    and a NaN learning rate or alpha should be a one-line usage error, not a crash many steps later."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None, low_open: bool = False):
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            self.fail(f"{value} must be {'>' if self.low_open else '>='} {self.low}", param, ctx)
        if self.high is not None and number > self.high:
            self.fail(f"{value} must be <= {self.high}", param, ctx)
        return number
