"""Evaluation data: local files (a folder per task, or classify's single files) or a `datasets` dataset.

Everything becomes `{split: {language: [example, ...]}}` and is checked before any model is trained, so a
missing split, a bad label, an answer_start off its answer or a tag outside the label set costs one line and no
compute. Rows come from `folder_rows` (local) or `hub_rows` (a Hub dataset, per language config or split by id
prefix), each with where it is ("FILE line 7"); `examples_of` turns them into the task type's examples:
`Example`, `TagExample` and `QAExample`, plain records with no behaviour that the task types (tasks.py, qa.py)
turn into model inputs.

Local folder layouts (FORMATS: .jsonl, .tsv with a header row, .parquet):
    DIR/{split}.{ext}            all languages in one file, with a `language` column
    DIR/{split}.{lang}.{ext}     one file per split and language (the `language` column may be absent)
with split one of train, validation (or dev), test, or a suite's own split name (validation_matched). Columns:
the suite's (XNLI: premise, hypothesis, label; PAN-X: tokens, ner_tags; QA: SQuAD's). A label is an id (0..n-1)
or one of the suite's label names (`entailment`), as `datasets` users have them: string columns or `ClassLabel`
ids, all one way or all the other.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from factory.core.errors import FactoryError, hub_failure


@dataclasses.dataclass(frozen=True)
class Example:
    """A sentence or pair with a label id (classification) or a number (regression)."""

    text_a: str
    text_b: str | None
    label: int | float
    id: str = ""
    where: str = dataclasses.field(default="", compare=False)  # "FILE line N": for messages about this example


@dataclasses.dataclass(frozen=True)
class TagExample:
    """A sentence as words, with one tag id per word (token classification)."""

    words: tuple[str, ...]
    tags: tuple[int, ...]
    id: str = ""


@dataclasses.dataclass(frozen=True)
class QAExample:
    """A question on a context with its gold answers (extractive QA)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...]  # empty: unanswerable (SQuAD 2.0)
    starts: tuple[int, ...]  # character offset of each answer in the context
    where: str = dataclasses.field(default="", compare=False)  # "FILE line N": for messages about this example


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


def read_rows(path: Path) -> list[dict]:
    """The rows of one jsonl / tsv / parquet file as dicts; an unreadable file is one clear error."""
    return read_numbered(path)[0]


def read_numbered(path: Path) -> tuple[list[dict], list[str]]:
    """The rows of one file and where each is ("line 7" in a jsonl or tsv file, "row 7" in a parquet table),
    so a message can point at the row; an unreadable file is one clear error. A file with no rows (0 bytes, blank
    lines, a tsv header alone, an empty table) is one too, here where every evaluation file is read: read on, it
    would look like a split or a language the data does not have, and be reported as missing."""
    import pyarrow as pa

    try:
        rows, places = _read_rows(path)
    except UnicodeDecodeError:
        raise FactoryError(f"{path} is not UTF-8 text (a binary file?); give jsonl, tsv or parquet") from None
    except (OSError, pa.ArrowException) as e:
        raise FactoryError(f"cannot read {path} ({str(e).splitlines()[0][:120]}); check the file") from None
    if not rows:
        raise FactoryError(f"{path} is empty (no rows); put one example per row in it")
    return rows, places


def _read_rows(path: Path) -> tuple[list[dict], list[str]]:
    ext = path.name.rsplit(".", 1)[-1]
    rows: list[dict] = []
    places: list[str] = []
    if ext == "jsonl":
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise FactoryError(f"{path}:{number}: not JSON ({e.msg}); one object per line") from None
                    places.append(f"line {number}")
        return rows, places
    if ext == "tsv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                rows.append(row)
                places.append(f"line {reader.line_num}")
        return rows, places
    if ext == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        return rows, [f"row {i}" for i in range(1, len(rows) + 1)]
    raise FactoryError(f"{path}: unknown format; use one of .{', .'.join(FORMATS)}")


def to_examples(
    rows: list[dict],
    where: str,
    text_a: str,
    text_b: str | None,
    labels: Sequence[str],
    language: str | None = None,
    places: list[str] | None = None,
) -> dict[str, list[Example]]:
    """Rows -> examples per language, checking columns and labels: every label a name in `labels` or an id
    0..n-1, and all of them names or all ids (`LabelKinds`). `places`: where each row is in its file."""
    out: dict[str, list[Example]] = defaultdict(list)
    kinds = LabelKinds(labels)
    for number, row in enumerate(rows, 1):
        place = f"{where} {places[number - 1] if places else f'row {number}'}"
        missing = [c for c in (text_a, text_b, "label") if c and c not in row]
        lang = row.get("language", language)
        if lang is None:
            missing.append("language")
        if missing:
            raise FactoryError(f"{place}: no column {', '.join(missing)}; see `--help` for the layout")
        label = label_id(row["label"], labels, place)
        kinds.check(row["label"], place)
        out[str(lang)].append(Example(str(row[text_a]), str(row[text_b]) if text_b else None, label, where=place))
    return dict(out)


