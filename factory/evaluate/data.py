"""Evaluation data: a local folder of XNLI-format files, single files (classify), or a `datasets` dataset.

Everything becomes `{split: {language: [Example, ...]}}` and is checked before any model is trained, so a
missing split or a bad label costs one line and no compute.

Local folder layouts (FORMATS: .jsonl, .tsv with a header row, .parquet):
    DIR/{split}.{ext}            all languages in one file, with a `language` column
    DIR/{split}.{lang}.{ext}     one file per split and language (the `language` column may be absent)
with split one of train, validation (or dev), test. Columns: the suite's text columns (XNLI: premise,
hypothesis; PAWS-X: sentence1, sentence2), `label`, and `language`. A label is an id (0..n-1) or one of the
suite's label names (`entailment`), as `datasets` users have them: string columns or `ClassLabel` ids.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from factory.errors import FactoryError

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "dev": "validation",
    "valid": "validation",
    "train": "train",
    "validation": "validation",
    "test": "test",
}
FORMATS = ("jsonl", "tsv", "parquet")

Data = dict[str, dict[str, list["Example"]]]  # split -> language -> examples


@dataclasses.dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: int


def read_rows(path: Path) -> list[dict]:
    """The rows of one jsonl / tsv / parquet file as dicts; an unreadable file is one clear error."""
    import pyarrow as pa

    try:
        return _read_rows(path)
    except UnicodeDecodeError:
        raise FactoryError(f"{path} is not UTF-8 text (a binary file?); give jsonl, tsv or parquet") from None
    except (OSError, pa.ArrowException) as e:
        raise FactoryError(f"cannot read {path} ({str(e).splitlines()[0][:120]}); check the file") from None


def _read_rows(path: Path) -> list[dict]:
    ext = path.name.rsplit(".", 1)[-1]
    if ext == "jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise FactoryError(f"{path}:{number}: not JSON ({e.msg}); one object per line") from None
        return rows
    if ext == "tsv":
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if ext == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise FactoryError(f"{path}: unknown format; use one of .{', .'.join(FORMATS)}")


def to_examples(
    rows: list[dict], where: str, text_a: str, text_b: str | None, labels: Sequence[str], language: str | None = None
) -> dict[str, list[Example]]:
    """Rows -> examples per language, checking columns and labels (a name in `labels` or an id 0..n-1)."""
    out: dict[str, list[Example]] = defaultdict(list)
    for number, row in enumerate(rows, 1):
        missing = [c for c in (text_a, text_b, "label") if c and c not in row]
        lang = row.get("language", language)
        if lang is None:
            missing.append("language")
        if missing:
            raise FactoryError(f"{where} row {number}: no column {', '.join(missing)}; see `--help` for the layout")
        label = label_id(row["label"], labels, f"{where} row {number}")
        out[str(lang)].append(Example(str(row[text_a]), str(row[text_b]) if text_b else None, label))
    return dict(out)


def label_id(value: object, labels: Sequence[str], where: str) -> int:
    """A label name -> its index in `labels`; an integer id (or its text, as tsv gives it) -> itself."""
    if str(value) in labels:
        return list(labels).index(str(value))
    try:
        label = int(str(value)) if not isinstance(value, bool) else None
    except ValueError:
        label = None
    if label is None:
        raise FactoryError(f"{where}: label {value!r} is neither one of {', '.join(labels)} nor an integer id")
    if not 0 <= label < len(labels):
        raise FactoryError(
            f"{where}: label {label} is outside 0..{len(labels) - 1}; labels are ids or names ({', '.join(labels)})"
        )
    return label


def infer_labels(files: dict[str, Path]) -> tuple[str, ...]:
    """Label names for `eval classify` without --labels: a parquet file's `ClassLabel` names (written by
    `datasets`), else the distinct string labels sorted (a deterministic order), else ids 0..max as names."""
    for path in files.values():
        names = classlabel_names(path)
        if names:
            return names
    values = {row.get("label") for path in files.values() for row in read_rows(path)} - {None}
    if values and all(isinstance(v, int) or str(v).isdigit() for v in values):
        return tuple(str(i) for i in range(max(int(v) for v in values) + 1))
    return tuple(sorted(str(v) for v in values))


def classlabel_names(path: Path) -> tuple[str, ...] | None:
    """The `label` column's ClassLabel names from the `datasets` metadata of a parquet file, if any."""
    if not path.name.endswith(".parquet") or not path.is_file():
        return None
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
    except (KeyError, TypeError, ValueError):
        return None
    label = features.get("label") or {}
    return tuple(label["names"]) if label.get("_type") == "ClassLabel" and label.get("names") else None


