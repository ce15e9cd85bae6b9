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

    A disabled bar is still a tqdm object (`update`, `set_postfix_str` and `close` do nothing), so callers
    never branch on it.
    """
    if "ipykernel" in sys.modules:  # a notebook: its widget bar
        from tqdm.auto import tqdm
    else:  # a terminal: tqdm.auto's notebook check and asyncio add ~30 ms to every command's start
        from tqdm.std import tqdm

    options: dict[str, Any] = {"total": total, "desc": desc, "initial": initial, "leave": leave, "dynamic_ncols": True}
    if not progress_enabled(main):
        options["disable"] = True  # else left to tqdm, so that TQDM_DISABLE still works
    return tqdm(iterable, **options)
