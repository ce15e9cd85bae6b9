"""Packing documents into rows and writing rows into Arrow shard files that a killed build can pick up again.

A row is `[CLS] + seq_len-2 tokens + [SEP]`, cut from the stream of one language's documents joined by
[SEP] (docs/pretraining.md#rtd-and-gdes: the official recipe stream-chunks the corpus the same way), so
there is no padding but the last row of each unit (factory/corpus/reading.py), padded with [PAD].

A shard file is written as record batches of exactly `BATCH_ROWS` rows (the last one of a file may be
shorter), so its bytes depend on its rows alone, not on how the rows arrived. It is written as
`NAME.partial` and renamed when complete: a `shard-*.arrow` is always whole. A checkpoint records how many
batches the partial file holds and the rows not yet in a batch (fewer than `BATCH_ROWS`); a resumed writer
copies those batches into a fresh partial file and goes on, giving the bytes an uninterrupted build writes.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

COLUMN = "input_ids"
BATCH_ROWS = 1024
PARTIAL = ".partial"


def _np():
    import numpy as np

    return np


@dataclass
class Packer:
    """Cuts one language's [SEP]-joined document stream into rows; holds at most one row of tokens."""

    seq_len: int
    cls_id: int = 1
    sep_id: int = 2
    pad_id: int = 0
    leftover: object = None  # (< seq_len - 2,) uint32
    documents: int = 0

    def __post_init__(self) -> None:
        if self.leftover is None:
            self.leftover = _np().zeros(0, dtype=_np().uint32)

    def add(self, docs: Sequence[Sequence[int]]):
        """Documents (ids without [SEP]) in, full rows out: a (n, seq_len) uint32 array (n may be 0)."""
        np = _np()
        flat = [t for doc in docs for t in (*doc, self.sep_id)]
        return self.add_flat(np.asarray(flat, dtype=np.uint32), len(docs))

    def add_flat(self, flat, documents: int):
        """`documents` documents as one array, each followed by [SEP] -> full rows."""
        np = _np()
        body = self.seq_len - 2
        self.documents += documents
        flat = np.asarray(flat, dtype=np.uint32)  # the workers send uint16 for a small vocabulary
        stream = np.concatenate([self.leftover, flat]) if len(self.leftover) else flat
        n = len(stream) // body
        self.leftover = stream[n * body :].copy()
        return self._wrap(stream[: n * body].reshape(n, body))

    def finish(self):
        """The last, partial row padded with [PAD] (or no row)."""
        np = _np()
        if not len(self.leftover):
            return np.zeros((0, self.seq_len), dtype=np.uint32)
        row = self._wrap(self.leftover.reshape(1, -1))
        self.leftover = np.zeros(0, dtype=np.uint32)
        return np.pad(row, ((0, 0), (0, self.seq_len - row.shape[1])), constant_values=self.pad_id)

    def _wrap(self, rows):
        np = _np()
        out = np.empty((rows.shape[0], rows.shape[1] + 2), dtype=np.uint32)
        out[:, 0], out[:, -1], out[:, 1:-1] = self.cls_id, self.sep_id, rows
        return out


def rows_batch(rows, schema):
    """A (n, seq_len) uint32 array as one record batch of the shard schema, without a copy. Built from the
    buffer, not with `pa.array`, which checks for pandas objects and so imports pandas (~1 CPU-s a build)."""
    import pyarrow as pa

    flat = _np().ascontiguousarray(rows, dtype=_np().uint32).reshape(-1)
    values = pa.Array.from_buffers(pa.uint32(), len(flat), [None, pa.py_buffer(flat)])
    return pa.record_batch([pa.FixedSizeListArray.from_arrays(values, rows.shape[1])], schema=schema)


def shard_name(lang: str, index: int) -> str:
    return f"shard-{lang}-{index:05d}.arrow"


def document_ends(rows, sep_id: int = 2, pad_id: int = 0) -> int:
    """Documents that end in these rows: [SEP]s inside the bodies, less the closing [SEP] of a padded row."""
    return int((rows[:, 1:-1] == sep_id).sum()) - int((rows[:, -1] == pad_id).sum())


def cut_document(rows, sep_id: int = 2, pad_id: int = 0) -> bool:
    """Whether the last row ends inside a document (a budget cut it there): its body ends on a token."""
    return bool(len(rows)) and int(rows[-1, -2]) not in (sep_id, pad_id)


