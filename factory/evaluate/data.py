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
import math
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
    """A sentence or pair with a label id (classification) or a number (regression)."""

    text_a: str
    text_b: str | None
    label: int | float
    id: str = ""


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


# ---- every task type: rows from a folder or a Hub dataset, then examples ------------------------------------
Rows = dict[str, dict[str, list[tuple[str, dict]]]]  # split -> language -> (where, row)


def folder_rows(folder: Path, splits: Sequence[str], language: str | None) -> Rows:
    """{split}.{ext} / {split}.{lang}.{ext} files of `folder`; `splits` adds the task's own split names
    (validation_matched) to train/validation/dev/test. A row's language: its `language` column, else the file
    name's, else `language` (a one-language task such as GLUE's needs no language anywhere)."""
    if not folder.is_dir():
        raise FactoryError(f"--data {folder} is not a folder; give a folder of {{split}}.jsonl files or hf:NAME")
    names = {**SPLIT_ALIASES, **{s: s for s in splits}}
    out: Rows = {}
    for path in sorted(folder.iterdir()):
        parts = path.name.split(".")
        if len(parts) not in (2, 3) or parts[-1] not in FORMATS or parts[0] not in names:
            continue
        split, in_name = names[parts[0]], (parts[1] if len(parts) == 3 else None)
        for number, row in enumerate(read_rows(path), 1):
            where = f"{path} row {number}"
            if not isinstance(row, dict):
                raise FactoryError(f"{where}: not an object of columns")
            lang = row.get("language", in_name) or language
            if lang is None:
                raise FactoryError(f"{where}: no column language; name the file {split}.LANG.{parts[-1]} or add it")
            out.setdefault(split, {}).setdefault(str(lang), []).append((where, row))
    if not out:
        raise FactoryError(
            f"--data {folder} holds no {'/'.join(dict.fromkeys(names.values()))} .jsonl, .tsv or .parquet files; "
            "see `--help` for the layout"
        )
    return out


def hub_rows(
    name: str, config: str | dict[str, str] | None, split: str, languages: Sequence[str], by_id_prefix: dict | None
) -> dict[str, list[tuple[str, dict]]]:
    """One split of a `datasets` dataset per language: `config` a template ("PAN-X.{lang}"), a {lang: config}
    table, or one config for all (its rows then sorted into languages by the id's prefix, as TyDiQA's)."""
    import datasets

    out: dict[str, list[tuple[str, dict]]] = {}
    for lang in languages if config is None or isinstance(config, dict) or "{lang}" in config else [None]:
        chosen = config.get(lang) if isinstance(config, dict) else (config.format(lang=lang) if config else None)
        where = f"hf:{name}" + (f" ({chosen})" if chosen else "") + f" {split}"
        try:
            rows = datasets.load_dataset(name, chosen, split=split).to_list()
        except Exception as e:  # offline, unknown name, no such config/split: one line to the user
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FactoryError(
                f"could not load {where}: {first[:200]}; connect to the network once to cache it, or give --data "
                "a local folder"
            ) from None
        for number, row in enumerate(rows, 1):
            row_lang = lang
            if row_lang is None and not by_id_prefix and len(languages) == 1:
                row_lang = languages[0]  # one config, one language (GLUE, SQuAD)
            elif row_lang is None:
                prefix = str(row.get("id", "")).split("-", 1)[0]
                row_lang = (by_id_prefix or {}).get(prefix, prefix)
            out.setdefault(str(row_lang), []).append((f"{where} row {number}", row))
    return out


def examples_of(kind: str, rows: list[tuple[str, dict]], columns: dict[str, str | None], labels: Sequence[str],
                drop_labels: Sequence = ()) -> list:  # fmt: skip
    """Rows -> the task type's examples, every row checked (a bad one is one line naming it)."""
    convert = {"classification": _classified, "regression": _regressed, "tokens": _tagged, "qa": _answered}[kind]
    out = []
    for where, row in rows:
        missing = [c for c in columns.values() if c and c not in row]
        if missing:
            raise FactoryError(f"{where}: no column {', '.join(missing)}; see `--help` for the task's columns")
        label = row.get(columns.get("label") or "label")
        if drop_labels and label in drop_labels:
            continue  # PAWS-X's -1 rows (no label), GLUE's unlabelled test
        out.append(convert(where, row, columns, labels))
    return out


def _text(row: dict, column: str | None) -> str | None:
    return None if column is None else str(row[column])


def _classified(where, row, columns, labels) -> Example:
    label = label_id(row[columns["label"]], labels, where)
    return Example(_text(row, columns["text_a"]), _text(row, columns.get("text_b")), label, str(row.get("id", "")))


def _regressed(where, row, columns, labels) -> Example:
    value = row[columns["label"]]
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise FactoryError(f"{where}: the target {value!r} is not a number; a regression label is a score (3.8)")
    return Example(_text(row, columns["text_a"]), _text(row, columns.get("text_b")), number, str(row.get("id", "")))


def _tagged(where, row, columns, labels):
    from factory.evaluate.tasks import TagExample

    words, tags = row[columns["words"]], row[columns["tags"]]
    if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
        raise FactoryError(f"{where}: {columns['words']} and {columns['tags']} must be lists of the same length")
    ids = []
    for tag in tags:
        if str(tag) in labels:
            ids.append(list(labels).index(str(tag)))
        elif isinstance(tag, int) and not isinstance(tag, bool) and 0 <= tag < len(labels):
            ids.append(tag)
        else:
            raise FactoryError(f"{where}: tag {tag!r} is outside the label set ({', '.join(labels)})")
    return TagExample(tuple(str(w) for w in words), tuple(ids), str(row.get("id", "")))


def _answered(where, row, columns, labels):
    from factory.evaluate.qa import QAExample

    context, answers = str(row[columns["context"]]), row[columns["answers"]]
    if not isinstance(answers, dict) or not {"text", "answer_start"} <= set(answers):
        raise FactoryError(f"{where}: answers must be {{'text': [...], 'answer_start': [...]}} as in SQuAD")
    texts, starts = list(answers["text"]), list(answers["answer_start"])
    if len(texts) != len(starts):
        raise FactoryError(f"{where}: answers has {len(texts)} texts but {len(starts)} answer_start values")
    for text, start in zip(texts, starts, strict=True):
        if not isinstance(start, int) or context[start : start + len(str(text))] != str(text):
            found = context[start : start + len(str(text))] if isinstance(start, int) else start
            raise FactoryError(
                f"{where}: answer_start {start!r} does not point at the answer {text!r} in the context "
                f"(it points at {found!r})"
            )
    qid = str(row.get(columns.get("id") or "id", "")) or where
    return QAExample(qid, str(row[columns["question"]]), context, tuple(map(str, texts)), tuple(starts))