def _as_id(value: object) -> int | None:
    """The integer id a label value spells (7, 7.0, "7"), or None for a name; NaN, fractions and booleans are
    refused, as no class can be meant by them (json reads NaN; a parquet float column holds 1.5)."""
    if isinstance(value, bool):
        raise ValueError(f"{value} is a boolean, not a label")
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("is NaN (a missing label?)")
        if not value.is_integer():
            raise ValueError(f"{value} is not an integer id")
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else None


def label_id(value: object, labels: Sequence[str], where: str) -> int:
    """A label name -> its index in `labels`; an integer id (or its text, as tsv gives it) -> itself."""
    try:
        number = _as_id(value)
    except ValueError as e:
        raise FactoryError(
            f"{where}: label {e}; give one of {', '.join(labels)} or an id 0..{len(labels) - 1}"
        ) from None
    if str(value) in labels:
        return list(labels).index(str(value))
    if number is None:
        raise FactoryError(f"{where}: label {value!r} is neither one of {', '.join(labels)} nor an integer id")
    if not 0 <= number < len(labels):
        raise FactoryError(
            f"{where}: label {number} is outside 0..{len(labels) - 1}; labels are ids or names ({', '.join(labels)})"
        )
    return number


def _mixed(first: dict[str, tuple[object, str]]) -> FactoryError:
    """The one line for labels given both ways: `first` maps "id"/"name" to the first such label and its place,
    in the order they were met, so the line starts at the later one."""
    (early_kind, (early, early_place)), (kind, (value, place)) = first.items()
    article = "an" if kind == "id" else "a"
    return FactoryError(
        f"{place}: label {value!r} is {article} {kind} but {early_place} has the {early_kind} {early!r}; give every "
        "label as a name or every label as an id 0..n-1, not both"
    )


class LabelKinds:
    """Labels are all names or all ids, never both: a file mixing `0` and `"neutral"` has no one meaning (is 0
    the first name, or a class of its own?), so the first of the other kind is one line naming both rows.
    Where the label names are the ids themselves ("0", "1", ... as `infer_labels` makes them), all are ids."""

    def __init__(self, labels: Sequence[str]):
        self.ids_are_names = list(labels) == [str(i) for i in range(len(labels))]
        self.first: dict[str, tuple[object, str]] = {}

    def check(self, value: object, where: str) -> None:
        kind = "id" if self.ids_are_names or _as_id(value) is not None else "name"
        self.first.setdefault(kind, (value, where))
        if len(self.first) == 2:
            raise _mixed(self.first)


def infer_labels(files: dict[str, Path]) -> tuple[str, ...]:
    """Label names for `eval classify` without --labels: a parquet file's `ClassLabel` names (written by
    `datasets`), else the distinct string labels sorted (a deterministic order), else ids 0..max as names.
    A label that is neither (NaN, 1.5), or a mix of ids and names, is one line naming its file and row."""
    for path in files.values():
        names = classlabel_names(path)
        if names:
            return names
    first: dict[str, tuple[object, str]] = {}  # "id" / "name" -> the first such label and where it is
    found: set[str] = set()
    for path in files.values():
        rows, places = read_numbered(path)
        for row, place in zip(rows, places, strict=True):
            value = row.get("label")
            if value is None:
                continue
            try:
                number = _as_id(value)
            except ValueError as e:
                raise FactoryError(f"{path} {place}: label {e}; give a name or an integer id") from None
            first.setdefault("id" if number is not None else "name", (value, f"{path} {place}"))
            found.add(str(number) if number is not None else str(value))
    if len(first) == 2:
        raise _mixed(first)
    if "id" in first:
        return tuple(str(i) for i in range(max(int(v) for v in found) + 1))
    return tuple(sorted(found))


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


def check_files(files: dict[str, Path]) -> None:
    """Every classify file exists, before labels are inferred from them or any model is loaded."""
    for split, path in files.items():
        if not path.is_file():
            raise FactoryError(f"--{split} {path} does not exist; give a .jsonl, .tsv or .parquet file")


