"""`BatchOrder`: which shard rows make up each global step (a seeded permutation per epoch), the order one
language is read in. Below both batches.py (which prepares those rows) and mixing.py (whose `LanguageOrder` runs
one `BatchOrder` per language), so neither imports the other for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class BatchOrder:
    """Which shard rows make up global step s: epoch e reads a permutation seeded by (seed, e)."""

    def __init__(self, n_rows: int, seed: int):
        self.n_rows, self.seed = n_rows, seed
        self._epoch, self._perm = -1, None

    def rows(self, start: int, count: int) -> torch.Tensor:
        """Row indices of global sequences [start, start + count) of the (infinite) stream."""
        import torch

        parts, g, end = [], start, start + count
        while g < end:
            epoch, offset = divmod(g, self.n_rows)
            if epoch != self._epoch:  # one int32/int64 tensor per epoch, not a Python list
                gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
                dtype = torch.int32 if self.n_rows < 2**31 else torch.int64
                self._epoch, self._perm = epoch, torch.randperm(self.n_rows, generator=gen, dtype=dtype)
            take = min(end - g, self.n_rows - offset)
            parts.append(self._perm[offset : offset + take])
            g += take
        return torch.cat(parts)
