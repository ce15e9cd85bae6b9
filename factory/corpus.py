"""Corpora: read text from files, folders or the Hub, clean it, keep the wanted languages, sample languages.

Everything streams: documents flow one at a time from `read_source` through `clean` and the language filter
into per-language spool files on disk, while only counters (and a fixed-size duplicate filter) live in
memory. The sample that goes to SentencePiece is then drawn from the spools with p_i ∝ n_i^alpha
(XLM-R/mT5), by sequential selection (Knuth's algorithm S): memory does not grow with corpus size.

Sources (`--corpus`, repeatable, optionally `lang=SOURCE`): `.txt` (a document per line, or paragraphs
separated by blank lines), `.jsonl` (`text_field`), `.parquet`, `.arrow`, any of them `.gz`, a folder of
those, or `hf:REPO[:CONFIG]` streamed with `datasets`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from factory.configs import VocabConfig
from factory.errors import FactoryError

TEXT_SUFFIXES = {".txt", ".text", ""}
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
TABLE_SUFFIXES = {".parquet", ".arrow"}
_WS = re.compile(r"\s+")


# ---- sources ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One `--corpus` value: where the text is and, optionally, which language it is declared to be."""

    spec: str
    lang: str | None = None

    @classmethod
    def parse(cls, value: str) -> Source:
        """`PATH`, `hf:REPO:CONFIG`, `pt=PATH` or `pt=hf:REPO:CONFIG`."""
        match = re.fullmatch(r"([a-z]{2,3}(?:[-_][A-Za-z]+)?)=(.+)", value)
        return cls(match.group(2), match.group(1)) if match else cls(value)

    @property
    def is_hub(self) -> bool:
        return self.spec.startswith("hf:")


def read_source(source: Source, text_field: str = "text") -> Iterator[str]:
    """Raw documents of one source, in order."""
    if source.is_hub:
        yield from _read_hub(source.spec, text_field)
        return
    path = Path(source.spec)
    if not path.exists():
        raise FactoryError(f"--corpus {source.spec}: no such file or folder")
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    )
    if not files:
        raise FactoryError(f"--corpus {source.spec}: the folder holds no files")
    for file in files:
        yield from read_file(file, text_field)


