"""The plan of a shard build: languages, units, tasks, per-language budgets, and the dry run that prints it.

Budgets (docs/data.md#budgets): `--tokens-per-language N` gives every language N stored tokens;
`--tokens T` splits T by p_i ∝ corpus_tokens_i^alpha, the rule XLM-R samples languages by. corpus_tokens_i
comes from a probe: the first `PROBE_BYTES` of text of every source go through the whole pipeline (clean,
filter, de-duplicate, tokenise), which gives each language's tokens per byte of source text; times the
sources' text bytes (factory/corpus/reading.py `text_size`) that is the estimate, exact where the probe read
a source to its end. A language whose estimate cannot fill its budget stops the build before anything is
written, in one line that says how much there is.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from factory.core.errors import ShardError
from factory.shards.config import config_problems, parse_count, parse_task  # noqa: F401  (plan's names, as before)

PROBE_BYTES = 2 << 20


# ---- languages and units -----------------------------------------------------------------------
def resolve_languages(config, sources) -> tuple[list[str], str | None]:
    """(the languages in routing order, the language filter that runs or None)."""
    from factory.core.languages import UNDETERMINED, check_languages
    from factory.corpus.langid import check_codes, filter_name

    declared = [s.lang for s in sources if s.lang]
    langs = list(dict.fromkeys(config.langs or declared)) or [UNDETERMINED]
    check_languages(langs + declared, "--langs")
    for source in sources:
        if source.lang is not None and source.lang not in langs:
            raise ShardError(
                f"--corpus {source.lang}={source.spec}: {source.lang} is not among --langs {','.join(langs)}"
            )
    skip = list(getattr(config, "langid_skip", ()))
    check_languages(skip, "--langid-skip")
    langid = filter_name(config.langid) if UNDETERMINED not in langs else None
    if langid:
        check_codes(langs, langid, "--langs", skip)
    return langs, langid


def unit_languages(source, langs: list[str], langid: str | None) -> list[str]:
    """The languages a source's documents can go to."""
    if source.lang:
        return [source.lang]
    return list(langs) if langid else [langs[0]]


def task_span(sizes: list[int | None], index: int, count: int) -> tuple[int, int]:
    """Units [start, stop) of task `index` of `count`: contiguous, balanced by text size (unknown sizes
    count as the mean), so that joining the tasks in order gives every language's rows in unit order."""
    known = [s for s in sizes if s is not None]
    mean = sum(known) / len(known) if known else 1.0
    weights = [float(s) if s is not None else mean for s in sizes]
    total = sum(weights) or 1.0
    bounds, acc, k = [0], 0.0, 1
    for i, w in enumerate(weights):
        acc += w
        while k < count and acc >= total * k / count:
            bounds.append(i + 1)
            k += 1
    bounds += [len(sizes)] * (count + 1 - len(bounds))
    return bounds[index - 1], bounds[index]


# ---- estimates and budgets ---------------------------------------------------------------------
@dataclass
class Estimate:
    """A language's corpus tokens as far as known: `exact` when every source feeding it was read through."""

    corpus_tokens: int | None
    exact: bool
    source_bytes: int | None


@dataclass
class SourceCount:
    """What was read of one source: its text bytes, the tokens each language got, whether to its end."""

    size: int | None  # text bytes of the whole source (None: unknown)
    bytes_read: int = 0
    tokens: Counter = field(default_factory=Counter)
    complete: bool = False

    def estimate(self, lang: str) -> tuple[float | None, bool]:
        if self.complete:
            return float(self.tokens[lang]), True
        if self.size is None or self.bytes_read == 0:
            return None, False
        return self.tokens[lang] * max(self.size, self.bytes_read) / self.bytes_read, False


def estimates(counts: list[SourceCount], feeds: list[list[str]], langs: list[str]) -> dict[str, Estimate]:
    """Per language: the sum over its sources of what each source holds of it (counted or extrapolated)."""
    out = {}
    for lang in langs:
        total, exact, size = 0.0, True, 0
        for count, fed in zip(counts, feeds, strict=True):
            if lang not in fed:
                continue
            value, whole = count.estimate(lang)
            total = None if value is None or total is None else total + value
            exact = exact and whole
            size = None if count.size is None or size is None else size + count.size
        out[lang] = Estimate(None if total is None else int(round(total)), exact, size)
    return out


def budgets(config, found: dict[str, Estimate] | None) -> dict[str, int | None]:
    """Stored tokens per language (None: all there is); one line when a budget cannot be met."""
    langs = sorted(found) if found else []
    if config.tokens_per_language is not None:
        wanted = {lang: parse_count(config.tokens_per_language) for lang in langs}
    elif config.tokens is not None:
        wanted = alpha_split(parse_count(config.tokens), found, config.alpha)
    else:
        return {lang: None for lang in langs}
    for lang in langs:
        _check_fill(config, lang, wanted[lang], found)
    return wanted


