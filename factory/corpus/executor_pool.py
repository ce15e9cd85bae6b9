"""The corpus workers on `concurrent.futures.ProcessPoolExecutor`: the alternative to factory/corpus/pool.py's
own pool, behind the same interface (`submit(job)` -> a handle, `answer(handle)` -> the job's return value or its
exception raised here, `close()`), chosen by FACTORY_POOL=executor (factory/corpus/pool.py::start_pool), so the two
can be timed against each other (bench/speed/shards_ab.py) and one of them kept.

What the own pool does, kept here: the initializer's exception is every job's answer (raised at the first one, as
`multiprocessing.Pool` never did: the executor alone would call the pool broken); a worker that dies mid-job (the
out-of-memory killer) ends the wait with `WorkerDied` and the same one line, naming how it died (the executor's
`BrokenProcessPool` does not say which process or how, so the pool keeps its own list of the processes); `close()`
drops any job still running. Jobs go to whichever worker is free (not job i to worker i % n); the answers are
still read in job order, so what the caller builds is the same.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from factory.core.errors import WorkerDied, worker_death


class ExecutorPool:
    """`workers` processes of `context` (a multiprocessing context) running `fn(*job)`, each started with
    `initializer(*initargs)`; the interface of factory.corpus.pool.ProcessPool."""

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
