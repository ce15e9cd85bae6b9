"""The corpus pipeline `factory vocab` and `factory shards` share: documents in chunks through worker processes
that clean, identify the language, route and (for shards) tokenise; the order-dependent duplicate filter and
the counters stay in the parent, so the result depends on the data alone, never on the number of workers.

    raw documents -> chunks (<= CHUNK_DOCS documents, <= CHUNK_CHARS characters; a chunk never spans units)
      -> worker: clean (NFKC, whitespace, length) -> duplicate-filter keys -> language id + routing -> ids
      -> parent, in order: duplicates dropped (SeenFilter.seen_many) -> counters -> the sink (spool or packer)

A document of a source declared `lang=...` must be detected as that language; an undeclared one goes to the
language it is detected as, if that is wanted. With the filter off, every document goes to its declared
language, or to the first language. Every switch is off-able, so the throughput of the bare tokeniser can be
measured through the same code (bench/speed/shards.py); with all of them off the workers are threads (`Workers`).
"""

from __future__ import annotations

import collections
import functools
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from factory.corpus.cleaning import Cleaning, SeenFilter, clean_text, filter_keys_many

REASONS = ("kept", "empty", "too_short", "too_long", "duplicate", "langid_no_text", "langid_other_language",
           "langid_low_confidence")  # fmt: skip
KEPT, EMPTY, TOO_SHORT, TOO_LONG, DUPLICATE = range(5)  # == REASONS[:5]
NO_TEXT, OTHER_LANGUAGE, LOW_CONFIDENCE = (REASONS.index(r) for r in REASONS[5:])
CHUNK_DOCS = 2048
CHUNK_CHARS = 1 << 20


@dataclass
class LanguageFilter:
    """Keep documents detected as one of `langs` with probability >= `threshold` (None: the filter's default);
    `enabled`: the filter's name (True: the default filter; False/None: keep all); `skip`: languages whose
    declared sources are kept unchecked."""

    langs: list[str] | None
    threshold: float | None = None
    workers: int = 1
    enabled: str | bool | None = True
    skip: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """What a worker does to every chunk. `cleaning` None: documents as read (blank ones dropped);
    `dedupe_bits` 0: no duplicate filter; `spm` None: the cleaned text comes back, else its token ids."""

    langs: tuple[str, ...]
    cleaning: Cleaning | None = None
    langid: str | bool | None = None  # the filter (factory/corpus/langid), True: the default one, None/False: off
    threshold: float | None = None  # None: the filter's own (factory.corpus.langid.THRESHOLDS)
    dedupe_bits: int = 0
    spm: str | None = None
    sep_id: int = 2
    unchecked: tuple[str, ...] = ()  # languages whose declared documents skip the filter (`--langid-skip`)


@dataclass
class Chunk:
    """A worker's answer for one chunk. Arrays are per document read; `routed` lists the documents that
    reached a language (before the duplicate filter), whose texts or ids are in `texts` / `ids`."""

    status: object  # (n,) int8 index into REASONS
    lang: object  # (n,) int16 index into Pipeline.langs, -1 for none
    keyed: object  # (m,) int32 documents that passed cleaning, in order
    keys: object  # (m, 3) int64 their duplicate-filter bit positions
    routed: object  # (k,) int32
    chars: object  # (k,) int32 characters of each routed document
    lengths: object = None  # (k,) int32 tokens of each routed document, its [SEP] included
    ids: object = None  # (sum lengths,) each routed document's ids followed by [SEP]: uint16 for a vocabulary
    # of at most 65,536 pieces (half the bytes through the workers' pipes), else uint32
    texts: list[str] | None = None
    raw_bytes: int = 0  # UTF-8 bytes of the raw documents (tokens per byte, for estimates)
    worker: int = 0  # the OS thread that did it, a worker process's pid (tests check that several work)

    def drop_duplicates(self, seen: SeenFilter | None) -> None:
        """Mark the documents the filter has seen (this chunk's earlier documents included)."""
        if seen is None or not len(self.keys):
            return
        duplicate = seen.seen_many(self.keys)
        self.status[self.keyed[duplicate]] = DUPLICATE
        self.lang[self.keyed[duplicate]] = -1

    def kept(self):
        """(k,) bool over `routed`: still kept after the duplicate filter."""
        return self.status[self.routed] == KEPT


# ---- the worker side ----------------------------------------------------------------------------
_STATE: dict = {}


def start_worker(pipeline: Pipeline) -> None:
    """Pool initializer (and the in-process and thread paths): the tokenizer and language id, loaded once."""
    _STATE.clear()
    _STATE["pipeline"] = pipeline
    if pipeline.spm:
        import sentencepiece as spm

        _STATE["sp"] = spm.SentencePieceProcessor(model_file=pipeline.spm)
    if pipeline.langid:
        from factory.corpus.langid import filter_name, identifier, threshold_of

        name = filter_name(pipeline.langid)
        _STATE["lid"] = identifier(name)
        _STATE["threshold"] = threshold_of(name, pipeline.threshold)


