"""An evaluation suite: languages, labels, fine-tuning settings and reference numbers, read from `eval/*.yaml`.

The YAML files are the single place where the published recipe (and where each number comes from) is kept;
commands only override a setting on purpose (`--set epochs=3`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from factory.config import Layer, resolve
from factory.configs import FinetuneSettings
from factory.errors import FactoryError
from factory.resources import find


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
    settings: FinetuneSettings  # declared in factory.configs
    references: dict[str, dict[str, float]]


SUITE_KEYS = {"suite", "dataset", "languages", "train_language", "labels", "columns", "settings", "references"}


def load_suite(name_or_path: str | Path) -> Suite:
    """`xnli` -> the bundled eval/xnli.yaml, or a path to a YAML file of the same shape."""
    import yaml

    path = find("suite", name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise FactoryError(f"suite file {path} is not readable YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raw = {"(not a mapping)": raw}
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown or not isinstance(raw.get("labels"), list) or len(raw["labels"]) < 2:
        raise FactoryError(
            f"suite file {path}: needs `labels` (two or more names in id order)"
            + (f"; unknown keys {', '.join(map(str, unknown))}" if unknown else "")
            + f"; a suite has {', '.join(sorted(SUITE_KEYS))} (see eval/xnli.yaml)"
        )
    settings = resolve(FinetuneSettings, [Layer(raw.get("settings") or {}, f"{path}: settings.")])
    columns = raw.get("columns") or {}
    return Suite(
        name=raw.get("suite", path.stem),
        dataset=raw.get("dataset"),
        languages=tuple(raw.get("languages") or ()),
        train_language=raw.get("train_language", "en"),
        labels=tuple(raw["labels"]),
        text_a=columns.get("text_a", "premise"),
        text_b=columns.get("text_b", "hypothesis"),
        settings=settings,
        references={
            name: {k: float(v) for k, v in table.items()} for name, table in (raw.get("references") or {}).items()
        },
    )