def alpha_split(total: int, found: dict[str, Estimate], alpha: float) -> dict[str, int]:
    """total x p_i, p_i ∝ corpus_tokens_i^alpha, rounded by largest remainder so the parts add up."""
    unknown = [lang for lang, e in found.items() if e.corpus_tokens is None]
    if unknown:
        raise ShardError(
            f"--tokens: the size of {', '.join(unknown)} is not known (a stream without size metadata), so it "
            "cannot be split by --alpha; give --tokens-per-language instead"
        )
    weights = {lang: e.corpus_tokens**alpha if e.corpus_tokens else 0.0 for lang, e in sorted(found.items())}
    norm = sum(weights.values()) or 1.0
    exact = {lang: total * w / norm for lang, w in weights.items()}
    parts = {lang: int(x) for lang, x in exact.items()}
    for lang in sorted(exact, key=lambda k: exact[k] - parts[k], reverse=True)[: total - sum(parts.values())]:
        parts[lang] += 1
    return parts


def capacity(corpus_tokens: int, seq_len: int) -> int:
    """Stored tokens that many corpus tokens make: every row adds [CLS] and [SEP] to seq_len-2 of them."""
    return corpus_tokens * seq_len // (seq_len - 2)


def _check_fill(config, lang: str, budget: int, found: dict[str, Estimate]) -> None:
    estimate = found[lang]
    if estimate.corpus_tokens is None or budget <= capacity(estimate.corpus_tokens, config.seq_len):
        return
    there = capacity(estimate.corpus_tokens, config.seq_len)
    how = "counted" if estimate.exact else f"estimated from {estimate.source_bytes:,} bytes of text"
    flag = f"--tokens {config.tokens} (alpha {config.alpha:g})" if config.tokens else "--tokens-per-language "
    flag += "" if config.tokens else str(config.tokens_per_language)
    fits = ""
    if config.tokens:
        shares = alpha_split(10**12, found, config.alpha)
        most = min(capacity(e.corpus_tokens or 0, config.seq_len) * 10**12 // max(shares[k], 1)
                   for k, e in found.items() if shares[k])  # fmt: skip
        fits = f"; at most {most:,} tokens in all fit"
    raise ShardError(
        f"{flag}: {lang} would store {budget:,} tokens but its corpus holds {'' if estimate.exact else 'about '}"
        f"{there:,} ({how}){fits}; "
        f"lower the budget or give more {lang} text"
    )


# ---- fingerprints and the dry run --------------------------------------------------------------
IGNORED = ("out", "force", "num_proc", "dry_run", "merge", "task")  # settings that do not change the shards


def fingerprint(config, vocab_fingerprint: str, sources, task: tuple[int, int] | None = None) -> str:
    """What the shards depend on: the settings, the vocabulary, the local inputs' sizes and times."""
    from factory.core.options import to_json
    from factory.corpus import source_files

    settings = {k: v for k, v in to_json(config).items() if k not in IGNORED}
    files = {}
    for source in sources:
        if not source.is_hub:
            for f in source_files(source):
                stat = f.stat()
                files[str(f)] = [stat.st_size, stat.st_mtime_ns]
    text = json.dumps([settings, vocab_fingerprint, files, list(task) if task else None], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_lines(config, found: dict[str, Estimate], wanted: dict[str, int | None]) -> list[str]:
    """The dry run's table: per language its text, corpus tokens, budget, expected rows and disk."""
    from factory.core.languages import name

    lines = [f"{'language':<24} {'text bytes':>15} {'corpus tokens':>17} {'budget':>15} {'rows':>11} {'disk':>10}"]
    total_rows = 0
    for lang in sorted(found):
        e = found[lang]
        stored = capacity(e.corpus_tokens, config.seq_len) if e.corpus_tokens is not None else None
        if wanted.get(lang) is not None:
            stored = wanted[lang] if stored is None else min(stored, wanted[lang])
        rows = -(-stored // config.seq_len) if stored is not None else None
        total_rows += rows or 0
        tokens = "?" if e.corpus_tokens is None else f"{e.corpus_tokens:,}" + ("" if e.exact else " ~")
        lines.append(
            f"{lang + ' ' + name(lang):<24.24} {_n(e.source_bytes):>15} {tokens:>17} {_n(wanted.get(lang), 'all'):>15} "
            f"{_n(rows):>11} {_disk(rows, config.seq_len):>10}"
        )
    lines.append(f"{'total':<24} {'':>15} {'':>17} {'':>15} {total_rows:>11,} {_disk(total_rows, config.seq_len):>10}")
    lines.append("~: estimated from the first bytes of each source (docs/data.md#budgets); disk: 4 bytes per token")
    return lines


def _n(value: int | None, none: str = "?") -> str:
    return none if value is None else f"{value:,}"


def _disk(rows: int | None, seq_len: int) -> str:
    if rows is None:
        return "?"
    size = rows * seq_len * 4
    unit = next((u for u, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)) if size >= scale), "KiB")
    return f"{size / {'TiB': 2**40, 'GiB': 2**30, 'MiB': 2**20, 'KiB': 2**10}[unit]:.1f} {unit}"


def work_folder(out: Path) -> Path:
    """Where a build keeps its unfinished state: beside --out, found again by the same name."""
    from factory.core.outputs import work_folder

    return work_folder(out, "shards")
