"""Worker processes for the corpus pipeline, each on a pipe of its own: job i goes to worker i % n, and the
answers are read back in job order, job i's from worker i % n (each worker answers its jobs in the order it
got them, so the head of the queue is always the next answer on that worker's pipe).

Why not `multiprocessing.Pool`: its worker-maintenance thread also waits on the pipe the answers come back on,
so it wakes for every answer and polls the workers until the result thread has read it (0.12 of the parent's
1.0 CPU-s in a filtered 40 MB shard build, bench/RESULTS.md: on 2 cores the parent's CPU is taken from the
workers), a third thread hands each answer to the caller, and a worker that dies mid-job (the out-of-memory
killer) leaves `get()` waiting forever. Here the caller reads the answers itself, and a dead worker's pipe
closes: one line, and the build's checkpoint stays for the rerun.

The jobs go out through a sender thread, as in `multiprocessing.Pool`, and each worker reads its jobs and
writes its answers from threads of its own (`_serve`): computing never waits on the pipe, and nobody waits
on a worker that waits on somebody. A worker killed mid-job loses the answers it had not sent yet; the
checkpoint is older than them anyway.
"""

from __future__ import annotations

import queue
import signal
import threading
import traceback
from collections.abc import Callable

from factory.errors import RunFailure


class ProcessPool:
    """`workers` processes of `context` (a multiprocessing context) running `fn(*job)`, each started with
    `initializer(*initargs)`. `submit(job)` returns the job's worker; `answer(worker)` is that worker's next
    answer (its return value, or its exception raised here)."""

    def __init__(self, workers: int, fn: Callable, initializer: Callable, initargs: tuple, context) -> None:
        self._procs, self._pipes = [], []
        for _ in range(workers):
            mine, theirs = context.Pipe(duplex=True)
            proc = context.Process(target=_serve, args=(theirs, fn, initializer, initargs), daemon=True,
                                   name="factory-worker")  # fmt: skip
            proc.start()
            theirs.close()
            self._procs.append(proc)
            self._pipes.append(mine)
        self._jobs = 0
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_all, name="factory-pool-sender", daemon=True)
        self._sender.start()

    def submit(self, job: tuple) -> int:
        worker = self._jobs % len(self._pipes)
        self._jobs += 1
        self._outbox.put((worker, job))
        return worker

    def answer(self, worker: int):
        try:
            ok, value = self._pipes[worker].recv()
        except (EOFError, OSError):
            raise RunFailure(self._death(worker)) from None
        if not ok:
            raise value
        return value

    def _send_all(self) -> None:
        while (item := self._outbox.get()) is not None:
            worker, job = item
            try:
                self._pipes[worker].send(job)
            except OSError:  # the worker is gone: the caller learns it from `answer`
                continue

    def _death(self, worker: int) -> str:
        proc = self._procs[worker]
        proc.join(5)
        code = proc.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            how = f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
        else:
            how = f"exited with code {code}" if code is not None else "closed its pipe"
        return (f"a worker process {how} before answering; what was built up to the last checkpoint is kept: "
                f"run the same command again to resume")  # fmt: skip

    def close(self) -> None:
        """Stop the workers (any job still running is dropped) and the sender."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self._pipes:
            pipe.close()
        self._outbox.put(None)
        self._sender.join(5)


def _serve(pipe, fn: Callable, initializer: Callable, initargs: tuple) -> None:
    """A worker: answer each job as (True, fn(*job)) or (False, the exception), until the pipe closes.

    Its pipe is read and written by two threads of its own, so that computing never waits on the pipe: an
    answer the caller has not read yet (the caller reads in job order, and an answer is bigger than the pipe's
    buffer) waits in the sending thread while the next job is computed, and the next job is already read."""
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    answers: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(pipe, jobs), daemon=True).start()
    sender = threading.Thread(target=_send, args=(pipe, answers), daemon=True)
    sender.start()
    failure = None
    try:
        initializer(*initargs)
    except Exception as e:  # every job answers with it: the caller raises it at the first answer
        failure = _with_trace(e)
    while (job := jobs.get()) is not None:
        if failure is not None:
            answers.put((False, failure))
            continue
        try:
            answers.put((True, fn(*job)))
        except Exception as e:
            answers.put((False, _with_trace(e)))
    answers.put(None)
    sender.join()


def _receive(pipe, jobs: queue.SimpleQueue) -> None:
    while True:
        try:
            job = pipe.recv()
        except (EOFError, OSError):  # the caller closed the pool, or is gone
            job = None
        jobs.put(job)
        if job is None:
            return


def _send(pipe, answers: queue.SimpleQueue) -> None:
    while (answer := answers.get()) is not None:
        try:
            pipe.send(answer)
        except (EOFError, OSError):  # the caller is gone
            return
        except Exception as e:  # an exception that does not pickle: its text does
            pipe.send((False, RuntimeError(f"in a worker process: {e!r}\n{traceback.format_exc()}")))


def _with_trace(error: Exception) -> Exception:
    """The exception with the worker's traceback as a note (a traceback does not cross the pipe; the note
    does, and prints below the parent's own traceback for a bug; a user's one-line error prints str() alone)."""
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note("in a worker process:\n" + "".join(traceback.format_exception(error)).rstrip())
    return error
