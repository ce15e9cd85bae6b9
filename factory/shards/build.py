"""The shard build: units in order through the shared corpus pipeline into one packer and writer per language,
with checkpoints that let a killed build continue where it stopped and write the same bytes.

The parent reads documents and hands chunks to worker processes (factory/corpus/pipeline.py), which clean,
filter and tokenise; it keeps the order-dependent parts: the duplicate filter, the counters, packing and
writing. Whether a chunk counts is decided when it is consumed, in order, never by how far ahead the reader
ran, so the shards depend on the data and the settings alone.

State lives in a work folder beside --out (plan.work_folder) until the end, when it is renamed into place:
`plan.json` (the fingerprint and the budgets), `state.npz` (the checkpoint: position, writers, packers,
counters, the duplicate filter), the shard files and at most one `.partial` file per language.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from factory.corpus import Chunk, CorpusStats, SeenFilter, Source
from factory.shards.pack import Packer, ShardWriter, cut_document
from factory.shards.plan import SourceCount

log = logging.getLogger("factory.shards")
STATE = "state.npz"
END = -1  # the chunk index of a unit's end marker


def checkpoint_seconds() -> float:
    """Seconds between checkpoints (FACTORY_SHARDS_CHECKPOINT_S; tests use 0: after every chunk)."""
    return float(os.environ.get("FACTORY_SHARDS_CHECKPOINT_S", "30"))


@dataclass
class Language:
    """One language's packer, writer and budget."""

    packer: Packer
    writer: ShardWriter
    budget: int | None
    done: bool = False

    def add(self, flat, documents: int) -> None:
        self.store(self.packer.add_flat(flat, documents))

    def end_unit(self) -> None:
        """A unit ended: its last row, padded (rows never span units, so tasks can split between them)."""
        if not self.done:
            self.store(self.packer.finish())

    def store(self, rows) -> None:
        """Write rows up to the budget; the row that reaches it is the last."""
        import numpy as np

        if self.done or not len(rows):
            return
        if self.budget is not None:
            need = self.budget - self.writer.tokens
            cumulative = np.cumsum((rows != self.packer.pad_id).sum(axis=1))
            if cumulative[-1] >= need:
                rows = rows[: int(np.searchsorted(cumulative, need)) + 1]
                self.done = True
                self.packer.leftover = self.packer.leftover[:0]
        self.writer.write(rows)
        if self.done and cut_document(rows, self.packer.sep_id, self.packer.pad_id):
            self.writer.documents += 1


@dataclass
class BuildState:
    """Everything a checkpoint holds besides the writers' files."""

    unit: int  # the unit being read
    chunks: int = 0  # chunks of it consumed
    stats: CorpusStats = field(default_factory=CorpusStats)
    counts: list[SourceCount] = field(default_factory=list)


