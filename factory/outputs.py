"""Output folders: written whole or not at all (each with a `factory.json` manifest: factory.manifest).

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
from collections.abc import Iterator
from pathlib import Path

from factory.errors import OutputExistsError


def check_output(path: Path, force: bool) -> None:
    """Refuse a non-empty output folder unless `force`; checked before any work is done."""
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"--out {path} is a file; give a folder path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputExistsError(
            f"--out {path} exists and is not empty; pass --force to replace it, or pick another folder"
        )


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


def fingerprint_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (first 16 hex digits: enough to tell inputs apart)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]
