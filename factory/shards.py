"""Token shards: a corpus tokenised once and packed into fixed-length sequences for pre-training.

    factory shards --vocab vocab/ --corpus data/*.txt --seq-len 512 --out shards/

Each row is `[CLS] + seq_len-2 tokens + [SEP]`, cut from the stream of all documents joined by [SEP]
(docs/pretraining.md#rtd-and-gdes: the official recipe stream-chunks the corpus the same way), so there is
no padding waste; only the very last row is padded with [PAD]. Rows are stored as uint32 in Arrow IPC files
(`shard-00000.arrow`, fixed-size lists), which the trainer memory-maps: reading a batch is a slice, and neither
building nor reading holds the corpus in memory. `factory.json` records the vocabulary fingerprint, seq_len and
counts, so pre-training refuses shards made with another vocabulary.

Sources are read by `factory.corpus.read_source`, exactly as `factory vocab` reads them (.txt, .jsonl,
.parquet, .arrow, .gz, folders, `lang=` prefixes, `hf:NAME[:CONFIG][@SPLIT]` streamed). Tokenisation runs with
`datasets.map(num_proc=all cores)` on local files (Arrow on disk, memory flat).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from factory.config import to_json
from factory.configs import ShardsConfig
from factory.corpus import Source, read_source
from factory.errors import FactoryError, ShardError
from factory.manifest import ShardFile, ShardsManifest, find_manifest, write_manifest
from factory.outputs import fingerprint_file, staged_output
from factory.tokenizer import SPM_FILE, Tokenizer

SHARD_GLOB = "shard-*.arrow"
COLUMN = "input_ids"
ROWS_PER_SHARD = ShardsConfig.rows_per_shard
if TYPE_CHECKING:
    import torch


# ---- reading the corpus --------------------------------------------------------------------------
def _documents(spec: str, text_field: str) -> Iterator[dict[str, str]]:
    """datasets generator: the documents of one --corpus source, read exactly as `factory vocab` reads them."""
    for text in read_source(Source.parse(spec), text_field):
        yield {"text": text}


def load_source(source: str, cache_dir: Path, text_field: str = "text"):
    """One --corpus source as a `datasets` Dataset (local: Arrow on disk, memory flat) or IterableDataset (Hub)."""
    import datasets

    kwargs = {"gen_kwargs": {"spec": source, "text_field": text_field}}
    if Source.parse(source).is_hub:
        return datasets.IterableDataset.from_generator(_documents, **kwargs)
    try:
        return datasets.Dataset.from_generator(_documents, cache_dir=str(cache_dir), **kwargs)
    except datasets.exceptions.DatasetGenerationError as e:  # the reader's one-line error, not datasets' wrapper
        cause = e.__cause__ or e.__context__
        raise cause if isinstance(cause, FactoryError) else e from None


_TOKENIZERS: dict[str, Tokenizer] = {}


def _tokenize_batch(batch: dict[str, list], spm_path: str) -> dict[str, list]:
    """datasets.map worker: texts -> ids (empty documents dropped). One Tokenizer per worker process."""
    tok = _TOKENIZERS.get(spm_path) or _TOKENIZERS.setdefault(spm_path, Tokenizer(spm_path))
    texts = [t.strip() for t in batch["text"] if t and t.strip()]
    return {"ids": tok.encode_batch(texts) if texts else []}


def tokenize(ds, spm_path: Path, num_proc: int | None):
    """Tokenise with every core on local data; Hub streams are tokenised lazily as they are read."""
    import datasets

    kwargs = {"batched": True, "batch_size": 1000, "remove_columns": ["text"], "fn_kwargs": {"spm_path": str(spm_path)}}
    if isinstance(ds, datasets.IterableDataset):
        return ds.map(_tokenize_batch, **kwargs)
    procs = max(1, min(num_proc or os.cpu_count() or 1, len(ds) // 1000))
    return ds.map(_tokenize_batch, num_proc=procs if procs > 1 else None, desc="tokenising", **kwargs)


# ---- packing and writing -------------------------------------------------------------------------
@dataclass
class Packer:
    """Cuts the [SEP]-joined document stream into rows `[CLS] body [SEP]`; holds at most one row of tokens."""

    seq_len: int
    cls_id: int = 1
    sep_id: int = 2
    pad_id: int = 0
    leftover: list[int] = field(default_factory=list)
    documents: int = 0

    def add(self, docs: Sequence[Sequence[int]]):
        """Documents in, full rows out: a (n, seq_len) uint32 array (n may be 0)."""
        import numpy as np

        body = self.seq_len - 2
        self.documents += len(docs)
        stream = [*self.leftover]
        for doc in docs:
            stream.extend(doc)
            stream.append(self.sep_id)
        n = len(stream) // body
        self.leftover = stream[n * body :]
        return self._wrap(np.asarray(stream[: n * body], dtype=np.uint32).reshape(n, body))

    def finish(self):
        """The last, partial row padded with [PAD] (or no row)."""
        import numpy as np

        if not self.leftover:
            return np.zeros((0, self.seq_len), dtype=np.uint32)
        row = self._wrap(np.asarray([self.leftover], dtype=np.uint32))
        self.leftover = []
        return np.pad(row, ((0, 0), (0, self.seq_len - row.shape[1])), constant_values=self.pad_id)

    def _wrap(self, rows):
        import numpy as np

        n = rows.shape[0]
        cls = np.full((n, 1), self.cls_id, dtype=np.uint32)
        sep = np.full((n, 1), self.sep_id, dtype=np.uint32)
        return np.concatenate([cls, rows, sep], axis=1)  # (n, len + 2)


class ShardWriter:
    """Appends rows to `shard-NNNNN.arrow` files of at most `rows_per_shard` rows each."""

    def __init__(self, folder: Path, seq_len: int, rows_per_shard: int = ROWS_PER_SHARD):
        import pyarrow as pa

        self.folder, self.seq_len, self.rows_per_shard = folder, seq_len, rows_per_shard
        self.schema = pa.schema([(COLUMN, pa.list_(pa.uint32(), seq_len))])
        self.shards: list[dict] = []
        self._writer = None
        self._rows = 0
        self.tokens = 0
        self.padding = 0

    def write(self, rows) -> None:
        import pyarrow as pa

        while len(rows):
            if self._writer is None:
                name = f"shard-{len(self.shards):05d}.arrow"
                self._writer = pa.ipc.new_file(str(self.folder / name), self.schema)
                self.shards.append({"file": name, "sequences": 0})
            take = rows[: self.rows_per_shard - self._rows]
            values = pa.array(take.reshape(-1), type=pa.uint32())
            column = pa.FixedSizeListArray.from_arrays(values, self.seq_len)
            self._writer.write_batch(pa.record_batch([column], schema=self.schema))
            self._rows += len(take)
            self.shards[-1]["sequences"] += len(take)
            pads = int((take == 0).sum())
            self.padding += pads
            self.tokens += take.size - pads
            rows = rows[len(take) :]
            if self._rows == self.rows_per_shard:
                self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer, self._rows = None, 0


@contextlib.contextmanager
def datasets_bars() -> Iterator[None]:
    """`datasets` draws its own bars (split generation, map): off where factory's are (-q, other processes)."""
    import datasets

    from factory.progress import progress_enabled

    was_on = datasets.is_progress_bar_enabled()
    if not progress_enabled():
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()


