"""An evaluation suite: languages, labels, fine-tuning settings and reference numbers, read from `eval/*.yaml`.

The YAML files are the single place where the published recipe (and where each number comes from) is kept;
commands only override a setting on purpose (`--set epochs=3`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.resources import find


@dataclasses.dataclass(frozen=True)
class Settings:
    """Fine-tuning settings; the defaults are the mDeBERTa card's XNLI recipe (see eval/xnli.yaml)."""

    learning_rate: float = 2e-5
    epochs: float = 6
    batch_size: int = 32  # pairs per optimizer step, whatever the number of processes
    micro_batch_size: int = 16  # pairs per forward pass; gradient accumulation fills batch_size
    max_length: int = 256
    warmup_steps: int = 3000
    max_warmup_fraction: float = 0.1  # warm-up never longer than this share of the steps (small data)
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "linear"
    dropout: float | None = None  # None: the model's own
    eval_batch_size: int = 64
    seed: int = 42
    precision: str = "auto"  # auto | bf16 | fp32

    def override(self, pairs: dict[str, str]) -> Settings:
        """Apply `key=value` strings (from `--set`), parsed as the field's type; unknown keys are refused."""
        changes: dict[str, Any] = {}
        for key, text in pairs.items():
            if key not in SETTING_TYPES:
                raise FactoryError(f"--set {key}: unknown setting; use one of {', '.join(SETTING_TYPES)}")
            changes[key] = _parse(key, text)
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> Settings:
        problems = []
        if self.batch_size % self.micro_batch_size:
            problems.append(
                f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}"
            )
        if self.learning_rate <= 0 or self.epochs <= 0 or self.micro_batch_size <= 0:
            problems.append("learning_rate, epochs and micro_batch_size must be positive")
        if self.max_length < 8:
            problems.append(f"max_length {self.max_length} is too short for a pair (use >= 8)")
        if self.schedule != "linear":
            problems.append(f"schedule {self.schedule!r} unknown; only 'linear' is implemented")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append(f"precision {self.precision!r} unknown; use auto, bf16 or fp32")
        if problems:
            raise FactoryError("bad settings: " + "; ".join(problems))
        return self


SETTING_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def _parse(key: str, text: str) -> Any:
    kind = SETTING_TYPES[key]
    try:
        if key == "dropout":
            return None if text.lower() in ("none", "null") else float(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        return text
    except ValueError:
        raise FactoryError(f"--set {key}={text}: not a {kind}") from None


@dataclasses.dataclass(frozen=True)
class Suite:
    """What is evaluated and how: read from eval/<name>.yaml."""

    name: str
    dataset: str | None  # default --data, e.g. hf:facebook/xnli
    languages: tuple[str, ...]  # the suite's languages; empty: whatever the data holds (classify)
    train_language: str
    labels: tuple[str, ...]
    text_a: str
    text_b: str | None  # None: single-sentence classification
    settings: Settings
    references: dict[str, dict[str, float]]


def load_suite(name_or_path: str | Path) -> Suite:
    """`xnli` -> eval/xnli.yaml, or a path to a YAML file of the same shape."""
    import yaml

    path = find("suite", name_or_path)
    raw = yaml.safe_load(path.read_text()) or {}
    settings = raw.get("settings") or {}
    unknown = sorted(set(settings) - set(SETTING_TYPES))
    if unknown:
        raise FactoryError(f"{path}: unknown settings {', '.join(unknown)}; known: {', '.join(SETTING_TYPES)}")
    columns = raw.get("columns") or {}
    return Suite(
        name=raw.get("suite", path.stem),
        dataset=raw.get("dataset"),
        languages=tuple(raw.get("languages") or ()),
        train_language=raw.get("train_language", "en"),
        labels=tuple(raw["labels"]),
        text_a=columns.get("text_a", "premise"),
        text_b=columns.get("text_b", "hypothesis"),
        settings=Settings(**settings).validated(),
        references={
            name: {k: float(v) for k, v in table.items()} for name, table in (raw.get("references") or {}).items()
        },
    )