def start_pool_worker(pipeline: Pipeline) -> None:
    """A worker process's initializer: Ctrl-C is the parent's to handle (it stops the pool and says so in one
    line); a worker that took the SIGINT too would print its own KeyboardInterrupt traceback. One BLAS thread:
    the processes are the parallelism, and BLAS threads of their own oversubscribe the cores."""
    import signal

    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(1, user_api="blas")  # the workers are the parallel part (the language filter's products)
    start_worker(pipeline)


def process_chunk(texts: list[str], declared: str | None) -> Chunk:
    """Clean, key, identify, route and tokenise one chunk (runs in a worker)."""
    import numpy as np

    p: Pipeline = _STATE["pipeline"]
    n = len(texts)
    status = np.zeros(n, dtype=np.int8)
    lang = np.full(n, -1, dtype=np.int16)
    raw_bytes = len("\n".join(texts).encode("utf-8")) - max(n - 1, 0)  # one C call, not one per document
    cleaned, lengths = _clean_all(p, texts, status)
    keyed = np.flatnonzero(status == KEPT)
    kept_texts = [cleaned[i] for i in keyed]
    keys = filter_keys_many(kept_texts, p.dedupe_bits) if p.dedupe_bits else np.zeros((0, 3), dtype=np.int64)
    _route_all(p, kept_texts, keyed, declared, status, lang)
    routed = keyed[lang[keyed] >= 0]
    chunk = Chunk(status, lang, keyed.astype(np.int32), keys, routed.astype(np.int32),
                  lengths[routed].astype(np.int32), raw_bytes=raw_bytes, worker=threading.get_native_id())  # fmt: skip
    docs = [cleaned[i] for i in routed]
    if p.spm is None:
        chunk.texts = docs
    else:
        chunk.lengths, chunk.ids = _tokenise(_STATE["sp"], docs, p.sep_id)
    return chunk


def _clean_all(p: Pipeline, texts: list[str], status):
    """(the texts, cleaned as `Cleaning.clean` does, their lengths); `status` gets the reason of each dropped one.
    One string call per document, the bounds as array comparisons."""
    import numpy as np

    out = texts if p.cleaning is None else [clean_text(t) for t in texts]
    lengths = np.fromiter(map(len, out), dtype=np.int64, count=len(out))
    if p.cleaning is None:
        status[np.fromiter((not t or t.isspace() for t in out), dtype=bool, count=len(out))] = EMPTY
        return out, lengths
    status[lengths > p.cleaning.max_chars] = TOO_LONG
    status[lengths < p.cleaning.min_chars] = TOO_SHORT
    status[lengths == 0] = EMPTY
    return out, lengths


def _route_all(p: Pipeline, texts: list[str], keyed, declared: str | None, status, lang) -> None:
    """Each cleaned document's language (or the reason it has none), as `factory vocab` always routed. One
    language: its documents are as good as declared. A language the filter lets through (`unchecked`): its
    declared documents are kept as they are."""
    index = {code: i for i, code in enumerate(p.langs)}
    if declared is None and len(p.langs) == 1:
        declared = p.langs[0]
    if not p.langid or declared in p.unchecked:
        lang[keyed] = index[declared or p.langs[0]]
        return
    threshold = _STATE["threshold"]
    guesses = _STATE["lid"].identify_batch(texts)  # the texts of `keyed`, in order
    for i, guess in zip(keyed.tolist(), guesses, strict=True):
        codes = guess.codes  # e.g. ("zh_hans", "zh"): the text counts as each
        target = declared or next((code for code in codes if code in index), None)
        if not guess.lang:
            status[i] = NO_TEXT
        elif target not in codes:
            status[i] = OTHER_LANGUAGE
        elif guess.prob < threshold:
            status[i] = LOW_CONFIDENCE
        else:
            lang[i] = index[target]


def _tokenise(sp, docs: list[str], sep_id: int):
    """(lengths, flat ids): every document's ids followed by [SEP], one uint16 or uint32 array for the chunk. One thread
    per call (the callers are the parallel part); ids come back as buffers, not lists of ints, so little of
    the call holds the GIL, and one concatenate joins them."""
    import numpy as np

    if not docs:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint32)
    encoded = sp.encode(docs, num_threads=1, return_type="numpy")
    sep = np.array([sep_id], dtype=np.int32)
    lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded)) + 1
    flat = np.concatenate([part for ids in encoded for part in (ids, sep)])
    return lengths, flat.astype(np.uint16) if sp.get_piece_size() <= 1 << 16 else flat.view(np.uint32)


def tokenise_only(p: Pipeline) -> bool:
    """Nothing but SentencePiece to do: threads instead of processes (its encode runs without the GIL)."""
    return bool(p.spm) and p.cleaning is None and not p.langid and not p.dedupe_bits


