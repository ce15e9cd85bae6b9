"""Output folders: written whole or not at all (each with a `factory.json` manifest: factory.core.manifest).

Every step of the pipeline writes one folder. A crash or a user error must never leave a folder that looks
complete, and an existing folder is only replaced with `--force`: so a step writes into a hidden sibling
folder and renames it into place at the very end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from factory.core.errors import OutputExistsError, short_path

STAGING_ROOM = 24  # the staged copy's name is the folder's plus `.` and `.tmp-XXXXXXXX` (or `.old-PID`)


def check_output(path: Path, force: bool, flag: str = "--out") -> None:
    """Refuse a non-empty output folder unless `force`, and a path that cannot be a folder we write
    (`check_target`); checked before any work is done."""
    path = Path(path)
    check_target(path, flag)
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputExistsError(
            f"{flag} {path} exists and is not empty; pass --force to replace it, or pick another folder"
        )


def check_target(path: Path, flag: str = "--out") -> None:
    """A folder a step is about to create or write into: every name short enough for the file system, not a
    file, and under a folder this process may write. Checked up front, so a long run does not fail at its
    first write (or its last: the staged folder's rename) with an OSError."""
    path = Path(path)
    ancestor = path.absolute()
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    limit = _name_max(ancestor if ancestor.is_dir() else ancestor.parent)
    for i, part in enumerate(path.parts):
        size, room = len(os.fsencode(part)), limit - (STAGING_ROOM if i == len(path.parts) - 1 else 0)
        if size > room:
            staged = f" less {STAGING_ROOM} for the staged copy beside it" if room < limit else ""
            raise OutputExistsError(
                f"{flag} {short_path(path)}: a name of {size} bytes, over the {room} this file system allows "
                f"({limit} per name{staged}); use a shorter name"
            )
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{flag} {path} is a file; give a folder path")
    if not ancestor.is_dir():
        raise OutputExistsError(f"{flag} {path}: {ancestor} is a file, not a folder; give a folder path")
    writable = path if path.is_dir() else ancestor
    if not os.access(writable, os.W_OK | os.X_OK):
        raise OutputExistsError(f"{flag} {path}: this user may not write in {writable}; pick a folder you can write")


def overlap(out: Path, folder: Path) -> str | None:
    """How an output folder and a folder a step reads share ground: "same", "inside" (`out` is in `folder`),
    "holds" (`folder` is in `out`: replacing `out` removes it) or None. Both resolved, so a symlink or a relative
    path is seen through."""
    target, read = Path(out).resolve(), Path(folder).resolve()
    if target == read:
        return "same"
    if read in target.parents:
        return "inside"
    return "holds" if target in read.parents else None


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


LOCK_SUFFIX = ".lock"
PID_SUFFIX = ".lock.pid"  # beside the lock: who holds it (filelock 3.x truncates the lock file as it opens it)


def is_lock_file(name: str) -> bool:
    """The name of an output's lock or of its holder's pid file (`.NAME.lock`, `.NAME.lock.pid`)."""
    return name.endswith((LOCK_SUFFIX, PID_SUFFIX))


@contextlib.contextmanager
def output_lock(path: Path, flag: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on the output `path` while a step writes it: a second factory process that wants to
    write the same folder stops at once with one line, instead of both writing it (two pre-trainings appending to
    one train.jsonl, two shard builds sharing one work folder). The lock is filelock's (`flock` on `.NAME.lock`
    beside the folder: the kernel drops it when the process ends, even by SIGKILL, so a stale file never blocks),
    the holder's pid in `.NAME.lock.pid` for the line; both are removed on a normal exit."""
    from filelock import FileLock, Timeout

    path = Path(path)
    lock_path = path.parent / f".{path.name}{LOCK_SUFFIX}"
    pid_path = path.parent / f".{path.name}{PID_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        lock = FileLock(lock_path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            try:
                holder = pid_path.read_text().strip() or "another process"
            except OSError:
                holder = "another process"
            raise OutputExistsError(
                f"{flag} {path} is being written by another factory process ({holder}); wait for it to finish or "
                "pick another folder"
            ) from None
        if _still_the_lock(lock, lock_path):
            break  # the file we locked is still the lock (not one its last holder removed as we opened it)
        lock.release()
    try:
        pid_path.write_text(f"pid {os.getpid()}")
        yield
    finally:
        pid_path.unlink(missing_ok=True)
        lock_path.unlink(missing_ok=True)  # while held: a process that opened it now finds it gone, and retries
        lock.release()


def _still_the_lock(lock, lock_path: Path) -> bool:
    """Whether the file `lock` holds is still at `lock_path` (filelock 3.x does not check; 4.x does, and then
    this is true)."""
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    try:
        return fd is None or os.path.samestat(os.stat(lock_path), os.fstat(fd))
    except OSError:
        return False


@contextlib.contextmanager
def staged_output(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    check_output(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    except OSError as e:
        raise OutputExistsError(f"cannot write --out {path} ({e.strerror or e}); pick a folder you can write") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_folder(tmp, path)


def replace_folder(new: Path, path: Path) -> None:
    """Put the finished folder `new` at `path` (same file system), replacing what was there: the old one is
    renamed aside first, so `path` never holds a half-written mix of both."""
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)


def work_folder(out: Path, step: str) -> Path:
    """Where a resumable step keeps its unfinished work: a hidden folder beside `out` (`.OUT.STEP-work`), found
    again by the same name when the command is run again, and renamed into `out` (or its files moved there)
    only when the whole output is done. The name fits in STAGING_ROOM."""
    out = Path(out)
    return out.parent / f".{out.name}.{step}-work"


def file_stats(paths: Iterable[Path]) -> dict[str, list[int]]:
    """Size and modification time of each file, and of every file under each folder (staged `.tmp-` copies left
    out): cheap evidence that inputs were not edited between two runs, where a hash would read every byte."""
    found: dict[str, list[int]] = {}
    for path in paths:
        path = Path(path)
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file() and ".tmp-" not in str(f):
                stat = f.stat()
                found[str(f)] = [stat.st_size, stat.st_mtime_ns]
    return found


def write_whole(path: Path, text: str) -> None:
    """`text` into `path` through a temporary file beside it and a rename: a kill mid-write keeps the old file
    (run-state.json, a suite's resume.json)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def fingerprint_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (first 16 hex digits: enough to tell inputs apart)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]