class ShardBuild:
    """One build (or one task of it) into `work`, resumable."""

    def __init__(self, work: Path, plan, langs: list[str], seq_len: int, rows_per_shard: int, dedupe_bits: int):
        self.work, self.plan = work, plan
        self.order = sorted(langs)  # storage order; the pipeline's routing order is `langs`
        self.langs = list(langs)
        self.languages = {
            lang: Language(Packer(seq_len), ShardWriter(work, lang, seq_len, rows_per_shard), plan.budgets.get(lang))
            for lang in self.order
        }
        self.seen = SeenFilter(dedupe_bits) if dedupe_bits else None
        self.state = BuildState(plan.span[0], counts=[SourceCount(size, complete=True) for size in plan.source_sizes])
        self._last_checkpoint = time.monotonic()

    # ---- the loop -------------------------------------------------------------------------------------
    def run(self, workers, text_field: str) -> None:
        """Read every unit of the plan's span from the checkpoint on; write rows as they come."""
        from factory.core.progress import progress

        first, stop = self.plan.span
        bar = progress(total=stop - first, desc="shards (units)", initial=self.state.unit - first)
        try:
            self._loop(workers, text_field, bar)
        finally:
            bar.close()

    def _loop(self, workers, text_field: str, bar) -> None:
        for (u, c), chunk in workers.map(self._jobs(text_field)):
            unit = self.plan.units[u]
            source = self.plan.sources[unit.source]
            feeds = [self.languages[lang] for lang in self.plan.feeds[unit.source]]
            if all(lang.done for lang in feeds):
                self.state.counts[unit.source].complete = False
            elif c == END:
                for lang in feeds:
                    lang.end_unit()
            else:
                self._consume(chunk, unit.source, source)
            self.state.unit, self.state.chunks = (u + 1, 0) if c == END else (u, c + 1)
            if c == END:
                bar.update(1)
                bar.set_postfix_str(f"{sum(ln.writer.tokens for ln in self.languages.values()):,} tokens")
            if time.monotonic() - self._last_checkpoint >= checkpoint_seconds():
                self.checkpoint()

    def _jobs(self, text_field: str):
        """(unit, chunk) keys with their documents, from the checkpoint's position; a unit whose languages
        are all done is not read further (the consumer decides what counts, in order)."""
        from factory.corpus import chunks, read_unit

        skip = self.state.chunks
        for u in range(self.state.unit, self.plan.span[1]):
            unit = self.plan.units[u]
            source: Source = self.plan.sources[unit.source]
            feeds = [self.languages[lang] for lang in self.plan.feeds[unit.source]]
            if not all(lang.done for lang in feeds):
                for c, texts in enumerate(chunks(read_unit(source, unit, text_field))):
                    if all(lang.done for lang in feeds):
                        break
                    if c >= skip:
                        yield (u, c), texts, source.lang
            skip = 0
            yield (u, END), [], source.lang

    def _consume(self, chunk: Chunk, index: int, source: Source) -> None:
        """Duplicates out, counters in, each language's documents to its packer."""
        import numpy as np

        chunk.drop_duplicates(self.seen)
        self.state.stats.add(chunk, tuple(self.langs))
        count = self.state.counts[index]
        count.bytes_read += chunk.raw_bytes
        kept = chunk.kept()
        doc_lang = chunk.lang[chunk.routed]
        token_mask = np.repeat(kept, chunk.lengths)
        token_lang = np.repeat(doc_lang, chunk.lengths)
        per_lang = np.bincount(doc_lang[kept], minlength=len(self.langs))  # kept documents per language
        for i in np.flatnonzero(per_lang):
            lang = self.langs[i]
            mine = token_mask & (token_lang == i)
            count.tokens[lang] += int(mine.sum())
            documents = int(per_lang[i])
            flat = chunk.ids if documents == len(doc_lang) else chunk.ids[mine]
            self.languages[lang].add(flat, documents)

    # ---- checkpoints ----------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Write state.npz atomically: after it, a killed build resumes from here."""
        import numpy as np

        state = {
            "unit": self.state.unit,
            "chunks": self.state.chunks,
            "stats": self.state.stats.as_dict(),
            "counts": [[c.bytes_read, dict(c.tokens), c.complete] for c in self.state.counts],
            "languages": {lang: {**ln.writer.state(), "done": ln.done} for lang, ln in self.languages.items()},
        }
        arrays = {"state": np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)}
        for i, lang in enumerate(self.order):
            arrays[f"pending{i}"] = self.languages[lang].writer.pending
            arrays[f"leftover{i}"] = self.languages[lang].packer.leftover
        if self.seen is not None:  # sparse while nearly empty (small builds, every test), else the 32 MiB as is:
            array = self.seen.array  # the offsets cost 12 bytes a set byte to make, so only while that is small
            if np.count_nonzero(array) * 48 > len(array):
                arrays["seen"] = array
            else:
                where = np.flatnonzero(array)
                arrays.update(seen_at=where, seen_bits=array[where])
        tmp = self.work / (STATE + ".tmp")
        with open(tmp, "wb") as f:  # straight to the file: a buffer and its copy were 2x the filter's 32 MiB
            np.savez(f, **arrays)
        os.replace(tmp, self.work / STATE)
        self._last_checkpoint = time.monotonic()

    def restore(self) -> bool:
        """Continue from state.npz if there is one (True), else start clean (False)."""
        import numpy as np

        path = self.work / STATE
        if not path.is_file():
            for stale in self.work.glob("shard-*"):
                stale.unlink()
            return False
        with np.load(path) as data:
            state = json.loads(data["state"].tobytes())
            for i, lang in enumerate(self.order):
                ln, saved = self.languages[lang], state["languages"][lang]
                ln.writer.restore(saved, data[f"pending{i}"])
                ln.packer.leftover, ln.done = data[f"leftover{i}"], saved["done"]
            if self.seen is not None and "seen" in data:
                self.seen.array[:] = data["seen"]
            elif self.seen is not None:
                self.seen.array[data["seen_at"]] = data["seen_bits"]
        self.state.unit, self.state.chunks = state["unit"], state["chunks"]
        self.state.stats = CorpusStats.from_dict(state["stats"])
        for count, (read, tokens, complete) in zip(self.state.counts, state["counts"], strict=True):
            count.bytes_read, count.complete = read, complete
            count.tokens.update(tokens)
        log.info("resuming the shard build in %s at unit %d, chunk %d", self.work, self.state.unit, self.state.chunks)
        return True

    def close(self) -> None:
        for ln in self.languages.values():
            ln.writer.close()
        (self.work / STATE).unlink(missing_ok=True)

    def abandon(self) -> None:
        for ln in self.languages.values():
            ln.writer.abandon()


def saved_plan(work: Path, fingerprint: str) -> dict | None:
    """The plan an unfinished build of this very fingerprint left in `work` (None: none to resume)."""
    marker = work / "plan.json"
    if not marker.is_file():
        return None
    saved = json.loads(marker.read_text())
    if saved.get("fingerprint") == fingerprint:
        return saved
    log.info("%s was left by a build with other settings or inputs: starting over", work)
    return None


def open_work(work: Path, saved: dict | None, marker: dict) -> None:
    """Keep the work folder of the build being resumed; else start a clean one with this plan."""
    if saved is not None:
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "plan.json").write_text(json.dumps(marker, indent=1) + "\n")
