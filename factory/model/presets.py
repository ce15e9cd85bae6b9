"""Size presets of the DeBERTa-v3 architecture, in one table, and vocabulary sizes.

The vocabulary is independent of the preset: `PRESETS["base"].config(VocabSize.parse("32k"))` is a
DeBERTina-base, `...parse("250k")` an mDeBERTa-base. Parameter counts are always computed from an
instantiated model (`count_parameters`), never typed in.

Shapes between the presets: `get_shape("debug", layers=3, hidden=96, heads=4, ffn=200)` is a `Shape` derived
from a preset with other sizes (`--layers --hidden --heads --ffn` on `init`, `pretrain` and recipes). All else
comes from the preset it starts from: the v3 attention settings, xlarge's conv layer, the generator's depth
rule (half the depth, `generator_depth`), the peak learning rate. A shape that differs from its preset is
recorded as `preset: "custom"` with `base_preset` and `shape` (config.json's `factory` section, the manifests),
never under the preset's name. The published presets themselves are the table below, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factory.core.errors import ConfigError
from factory.core.vocab_sizes import (  # noqa: F401  (presets' names, as before)
    DEFAULT_VOCAB_SIZE,
    MAX_PIECES,
    MIN_PIECES,
    PUBLISHED_ROWS,
    VocabSize,
)
from factory.model.config import ModelConfig


def generator_depth(layers: int) -> int:
    """RTD generator: same width, half the depth (docs/pretraining.md#rtd-and-gdes), at least one layer. The
    rule of every preset, and of a custom `--layers` too: 3 layers get a 1-layer generator, 12 get 6."""
    return max(1, layers // 2)


@dataclass(frozen=True)
class Preset:
    """One row of the size table (docs/architecture.md#presets); head size is 64 everywhere but `debug`."""

    layers: int
    hidden: int
    heads: int
    conv: bool = False  # v2 xlarge/xxlarge: nGiE conv layer after layer 0
    source: str = ""

    @property
    def ffn(self) -> int:
        return 4 * self.hidden

    @property
    def generator_layers(self) -> int:
        return generator_depth(self.layers)

    def config(self, vocab: VocabSize | None = None, **overrides) -> ModelConfig:
        vocab = vocab or VocabSize.parse(DEFAULT_VOCAB_SIZE)
        cfg = ModelConfig(
            vocab_size=vocab.rows,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.ffn,
            conv_kernel_size=3 if self.conv else 0,
            conv_act="gelu",
            factory={"vocab_pieces": vocab.pieces, "mask_token_id": vocab.pieces, "embedding_layout": vocab.layout},
        )
        return cfg.replace(**overrides) if overrides else cfg


PRESETS: dict[str, Preset] = {
    # debug: not a published size; the micro model tests and CI use (docs/architecture.md#presets).
    "debug": Preset(layers=2, hidden=64, heads=2, source="factory test size"),
    "xsmall": Preset(layers=12, hidden=384, heads=6, source="[MS] rtd_xsmall.json; 22M backbone"),
    "small": Preset(layers=6, hidden=768, heads=12, source="[MS] rtd_small.json; 44M backbone"),
    "base": Preset(layers=12, hidden=768, heads=12, source="[MS] rtd_base.json; 86M backbone"),
    "large": Preset(layers=24, hidden=1024, heads=16, source="[MS] rtd_large.json; 304M backbone"),
    "xlarge": Preset(layers=24, hidden=1536, heads=24, conv=True, source="[MS] deberta_xlarge.json (v2); 710M"),
    "xxlarge": Preset(layers=48, hidden=1536, heads=24, conv=True, source="[MS] deberta_xxlarge.json (v2); 1320M"),
}

# Published backbone sizes in millions ([MS] README), for tests and for the `presets` table.
PUBLISHED_BACKBONE_M = {"xsmall": 22, "small": 44, "base": 86, "large": 304, "xlarge": 710, "xxlarge": 1320}

def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


# ---- shapes between the presets ------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """The sizes a model is built with: a preset's own, or a preset's with `--layers --hidden --heads --ffn`.

    It answers what a Preset answers (layers, hidden, heads, ffn, generator_layers, conv, config()), so the
    planner and the trainer take either; `name` is the preset's name only while every size is the preset's.
    """

    base: str  # the preset it starts from
    layers: int
    hidden: int
    heads: int
    ffn: int
    generator: int | None = None  # the RTD generator's depth when not the rule's (a published generator's)

    @property
    def preset(self) -> Preset:
        return PRESETS[self.base]

    @property
    def custom(self) -> bool:
        p = self.preset
        return (self.layers, self.hidden, self.heads, self.ffn) != (p.layers, p.hidden, p.heads, p.ffn)

    @property
    def name(self) -> str:
        return "custom" if self.custom else self.base

    @property
    def conv(self) -> bool:
        return self.preset.conv

    @property
    def generator_layers(self) -> int:
        return self.generator or generator_depth(self.layers)

    def sizes(self) -> dict[str, int]:
        """The shape as the manifests record it (the generator's depth included: it follows from the rule)."""
        return {"layers": self.layers, "hidden": self.hidden, "heads": self.heads, "ffn": self.ffn,
                "generator_layers": self.generator_layers}  # fmt: skip

    def record(self) -> dict[str, Any]:
        """config.json's `factory` provenance: the preset's name, or "custom" with the preset it came from."""
        if not self.custom:
            return {"preset": self.base}
        return {"preset": "custom", "base_preset": self.base, "shape": self.sizes()}

    def describe(self) -> str:
        """ "debug", or "custom (3 layers, hidden 96, 4 heads, FFN 200, from debug)"."""
        return custom_label(self.layers, self.hidden, self.heads, self.ffn, self.base) if self.custom else self.base

    def config(self, vocab: VocabSize | None = None, **overrides) -> ModelConfig:
        """The preset's config with this shape's sizes, marked with `record()`."""
        cfg = self.preset.config(vocab, num_hidden_layers=self.layers, hidden_size=self.hidden,
                                 num_attention_heads=self.heads, intermediate_size=self.ffn)  # fmt: skip
        cfg = cfg.replace(factory={**cfg.factory, **self.record()})
        return cfg.replace(**overrides) if overrides else cfg


def custom_label(layers: int, hidden: int, heads: int | None, ffn: int | None, base: str | None) -> str:
    """What a custom shape is called in the plan, the card and the messages; never a preset's bare name."""
    parts = [f"{layers} layer{'' if layers == 1 else 's'}", f"hidden {hidden}"]
    parts += [f"{heads} heads"] if heads else []
    parts += [f"FFN {ffn}"] if ffn else []
    parts += [f"from {base}"] if base else []
    return f"custom ({', '.join(parts)})"


# Upper bounds of a shape override, checked before anything is built. The largest published DeBERTa
# (v2-xxlarge) has 48 layers of width 1536; these leave room for far larger experiments while refusing a typo
# (`--layers 100000`) that would spend minutes building modules, or exhaust memory, before saying anything.
MAX_LAYERS = 1024
MAX_HIDDEN = 32768
MAX_FFN = 4 * MAX_HIDDEN


def shape_problems(
    preset: str, hidden: int | None, heads: int | None, layers: int | None = None, ffn: int | None = None
) -> list[str]:
    """What is wrong with a shape override (the configs' `problems()` report it with their other problems): a
    size past its bound (MAX_*), or heads that do not divide the hidden size."""
    p = PRESETS.get(preset)
    if p is None:  # an unknown preset is reported by the option's choices
        return []
    why = "the largest DeBERTa (v2-xxlarge) has 48 layers of width 1536"
    bounds = (("--layers", layers, MAX_LAYERS), ("--hidden", hidden, MAX_HIDDEN), ("--ffn", ffn, MAX_FFN))
    too_big = [f"{flag} {value} is over factory's bound of {bound} ({why}; a larger shape takes minutes just to "
               "build, or more memory than a machine has)"
               for flag, value, bound in bounds if value and value > bound]  # fmt: skip
    if too_big:
        return too_big
    width, count = hidden or p.hidden, heads or p.heads
    if width % count == 0:
        return []
    divisors = ", ".join(str(d) for d in range(1, min(width, 32) + 1) if width % d == 0)
    if hidden and heads:
        return [f"--hidden {hidden} is not divisible by --heads {heads} (each head gets hidden/heads dimensions); "
                f"{hidden} divides by {divisors}"]  # fmt: skip
    if hidden:
        return [f"--hidden {hidden} is not divisible by the {preset} preset's {p.heads} heads; give --heads too "
                f"({hidden} divides by {divisors})"]  # fmt: skip
    near = max(heads, round(p.hidden / heads) * heads)
    return [f"--heads {heads} does not divide the {preset} preset's hidden size {p.hidden}; give --hidden too "
            f"(e.g. {near})"]  # fmt: skip


def get_shape(preset: str, layers: int | None = None, hidden: int | None = None, heads: int | None = None,
              ffn: int | None = None) -> Shape:  # fmt: skip
    """A preset with the sizes given instead of its own; --ffn defaults to 4 x hidden, every preset's ratio."""
    base = get_preset(preset)
    problems = shape_problems(preset, hidden, heads, layers, ffn)
    if problems:
        raise ConfigError("; ".join(problems))
    width = hidden or base.hidden
    return Shape(base=preset, layers=layers or base.layers, hidden=width, heads=heads or base.heads,
                 ffn=ffn or (base.ffn if hidden is None else 4 * width))  # fmt: skip


def shape_of(config: Any) -> Shape:
    """The shape a step's config asks for (`preset` + `layers hidden heads ffn` of InitConfig / PretrainConfig):
    the one place the overrides are applied, for `factory init`, the pre-training plan and its model."""
    return get_shape(config.preset, config.layers, config.hidden, config.heads, config.ffn)


def as_shape(shape: Shape | str) -> Shape:
    """A preset's name or a Shape, as a Shape (benchmarks and tests name presets)."""
    return shape if isinstance(shape, Shape) else get_shape(shape)


def count_parameters(config: ModelConfig) -> dict[str, int]:
    """Backbone / embedding / total parameters of the bare encoder: a one-layer model is instantiated on the
    meta device (no memory) and its layer counted once per layer, so any depth is counted in milliseconds."""
    import torch

    from factory.model.encoder import DebertaModel

    with torch.device("meta"):
        model = DebertaModel(config.replace(num_hidden_layers=1))
    total = sum(p.numel() for p in model.parameters()) + (config.num_hidden_layers - 1) * layer_parameters(model)
    embedding = model.embeddings.word_embeddings.weight.numel()
    return {"backbone": total - embedding, "embedding": embedding, "total": total}


def check_memory(parameters: int, bytes_each: int, what: str) -> None:
    """Refuse to build what cannot fit in this machine's available memory (Linux's MemAvailable), before the
    allocator fails part-way through building it. Unknown available memory: no check."""
    available = available_memory()
    needed = parameters * bytes_each
    if available is not None and needed > available:
        raise ConfigError(
            f"{what} needs {needed / 2**30:,.1f} GiB ({parameters:,} parameters x {bytes_each} bytes) and this machine "
            f"has {available / 2**30:,.1f} GiB available; use a smaller shape or --vocab-size, or a larger machine"
        )


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), or None where /proc/meminfo is absent."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def layer_parameters(model) -> int:
    """Parameters of one encoder layer of a (meta) DebertaModel: every layer has the same."""
    return sum(p.numel() for p in model.encoder.layer[0].parameters())


def preset_table(vocab: VocabSize) -> list[dict]:
    """One row per preset, as `factory presets` prints it."""
    rows = []
    for name, preset in PRESETS.items():
        counts = count_parameters(preset.config(vocab))
        rows.append(
            {
                "preset": name,
                "layers": preset.layers,
                "hidden": preset.hidden,
                "heads": preset.heads,
                "ffn": preset.ffn,
                "generator_layers": preset.generator_layers,
                "vocab_pieces": vocab.pieces,
                "embedding_rows": vocab.rows,
                **counts,
                "published_backbone_m": PUBLISHED_BACKBONE_M.get(name),
            }
        )
    return rows
