"""The ladder's data, prepared once under OUT/data and reused by every cell: the pre-training text with the
held-out paragraphs removed, the evaluation subsets, one vocabulary and one set of shards.

Input: the folder `python3 ../shared/data/real_text.py DATA` writes (DATA/<lang>.txt paragraphs,
DATA/aligned/<lang>.txt line-aligned paragraphs, DATA/topic/<lang>.jsonl {"text","label","language"}).
Every aligned paragraph (the topic items are a subset of them) is removed from that language's pre-training
text, so neither the retrieval nor the classification test has been seen in pre-training, nor by the
vocabulary. Each step writes its folder only when it is missing: a killed ladder reuses what is done.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
ALIGNED_LANGS = ("en", "de", "es", "fr", "it", "ja", "pt", "ru", "zh")  # real_text.py's ALIGNED + en
PIVOT = "en"


@dataclass(frozen=True)
class Prepared:
    """What every cell reads."""

    vocab: Path  # a `factory vocab` folder
    shards: Path  # `factory shards` of the pre-training text
    aligned: Path  # retrieval data: <lang>.txt, line-aligned
    topic_train: Path  # English topic items (fine-tuning)
    topic_test: Path  # the other languages' items, one file with a `language` column (zero-shot)
    held_out: int  # paragraphs removed from the pre-training text, summed over languages


def check_source(data: Path, langs: tuple[str, ...]) -> None:
    """Every file the ladder reads, before anything is built (a user mistake is one line)."""
    from factory.core.errors import FactoryError

    missing = [
        str(p)
        for lang in langs
        for p in (data / f"{lang}.txt", data / "aligned" / f"{lang}.txt", data / "topic" / f"{lang}.jsonl")
        if not p.is_file()
    ]
    if missing:
        raise FactoryError(
            f"--data {data} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; write it with "
            "`python3 ../shared/data/real_text.py DATA`"
        )
    if PIVOT not in langs:
        raise FactoryError(f"--langs must include the pivot {PIVOT} (fine-tuning and retrieval are anchored on it)")


def held_out_text(data: Path, out: Path, langs: tuple[str, ...]) -> int:
    """OUT/pretrain/<lang>.txt: DATA/<lang>.txt minus every aligned paragraph of that language."""
    out.mkdir(parents=True, exist_ok=True)
    removed = 0
    for lang in langs:
        held = set(_lines(data / "aligned" / f"{lang}.txt"))
        held |= {json.loads(line)["text"] for line in _lines(data / "topic" / f"{lang}.jsonl")}
        lines = _lines(data / f"{lang}.txt")
        kept = [line for line in lines if line not in held]
        removed += len(lines) - len(kept)
        (out / f"{lang}.txt").write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return removed


def eval_subsets(data: Path, out: Path, langs: tuple[str, ...], retrieval_items: int, topic_items: int) -> None:
    """OUT/aligned/<lang>.txt (the first N aligned lines: the same items in every language) and the topic
    files: train = English, test = every other language (the first M items of each, the same items)."""
    aligned = out / "aligned"
    aligned.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        lines = _lines(data / "aligned" / f"{lang}.txt")[:retrieval_items]
        (aligned / f"{lang}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    topic = {lang: _lines(data / "topic" / f"{lang}.jsonl")[:topic_items] for lang in langs}
    (out / "topic-train.jsonl").write_text("".join(line + "\n" for line in topic[PIVOT]), encoding="utf-8")
    test = [line for lang in langs if lang != PIVOT for line in topic[lang]]
    (out / "topic-test.jsonl").write_text("".join(line + "\n" for line in test), encoding="utf-8")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_vocab(text: Path, out: Path, langs: tuple[str, ...], size: str) -> None:
    """One SentencePiece vocabulary for the whole ladder, over the pre-training text only. The language filter
    is off: each file is one known translation, and the filter would only drop short technical lines."""
    from factory.vocab.config import VocabConfig
    from factory.vocab.train import build

    corpus = [f"{lang}={text / f'{lang}.txt'}" for lang in langs]
    build(VocabConfig(corpus=corpus, langs=list(langs), size=size, langid=False, out=out))


def build_token_shards(vocab: Path, text: Path, out: Path, seq_len: int) -> None:
    """One set of shards: every arm of every cell reads the same rows in the same order (BatchOrder(seed))."""
    from factory.shards.config import ShardsConfig
    from factory.shards.run import build_shards

    build_shards(ShardsConfig(vocab=vocab, corpus=[str(text)], seq_len=seq_len, out=out))


def prepare(data: Path, out: Path, langs: tuple[str, ...], vocab_size: str, seq_len: int,
            retrieval_items: int, topic_items: int) -> Prepared:  # fmt: skip
    """Build (or reuse) everything under OUT/data. The eval subsets are rewritten every time (cheap), so
    changing --retrieval-items changes them; the vocabulary and shards are kept once built."""
    check_source(data, langs)
    root = out / "data"
    held = held_out_text(data, root / "pretrain", langs)
    eval_subsets(data, root, langs, retrieval_items, topic_items)
    key = f"{vocab_size}-{'-'.join(langs)}"  # another --langs or --vocab-size: another vocabulary
    vocab, shards = root / f"vocab-{key}", root / f"shards-{key}-{seq_len}"
    if not (vocab / "spm.model").is_file():
        log.info("vocabulary %s over %s", vocab_size, ", ".join(langs))
        build_vocab(root / "pretrain", vocab, langs, vocab_size)
    if not (shards / "factory.json").is_file():
        log.info("shards, %d tokens per row", seq_len)
        build_token_shards(vocab, root / "pretrain", shards, seq_len)
    return Prepared(vocab, shards, root / "aligned", root / "topic-train.jsonl", root / "topic-test.jsonl", held)
