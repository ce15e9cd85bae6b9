"""The README's demo table, from a fresh run of the demo: the figures the README shows are the code's as it is.

    factory run demo --run-dir /tmp/demo && python -m bench.data.demo_table /tmp/demo --write

prints the table of per-language shards (documents and tokens per language) and XNLI-style accuracies (the model,
its random-init control, the gain) of that run, and with --write puts it into README.md between the
`<!-- demo-results -->` markers. tests/test_readme.py runs the demo afresh and checks that the README's block is
exactly what this prints for it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
START, END = "<!-- demo-results -->", "<!-- /demo-results -->"


def demo_table(run_dir: Path) -> str:
    """The block: the shards per language, then the XNLI table of results.md (the model, the control, the gain)."""
    shards = json.loads((run_dir / "shards" / "factory.json").read_text())
    langs = sorted(shards["per_language"])
    kept = shards["counts"]["kept_per_language"]
    lines = ["| shards | " + " | ".join(langs) + " |", "|---" * (len(langs) + 1) + "|"]
    lines.append("| documents | " + " | ".join(f"{kept[lang]:,}" for lang in langs) + " |")
    lines.append("| tokens | " + " | ".join(f"{shards['per_language'][lang]['tokens']:,}" for lang in langs) + " |")
    results = (run_dir / "eval" / "xnli" / "results.md").read_text()
    table = [line for line in results.splitlines() if line.startswith("|")]
    cells = [line.strip().strip("|").split("|") for line in table]
    references = ("mDeBERTa", "XLM-R")  # left out: the README's text says where they are
    keep = [i for i, head in enumerate(cells[0]) if not any(name in head for name in references)]
    rows = ["|" + "|".join(row[i] for i in keep) + "|" for row in cells]
    return "\n".join([*lines, "", *rows])


def readme_block(text: str) -> str:
    """What README.md holds between the markers."""
    match = re.search(re.escape(START) + r"\n(.*?)\n?" + re.escape(END), text, flags=re.S)
    if match is None:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    return match.group(1)


def write(block: str) -> None:
    text = README.read_text()
    readme_block(text)  # it must be there
    pattern = re.escape(START) + r"\n.*?\n?" + re.escape(END)
    README.write_text(re.sub(pattern, lambda _: f"{START}\n{block}\n{END}", text, flags=re.S))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the folder `factory run demo --run-dir` wrote")
    parser.add_argument("--write", action="store_true", help="put the table into README.md")
    args = parser.parse_args(argv)
    block = demo_table(args.run_dir)
    print(block)
    if args.write:
        write(block)


if __name__ == "__main__":
    main()
