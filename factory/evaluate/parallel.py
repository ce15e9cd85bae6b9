"""Parallel text for retrieval: every layout becomes {language: the pairs it has with the pivot}.

Layouts (`--data`):
    DIR/<lang>.txt       one item per line, line i of every file the same item (the pivot has its file too)
    DIR/<lang>.tsv       pivot<TAB>translation per line, one file per language (Tatoeba's shape: each language
                         has its own pivot sentences); an optional header line `<pivot><TAB><lang>`
    FILE.jsonl|.parquet  one row per item, one text column per language (other columns, e.g. ids, ignored)
    hf:NAME[:CONFIG][@SPLIT]   the same through `datasets` (a `translation` column of {lang: text} works too;
                         the split defaults to test, else validation, else train)

An item missing in a language (an empty line or cell) is left out of that language's pairs only. Everything is
checked before a model is loaded: misaligned files, a single language, a pivot the data does not have, and a
language with fewer than two items are each one line (exit 2).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from factory.core.errors import FactoryError, hub_failure

log = logging.getLogger(__name__)
TABLES = (".jsonl", ".parquet")


@dataclasses.dataclass(frozen=True)
class Pairs:
    """One language's items: `other[i]` translates `pivot[i]`; the candidate pool is all of `pivot`."""

    pivot: list[str]
    other: list[str]


@dataclasses.dataclass(frozen=True)
class Parallel:
    pivot: str
    pairs: dict[str, Pairs]  # language -> its pairs with the pivot, languages sorted
    source: str
    layout: str  # txt, tsv, table, hub


def read_parallel(data: str, pivot: str, langs: str = "all") -> Parallel:
    """Read and check `--data`; `langs` ("all" or "de,fr") selects the languages tested against the pivot."""
    if data.startswith("hf:"):
        layout, pairs = "hub", _table_pairs(_hub_columns(data[3:]), pivot, data)
    else:
        path = Path(data)
        if path.is_file() and path.suffix in TABLES:
            layout, pairs = "table", _table_pairs(_file_columns(path), pivot, data)
        elif path.is_dir():
            layout, pairs = _folder_pairs(path, pivot)
        else:
            raise FactoryError(
                f"--data {data}: not a folder of <lang>.txt or <lang>.tsv files, a .jsonl/.parquet file or hf:NAME"
            )
    pairs = _select(pairs, langs, pivot, data)
    for lang, p in pairs.items():
        if len(p.other) < 2:
            raise FactoryError(f"--data {data}: {lang} has {len(p.other)} item(s) with the pivot; retrieval needs 2+")
    return Parallel(pivot=pivot, pairs=dict(sorted(pairs.items())), source=data, layout=layout)


def _select(pairs: dict[str, Pairs], langs: str, pivot: str, data: str) -> dict[str, Pairs]:
    if not pairs:
        raise FactoryError(f"--data {data} has only one language; retrieval needs the pivot {pivot} and another")
    if langs.strip() == "all":
        return pairs
    wanted = [x.strip() for x in langs.split(",") if x.strip()]
    if pivot in wanted:
        raise FactoryError(f"--langs names the pivot {pivot}; every language is matched against it, leave it out")
    unknown = [x for x in wanted if x not in pairs]
    if unknown:
        raise FactoryError(f"--langs {', '.join(unknown)} not in --data {data}; it has {', '.join(sorted(pairs))}")
    return {lang: pairs[lang] for lang in wanted}


def _pairs(pivot_texts: list[str | None], other_texts: list[str | None]) -> Pairs:
    """Aligned columns -> the items present (non-blank) on both sides."""
    kept = [(p.strip(), o.strip()) for p, o in zip(pivot_texts, other_texts, strict=True) if _present(p, o)]
    return Pairs(pivot=[p for p, _ in kept], other=[o for _, o in kept])


def _present(*texts: str | None) -> bool:
    return all(isinstance(t, str) and t.strip() for t in texts)


# ---- columns: a table, a Hub dataset, a folder of .txt -------------------------------------------
def _table_pairs(columns: dict[str, list], pivot: str, data: str) -> dict[str, Pairs]:
    texts = {name: values for name, values in columns.items() if _is_text(values)}
    if pivot not in texts:
        raise FactoryError(
            f"the pivot {pivot!r} is not in --data {data} (its languages: {', '.join(sorted(texts)) or 'none'}); "
            "pass --pivot LANG"
        )
    return {lang: _pairs(texts[pivot], values) for lang, values in texts.items() if lang != pivot}


