"""The vocabulary report: how a vocabulary cuts each language's text (fertility, [UNK] rate, coverage).

`factory vocab` writes one for the vocabulary it built (vocab_report.{json,md}); `factory vocab report`
puts several vocabularies side by side on the same texts, to choose between them.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from factory.core.errors import FactoryError
from factory.core.markdown import markdown_table


@dataclass
class LanguageReport:
    """How a vocabulary cuts one language's text."""

    documents: int
    words: int
    pieces: int
    char_coverage: float  # share of (non-space) characters that are in some piece: read this first
    fertility: float  # pieces per whitespace-separated word, each [UNK] counted as the characters it stands for
    continued_words: float  # share of words cut into 2+ pieces
    unk_rate: float  # share of pieces that are [UNK]
    bytes_per_token: float  # UTF-8 bytes of text per piece


def segmentation_figures(folder: Path, texts_by_lang: dict[str, list[str]]) -> dict[str, dict]:
    """Per-language figures of the vocabulary in `folder` on the given texts (plus `all`)."""
    from factory.model.tokenizer import load_spm

    sp = load_spm(Path(folder) / "spm.model")
    chars_in_vocab = {ch for i in range(sp.get_piece_size()) for ch in sp.id_to_piece(i)}
    unk, space = sp.unk_id(), sp.piece_to_id("▁")
    out, totals = {}, Counter()
    for lang, texts in texts_by_lang.items():
        c = Counter()
        for text in texts:
            words = text.split()
            c["documents"] += 1
            c["words"] += len(words)
            c["bytes"] += len(text.encode("utf-8"))
            for word, ids in zip(words, sp.encode(words), strict=True):
                # one [UNK] hides n characters: an unknown span comes back as its own text from the string encode,
                # needed only for the rare word that has one
                hidden = []
                if unk in ids:
                    cut = sp.encode(word, out_type=str)
                    hidden = [len(piece) for piece, i in zip(cut, ids, strict=True) if i == unk]
                c["pieces"] += len(ids)
                c["counted"] += len(ids) - len(hidden) + sum(hidden)
                c["continued"] += len(ids) > 1 + (ids[:1] == [space])
                c["unk"] += len(hidden)
            letters = [ch for ch in unicodedata.normalize("NFC", text) if not ch.isspace()]
            c["chars"] += len(letters)
            c["covered"] += sum(ch in chars_in_vocab for ch in letters)
        totals.update(c)
        out[lang] = asdict(_figures(c))
    out["all"] = asdict(_figures(totals))
    return out


def _figures(c: Counter) -> LanguageReport:
    def ratio(a: str, b: str) -> float:
        return round(c[a] / c[b], 4) if c[b] else 0.0

    return LanguageReport(
        documents=c["documents"],
        words=c["words"],
        pieces=c["pieces"],
        char_coverage=ratio("covered", "chars"),
        fertility=ratio("counted", "words"),
        continued_words=ratio("continued", "words"),
        unk_rate=ratio("unk", "pieces"),
        bytes_per_token=ratio("bytes", "pieces"),
    )


# coverage first: a vocabulary that lacks a script cuts its text into few [UNK]s, which looks like low
# fertility; counting each [UNK] as the characters it hides keeps fertility honest too
FIGURES = ["char_coverage", "fertility", "continued_words", "unk_rate", "bytes_per_token"]


def report_markdown(title: str, reports: dict[str, dict[str, dict]], corpus: dict | None = None) -> str:
    """A table per figure: one row per language, one column per vocabulary (side by side)."""
    names = list(reports)
    langs = list(next(iter(reports.values())))
    lines = [f"# {title}", ""]
    lines.append("coverage = share of characters found in the vocabulary; fertility = pieces per word, each [UNK]")
    lines.append("counted as the characters it stands for; continued = share of words cut in 2+ pieces; unk = share")
    lines.append("of pieces that are [UNK].")
    lines.append("")
    for figure in FIGURES:
        rows = [[lang, *(f"{reports[n].get(lang, {}).get(figure, float('nan')):.4f}" for n in names)] for lang in langs]
        lines += [f"## {figure}", "", *markdown_table(["language", *names], rows), ""]
    if corpus:
        rows = [["read", corpus["read"]], *([f"kept {k}", v] for k, v in corpus["kept_per_language"].items()),
                *([f"dropped: {k}", v] for k, v in corpus["dropped"].items())]  # fmt: skip
        lines += ["## documents", "", *markdown_table(["", "count"], rows), ""]
    return "\n".join(lines)


def report_texts(work: Path, kept: Counter, limit: int) -> dict[str, list[str]]:
    spool = next(work.glob("spool-*"))
    texts = {}
    for lang in sorted(kept):
        with open(spool / f"{lang}.txt", encoding="utf-8") as f:
            texts[lang] = [line.rstrip("\n") for line in itertools.islice(f, limit)]
    return texts


def read_texts(sources: list[str], text_field: str = "text", limit: int = 2000) -> dict[str, list[str]]:
    """Texts for `factory vocab report`: `lang=PATH` groups by language, a bare PATH goes to `all`."""
    from factory import corpus as C

    cleaning = C.Cleaning(min_chars=1)
    out: dict[str, list[str]] = {}
    for value in sources:
        source = C.Source.parse(value)
        bucket = out.setdefault(source.lang or "text", [])
        for raw in C.read_source(source, text_field):
            text, _ = cleaning.clean(raw)
            if text:
                bucket.append(text)
            if len(bucket) >= limit:
                break
    if not any(out.values()):
        raise FactoryError("the corpus is empty: no text to evaluate the vocabulary on")
    return out
