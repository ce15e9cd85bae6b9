"""Reading a corpus: sources, the files or stream shards they consist of, and the documents in each.

Sources (`--corpus`, repeatable, optionally `lang=SOURCE`): `.txt` (a document per line, or paragraphs
separated by blank lines), `.jsonl` (`text_field`), `.parquet`, `.arrow`, any of them `.gz`, a folder of
those, or `hf:REPO[:CONFIG][@SPLIT]` streamed with `datasets` (REPO may be a local folder of data files,
which `datasets` streams the same way, offline).

A source is cut into *units* (`source_units`): consecutive files of at least `UNIT_BYTES`, or one stream
shard of a `datasets.IterableDataset`. Units are what a shard build packs, resumes and splits into tasks by,
so they depend on the data alone, never on the number of processes or tasks.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from factory.core.errors import FactoryError, hub_failure

TEXT_SUFFIXES = {".txt", ".text", ""}
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
TABLE_SUFFIXES = {".parquet", ".arrow"}


# ---- sources ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One `--corpus` value: where the text is and, optionally, which language it is declared to be."""

    spec: str
    lang: str | None = None

    @classmethod
    def parse(cls, value: str) -> Source:
        """`PATH`, `hf:REPO:CONFIG`, `pt=PATH` or `pt=hf:REPO:CONFIG`. A `WORD=` prefix that is no language code
        (`portuguese=pt.txt`) is one line saying so, with the code to give; read as part of a path it only
        became "no such file" (unless a path of that whole name exists: then it is that path)."""
        from factory.core.languages import NAMES, check_languages

        match = re.fullmatch(r"([A-Za-z][\w-]*)=(.+)", value)
        if match is None:
            return cls(value)
        lang, spec = match.groups()
        if lang not in NAMES and Path(value).exists():
            return cls(value)
        return cls(spec, check_languages([lang], f"--corpus {value}")[0])

    @property
    def is_hub(self) -> bool:
        return self.spec.startswith("hf:")


def check_apart(out: Path, sources: list[Source]) -> None:
    """--out must be neither inside a local corpus folder (the next run would read the step's own files, .arrow
    shards or spm.vocab, as text) nor hold a corpus (--force replaces --out, corpus and all)."""
    from factory.core.outputs import overlap

    for source in sources:
        where = None if source.is_hub else overlap(out, Path(source.spec))
        if where in ("same", "inside"):
            raise FactoryError(
                f"--out {out} is inside the corpus {source.spec}: a later run would read this step's files as text; "
                "put --out outside the corpus folder"
            )
        if where == "holds":
            raise FactoryError(f"--out {out} holds the corpus {source.spec}, which --force would replace; put --out "
                               "elsewhere")  # fmt: skip


def read_source(source: Source, text_field: str = "text") -> Iterator[str]:
    """Raw documents of one source, in order."""
    if source.is_hub:
        yield from _read_hub(source.spec, text_field)
        return
    for file in source_files(source):
        yield from read_file(file, text_field)