def load_files(files: dict[str, Path], text_a: str, text_b: str | None, labels: Sequence[str]) -> Data:
    """One file per split (`factory eval classify --train F --test F`), each with a `language` column."""
    data: Data = {}
    for split, path in files.items():  # checked by `check_files` when the request was made
        rows, places = read_numbered(path)
        data[split] = to_examples(rows, str(path), text_a, text_b, labels, places=places)
    return data


def check_data(
    data: Data,
    train_language: str,
    languages: list[str],
    where: str,
    splits: tuple[str, ...] = SPLITS[1:],
    labels: Sequence[str] = (),
    unique_ids: bool = False,
) -> None:
    """Train and every evaluated split present; train has the train language; eval splits have every language,
    each with examples (a split scored on none reads 0.0, not a mistake); with `unique_ids` (a task type whose
    score keys on ids) no two examples of an evaluated split and language share an id; every evaluated label
    occurs in the training examples (a class the model never saw cannot be predicted: a typo in a test file, or a
    name the train file spells another way)."""
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
    for split in ("train", *splits):  # rows, but no example: each one left out as unlabelled (GLUE's test rows, -1)
        for lang in [train_language] if split == "train" else languages:
            if not data[split][lang]:
                raise FactoryError(
                    f"{where}: the {split} split holds no {lang} examples (every {lang} row, if any, has a label the "
                    "suite leaves out as unlabelled, such as -1); give it labelled rows"
                )
    for split in splits if unique_ids else ():
        for lang in languages:
            check_unique_ids(data[split][lang])
    if not labels:  # a classification task's labels: the other task types have no class to be unseen
        return
    trained = {e.label for e in data["train"][train_language]}
    for split in splits:
        for lang in languages:
            unseen = next((e for e in data[split][lang] if e.label not in trained), None)
            if unseen is not None:
                name = labels[unseen.label] if unseen.label < len(labels) else str(unseen.label)
                known = ", ".join(labels[i] if i < len(labels) else str(i) for i in sorted(trained))
                raise FactoryError(
                    f"{unseen.where or where}: label {name!r} never occurs in the {train_language} train examples "
                    f"({known}); fix the label, or add train examples of it"
                )


def check_unique_ids(examples: Sequence[Example | QAExample]) -> None:
    """No two examples share an id. A score that matches each prediction to its gold answers by id (SQuAD's and
    MLQA's scripts, `QuestionAnswering.score`) keeps one question per id, so a shared id silently scores one
    question's prediction against another's answers and counts the rest as one question. The line names both rows."""
    seen: dict[str, str] = {}
    for example in examples:
        if example.id in seen:
            raise FactoryError(
                f"{_both(seen[example.id], example.where)} have the same id {example.id!r}; give each question its "
                "own id (the scores match each prediction to its question by id)"
            )
        seen[example.id] = example.where


def _both(first: str, second: str) -> str:
    """Two places of rows, the file named once where they share it: "F line 3", "F line 9" -> "F: line 3 and line 9"."""
    (file_a, *place_a), (file_b, *place_b) = first.rsplit(" ", 2), second.rsplit(" ", 2)
    if file_a == file_b and place_a and place_b:
        return f"{file_a}: {' '.join(place_a)} and {' '.join(place_b)}"
    return f"{first} and {second}"


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
        rows, places = read_numbered(path)
        for row, place in zip(rows, places, strict=True):
            where = f"{path} {place}"
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
        except Exception as e:  # offline, unknown name, no such config/split, no network: one line each (main's)
            raise hub_failure(e, f"could not load {where}", "give --data a local folder") from None
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
    kinds = LabelKinds(labels) if kind == "classification" else None
    out = []
    for where, row in rows:
        missing = [c for c in columns.values() if c and c not in row]
        if missing:
            raise FactoryError(f"{where}: no column {', '.join(missing)}; see `--help` for the task's columns")
        label = row.get(columns.get("label") or "label")
        if drop_labels and label in drop_labels:
            continue  # PAWS-X's -1 rows (no label), GLUE's unlabelled test
        example = convert(where, row, columns, labels)
        if kinds is not None:
            kinds.check(label, where)
        out.append(example)
    return out


def _text(row: dict, column: str | None) -> str | None:
    return None if column is None else str(row[column])


def _classified(where, row, columns, labels) -> Example:
    label = label_id(row[columns["label"]], labels, where)
    return Example(_text(row, columns["text_a"]), _text(row, columns.get("text_b")), label, str(row.get("id", "")),
                   where)  # fmt: skip


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
    return QAExample(qid, str(row[columns["question"]]), context, tuple(map(str, texts)), tuple(starts), where)
