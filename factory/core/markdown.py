"""Markdown tables, as every report and card of factory writes them (results.md, summary.md, the model card,
the vocabulary report)."""

from __future__ import annotations

from collections.abc import Iterable


def markdown_table(header: Iterable[object], rows: Iterable[Iterable[object]]) -> list[str]:
    """The table's lines: `| a | b |`, the rule `|---|---|`, then one line per row (a cell is its str()). A blank
    header cell is written `| |` (a key/value table's header has no titles)."""
    header = [str(cell) for cell in header]
    head = "|" + "|".join(f" {cell} " if cell else " " for cell in header) + "|"
    return [head, "|" + "---|" * len(header), *("| " + " | ".join(map(str, row)) + " |" for row in rows)]