def read_file(path: Path, text_field: str = "text") -> Iterator[str]:
    """Documents of one local file, by suffix (a `.gz` suffix is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    kind = (suffixes[-2] if gz and len(suffixes) > 1 else "" if gz else (suffixes[-1] if suffixes else "")).lower()
    try:
        if kind in TABLE_SUFFIXES and not gz:
            yield from _read_table(path, kind, text_field)
            return
        with _open_text(path, gz) as f:
            if kind in JSONL_SUFFIXES:
                yield from _read_jsonl(f, path, text_field)
            else:
                yield from _read_text(f)
    except UnicodeDecodeError:
        raise FactoryError(f"{path} is not UTF-8 text (a binary file?); give .txt/.jsonl/.parquet/.arrow/.gz") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FactoryError(f"cannot read {path}: {e.strerror or e}; check the file and its permissions") from None


def _open_text(path: Path, gz: bool) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    head = raw.peek(8192)[:8192] if hasattr(raw, "peek") else b""
    if b"\x00" in head:
        raw.close()
        raise FactoryError(f"{path} holds NUL bytes: a binary file, not text; give .txt/.jsonl/.parquet/.arrow/.gz")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline=None)


def _read_text(f: io.TextIOBase) -> Iterator[str]:
    """A document per line; if the file has blank lines, paragraphs (blank-line separated) instead.

    The mode is decided from the first 64 KiB (a blank line between two text lines means paragraphs).
    """
    head = f.read(1 << 16)
    rest = f
    paragraphs = re.search(r"\S[^\n]*\n[ \t]*\n+[ \t]*\S", head) is not None
    lines = _chain_lines(head, rest)
    if not paragraphs:
        yield from (line for line in lines if line.strip())
        return
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line.strip())
        elif block:
            yield " ".join(block)
            block = []
    if block:
        yield " ".join(block)


def _chain_lines(head: str, rest: io.TextIOBase) -> Iterator[str]:
    lines = head.split("\n")
    tail = lines.pop()  # maybe a partial line
    yield from lines
    for line in rest:
        if tail:
            line, tail = tail + line, ""
        yield line.rstrip("\n")
    if tail:
        yield tail


def _read_jsonl(f: io.TextIOBase, path: Path, text_field: str) -> Iterator[str]:
    for number, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise FactoryError(
                f"{path} line {number} is not JSON; a .jsonl file holds one JSON object per line"
            ) from None
        if not isinstance(record, dict) or text_field not in record:
            fields = ", ".join(record) if isinstance(record, dict) else type(record).__name__
            raise FactoryError(
                f"{path} line {number} has no field {text_field!r} (it has: {fields}); pass --text-field"
            )
        if isinstance(record[text_field], str):
            yield record[text_field]


def _read_table(path: Path, kind: str, text_field: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if kind == ".parquet":
            table = pq.ParquetFile(path)
            names, batches = table.schema_arrow.names, table.iter_batches(columns=[text_field], batch_size=4096)
        else:
            names, batches = _open_arrow(path)
    except (pa.ArrowInvalid, pa.ArrowException) as e:
        raise FactoryError(f"{path} is not a readable {kind[1:]} file ({e}); check the file") from None
    if text_field not in names:
        raise FactoryError(f"{path} has no column {text_field!r} (it has: {', '.join(names)}); pass --text-field")
    for batch in batches:
        for value in batch.column(batch.schema.get_field_index(text_field)).to_pylist():
            if isinstance(value, str):
                yield value


def _open_arrow(path: Path):
    """Arrow IPC file or stream format (`datasets` writes the stream format)."""
    import pyarrow as pa

    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        return reader.schema.names, (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:
        stream = pa.ipc.open_stream(pa.memory_map(str(path)))
        return stream.schema.names, iter(stream)


def _read_hub(spec: str, text_field: str) -> Iterator[str]:
    """`hf:REPO[:CONFIG][@SPLIT]`, streamed (`datasets`); offline or unreachable: one line that says so."""
    import os

    name, _, split = spec[3:].partition("@")
    repo, _, config = name.partition(":")
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise FactoryError(
            f"--corpus {spec}: the Hugging Face Hub is off (HF_HUB_OFFLINE=1); download the data and pass a local path"
        )
    try:
        import datasets

        stream = datasets.load_dataset(repo, config or None, split=split or "train", streaming=True)
        for record in stream:
            if text_field not in record:
                raise FactoryError(f"--corpus {spec} has no field {text_field!r} (it has: {', '.join(record)})")
            yield record[text_field]
    except FactoryError:
        raise
    except Exception as e:  # network, missing repo or config: the Hub's errors are long; keep the first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FactoryError(f"--corpus {spec}: cannot stream it from the Hub ({first[:200]})") from None


# ---- cleaning -----------------------------------------------------------------------------------
@dataclass
class Cleaning:
    """Per-document cleaning: NFKC, whitespace collapsed, length bounds (characters), exact duplicates."""

    min_chars: int = VocabConfig.min_chars  # the user-facing defaults live in factory.configs
    max_chars: int = VocabConfig.max_chars
    dedupe: bool = VocabConfig.dedupe
    dedupe_bits: int = 1 << 28  # 32 MiB of filter: flat memory; ~0.1% false drops at 10M unique documents

    def clean(self, text: str) -> tuple[str | None, str]:
        """(cleaned text or None, reason it was dropped or 'kept')."""
        text = _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()
        if not text:
            return None, "empty"
        if len(text) < self.min_chars:
            return None, "too_short"
        if len(text) > self.max_chars:
            return None, "too_long"
        return text, "kept"


class SeenFilter:
    """Exact-duplicate detector in fixed memory: a Bloom filter over sha1 of the cleaned text.

    Every repeated text is caught (no false negatives); a unique text is wrongly called a duplicate with
    probability ~(1 - e^(-3n/bits))^3, which is ~0.1% after 10M documents with the default 2^28 bits.
    """

    def __init__(self, bits: int):
        import numpy as np

        self.bits = bits
        self.array = np.zeros(bits // 8, dtype=np.uint8)

    def seen(self, text: str) -> bool:
        digest = hashlib.sha1(text.encode("utf-8")).digest()
        hit = True
        for k in range(3):
            bit = int.from_bytes(digest[6 * k : 6 * k + 6], "little") % self.bits
            byte, mask = bit >> 3, 1 << (bit & 7)
            if not self.array[byte] & mask:
                hit = False
                self.array[byte] |= mask
        return hit


# ---- the pass over the sources ------------------------------------------------------------------
@dataclass
class CorpusStats:
    """Documents seen / kept / dropped (by reason), per language."""

    read: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    kept: Counter = field(default_factory=Counter)  # lang -> count
    chars: Counter = field(default_factory=Counter)  # lang -> characters kept

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "kept": sum(self.kept.values()),
            "kept_per_language": dict(sorted(self.kept.items())),
            "chars_per_language": dict(sorted(self.chars.items())),
            "dropped": dict(sorted(self.dropped.items())),
        }


@dataclass
class LanguageFilter:
    """Keep documents detected as one of `langs` with probability >= `threshold` (None: keep all)."""

    langs: list[str] | None
    threshold: float = VocabConfig.langid_threshold
    workers: int = 1
    enabled: bool = True


def collect(
    sources: list[Source],
    spool: Path,
    langs: list[str],
    language_filter: LanguageFilter,
    cleaning: Cleaning,
    text_field: str = "text",
) -> CorpusStats:
    """Stream every source through cleaning and the language filter into `spool/<lang>.txt`; return counts.

    A document of a source declared `lang=...` must be detected as that language; an undeclared one goes to
    the language it is detected as, if that is wanted. With the filter off, every document goes to its
    declared language, or to `langs[0]`.
    """
    from factory.langid import identify_many

    stats = CorpusStats()
    seen = SeenFilter(cleaning.dedupe_bits) if cleaning.dedupe else None
    outs = {lang: open(spool / f"{lang}.txt", "w", encoding="utf-8") for lang in langs}
    try:
        for source in sources:
            if source.lang is not None and source.lang not in outs:
                raise FactoryError(f"--corpus {source.lang}={source.spec}: {source.lang} is not among the languages")
            docs = _cleaned(read_source(source, text_field), cleaning, seen, stats)
            if language_filter.enabled:
                pairs = identify_many(docs, workers=language_filter.workers)
            else:
                pairs = ((t, None) for t in docs)
            for text, guess in pairs:
                lang = _route(source, guess, langs, language_filter, stats)
                if lang is not None:
                    outs[lang].write(text + "\n")
                    stats.kept[lang] += 1
                    stats.chars[lang] += len(text)
    finally:
        for out in outs.values():
            out.close()
    return stats


def _cleaned(docs: Iterable[str], cleaning: Cleaning, seen: SeenFilter | None, stats: CorpusStats) -> Iterator[str]:
    for raw in docs:
        stats.read += 1
        text, reason = cleaning.clean(raw)
        if text is None:
            stats.dropped[reason] += 1
        elif seen is not None and seen.seen(text):
            stats.dropped["duplicate"] += 1
        else:
            yield text


def _route(source: Source, guess, langs: list[str], lf: LanguageFilter, stats: CorpusStats) -> str | None:
    if guess is None:
        return source.lang or langs[0]
    if not guess.lang:
        stats.dropped["langid_no_text"] += 1
        return None
    wanted = source.lang or (guess.lang if guess.lang in langs else None)
    if guess.lang != wanted:
        stats.dropped["langid_other_language"] += 1
        return None
    if guess.prob < lf.threshold:
        stats.dropped["langid_low_confidence"] += 1
        return None
    return wanted


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
        worst = max(stats.dropped, key=stats.dropped.__getitem__)
        raise FactoryError(
            f"every document was filtered out ({stats.read} read; most by '{worst}': "
            f"{', '.join(f'{k} {v}' for k, v in sorted(stats.dropped.items()))}); {HINTS.get(worst, '')}".rstrip("; ")
        )
    sizes = sample_sizes(dict(stats.kept), alpha, max_sentences)
    sample_file = workdir / "sample.txt"
    lines = write_sample(spool, dict(stats.kept), sizes, sample_file, seed)
    return SampleResult(stats, sizes, sample_file, lines)


HINTS = {
    "too_short": "lower --min-chars",
    "too_long": "raise --max-chars",
    "duplicate": "the corpus repeats one text; give more varied text",
    "langid_other_language": "check --lang/--langs against the text, or pass --no-langid",
    "langid_low_confidence": "lower --langid-threshold",
    "langid_no_text": "the text has no letters the language filter can use; pass --no-langid",
    "empty": "the documents are blank",
}
