"""The data of one optimizer step: which shard rows, with which masks and sampling noise, on which process.

The global batch of step s is fixed by (seed, s) alone: rows come from a seeded permutation of the shards
(`BatchOrder`), masks and sampling uniforms from a generator seeded by (seed, s, micro-step) over the *global*
micro batch, and each process takes its slice (`step_batches`). So a sequence meets the same mask however
many processes and accumulation steps the batch is split into, and after a resume as in a straight run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from factory.pretrain.plan import Plan


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


@dataclass
class MicroBatch:
    ids: torch.Tensor  # (micro, L) this process's rows
    masked: torch.Tensor  # (micro, L)
    uniforms: torch.Tensor  # (micro, L)


def step_batches(shards, order: BatchOrder, plan: Plan, step: int, rank: int, mask_id: int, seed: int):
    """This process's micro-batches of global step `step`, and the global counts the losses divide by.

    The whole global batch is read and its noise drawn at once, so row r of step s gets the same mask and
    sampling uniforms however the batch is split into processes and accumulation steps.
    """
    from factory.rtd import make_step_noise

    ids = shards.rows(order.rows(step * plan.batch, plan.batch))  # (batch, L)
    noise = make_step_noise(ids, mask_id, seed, step, 0)
    global_micro = plan.micro_batch * plan.processes
    batches = []
    for m in range(plan.accumulation):
        start = m * global_micro + rank * plan.micro_batch
        mine = slice(start, start + plan.micro_batch)
        batches.append(MicroBatch(ids[mine], noise.masked[mine], noise.uniforms[mine]))
    return batches, max(int(noise.masked.sum()), 1), max(int((ids != 0).sum()), 1)