def read_file(path: Path, text_field: str = "text") -> Iterator[str]:
    """Documents of one local file, by suffix (a `.gz` suffix is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    kind = (suffixes[-2] if gz and len(suffixes) > 1 else "" if gz else (suffixes[-1] if suffixes else "")).lower()
    try:
        if kind in TABLE_SUFFIXES and not gz:
            yield from _read_table(path, kind, text_field)
            return
        with _open_text(path, gz) as f:
            if kind in JSONL_SUFFIXES:
                yield from _read_jsonl(f, path, text_field)
            else:
                yield from _read_text(f)
    except UnicodeDecodeError:
        raise FactoryError(f"{path} is not UTF-8 text (a binary file?); give .txt/.jsonl/.parquet/.arrow/.gz") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FactoryError(f"cannot read {path}: {e.strerror or e}; check the file and its permissions") from None


def _open_text(path: Path, gz: bool) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    head = raw.peek(8192)[:8192] if hasattr(raw, "peek") else b""
    if b"\x00" in head:
        raw.close()
        raise FactoryError(f"{path} holds NUL bytes: a binary file, not text; give .txt/.jsonl/.parquet/.arrow/.gz")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline=None)


def _read_text(f: io.TextIOBase) -> Iterator[str]:
    """A document per line; if the file has blank lines, paragraphs (blank-line separated) instead.

    The mode is decided from the first 64 KiB (a blank line between two text lines means paragraphs).
    """
    head = f.read(1 << 16)
    rest = f
    paragraphs = re.search(r"\n[ \t]*\n", head.strip()) is not None  # text, a blank line, text (linear time)
    if not paragraphs:
        yield from _nonblank_lines(head, rest)
        return
    lines = _chain_lines(head, rest)
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line.strip())
        elif block:
            yield " ".join(block)
            block = []
    if block:
        yield " ".join(block)


def _nonblank_lines(head: str, rest: io.TextIOBase, block: int = 1 << 16) -> Iterator[str]:
    """The non-blank lines, read a block at a time (a shard build reads every line: per-line file iteration
    was a third of the reading parent's time)."""
    tail = head
    while True:
        more = rest.read(block)
        parts = (tail + more).split("\n")
        tail = parts.pop() if more else ""
        yield from filter(str.strip, parts)
        if not more:
            return


def _chain_lines(head: str, rest: io.TextIOBase) -> Iterator[str]:
    lines = head.split("\n")
    tail = lines.pop()  # maybe a partial line
    yield from lines
    for line in rest:
        if tail:
            line, tail = tail + line, ""
        yield line.rstrip("\n")
    if tail:
        yield tail


def _read_jsonl(f: io.TextIOBase, path: Path, text_field: str) -> Iterator[str]:
    for number, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise FactoryError(
                f"{path} line {number} is not JSON; a .jsonl file holds one JSON object per line"
            ) from None
        if not isinstance(record, dict) or text_field not in record:
            fields = ", ".join(record) if isinstance(record, dict) else type(record).__name__
            raise FactoryError(
                f"{path} line {number} has no field {text_field!r} (it has: {fields}); pass --text-field"
            )
        if isinstance(record[text_field], str):
            yield record[text_field]


def _read_table(path: Path, kind: str, text_field: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if kind == ".parquet":
            table = pq.ParquetFile(path)
            names, batches = table.schema_arrow.names, table.iter_batches(columns=[text_field], batch_size=4096)
        else:
            names, batches = _open_arrow(path)
    except (pa.ArrowInvalid, pa.ArrowException) as e:
        raise FactoryError(f"{path} is not a readable {kind[1:]} file ({e}); check the file") from None
    if text_field not in names:
        raise FactoryError(f"{path} has no column {text_field!r} (it has: {', '.join(names)}); pass --text-field")
    for batch in batches:
        for value in batch.column(batch.schema.get_field_index(text_field)).to_pylist():
            if isinstance(value, str):
                yield value


def _open_arrow(path: Path):
    """Arrow IPC file or stream format (`datasets` writes the stream format)."""
    import pyarrow as pa

    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        return reader.schema.names, (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:
        stream = pa.ipc.open_stream(pa.memory_map(str(path)))
        return stream.schema.names, iter(stream)


HUB_PREFIX = "hf:"
UNIT_BYTES = 64 << 20  # a unit holds consecutive files of at least this much text (one file if larger)


def _stream_name(spec: str) -> tuple[str, str | None, str]:
    """`hf:REPO[:CONFIG][@SPLIT]` -> (repo, config, split); REPO may be a local folder (`hf:/data/c4-pt`)."""
    name, _, split = spec[len(HUB_PREFIX) :].partition("@")
    repo, _, config = name.partition(":") if not Path(name).is_dir() else (name, "", "")
    return repo, config or None, split or "train"


@functools.cache
def _builder(spec: str):
    """The source's `datasets` builder, resolved once per process: the stream and its sizes both come from it
    (each resolution globs the data files again: ~0.2 CPU-s a source)."""
    import os

    repo, config, _ = _stream_name(spec)
    local = Path(repo).is_dir()
    if not local and (os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"):
        raise FactoryError(
            f"--corpus {spec}: the Hugging Face Hub is off (HF_HUB_OFFLINE=1); download the data and pass a local path"
        )
    import datasets

    return datasets.load_dataset_builder(repo, config)


@functools.cache
def open_stream(spec: str):
    """The source as a `datasets.IterableDataset` (opened once per process); offline Hub: one line."""
    try:
        with without_torch():
            return _builder(spec).as_streaming_dataset(split=_stream_name(spec)[2])
    except FactoryError:
        raise
    except Exception as e:  # network (exit 1), missing repo or config (exit 2): the Hub's errors are long
        raise hub_failure(e, f"--corpus {spec}: cannot stream it") from None


@contextlib.contextmanager
def without_torch() -> Iterator[None]:
    """`datasets` without its torch hooks while factory streams text. Every `IterableDataset` it makes imports
    torch and puts a counter in shared memory when torch is installed (for DataLoader workers, which a shard
    build has none of): ~4 CPU-seconds per build, more than the tokenising of 10M tokens on 2 cores."""
    import datasets.config

    was = datasets.config.TORCH_AVAILABLE
    datasets.config.TORCH_AVAILABLE = False
    try:
        yield
    finally:
        datasets.config.TORCH_AVAILABLE = was


def _read_hub(spec: str, text_field: str, shard: int | None = None) -> Iterator[str]:
    """The documents of a streamed source, or of one of its stream shards, read as Arrow tables of the text
    column alone (a dict per record costs 7x as much, a dict of lists per batch 2x)."""
    with without_torch():
        yield from _read_stream(open_stream(spec), spec, text_field, shard)


def _read_stream(stream, spec: str, text_field: str, shard: int | None) -> Iterator[str]:
    if shard is not None:
        stream = stream.shard(num_shards=stream.num_shards, index=shard)
    names = stream.column_names
    if names is not None and text_field not in names:
        raise FactoryError(f"--corpus {spec} has no field {text_field!r} (it has: {', '.join(names)})")
    try:
        for table in (stream.select_columns([text_field]) if names else stream).with_format("arrow").iter(1024):
            yield from (text for text in table.column(text_field).to_pylist() if isinstance(text, str))
    except KeyError:
        raise FactoryError(f"--corpus {spec} has no field {text_field!r}; pass --text-field") from None
    except FactoryError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FactoryError(f"--corpus {spec}: reading the stream failed ({first[:200]})") from None


# ---- units and sizes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """A piece of one source read as a whole: consecutive files, or one stream shard. `size`: its text in
    bytes as far as it can be known without reading it (None: unknown)."""

    source: int  # index of the source in the --corpus list
    files: tuple[str, ...] = ()
    shard: int | None = None  # stream shard index (streamed sources)
    size: int | None = None


def source_files(source: Source) -> list[Path]:
    """The files of a local source, in reading order."""
    path = Path(source.spec)
    if not path.exists():
        raise FactoryError(f"--corpus {source.spec}: no such file or folder")
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    )
    if not files:
        raise FactoryError(f"--corpus {source.spec}: the folder holds no files")
    return files


def source_units(source: Source, index: int, text_field: str = "text") -> list[Unit]:
    """A source cut into units (see the module docstring)."""
    if source.is_hub:
        stream = open_stream(source.spec)
        sizes = _stream_sizes(source.spec, stream.num_shards, text_field)
        return [Unit(index, (), i, sizes[i]) for i in range(stream.num_shards)]
    units: list[Unit] = []
    group: list[str] = []
    size = 0
    for file in source_files(source):
        group.append(str(file))
        size += text_size(file, text_field)
        if size >= UNIT_BYTES:
            units.append(Unit(index, tuple(group), None, size))
            group, size = [], 0
    if group:
        units.append(Unit(index, tuple(group), None, size))
    return units


def read_unit(source: Source, unit: Unit, text_field: str = "text") -> Iterator[str]:
    """The raw documents of one unit, in order."""
    if unit.shard is not None:
        yield from _read_hub(source.spec, text_field, unit.shard)
        return
    for file in unit.files:
        yield from read_file(Path(file), text_field)


def text_size(path: Path, text_field: str = "text") -> int:
    """Bytes of text in a file, cheaply: a parquet column's uncompressed size, a .gz file's ISIZE trailer
    (its length mod 4 GiB, so at least 3x the compressed size is assumed beyond that), else the file size."""
    size = path.stat().st_size
    name = path.name.lower()
    if name.endswith(".gz") and size >= 18:
        with open(path, "rb") as f:
            f.seek(-4, 2)
            isize = int.from_bytes(f.read(4), "little")
        return isize if isize >= size else 3 * size
    if name.endswith(".parquet"):
        return _parquet_text_bytes(path, text_field) or size
    return size


def _parquet_text_bytes(path: Path, text_field: str) -> int | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # unreadable: the reader says so when it gets there
        return None
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if text_field not in names:
        return None
    column = names.index(text_field)
    return sum(meta.row_group(g).column(column).total_uncompressed_size for g in range(meta.num_row_groups))


def _stream_sizes(spec: str, shards: int, text_field: str) -> list[int | None]:
    """Text bytes per stream shard: from the data files of a local folder (one per shard when they match),
    else the Hub's split size spread evenly; None where neither is known."""
    split = _stream_name(spec)[2]
    total: int | None = None
    try:
        builder = _builder(spec)
        files = [Path(str(f)) for f in (builder.config.data_files or {}).get(split, [])]
        if files and all(f.is_file() for f in files):
            sizes = [text_size(f, text_field) for f in files]
            if len(sizes) == shards:
                return list(sizes)
            total = sum(sizes)
        elif builder.info.splits and split in builder.info.splits:
            total = builder.info.splits[split].num_bytes or None
    except Exception:  # sizes are an estimate: unknown is an answer
        total = None
    return [None if total is None else total // shards] * shards
