"""Run `factory ARGS` and die by SIGKILL at a chosen moment inside a write (fault injection for tests/test_faults.py
and bench/faults/kills.py).

    python tests/faults.py WHERE:N factory-args...

WHERE is where the process kills itself, at the N-th time it gets there (1-based):
    log    in the middle of a train.jsonl record: half the line is written and flushed, then SIGKILL
    save   inside a checkpoint: Accelerate has written its files into the temporary folder, trainer.json and
           the rename have not happened
    prune  while an old checkpoint is removed: its trainer.json is gone, its other files are not
    write  inside the shard build's checkpoint: half of state.npz's new copy is written (np.savez)
    worker a corpus worker process, at the N-th chunk it is given (each worker counts its own): what the
           out-of-memory killer does to a worker
Nothing else changes: the patched functions call the real ones first (save, prune) or write what they would
have written, cut short (log, write).
"""

from __future__ import annotations

import os
import signal
import sys


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Countdown:
    def __init__(self, n: int):
        self.left = n

    def due(self) -> bool:
        self.left -= 1
        return self.left == 0


def patch_log(count: Countdown) -> None:
    import json

    from factory.pretrain import loop

    real = loop.JsonlLog.write

    def write(self, record: dict) -> None:
        if self.enabled and count.due():
            line = json.dumps(record) + "\n"
            with open(self.path, "a") as f:
                f.write(line[: len(line) // 2])
                f.flush()
            die()
        real(self, record)

    loop.JsonlLog.write = write


def patch_save(count: Countdown) -> None:
    from accelerate import Accelerator

    real = Accelerator.save_state

    def save_state(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if count.due():
            die()
        return out

    Accelerator.save_state = save_state


def patch_prune(count: Countdown) -> None:
    import shutil

    from factory.pretrain import checkpoint

    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if "/checkpoints/step-" in str(path) and count.due():
            die()
        return real(path, *args, **kwargs)

    checkpoint.shutil = type("shutil", (), {"rmtree": staticmethod(rmtree)})


def patch_write(count: Countdown) -> None:
    import io

    import numpy as np

    real = np.savez

    def savez(file, *args, **kwargs):
        if count.due():
            whole = io.BytesIO()
            real(whole, *args, **kwargs)
            file.write(whole.getvalue()[: len(whole.getvalue()) // 2])
            file.flush()
            die()
        return real(file, *args, **kwargs)

    np.savez = savez


def patch_worker(count: Countdown) -> None:
    from factory.corpus import pipeline

    real = pipeline._clean_all  # the first step of process_chunk, looked up when it runs

    def clean_all(*args):
        if count.due():  # the workers are forked from this process: each has its own countdown
            die()
        return real(*args)

    pipeline._clean_all = clean_all


PATCHES = {"log": patch_log, "save": patch_save, "prune": patch_prune, "write": patch_write, "worker": patch_worker}


def main() -> None:
    where, n = sys.argv[1].split(":")
    PATCHES[where](Countdown(int(n)))
    from factory.cli.main import cli

    cli(sys.argv[2:], prog_name="factory")


if __name__ == "__main__":
    main()
