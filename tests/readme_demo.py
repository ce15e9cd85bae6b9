"""The README's demo block: the table of a `factory run demo` run folder, and what README.md holds between its
`<!-- demo-results -->` markers. tests/test_readme.py checks that the two agree after a fresh run;
`python -m bench.data.demo_table RUN_DIR [--write]` prints the table (and puts it into README.md) with these."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
