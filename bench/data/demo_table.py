"""The README's demo table, from a fresh run of the demo: the figures the README shows are the code's as it is.

    factory run demo --run-dir /tmp/demo && python -m bench.data.demo_table /tmp/demo --write

prints the table of per-language shards (documents and tokens per language) and XNLI-style accuracies (the model,
its random-init control, the gain) of that run, and with --write puts it into README.md between the
`<!-- demo-results -->` markers. tests/test_readme.py runs the demo afresh and checks that the README's block is
exactly what this prints for it (the table and the markers are tests/readme_demo.py's, which both use).
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.cli import make_parser
from tests.readme_demo import END, START, demo_table, readme_block

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def write(block: str) -> None:
    text = README.read_text()
    readme_block(text)  # it must be there
    pattern = re.escape(START) + r"\n.*?\n?" + re.escape(END)
    README.write_text(re.sub(pattern, lambda _: f"{START}\n{block}\n{END}", text, flags=re.S))


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__spec__, __doc__)
    parser.add_argument("run_dir", type=Path, help="the folder `factory run demo --run-dir` wrote")
    parser.add_argument("--write", action="store_true", help="put the table into README.md")
    args = parser.parse_args(argv)
    block = demo_table(args.run_dir)
    print(block)
    if args.write:
        write(block)


if __name__ == "__main__":
    main()
