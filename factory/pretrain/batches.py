"""The data of one optimizer step: which shard rows, with which masks and sampling noise, on which process.

The global batch of step s is fixed by (seed, s) alone, in two separate parts:
- which shard rows make it up: `BatchOrder.rows(start, count)` maps positions of the (infinite) stream of global
  sequences to shard rows (a seeded permutation per epoch, mixing.py; its `LanguageOrder` runs one `BatchOrder` per
  language); any order with that interface can replace it;
- the noise of each row: masks and sampling uniforms are a counter-based hash of (seed, s, the row's position in
  the global batch, position in the row) (`factory.pretrain.rtd.make_step_noise`).
So each process reads only its own rows and draws noise only for them (`prepare_step`), and a sequence meets the
same mask however many processes and accumulation steps the batch is split into, and after a resume as in a
straight run. Process r's share of micro-step m is the global batch positions [m·G + r·micro, +micro), G =
micro x processes. The only figures that need the whole batch, the masked and non-pad counts the losses divide
by, are summed over the processes when the step is taken (`Feed.take`).

`Feed` prepares step s + 1 on a background thread while step s trains. A thread, not DataLoader workers: the
work is memory-mapped reads and torch ops that release the GIL, a worker process would have to reopen the shards
and ship every tensor back, and the counts' all-reduce must run on the main thread (a collective on a side thread
could interleave with DDP's). On CUDA the prepared tensors are pinned and copied with non_blocking.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from factory.pretrain.plan import Plan


@dataclass
class MicroBatch:
    ids: torch.Tensor  # (micro, L) this process's rows
    masked: torch.Tensor  # (micro, L)
    uniforms: torch.Tensor  # (micro, L)

    def to(self, device, non_blocking: bool = False) -> MicroBatch:
        return MicroBatch(*(t.to(device, non_blocking=non_blocking) for t in (self.ids, self.masked, self.uniforms)))

    def pin_memory(self) -> MicroBatch:
        return MicroBatch(self.ids.pin_memory(), self.masked.pin_memory(), self.uniforms.pin_memory())


@dataclass
class StepData:
    """One process's share of a step: its micro-batches and its own counts (summed over processes by `Feed`)."""

    batches: list[MicroBatch]
    masked: int  # masked positions in this process's rows
    tokens: int  # non-pad positions in this process's rows


def batch_positions(plan: Plan, rank: int) -> list[int]:
    """The first global batch position of each of process `rank`'s micro-batches."""
    return [m * plan.micro_batch * plan.processes + rank * plan.micro_batch for m in range(plan.accumulation)]


def prepare_step(
    shards, order, plan: Plan, step: int, rank: int, mask_id: int, seed: int, masking: str = "spread"
) -> StepData:
    """Process `rank`'s micro-batches of global step `step`: only its rows are read, only their noise drawn."""
    import torch

    from factory.pretrain.rtd import make_step_noise

    firsts = batch_positions(plan, rank)
    micro = plan.micro_batch
    rows = torch.cat([order.rows(step * plan.batch + first, micro) for first in firsts])
    ids = shards.rows(rows)  # (accumulation x micro, L)
    positions = (torch.tensor(firsts).unsqueeze(1) + torch.arange(micro)).flatten()  # global batch positions
    noise = make_step_noise(ids, mask_id, seed, step, positions, masking)
    batches = [
        MicroBatch(ids[m * micro : (m + 1) * micro], noise.masked[m * micro : (m + 1) * micro],
                   noise.uniforms[m * micro : (m + 1) * micro])
        for m in range(len(firsts))
    ]  # fmt: skip
    return StepData(batches, int(torch.count_nonzero(noise.masked)), int(torch.count_nonzero(ids)))  # [PAD] = 0


class Feed:
    """This process's batches, prepared one step ahead on a background thread, handed over on the device.

    `take(step)` returns the step's micro-batches (on `device`) and the global masked and token counts; it then
    starts preparing step + 1 (unless that is `end`), which overlaps with the training of this step. A step that
    was not prefetched (the first, a resume) is prepared on the spot. `reduce` sums the counts over processes
    (Accelerate's `reduce`); None for one process.
    """

    def __init__(self, prepare: Callable[[int], StepData], end: int, device, reduce: Callable | None = None):
        self.prepare, self.end, self.device, self.reduce = prepare, end, device, reduce
        self.pin = getattr(device, "type", str(device)) == "cuda"  # pinned host memory: truly async copies
        import torch

        # a new thread starts with OpenMP's default thread count, not the one torch was set to: pass it on
        threads = torch.get_num_threads()
        self._pool = ThreadPoolExecutor(1, "factory-feed", initializer=torch.set_num_threads, initargs=(threads,))
        self._pending: tuple[int, Future] | None = None

    @classmethod
    def for_run(cls, config, plan: Plan, accelerator, shards, order, mask_id: int) -> Feed:
        """The feed of a training run: this process's rows of every step, prefetched up to the last step."""

        def prepare(step: int) -> StepData:
            rank = accelerator.process_index
            return prepare_step(shards, order, plan, step, rank, mask_id, config.seed, config.masking)

        return cls(prepare, plan.steps, accelerator.device, accelerator.reduce if plan.processes > 1 else None)

    def _prepared(self, step: int) -> StepData:
        data = self.prepare(step)
        if self.pin:
            data.batches = [b.pin_memory() for b in data.batches]
        return data

    def take(self, step: int) -> tuple[list[MicroBatch], int, int]:
        """Step `step`'s micro-batches on the device, and the global counts the losses divide by (at least 1)."""
        data = None
        if self._pending is not None:
            ahead, future = self._pending
            self._pending = None
            found = future.result()  # waited for even when unwanted: one preparation at a time
            data = found if ahead == step else None
        data = data or self._prepared(step)
        if step + 1 < self.end:
            self._pending = (step + 1, self._pool.submit(self._prepared, step + 1))
        batches = [b.to(self.device, non_blocking=self.pin) for b in data.batches]
        masked, tokens = data.masked, data.tokens
        if self.reduce is not None:
            import torch

            counts = self.reduce(torch.tensor([masked, tokens], device=self.device), reduction="sum")
            masked, tokens = counts.tolist()
        return batches, max(int(masked), 1), max(int(tokens), 1)

    def close(self) -> None:
        """Drop a pending preparation and stop the thread."""
        self._pending = None
        self._pool.shutdown(wait=True, cancel_futures=True)
