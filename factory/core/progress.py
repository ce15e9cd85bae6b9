"""The library's one progress bar: tqdm, drawn only where someone is meant to watch it.

A bar is drawn on the main process only (N processes would draw N bars over each other) and only while the
`factory` logger lets INFO through: the CLI's `-q` sets that logger to WARNING, which silences the bars with
the rest of the chatter, and `-v` (DEBUG) keeps them. A `factory` logger that nobody configured (library
use, tests) leaves the bars on, as they always were. Where a bar is on, tqdm's own environment variables
(TQDM_DISABLE=1, TQDM_MININTERVAL, ...) still apply.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

LOGGER = "factory"  # the parent of every module logger in the package (`logging.getLogger(__name__)`)


def progress_enabled(main: bool = True) -> bool:
    """True on the main process unless the `factory` logger was set quieter than INFO."""
    level = logging.getLogger(LOGGER).level
    return main and (level == logging.NOTSET or level <= logging.INFO)


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str,
    initial: int = 0,
    leave: bool = True,
    main: bool = True,
) -> Any:
    """A tqdm bar over `iterable` (or driven by `.update`), off where `progress_enabled(main)` is False.

    A bar that is off is an `Off` (its `update`, `set_postfix`, `set_postfix_str` and `close` do nothing), so
    callers never branch on it; tqdm is not even imported then (the package's import reads its version through
    importlib.metadata: ~30 ms of a quiet command's start-up, and of every rank but the main one).
    """
    if not progress_enabled(main):
        return Off(iterable)
    if "ipykernel" in sys.modules:  # a notebook: its widget bar
        from tqdm.auto import tqdm
    else:  # a terminal: tqdm.auto's notebook check and asyncio add ~30 ms to every command's start
        from tqdm.std import tqdm

    options: dict[str, Any] = {"total": total, "desc": desc, "initial": initial, "leave": leave, "dynamic_ncols": True}
    return tqdm(iterable, **options)  # tqdm's own environment (TQDM_DISABLE=1, ...) still applies


class Off:
    """The bar of a quiet process: iterates as its iterable does, draws nothing."""

    def __init__(self, iterable: Iterable | None = None):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def __enter__(self) -> Off:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass
