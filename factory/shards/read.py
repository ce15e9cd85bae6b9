"""Reading shards: every row of a shard set, memory-mapped, with the languages' row ranges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from factory.core.errors import ShardError
from factory.core.manifest import find_manifest
from factory.core.outputs import fingerprint_file
from factory.model.tokenizer import SPM_FILE
from factory.shards.manifest import ShardsManifest
from factory.shards.pack import COLUMN

if TYPE_CHECKING:
    import torch


class ShardSet:
    """Every row of a shard folder, memory-mapped: `rows(indices)` -> (n, seq_len) int64 ids.

    `languages`: each language's contiguous global row range (languages in sorted order); `corpus_tokens`:
    what each language has in the corpus (factory.json's per_language), for sampling languages. A folder of
    the version-2 format (one stream for all sources, before per-language shards) is refused by the manifest
    reader in one line: rebuild it with `factory shards`."""

    def __init__(self, folder: Path):
        import numpy as np
        import pyarrow as pa

        folder = Path(folder)
        self.folder = folder
        self.manifest = find_manifest(folder, ShardsManifest) if folder.is_dir() else None
        if self.manifest is None or not self.manifest.shards:
            raise ShardError(
                f"{folder} holds no shards (no shard-*.arrow + factory.json); build them with `factory shards`"
            )
        if self.manifest.task is not None:
            task = self.manifest.task
            raise ShardError(
                f"{folder} is task {task.index}/{task.count} of a shard build, not a whole shard set; join the tasks "
                "with `factory shards --merge DIR... --out DIR`"
            )
        self.seq_len = self.manifest.seq_len
        self.blocks = []  # (n, seq_len) uint32 views into the memory maps
        for shard in self.manifest.shards:
            path = folder / shard.file
            if not path.is_file():
                raise ShardError(f"{path} is missing (factory.json lists it); rebuild the shards")
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
            for chunk in table.column(COLUMN).chunks:
                self.blocks.append(chunk.values.to_numpy(zero_copy_only=True).reshape(-1, self.seq_len))
        self.starts = np.cumsum([0] + [len(b) for b in self.blocks])
        if self.starts[-1] == 0:
            raise ShardError(f"{folder} holds no sequences; rebuild the shards from a non-empty corpus")
        figures = self.manifest.per_language
        self.languages: dict[str, range] = {lang: range(*f.rows) for lang, f in sorted(figures.items())}
        self.corpus_tokens: dict[str, int] = {lang: f.corpus_tokens for lang, f in sorted(figures.items())}

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
