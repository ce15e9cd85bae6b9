"""The command-line pieces every benchmark shares; the rest of each one's flags are its own.

    from bench.cli import add_real_text, add_threads, make_parser

    p = make_parser(__spec__, __doc__)   # usage `python -m bench.<kind>.<name>`, --help prints the docstring
    add_real_text(p)                # --data: the folder ../shared/data/real_text.py writes
    add_threads(p)                  # --threads: torch threads, 1 by default
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

THREADS = "torch threads (default 1: on a shared machine a second thread mostly spins, and CPU time stays the work)"


def make_parser(spec, doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's parser: named as it is run (`python -m` its module), its docstring as the description."""
    prog = f"python -m {spec.name}" if spec is not None else Path(sys.argv[0]).name
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_real_text(p: argparse.ArgumentParser, default: Path | None = None, help: str | None = None) -> None:
    """--data: real text, the folder `python3 ../shared/data/real_text.py DATA` writes (DATA/<lang>.txt, one
    paragraph a line; aligned/ and topic/ beside them); required unless a default is given."""
    text = help or "real text: the folder ../shared/data/real_text.py writes (<lang>.txt, one paragraph a line)"
    if default is None:
        p.add_argument("--data", type=Path, required=True, help=text)
    else:
        p.add_argument("--data", type=Path, default=default, help=f"{text} [default: {default}]")


def add_threads(p: argparse.ArgumentParser, help: str = THREADS) -> None:
    p.add_argument("--threads", type=int, default=1, help=help)
