"""Host-side input throughput of pre-training: can one process prepare its batches faster than its GPU eats them?

    python -m bench.speed.input --preset base --seq-len 512 --batch 8192 --processes 1,8,64

For each process count N it times `factory.pretrain.batches.prepare_step` for rank 0 of an N-process run (its
share of the global batch: the shard rows read from memory-mapped files, masks and sampling uniforms drawn),
on synthetic shards this bench writes to a temporary folder (real `ShardSet` files). Beside it: the tokens/s one
H100 consumes at 40% MFU for that preset, from `make_plan`'s FLOPs per step and the dense bf16 peak of
factory/pretrain/loop.py (PEAK_TFLOPS). The GPU's need per process does not depend on N; the host's work per
process shrinks as 1/N, which is the point.

Then the prefetch (`Feed`, one step ahead on a thread) against preparing in line, with a simulated GPU step of
known length (a sleep, which like a CUDA wait releases the GIL): in line a step costs GPU + preparation, with
the prefetch max(GPU, preparation). The last line is `host tokens/s per process: N (GPU needs M)` for the
largest process count, from the CPU time the preparation takes (user + system, so it does not count the time
other processes hold the core); the table gives the wall-clock figures beside it. Timings on a shared machine
move; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.cli import add_threads, make_parser
from bench.timing import timed
from tests.synthetic_shards import write_shards

MFU = 0.4  # the utilisation the GPU's need is quoted at
GPU = "H100"


def plan_for(args: argparse.Namespace, processes: int):
    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.plan import make_plan

    config = PretrainConfig(preset=args.preset, vocab_size=args.vocab_size, batch=args.batch,
                            mixed_precision="bf16", masking=args.masking, out=Path("unused"))  # fmt: skip
    return make_plan(config, args.seq_len, processes)


def gpu_tokens_per_s(plan) -> float:
    """Tokens/s one GPU consumes at MFU of its dense bf16 peak: FLOPs per token from the plan."""
    from factory.pretrain.loop import PEAK_TFLOPS

    return MFU * PEAK_TFLOPS[GPU] * 1e12 * plan.tokens_per_step / plan.flops_per_step


def time_prepare(shards, plan, mask_id: int, steps: int, masking: str) -> tuple[float, float]:
    """Wall and CPU seconds per step for rank 0 to prepare its share (after one warm-up step)."""
    from factory.pretrain.batches import prepare_step
    from factory.pretrain.mixing import BatchOrder

    order = BatchOrder(len(shards), 0)
    prepare_step(shards, order, plan, 0, 0, mask_id, 0, masking)
    with timed() as t:
        for step in range(1, steps + 1):
            prepare_step(shards, order, plan, step, 0, mask_id, 0, masking)
    return t.wall_s / steps, t.cpu_s / steps


def time_overlap(shards, plan, mask_id: int, steps: int, gpu_s: float, masking: str) -> tuple[float, float]:
    """Seconds per step with a simulated GPU step of `gpu_s`: preparing in line, then through `Feed`."""
    from factory.pretrain.batches import Feed, prepare_step
    from factory.pretrain.mixing import BatchOrder

    order = BatchOrder(len(shards), 0)
    start = time.perf_counter()
    for step in range(steps):
        prepare_step(shards, order, plan, step, 0, mask_id, 0, masking)
        time.sleep(gpu_s)
    inline = (time.perf_counter() - start) / steps
    feed = Feed(lambda s: prepare_step(shards, order, plan, s, 0, mask_id, 0, masking), steps + 1, "cpu")
    feed.take(0)  # prepared on the spot: nothing to overlap with yet
    time.sleep(gpu_s)  # step 0's GPU time, during which step 1 is prepared; the clock starts at step 1
    start = time.perf_counter()
    for step in range(1, steps + 1):
        feed.take(step)
        time.sleep(gpu_s)
    feed.close()
    return inline, (time.perf_counter() - start) / steps


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = make_parser(__spec__, __doc__)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--vocab-size", default="128k")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--processes", default="1,8,64", help="comma-separated process counts")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process count")
    add_threads(parser, help="torch threads of the preparing process (default 1)")
    parser.add_argument("--masking", default="spread", choices=("spread", "official"))
    parser.add_argument("--gpu-step-ms", type=float, default=None,
                        help="simulated GPU step of the overlap [default: the first count's preparation]")  # fmt: skip
    return parser.parse_args(argv)


def throughput(args, shards, plans: dict, need: float) -> tuple[dict[int, float], dict[int, float]]:
    """The table: per process count, wall and CPU time per step and the tokens/s they make; returns both rates."""
    print(f"{'':>19} {'ms/step':>14}  {'host tokens/s per process (x GPU need)':>38}")
    print(f"{'processes':>9} {'rows/proc':>9} {'wall':>7} {'CPU':>6}  {'wall':>18} {'CPU':>19}")
    walls, cpus = {}, {}
    for n, plan in plans.items():
        wall, cpu = time_prepare(shards, plan, plan.vocab.pieces, args.steps, args.masking)
        tokens = plan.micro_batch * plan.accumulation * args.seq_len
        walls[n], cpus[n] = tokens / wall, tokens / cpu
        rates = f"{walls[n]:>12,.0f} ({walls[n] / need:>3.0f}x) {cpus[n]:>12,.0f} ({cpus[n] / need:>3.0f}x)"
        print(f"{n:>9} {tokens // args.seq_len:>9} {1e3 * wall:>7.1f} {1e3 * cpu:>6.1f}  {rates}")
    return walls, cpus


def overlap(args, shards, plan, wall_rate: float) -> None:
    """The prefetch line: in line vs through `Feed`, with a simulated GPU step."""
    prep_s = plan.micro_batch * plan.accumulation * args.seq_len / wall_rate
    gpu_s = args.gpu_step_ms / 1e3 if args.gpu_step_ms else prep_s
    inline, ahead = time_overlap(shards, plan, plan.vocab.pieces, args.steps, gpu_s, args.masking)
    print(f"prefetch, {plan.processes} process(es), simulated GPU step {1e3 * gpu_s:.1f} ms + preparation "
          f"{1e3 * prep_s:.1f} ms: {1e3 * inline:.1f} ms/step in line, {1e3 * ahead:.1f} ms/step with the "
          f"prefetch (hides {100 * (inline - ahead) / prep_s:.0f}% of the preparation)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    import torch

    from factory.shards.read import ShardSet

    args = parse(argv)
    torch.set_num_threads(args.threads)
    counts = [int(n) for n in args.processes.split(",")]
    plans = {n: plan_for(args, n) for n in counts}
    first, largest = plans[counts[0]], max(counts)
    need = gpu_tokens_per_s(first)
    print(f"{args.preset}, L={args.seq_len}, batch {args.batch}, {args.masking} masking, {args.threads} torch "
          f"thread(s); one {GPU} at {MFU:.0%} MFU needs {need:,.0f} tokens/s")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-input-") as tmp:
        shards = ShardSet(write_shards(Path(tmp), 2 * args.batch, args.seq_len, first.vocab.pieces))
        walls, cpus = throughput(args, shards, plans, need)
        overlap(args, shards, first, walls[counts[0]])
    print(f"wall-clock here at {largest} processes: {walls[largest]:,.0f} tokens/s per process (a shared machine: "
          "other processes take CPU time; the CPU-time figure is what a core of its own delivers)")  # fmt: skip
    print(f"host tokens/s per process: {cpus[largest]:,.0f} (GPU needs {need:,.0f})")


if __name__ == "__main__":
    main()
