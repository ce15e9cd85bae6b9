"""The vocabulary's sample: spools per language, then p_i ∝ n_i^alpha (XLM-R/mT5) by sequential selection.

Documents flow through the shared pipeline (factory/corpus/pipeline.py) into per-language spool files on
disk, while only counters (and a fixed-size duplicate filter) live in memory. The sample that goes to
SentencePiece is then drawn from the spools by Knuth's algorithm S: memory does not grow with corpus size.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from factory.core.errors import FactoryError
from factory.corpus.cleaning import Cleaning, SeenFilter
from factory.corpus.pipeline import CorpusStats, LanguageFilter, Pipeline, Workers, chunks, nothing_kept
from factory.corpus.reading import Source, read_source
from factory.vocab.config import VocabConfig


def collect(
    sources: list[Source],
    spool: Path,
    langs: list[str],
    language_filter: LanguageFilter,
    cleaning: Cleaning,
    text_field: str = "text",
) -> CorpusStats:
    """Stream every source through the pipeline into `spool/<lang>.txt`; return counts."""
    for source in sources:
        if source.lang is not None and source.lang not in langs:
            raise FactoryError(f"--corpus {source.lang}={source.spec}: {source.lang} is not among the languages")
    pipeline = Pipeline(tuple(langs), cleaning, language_filter.enabled, language_filter.threshold,
                        cleaning.dedupe_bits if cleaning.dedupe else 0,
                        unchecked=tuple(language_filter.skip))  # fmt: skip
    stats = CorpusStats()
    seen = SeenFilter(cleaning.dedupe_bits) if cleaning.dedupe else None
    outs = {lang: open(spool / f"{lang}.txt", "w", encoding="utf-8") for lang in langs}
    jobs = ((None, texts, s.lang) for s in sources for texts in chunks(read_source(s, text_field)))
    try:
        with Workers(pipeline, language_filter.workers if language_filter.enabled else 1) as workers:
            for _, chunk in workers.map(jobs):
                chunk.drop_duplicates(seen)
                stats.add(chunk, pipeline.langs)
                for text, position, keep in zip(chunk.texts, chunk.routed, chunk.kept(), strict=True):
                    if keep:
                        outs[langs[chunk.lang[position]]].write(text + "\n")
    finally:
        for out in outs.values():
            out.close()
    return stats


# ---- sampling -----------------------------------------------------------------------------------
def sample_sizes(counts: dict[str, int], alpha: float, max_sentences: int) -> dict[str, int]:
    """Documents per language: total T = min(max_sentences, sum n_i), language i gets T * n_i^a / sum n_j^a.

    Where that exceeds n_i (alpha < 1 lifts small languages), documents are repeated: SentencePiece counts
    repeated sentences, so repetition is how a small language gets its share of the vocabulary.
    """
    counts = {lang: n for lang, n in counts.items() if n > 0}
    total = min(max_sentences, sum(counts.values()))
    weights = {lang: n**alpha for lang, n in counts.items()}
    norm = sum(weights.values())
    exact = {lang: total * w / norm for lang, w in weights.items()}
    sizes = {lang: int(x) for lang, x in exact.items()}
    # largest remainders first, so the sizes add up to `total` exactly
    for lang in sorted(exact, key=lambda k: exact[k] - sizes[k], reverse=True)[: total - sum(sizes.values())]:
        sizes[lang] += 1
    return sizes


def write_sample(spool: Path, counts: dict[str, int], sizes: dict[str, int], out: Path, seed: int = 0) -> int:
    """Write the sample: for each language, `size` documents drawn uniformly from its `n` spooled ones
    (every document floor(size/n) times, plus the remainder by sequential selection). One streaming pass."""
    rng = random.Random(seed)
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        for lang, size in sizes.items():
            n = counts[lang]
            repeat, extra = divmod(size, n)
            needed, left = extra, n
            with open(spool / f"{lang}.txt", encoding="utf-8") as docs:
                for line in docs:
                    copies = repeat
                    if needed and rng.random() * left < needed:  # Knuth's algorithm S
                        copies += 1
                        needed -= 1
                    left -= 1
                    f.write(line * copies)
                    written += copies
    return written


@dataclass
class SampleResult:
    stats: CorpusStats
    sizes: dict[str, int]
    sample_file: Path
    sample_lines: int


def build_sample(
    sources: list[Source],
    langs: list[str],
    workdir: Path,
    language_filter: LanguageFilter,
    cleaning: Cleaning,
    alpha: float = VocabConfig.alpha,
    max_sentences: int = VocabConfig.max_sentences,
    text_field: str = VocabConfig.text_field,
    seed: int = VocabConfig.seed,
) -> SampleResult:
    """Sources -> cleaned, filtered spools -> the alpha-sampled file SentencePiece trains on."""
    spool = Path(tempfile.mkdtemp(prefix="spool-", dir=workdir))
    stats = collect(sources, spool, langs, language_filter, cleaning, text_field)
    if stats.read == 0:
        raise FactoryError("the corpus is empty: no documents in " + ", ".join(s.spec for s in sources))
    if not stats.kept:
        raise FactoryError(nothing_kept(stats))
    sizes = sample_sizes(dict(stats.kept), alpha, max_sentences)
    sample_file = workdir / "sample.txt"
    lines = write_sample(spool, dict(stats.kept), sizes, sample_file, seed)
    return SampleResult(stats, sizes, sample_file, lines)
