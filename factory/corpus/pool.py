"""Worker processes for the corpus pipeline, each with pipes of its own: job i goes to worker i % n, and the
answers are read back in job order, job i's from worker i % n (each worker answers its jobs in the order it
got them, so the head of the queue is always the next answer on that worker's pipe).

Why not `multiprocessing.Pool`: its worker-maintenance thread also waits on the pipe the answers come back on,
so it wakes for every answer and polls the workers until the result thread has read it (0.12 of the parent's
1.0 CPU-s in a filtered 40 MB shard build, bench/RESULTS.md: on 2 cores the parent's CPU is taken from the
workers), a third thread hands each answer to the caller, and a worker that dies mid-job (the out-of-memory
killer) leaves `get()` waiting forever. Here the caller reads the answers itself, and a dead worker's pipe
closes: `WorkerDied`, one line (the shard build adds that its checkpoint stays for the rerun).

Nobody waits on the pipes: a worker's answers go into a pipe of 1 MiB (Linux's largest for a user; the 64 KiB
default holds less than one answer, and the caller reads in job order, so a worker done early would wait to
send), and each worker's jobs are written by a thread of the caller's own (a worker busy with a job does not
read its pipe, and one sender for all would wait there while the others run dry). The worker itself is one
thread: its computing shares the GIL with nothing.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable

from factory.core.errors import WorkerDied, worker_death

PIPE_BYTES = 1 << 20  # F_SETPIPE_SZ's ceiling for an unprivileged process (/proc/sys/fs/pipe-max-size)


class ProcessPool:
    """`workers` processes of `context` (a multiprocessing context) running `fn(*job)`, each started with
    `initializer(*initargs)`. `submit(job)` returns the job's worker; `answer(worker)` is that worker's next
    answer (its return value, or its exception raised here)."""

    def __init__(self, workers: int, fn: Callable, initializer: Callable, initargs: tuple, context) -> None:
        self._procs, self._answers, self._outboxes, self._senders = [], [], [], []
        for _ in range(workers):
            job_out, job_in = context.Pipe(duplex=False)  # (reader, writer)
            answer_out, answer_in = context.Pipe(duplex=False)
            _widen(job_in)
            _widen(answer_in)
            proc = context.Process(target=_serve, args=(job_out, answer_in, fn, initializer, initargs),
                                   daemon=True, name="factory-worker")  # fmt: skip
            proc.start()
            job_out.close()
            answer_in.close()
            outbox: queue.SimpleQueue = queue.SimpleQueue()
            sender = threading.Thread(target=_send_all, args=(job_in, outbox), name="factory-pool-sender", daemon=True)
            sender.start()
            self._procs.append(proc)
            self._answers.append(answer_out)
            self._outboxes.append(outbox)
            self._senders.append(sender)
        self._jobs = 0

    def submit(self, job: tuple) -> int:
        worker = self._jobs % len(self._procs)
        self._jobs += 1
        self._outboxes[worker].put(job)
        return worker

    def answer(self, worker: int):
        try:
            ok, value = self._answers[worker].recv()
        except (EOFError, OSError):
            raise WorkerDied(self._death(worker)) from None
        if not ok:
            raise value
        return value

    def _death(self, worker: int) -> str:
        proc = self._procs[worker]
        proc.join(5)
        return worker_death(proc.exitcode)

    def close(self) -> None:
        """Stop the workers (any job still running is dropped) and the senders."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self._answers:
            pipe.close()
        for outbox in self._outboxes:
            outbox.put(None)
        for sender in self._senders:
            sender.join(5)


DEFAULT_POOL = "own"  # FACTORY_POOL unset; bench/speed/shards_ab.py times two trees: flip this line in one of them


def start_pool(workers: int, fn: Callable, initializer: Callable, initargs: tuple, context):
    """The worker pool, chosen by FACTORY_POOL (read here alone): `own` (ProcessPool above) or `executor`
    (factory/corpus/executor_pool.py, on concurrent.futures.ProcessPoolExecutor); unset, DEFAULT_POOL. The two are
    kept side by side until bench/speed/shards_ab.py has timed them on a quiet machine; the shards are the same
    bytes."""
    import os

    from factory.core.errors import ConfigError

    choice = os.environ.get("FACTORY_POOL", "").strip() or DEFAULT_POOL
    if choice == "own":
        return ProcessPool(workers, fn, initializer, initargs, context)
    if choice == "executor":
        from factory.corpus.executor_pool import ExecutorPool

        return ExecutorPool(workers, fn, initializer, initargs, context)
    raise ConfigError(f"FACTORY_POOL={choice!r}: use 'own' or 'executor'")


def _widen(connection) -> None:
    """The pipe's buffer at PIPE_BYTES where the system allows it (Linux); else it stays as it is."""
    try:
        import fcntl

        fcntl.fcntl(connection.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


def _send_all(pipe, outbox: queue.SimpleQueue) -> None:
    """A worker's jobs, in order, until None (the pool closes) or the worker is gone."""
    while (job := outbox.get()) is not None:
        try:
            pipe.send(job)
        except OSError:  # the worker is gone: the caller learns it from `answer`
            break
    pipe.close()


def _serve(jobs, answers, fn: Callable, initializer: Callable, initargs: tuple) -> None:
    """A worker: answer each job as (True, fn(*job)) or (False, the exception), until the job pipe closes."""
    failure = None
    try:
        initializer(*initargs)
    except Exception as e:  # every job answers with it: the caller raises it at the first answer
        failure = _with_trace(e)
    while True:
        try:
            job = jobs.recv()
        except (EOFError, OSError):
            return
        if failure is not None:
            answer = (False, failure)
        else:
            try:
                answer = (True, fn(*job))
            except Exception as e:
                answer = (False, _with_trace(e))
        try:
            answers.send(answer)
        except (EOFError, OSError):
            return
        except Exception as e:  # an exception that does not pickle: its text does
            answers.send((False, RuntimeError(f"in a worker process: {e!r}\n{traceback.format_exc()}")))


def _with_trace(error: Exception) -> Exception:
    """The exception with the worker's traceback as a note (a traceback does not cross the pipe; the note
    does, and prints below the parent's own traceback for a bug; a user's one-line error prints str() alone)."""
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note("in a worker process:\n" + "".join(traceback.format_exception(error)).rstrip())
    return error