def _is_text(values: list) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, str) for v in present)


def _file_columns(path: Path) -> dict[str, list]:
    from factory.evaluate.data import read_rows

    rows = read_rows(path)
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise FactoryError(f"{path} has no rows of {{language: text}}; one object (row) per item")
    names = list(dict.fromkeys(k for r in rows for k in r))
    return _flatten({name: [r.get(name) for r in rows] for name in names})


def _flatten(columns: dict[str, list]) -> dict[str, list]:
    """A `translation` column of {lang: text} dicts (as WMT/OPUS sets on the Hub have) -> one column per language."""
    out = {k: v for k, v in columns.items() if k != "translation"}
    rows = columns.get("translation")
    if rows and all(isinstance(r, dict) for r in rows):
        for lang in dict.fromkeys(k for r in rows for k in r):
            out.setdefault(lang, [r.get(lang) for r in rows])
    return out


def _hub_columns(spec: str) -> dict[str, list]:
    """hf:NAME[:CONFIG][@SPLIT] through `datasets` (a local dataset folder works too)."""
    import datasets

    name, _, split = spec.partition("@")
    name, _, config = name.partition(":") if not Path(name).exists() else (name, "", "")
    try:
        loaded = datasets.load_dataset(name, config or None, split=split or None)
    except Exception as e:  # noqa: BLE001 (datasets raises many kinds: a name, access, or the network)
        raise hub_failure(e, f"cannot load hf:{spec}", "give --data a local folder") from None
    if isinstance(loaded, datasets.DatasetDict):
        chosen = next((s for s in ("test", "validation", "train") if s in loaded), next(iter(loaded), None))
        if chosen is None:
            raise FactoryError(f"hf:{spec} has no splits")
        log.info("hf:%s: using split %s", spec, chosen)
        loaded = loaded[chosen]
    return _flatten({name: loaded[name] for name in loaded.column_names})


def _folder_pairs(folder: Path, pivot: str) -> tuple[str, dict[str, Pairs]]:
    txt, tsv = sorted(folder.glob("*.txt")), sorted(folder.glob("*.tsv"))
    if txt and tsv:
        raise FactoryError(f"--data {folder} has both .txt and .tsv files; keep one layout in a folder")
    if tsv:
        return "tsv", _tsv_pairs(tsv, pivot, folder)
    if not txt:
        raise FactoryError(f"--data {folder} has no <lang>.txt or <lang>.tsv files")
    lines = {path.stem: _lines(path) for path in txt}
    counts = {lang: len(x) for lang, x in lines.items()}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{lang}.txt {n}" for lang, n in sorted(counts.items()))
        raise FactoryError(
            f"--data {folder}: the files are not aligned ({shown} lines); line i of every file must be one item"
        )
    return "txt", _table_pairs(lines, pivot, str(folder))  # type: ignore[arg-type]


def _lines(path: Path) -> list[str]:
    """The file's lines (trailing blank lines dropped: an editor's final newline is not an item)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise FactoryError(f"{path} is not UTF-8 text") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _tsv_pairs(files: list[Path], pivot: str, folder: Path) -> dict[str, Pairs]:
    if any(path.stem == pivot for path in files):
        raise FactoryError(
            f"--data {folder} has {pivot}.tsv, but in the .tsv layout the pivot {pivot} is the first column of "
            "every <lang>.tsv; remove it, or pass the --pivot the files pair with"
        )
    out = {}
    for path in files:
        rows = [line.split("\t") for line in _lines(path)]
        first = 1  # the line number of rows[0]
        if rows and len(rows[0]) == 2 and rows[0][1].strip() == path.stem and _is_code(rows[0][0]):
            if rows[0][0].strip() != pivot:
                raise FactoryError(
                    f"{path} pairs {rows[0][0].strip()} with {path.stem}, not the pivot {pivot}; pass --pivot "
                    f"{rows[0][0].strip()}"
                )
            rows, first = rows[1:], 2  # the header line
        bad = next((i for i, row in enumerate(rows) if len(row) != 2), None)
        if bad is not None:
            raise FactoryError(f"{path}:{bad + first}: not pivot<TAB>translation ({len(rows[bad])} field(s))")
        out[path.stem] = _pairs([r[0] for r in rows], [r[1] for r in rows])
    return out


def _is_code(text: str) -> bool:
    """A language code in a header (en, pt-BR, zh_Hans), not a sentence."""
    text = text.strip()
    return 0 < len(text) <= 12 and all(c.isalnum() or c in "-_" for c in text)