def build_shards(config: ShardsConfig) -> dict:
    """Tokenise the corpus with the vocabulary, pack, and write shards + factory.json into `config.out`."""
    vocab, corpus, seq_len, text_field = config.vocab, config.corpus, config.seq_len, config.text_field
    tok = Tokenizer.from_folder(vocab)
    spm_path = Path(vocab) / SPM_FILE
    for source in corpus:
        if not Source.parse(source).is_hub and next(read_source(Source.parse(source), text_field), None) is None:
            raise FactoryError(f"--corpus {source} holds no text; give files with at least one document")
    staged = staged_output(config.out, config.force)
    with datasets_bars(), staged as tmp, tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".cache-") as cache:
        packer, writer = Packer(seq_len), ShardWriter(tmp, seq_len, config.rows_per_shard)
        for source in corpus:
            ds = tokenize(load_source(source, Path(cache), text_field), spm_path, config.num_proc)
            for batch in ds.iter(batch_size=1000):
                writer.write(packer.add(batch["ids"]))
        writer.write(packer.finish())
        writer.close()
        if not writer.shards:
            raise FactoryError(f"--corpus {' '.join(corpus)} holds no text; nothing to shard")
        figures = {
            "vocab_fingerprint": fingerprint_file(spm_path),
            "vocab_pieces": tok.num_pieces,
            "mask_token_id": tok.mask_id,
            "seq_len": seq_len,
            "documents": packer.documents,
            "sequences": sum(s["sequences"] for s in writer.shards),
            "tokens": writer.tokens,
            "padding": writer.padding,
            "shards": writer.shards,
        }
        shard_files = [ShardFile(**s) for s in writer.shards]
        write_manifest(
            tmp, ShardsManifest(arguments=to_json(config), **{**figures, "shards": shard_files}, corpus=list(corpus))
        )
    return figures


