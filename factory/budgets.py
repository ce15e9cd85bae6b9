"""The grammar of the shards' budgets and tasks (`--tokens`, `--tokens-per-language`, `--task`) and ShardsConfig's
cross-field checks: below factory.configs (whose `problems()` reports them with the other options) and
factory.shards (whose plan uses them), so neither imports the other for it."""

from __future__ import annotations

import re

from factory.core.errors import short_value
from factory.core.options import parse_count, whole_number  # the one count grammar (every whole-number option reads it)


def parse_task(text: str) -> tuple[int, int]:
    """'3/64' -> (3, 64): part 3 of 64, 1-based."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    part, parts = (whole_number(n) for n in match.groups()) if match else (None, None)
    if part is None or parts is None or not 1 <= part <= parts:  # None: more digits than any I/N has
        raise ValueError(f"{short_value(text)} is not I/N with 1 <= I <= N (e.g. 3/64)")
    return part, parts


def config_problems(config) -> list[str]:
    """ShardsConfig's cross-field checks (the resolver reports them with the other bad values)."""
    problems = []
    for flag, value in (("--tokens", config.tokens), ("--tokens-per-language", config.tokens_per_language)):
        if value is not None:
            try:
                parse_count(value)
            except ValueError as e:
                problems.append(f"{flag}: {e}")
    if config.tokens is not None and config.tokens_per_language is not None:
        problems.append("give --tokens or --tokens-per-language, not both")
    if config.task is not None:
        try:
            parse_task(config.task)
        except ValueError as e:
            problems.append(f"--task: {e}")
    if config.merge:
        if config.task is not None or config.dry_run:
            problems.append("--merge joins finished tasks; it takes no --task or --dry-run")
        return problems
    if not config.corpus:
        problems.append("--corpus is required (a file, a folder or hf:NAME)")
    if config.vocab is None:
        problems.append("--vocab is required (the folder with spm.model)")
    if config.clean and config.min_chars > config.max_chars:
        problems.append(f"--min-chars {config.min_chars} is larger than --max-chars {config.max_chars}")
    return problems