# ---- the parent side ----------------------------------------------------------------------------
def chunks(docs: Iterable[str], max_docs: int = CHUNK_DOCS, max_chars: int = CHUNK_CHARS) -> Iterator[list[str]]:
    """Documents in chunks cut by count and characters only, so a chunk is the same in every run."""
    batch: list[str] = []
    size = 0
    for doc in docs:
        batch.append(doc)
        size += len(doc)
        if len(batch) >= max_docs or size >= max_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class Workers:
    """`process_chunk` over worker processes, answers in submission order, at most 4 x workers chunks in
    flight (memory stays flat however long the input; 4 so that a slow read does not idle the workers).
    One worker: in this process, no pool. Tokenising alone (the filters off): worker threads of this process,
    since SentencePiece encodes without the GIL and threads spare the text and ids their trips through pipes
    (60 MB on 2 cores: 4.1-4.7 s against 5.1-5.7 s with processes, 3.3-3.7 s for plain encode; bench/RESULTS.md)."""

    def __init__(self, pipeline: Pipeline, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.pool = None
        if self.workers == 1:
            start_worker(pipeline)
            return
        if tokenise_only(pipeline):
            from multiprocessing.pool import ThreadPool

            start_worker(pipeline)
            self.pool = ThreadPool(self.workers)
            return
        import multiprocessing as mp

        from factory.corpus.pool import start_pool

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        if pipeline.langid and ctx.get_start_method() == "fork":
            from factory.corpus.langid import filter_name, preload

            preload(filter_name(pipeline.langid), pipeline.langs)  # read once here; the forked workers share it
        self.pool = start_pool(self.workers, process_chunk, start_pool_worker, (pipeline,), ctx)

    def map(self, jobs: Iterable[tuple[object, list[str], str | None]]) -> Iterator[tuple[object, Chunk]]:
        """(key, texts, declared language) -> (key, Chunk), in order."""
        if self.pool is None:
            for key, texts, declared in jobs:
                yield key, process_chunk(texts, declared)
            return
        pending: collections.deque = collections.deque()  # (key, the call that waits for its answer)
        for key, texts, declared in jobs:
            pending.append((key, self._submit(texts, declared)))
            if len(pending) >= 4 * self.workers:
                key, answer = pending.popleft()
                yield key, answer()
        while pending:
            key, answer = pending.popleft()
            yield key, answer()

    def _submit(self, texts: list[str], declared: str | None):
        if hasattr(self.pool, "apply_async"):  # the threads
            return self.pool.apply_async(process_chunk, (texts, declared)).get
        return functools.partial(self.pool.answer, self.pool.submit((texts, declared)))

    def close(self) -> None:
        if self.pool is not None:
            if hasattr(self.pool, "apply_async"):  # the threads
                self.pool.terminate()
                self.pool.join()
            else:
                self.pool.close()
            self.pool = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- counting -----------------------------------------------------------------------------------
@dataclass
class CorpusStats:
    """Documents seen / kept / dropped (by reason), per language."""

    read: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    kept: Counter = field(default_factory=Counter)  # lang -> count
    chars: Counter = field(default_factory=Counter)  # lang -> characters kept

    def add(self, chunk: Chunk, langs: tuple[str, ...]) -> None:
        """Count a chunk whose duplicates are already marked."""
        import numpy as np

        self.read += len(chunk.status)
        for code, count in enumerate(np.bincount(chunk.status, minlength=len(REASONS))):
            if code != KEPT and count:
                self.dropped[REASONS[code]] += int(count)
        kept = chunk.kept()
        per_lang = chunk.lang[chunk.routed][kept]
        for i, count in enumerate(np.bincount(per_lang, minlength=len(langs))):
            if count:
                self.kept[langs[i]] += int(count)
        for i, chars in enumerate(np.bincount(per_lang, weights=chunk.chars[kept], minlength=len(langs))):
            if chars:
                self.chars[langs[i]] += int(chars)

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "kept": sum(self.kept.values()),
            "kept_per_language": dict(sorted(self.kept.items())),
            "chars_per_language": dict(sorted(self.chars.items())),
            "dropped": dict(sorted(self.dropped.items())),
        }

    @classmethod
    def from_dict(cls, data: dict) -> CorpusStats:
        return cls(data["read"], Counter(data["dropped"]), Counter(data["kept_per_language"]),
                   Counter(data["chars_per_language"]))  # fmt: skip


HINTS = {
    "too_short": "lower --min-chars",
    "too_long": "raise --max-chars",
    "duplicate": "the corpus repeats one text; give more varied text",
    "langid_other_language": "check --lang/--langs against the text, or pass --no-langid",
    "langid_low_confidence": "lower --langid-threshold",
    "langid_no_text": "the text has no letters the language filter can use; pass --no-langid",
    "empty": "the documents are blank",
}


def nothing_kept(stats: CorpusStats) -> str:
    """The message for a corpus whose every document was dropped: the main reason and what to change."""
    worst = max(stats.dropped, key=stats.dropped.__getitem__)
    return (
        f"every document was filtered out ({stats.read} read; most by '{worst}': "
        f"{', '.join(f'{k} {v}' for k, v in sorted(stats.dropped.items()))}); {HINTS.get(worst, '')}".rstrip("; ")
    )