def load_folder(folder: Path, text_a: str, text_b: str | None, labels: Sequence[str]) -> Data:
    """Every recognised file of `folder` (layouts in the module docstring)."""
    if not folder.is_dir():
        raise FactoryError(f"--data {folder} is not a folder; give a folder of {{split}}.jsonl files or hf:NAME")
    data: Data = {}
    for path in sorted(folder.iterdir()):
        parts = path.name.split(".")
        if len(parts) not in (2, 3) or parts[-1] not in FORMATS or parts[0] not in SPLIT_ALIASES:
            continue
        split, lang = SPLIT_ALIASES[parts[0]], (parts[1] if len(parts) == 3 else None)
        for language, examples in to_examples(read_rows(path), str(path), text_a, text_b, labels, lang).items():
            data.setdefault(split, {}).setdefault(language, []).extend(examples)
    if not data:
        raise FactoryError(
            f"--data {folder} holds no train/validation/test .jsonl, .tsv or .parquet files; "
            "see `--help` for the layout"
        )
    return data


def load_hub(
    name: str, languages: list[str], train_language: str, text_a: str, text_b: str | None, labels: Sequence[str]
) -> Data:
    """`datasets.load_dataset(name, lang)` per language (the layout of facebook/xnli and paws-x)."""
    import datasets

    data: Data = {}
    for lang in languages:
        try:
            dataset = datasets.load_dataset(name, lang)
        except Exception as e:  # offline, unknown name, no such config: all are one line to the user
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FactoryError(
                f"could not load hf:{name} ({lang}): {first[:200]}; connect to the network once to cache it, "
                "or give --data a local folder"
            ) from None
        for split in SPLITS:
            if split == "train" and lang != train_language or split not in dataset:
                continue
            rows = dataset[split].to_list()
            data.setdefault(split, {}).update(
                to_examples(rows, f"hf:{name}/{lang}/{split}", text_a, text_b, labels, lang)
            )
    return data


def check_files(files: dict[str, Path]) -> None:
    """Every classify file exists, before labels are inferred from them or any model is loaded."""
    for split, path in files.items():
        if not path.is_file():
            raise FactoryError(f"--{split} {path} does not exist; give a .jsonl, .tsv or .parquet file")


def load_files(files: dict[str, Path], text_a: str, text_b: str | None, labels: Sequence[str]) -> Data:
    """One file per split (`factory eval classify --train F --test F`), each with a `language` column."""
    data: Data = {}
    for split, path in files.items():  # checked by `check_files` when the request was made
        data[split] = to_examples(read_rows(path), str(path), text_a, text_b, labels)
    return data


def check_data(
    data: Data, train_language: str, languages: list[str], where: str, splits: tuple[str, ...] = SPLITS[1:]
) -> None:
    """Train and every evaluated split present; train has the train language; eval splits have every language."""
    for split in ("train", *splits):
        if split not in data:
            raise FactoryError(f"{where} has no {split} split; add {split}.jsonl (or .tsv/.parquet) to it")
    if train_language not in data["train"]:
        raise FactoryError(
            f"{where}: the train split has no {train_language!r} examples (it has {', '.join(sorted(data['train']))}); "
            "pick another --train-lang"
        )
    for split in splits:
        lacking = [lang for lang in languages if lang not in data[split]]
        if lacking:
            raise FactoryError(
                f"{where}: the {split} split has no examples for {', '.join(lacking)}; drop them from --langs"
            )