# ---- reading shards ------------------------------------------------------------------------------
class ShardSet:
    """Every row of a shard folder, memory-mapped: `rows(indices)` -> (n, seq_len) int64 ids."""

    def __init__(self, folder: Path):
        import pyarrow as pa

        folder = Path(folder)
        self.folder = folder
        self.manifest = find_manifest(folder, ShardsManifest) if folder.is_dir() else None
        files = sorted(folder.glob(SHARD_GLOB)) if folder.is_dir() else []
        if self.manifest is None or not files:
            raise ShardError(
                f"{folder} holds no shards (no shard-*.arrow + factory.json); build them with `factory shards`"
            )
        self.seq_len = self.manifest.seq_len
        self.blocks = []  # (n, seq_len) uint32 views into the memory maps
        for path in files:
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
            for chunk in table.column(COLUMN).chunks:
                self.blocks.append(chunk.values.to_numpy(zero_copy_only=True).reshape(-1, self.seq_len))
        import numpy as np

        self.starts = np.cumsum([0] + [len(b) for b in self.blocks])
        if self.starts[-1] == 0:
            raise ShardError(f"{folder} holds no sequences; rebuild the shards from a non-empty corpus")

    def __len__(self) -> int:
        return int(self.starts[-1])

    def check_vocab(self, vocab: Path) -> None:
        """Refuse shards tokenised with another spm.model."""
        mine = fingerprint_file(Path(vocab) / SPM_FILE)
        theirs = self.manifest.vocab_fingerprint
        if mine != theirs:
            raise ShardError(
                f"shards {self.folder} were made with another vocabulary (fingerprint {theirs}, {vocab} is {mine}); "
                "rebuild them with `factory shards --vocab` this vocabulary"
            )

    def rows(self, indices) -> torch.Tensor:
        """(n, seq_len) int64 ids of these rows, in this order: one fancy-indexed copy per memory-mapped block
        touched (the trainer reads a process's share of each step this way, so no Python loop per row)."""
        import numpy as np
        import torch

        indices = np.asarray(indices, dtype=np.int64)
        block = np.searchsorted(self.starts, indices, side="right") - 1
        out = np.empty((len(indices), self.seq_len), dtype=np.int64)
        for b in np.unique(block):
            where = np.flatnonzero(block == b)
            out[where] = self.blocks[b][indices[where] - self.starts[b]]
        return torch.from_numpy(out)  # (n, seq_len)


def iter_rows(folder: Path) -> Iterator:
    """Every row in order (tests and inspection)."""
    shards = ShardSet(folder)
    for block in shards.blocks:
        yield from block
