"""Worker processes for the corpus pipeline (the shard build, `factory vocab`, langdetect's profiles): a
`concurrent.futures.ProcessPoolExecutor` behind a small interface, `submit(job)` -> a handle, `answer(handle)` ->
the job's return value or its exception raised here, `close()`. The answers are read in job order, so what the
caller builds does not depend on which worker was free.

Why not `multiprocessing.Pool`: a worker that dies mid-job (the out-of-memory killer) leaves its `get()` waiting
forever. The executor raises `BrokenProcessPool` instead; this pool turns it into `WorkerDied` and one line that
says how the worker died (the executor does not say which process or how, so the pool keeps its own list of the
processes); the shard build adds that its checkpoint stays for the rerun. Kept from factory's own pipe-per-worker
pool, which this replaced (issue 29; bench/RESULTS.md, bench.speed.shards_ab: the executor 0.395 and 0.398 x the
limit, the own pool 0.392 and 0.394, medians of 8 alternating pairs in two runs, the same bytes): the
initializer's exception is every job's answer (raised at the first one; the executor alone would call the pool
broken), a worker's exception carries the worker's traceback as a note, and `close()` drops any job still
running.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from factory.core.errors import WorkerDied, worker_death


class WorkerPool:
    """`workers` processes of `context` (a multiprocessing context) running `fn(*job)`, each started with
    `initializer(*initargs)`."""

    def __init__(self, workers: int, fn: Callable, initializer: Callable, initargs: tuple, context) -> None:
        self._executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start,
                                             initargs=(fn, initializer, initargs))  # fmt: skip
        self._procs: dict = {}  # pid -> Process, every worker this pool started (the executor forgets them)

    def submit(self, job: tuple) -> Future:
        future = self._executor.submit(_run, *job)
        self._procs.update(self._executor._processes or {})  # forked all at the first submit; spawned as needed
        return future

    def answer(self, future: Future):
        try:
            return future.result()
        except BrokenProcessPool:
            raise WorkerDied(self._death()) from None
        except Exception as error:
            raise _with_trace(error) from None

    def _death(self) -> str:
        """How the worker that broke the pool ended (the executor stops the others with SIGTERM)."""
        codes = []
        for proc in self._procs.values():
            proc.join(5)
            codes.append(proc.exitcode)
        culprit = [c for c in codes if c is not None and c < 0 and c != -signal.SIGTERM] or [c for c in codes if c]
        return worker_death(culprit[0] if culprit else None)

    def close(self) -> None:
        """Stop the workers (any job still running is dropped)."""
        manager = self._executor._executor_manager_thread
        self._executor.shutdown(wait=False, cancel_futures=True)
        procs = list({**self._procs, **(self._executor._processes or {})}.values())
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        if manager is not None:
            manager.join(5)


def start_pool(workers: int, fn: Callable, initializer: Callable, initargs: tuple, context) -> WorkerPool:
    """The pool the corpus pipeline and the language profiles start (one place to change it)."""
    return WorkerPool(workers, fn, initializer, initargs, context)


def _with_trace(error: Exception) -> Exception:
    """The exception with the worker's traceback as a note (the executor sends it as the exception's cause, text
    only); it prints below the parent's own traceback for a bug; a user's one-line error prints str() alone."""
    remote = error.__cause__
    if hasattr(error, "add_note") and remote is not None:  # Python 3.11+
        error.add_note("in a worker process:\n" + "".join(traceback.format_exception(remote)).rstrip())
    return error


# ---- the worker side ----------------------------------------------------------------------------
_FN: Callable | None = None
_FAILURE: Exception | None = None


def _start(fn: Callable, initializer: Callable, initargs: tuple) -> None:
    """A worker's initializer: `initializer(*initargs)`; its exception is kept for every job to raise."""
    global _FN, _FAILURE
    _FN, _FAILURE = fn, None
    try:
        initializer(*initargs)
    except Exception as e:
        _FAILURE = e


def _run(*job):
    if _FAILURE is not None:
        raise _FAILURE
    return _FN(*job)
