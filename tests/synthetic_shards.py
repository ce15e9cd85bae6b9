"""Synthetic shards for tests and benchmarks: real `ShardSet` files (and manifest) of random pieces, so the host
side of pre-training can be exercised at any size without tokenising a corpus. Used by tests/test_batches.py,
tests/test_mixing.py and bench/speed/input.py (`from tests.synthetic_shards import write_shards` there; tests
import it as `synthetic_shards`, like conftest's helpers)."""

from __future__ import annotations

from pathlib import Path


def write_shards(
    folder: Path,
    rows: int | dict[str, int],
    seq_len: int,
    pieces: int,
    seed: int = 0,
    corpus_tokens: dict[str, int] | None = None,
    vocab: Path | None = None,
) -> Path:
    """Synthetic sequences ([CLS] random pieces [SEP]) as a shard folder `ShardSet` reads: `rows` of language
    "und", or {LANG: rows} stored per language as `factory shards` stores them (languages sorted).

    `corpus_tokens`: what per_language records as each language's corpus (default: what it stores), so the
    language mix can be tested at corpus sizes no test could tokenise. `vocab`: a vocabulary folder whose
    spm.model fingerprint the manifest records, so `factory pretrain --vocab` it accepts the shards (the ids
    stay random, below `pieces`); without it the fingerprint is "synthetic", which only readers accept."""
    import numpy as np

    from factory.core.manifest import write_manifest
    from factory.core.outputs import fingerprint_file
    from factory.model.tokenizer import SPM_FILE
    from factory.shards.manifest import LanguageFigures, ShardFile, ShardsManifest
    from factory.shards.pack import ShardWriter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = rows if isinstance(rows, dict) else {"und": rows}
    shards, per_language, start = [], {}, 0
    for lang in sorted(counts):
        writer = ShardWriter(folder, lang, seq_len, 1 << 20)
        for first in range(0, counts[lang], 4096):
            block = rng.integers(4, pieces, size=(min(4096, counts[lang] - first), seq_len), dtype=np.uint32)
            block[:, 0], block[:, -1] = 1, 2
            writer.write(block)
        writer.close()
        shards += [ShardFile(**f, language=lang) for f in writer.files]
        n = counts[lang]
        corpus = (corpus_tokens or {}).get(lang, n * seq_len)
        per_language[lang] = LanguageFigures(documents=n, tokens=n * seq_len, corpus_tokens=corpus,
                                             corpus_tokens_estimated=False, rows=[start, start + n])  # fmt: skip
        start += n
    fingerprint = fingerprint_file(Path(vocab) / SPM_FILE) if vocab is not None else "synthetic"
    manifest = ShardsManifest(
        arguments={"schema": 1, "synthetic": True, "seq_len": seq_len}, vocab_fingerprint=fingerprint,
        vocab_pieces=pieces, mask_token_id=pieces, seq_len=seq_len, documents=start, sequences=start,
        tokens=start * seq_len, padding=0, shards=shards, corpus=["synthetic"], per_language=per_language,
    )  # fmt: skip
    write_manifest(folder, manifest)
    return folder
