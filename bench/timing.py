"""Wall time, CPU time and peak memory, taken the one way every benchmark takes them.

    from bench.timing import peak_rss_mib, run_timed, timed

    with timed() as t:                     # t.wall_s, t.cpu_s, t.children_cpu_s once the block is done
        work()
    done, t = run_timed([sys.executable, "-m", "factory", ...], capture_output=True, text=True)

- wall: `time.perf_counter` (on a shared machine it also measures the neighbours);
- CPU of this process: `time.process_time`, user + system of every thread (what survives a busy machine);
- CPU of the children: user + system of the child processes reaped inside the block (`resource.getrusage
  (RUSAGE_CHILDREN)`, a command and every worker it started and waited for), so a `factory` command run as a
  process is measured from outside, start-up included;
- peak RSS: the high-water mark of this process's resident set (`getrusage(RUSAGE_SELF).ru_maxrss`, KiB on
  Linux), libraries and weights included. A process tree's peak (bench.speed.shards samples it with psutil) is
  the caller's own.
"""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Timing:
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process, all threads
    children_cpu_s: float = 0.0  # the children reaped during the block


def children_cpu_s() -> float:
    """User + system seconds of every child process reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def timed() -> Iterator[Timing]:
    """Time the block: its figures are filled in when it ends (also when it raises)."""
    timing = Timing()
    wall, cpu, children = time.perf_counter(), time.process_time(), children_cpu_s()
    try:
        yield timing
    finally:
        timing.wall_s = time.perf_counter() - wall
        timing.cpu_s = time.process_time() - cpu
        timing.children_cpu_s = children_cpu_s() - children


def run_timed(command: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, Timing]:
    """`subprocess.run(command, **kwargs)`; its wall seconds and the CPU seconds of its process tree."""
    with timed() as timing:
        done = subprocess.run(command, **kwargs)
    return done, timing


def peak_rss_mib() -> float:
    """This process's peak resident set so far, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
