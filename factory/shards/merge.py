"""`factory shards --merge DIR... --out DIR`: the folders of one build's `--task I/N` parts as one shard set.

Tasks cover contiguous runs of units (plan.task_span) and rows never span units, so each language's rows
in task order are the rows a one-process build writes; a language with a budget is cut where that build
would have stopped (each task stopped at the whole budget on its own). Files are hard-linked (copied across
file systems), renumbered per language; only a file that a budget cuts is rewritten.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from factory.core.errors import ShardError
from factory.core.manifest import read_manifest, write_manifest
from factory.core.options import to_json
from factory.core.outputs import staged_output
from factory.shards.manifest import LanguageFigures, ShardFile, ShardsManifest
from factory.shards.pack import BATCH_ROWS, COLUMN, cut_document, document_ends, rows_batch, shard_name


def manifest_figures(manifest: ShardsManifest) -> dict:
    """What a finished build (or merge) returns, from its manifest."""
    return {
        "documents": manifest.documents,
        "sequences": manifest.sequences,
        "tokens": manifest.tokens,
        "padding": manifest.padding,
        "shards": [asdict(s) for s in manifest.shards],
        "per_language": {k: asdict(v) for k, v in manifest.per_language.items()},
    }

def _tasks(folders: list[Path]) -> list[tuple[Path, ShardsManifest]]:
    """The task folders in task order, checked to be all the parts of one build."""
    parts = [(Path(f), read_manifest(f, ShardsManifest)) for f in folders]
    for folder, manifest in parts:
        if manifest.task is None:
            raise ShardError(f"--merge {folder}: a whole shard set, not a --task part; give the task folders")
    builds = {m.task.build for _, m in parts}
    counts = {m.task.count for _, m in parts}
    if len(builds) > 1 or len(counts) > 1:
        raise ShardError("--merge: the folders come from different builds (settings, vocabulary or inputs differ)")
    count = counts.pop()
    indices = Counter(m.task.index for _, m in parts)
    missing = [str(i) for i in range(1, count + 1) if i not in indices]
    twice = [str(i) for i, n in indices.items() if n > 1]
    if missing or twice:
        what = (f"task(s) {', '.join(missing)} of {count} missing" if missing else "") + (
            f"{'; ' if missing else ''}task(s) {', '.join(twice)} given twice" if twice else "")  # fmt: skip
        raise ShardError(f"--merge: {what}; give every part of the build once")
    return sorted(parts, key=lambda p: p[1].task.index)


def merge_shards(config) -> dict:
    """Join the task folders into config.out, with one manifest; returns the figures."""
    parts = _tasks(list(config.merge))
    first = parts[0][1]
    langs = sorted({lang for _, m in parts for lang in m.per_language})
    with staged_output(Path(config.out), config.force) as tmp:
        shards, per_language, start = [], {}, 0
        for lang in langs:
            files, figures = _merge_language(lang, parts, tmp, first.seq_len)
            figures.rows = [start, start + sum(f.sequences for f in files)]
            start = figures.rows[1]
            shards += files
            per_language[lang] = figures
        counts = _sum_counts([m.counts for _, m in parts])
        manifest = ShardsManifest(
            arguments={**to_json(config), "tasks": [p[1].arguments for p in parts][:1]},
            vocab_fingerprint=first.vocab_fingerprint, vocab_pieces=first.vocab_pieces,
            mask_token_id=first.mask_token_id, seq_len=first.seq_len,
            documents=sum(f.documents for f in per_language.values()), sequences=start,
            tokens=sum(f.tokens for f in per_language.values()),
            padding=start * first.seq_len - sum(f.tokens for f in per_language.values()), shards=shards,
            corpus=first.corpus, per_language=per_language, alpha=first.alpha, counts=counts, build=first.task.build,
        )  # fmt: skip
        write_manifest(tmp, manifest)
    return manifest_figures(manifest)


def _merge_language(lang: str, parts, out: Path, seq_len: int) -> tuple[list[ShardFile], LanguageFigures]:
    """One language's files of every task, in order, up to its budget."""
    budget = next((m.per_language[lang].budget for _, m in parts if lang in m.per_language), None)
    files: list[ShardFile] = []
    documents = tokens = corpus = 0
    estimated = False
    source_bytes: int | None = 0
    for folder, manifest in parts:
        figures = manifest.per_language.get(lang)
        if figures is None:
            continue
        corpus += figures.corpus_tokens
        estimated = estimated or figures.corpus_tokens_estimated
        source_bytes = None if None in (source_bytes, figures.source_bytes) else source_bytes + figures.source_bytes
        mine = [s for s in manifest.shards if s.language == lang]
        if budget is None or tokens + figures.tokens <= budget:  # all of it: what one build stores here too
            for shard in mine:
                target = out / shard_name(lang, len(files))
                _link(folder / shard.file, target)
                files.append(ShardFile(target.name, shard.sequences, lang))
            documents, tokens = documents + figures.documents, tokens + figures.tokens
            continue
        for shard in mine:  # the budget ends inside this task's rows
            if tokens >= budget:
                break
            target = out / shard_name(lang, len(files))
            kept, t, d = _cut(folder / shard.file, target, seq_len, budget - tokens)
            files.append(ShardFile(target.name, kept, lang))
            tokens, documents = tokens + t, documents + d
    return files, LanguageFigures(documents, tokens, corpus, estimated, [0, 0], budget, source_bytes)


def _cut(source: Path, target: Path, seq_len: int, need: int) -> tuple[int, int, int]:
    """Copy the rows of `source` up to the one that reaches `need` tokens: (rows, tokens, documents)."""
    import numpy as np
    import pyarrow as pa

    table = pa.ipc.open_file(pa.memory_map(str(source))).read_all()
    rows = np.concatenate([c.values.to_numpy(zero_copy_only=False).reshape(-1, seq_len)
                           for c in table.column(COLUMN).chunks])  # fmt: skip
    cumulative = np.cumsum((rows != 0).sum(axis=1))
    if cumulative[-1] >= need:
        rows = rows[: int(np.searchsorted(cumulative, need)) + 1]
    schema = pa.schema([(COLUMN, pa.list_(pa.uint32(), seq_len))])
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for start in range(0, len(rows), BATCH_ROWS):
            writer.write_batch(rows_batch(rows[start : start + BATCH_ROWS], schema))
    documents = document_ends(rows) + int(cut_document(rows) and cumulative[-1] >= need)
    return len(rows), int((rows != 0).sum()), documents


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system: copy
        shutil.copy2(source, target)


def _sum_counts(counts: list[dict]) -> dict:
    total: dict = {}
    for c in counts:
        for key, value in c.items():
            if isinstance(value, dict):
                inner = total.setdefault(key, {})
                for k, v in value.items():
                    inner[k] = inner.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    return total