@dataclass
class ShardWriter:
    """Appends one language's rows to `shard-LANG-NNNNN.arrow` files of at most `rows_per_shard` rows."""

    folder: Path
    lang: str
    seq_len: int
    rows_per_shard: int
    files: list[dict] = field(default_factory=list)  # {"file", "sequences"} of the complete files
    batches: int = 0  # batches in the open partial file
    rows: int = 0  # rows in the open partial file
    tokens: int = 0
    padding: int = 0
    documents: int = 0  # [SEP]s inside the bodies: documents stored whole (plus one cut by a budget)
    sep_id: int = 2
    pending: object = None  # (< BATCH_ROWS, seq_len) rows not yet in a batch

    def __post_init__(self) -> None:
        self._sink = self._writer = None
        if self.pending is None:
            self.pending = _np().zeros((0, self.seq_len), dtype=_np().uint32)

    @functools.cached_property
    def schema(self):
        """The shard files' schema; pyarrow is imported at the first write, not before the first documents
        go to the workers (its import is ~2% of a 40 MB build's start-up, which nothing else runs beside)."""
        import pyarrow as pa

        return pa.schema([(COLUMN, pa.list_(pa.uint32(), self.seq_len))])

    @property
    def sequences(self) -> int:
        return sum(f["sequences"] for f in self.files) + self.rows + len(self.pending)

    def write(self, rows) -> None:
        np = _np()
        if not len(rows):
            return
        pads = int((rows == 0).sum())
        self.padding += pads
        self.tokens += rows.size - pads
        self.documents += document_ends(rows, self.sep_id)
        self.pending = np.concatenate([self.pending, rows]) if len(self.pending) else rows
        while len(self.pending) >= self._batch_size():
            self._write_batch(self._batch_size())

    def close(self) -> None:
        """Write what is pending and close the last file (the end of the build)."""
        while len(self.pending):
            self._write_batch(min(len(self.pending), self._batch_size()))
        self._close_file()

    def _batch_size(self) -> int:
        return min(BATCH_ROWS, self.rows_per_shard - self.rows)

    def _path(self) -> Path:
        return self.folder / (shard_name(self.lang, len(self.files)) + PARTIAL)

    def _write_batch(self, n: int) -> None:

        if self._writer is None:
            self._open(self._path())
        take, self.pending = self.pending[:n], self.pending[n:]
        self._writer.write_batch(rows_batch(take, self.schema))
        self.batches += 1
        self.rows += n
        if self.rows == self.rows_per_shard:
            self._close_file()

    def _open(self, path: Path) -> None:
        import pyarrow as pa

        self._sink = pa.OSFile(str(path), "wb")  # unbuffered: a checkpoint's batches are on disk
        self._writer = pa.ipc.new_file(self._sink, self.schema)

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._sink.close()
        path = self._path()
        os.replace(path, path.with_name(path.name[: -len(PARTIAL)]))
        self.files.append({"file": shard_name(self.lang, len(self.files)), "sequences": self.rows})
        self._sink = self._writer = None
        self.batches = self.rows = 0

    def abandon(self) -> None:
        """Close the open file without completing it (an interrupted build; it stays partial)."""
        if self._writer is not None:
            self._sink.close()
            self._sink = self._writer = None

    # ---- checkpoints --------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"files": list(self.files), "batches": self.batches, "rows": self.rows, "tokens": self.tokens,
                "padding": self.padding, "documents": self.documents}  # fmt: skip

    def restore(self, state: dict, pending) -> None:
        """Continue from a checkpoint: files beyond it are removed, and the file it was writing is cut back to
        the checkpoint's batches (copied into a fresh partial file); the pending rows come back."""
        import pyarrow as pa

        self.files, self.tokens, self.padding = list(state["files"]), state["tokens"], state["padding"]
        self.documents = state["documents"]
        self.pending = pending
        current = len(self.files)
        pattern = re.compile(rf"shard-{re.escape(self.lang)}-(\d{{5}})\.arrow(?:{re.escape(PARTIAL)})?")
        found = {}
        for path in self.folder.iterdir():
            match = pattern.fullmatch(path.name)
            if match and int(match.group(1)) >= current:
                found.setdefault(int(match.group(1)), []).append(path)
        own = sorted(found.pop(current, []), key=lambda p: not p.name.endswith(PARTIAL))  # the partial first
        batches = []
        if state["batches"]:
            reader = pa.ipc.open_stream(pa.BufferReader(own[0].read_bytes()[8:]))  # the file format's stream
            batches = [reader.read_next_batch() for _ in range(state["batches"])]
        for path in [*own, *(p for paths in found.values() for p in paths)]:
            path.unlink()
        self.batches = self.rows = 0
        if batches:
            self._open(self._path())
            for batch in batches:
                self._writer.write_batch(batch)
                self.batches += 1
                self.rows += batch.num_rows
        if self.rows != state["rows"]:
            raise RuntimeError(f"{self._path()}: {self.rows} rows recovered, the checkpoint says {state['rows']}")
