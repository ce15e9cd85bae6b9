"""`factory trim`: a multilingual model cut down to the pieces its languages use.

1. Read each language's corpus and count how often the model's own tokenizer uses each piece.
2. Keep, in their original order: the pieces always needed (control and unknown pieces, byte pieces,
   user-defined pieces, "▁", the single characters of the languages' scripts and of no script, the lowest-
   and highest-scoring pieces), then the used pieces: all those used `--min-count` times, or the most used
   ones up to `--size`.
3. Rewrite spm.model without the other pieces (factory/vocab/spm_file.py: every kept byte as it was) and slice every
   per-vocabulary tensor of every network with one index: the kept ids, then [MASK] (last, as always) and the
   spare rows after it (factory/derive/networks.py).

Why a text whose pieces are all kept is cut exactly as before (so its ids map one to one and the hidden states
are identical): SentencePiece's unigram model takes the highest-scoring path through the lattice of pieces
that match the text (Viterbi). Removing pieces only removes paths; the old best path is still there, with the
same score, and every remaining path scored as before, so it still wins. Two details make "the same score"
exact: an unknown character scores min(score) - 10 and a user-defined piece len x max(score) - 0.1, min and max
over the normal pieces, so the pieces with those two scores are kept; and a character with no piece left
becomes [UNK], scoring below the piece it replaced, so no new path can win. The single characters are kept
so that a text in the languages' scripts gets no new [UNK].
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from factory.core.errors import FactoryError
from factory.derive.config import TrimConfig
from factory.derive.manifest import TrimLanguage, TrimManifest
from factory.model.config import ModelConfig
from factory.vocab.spm_file import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED, Piece

if TYPE_CHECKING:
    from factory.derive.common import Derived

log = logging.getLogger(__name__)

SCRIPT_SHARE = 0.005  # a script whose letters are at least 0.5% of the corpus' letters is one of its scripts
REPORT_DOCS = 2000  # documents per language on which the report cuts words with both tokenizers
BATCH = 1000  # documents per sentencepiece call
LANGID_DOCS = 1000  # documents of each --corpus source the language check reads (its first ones)
LANGUAGE_SHARE = 0.5  # the share of them that must be in the source's language


# ---- scripts ------------------------------------------------------------------------------------
def script_of(ch: str) -> str | None:
    """The script of a letter or a script-specific mark, from its Unicode name ("LATIN SMALL LETTER A" ->
    LATIN, "CJK UNIFIED IDEOGRAPH-4E00" -> CJK); None for a character of no script (digits, punctuation,
    symbols, spaces, combining accents shared by scripts), which trimming always keeps."""
    category = unicodedata.category(ch)
    if category[0] not in "LM":
        return None
    name = unicodedata.name(ch, "")
    if not name or name.startswith("COMBINING"):
        return None
    return name.split()[0]


def language_scripts(pieces: list[Piece], counts: np.ndarray) -> dict[str, float]:
    """Each script's share of the letters in the corpus, read off the pieces the tokenizer used (a piece's
    letters times its count), so no character loop over the corpus is needed."""
    letters: Counter = Counter()
    for i in np.flatnonzero(counts):
        for ch in pieces[i].piece:
            script = script_of(ch)
            if script is not None:
                letters[script] += int(counts[i])
    total = sum(letters.values()) or 1
    return {s: n / total for s, n in letters.most_common()}


# ---- which pieces -------------------------------------------------------------------------------
@dataclass
class Selection:
    ids: list[int]  # kept piece ids, ascending
    always: int  # how many of them are kept whatever the corpus says
    used: int  # pieces the corpus uses that are not among those
    scripts: list[str]  # the languages' scripts


def always_kept(pieces: list[Piece], scripts: set[str]) -> set[int]:
    """Ids kept whatever the corpus: every piece that is not a normal one (control, unknown, byte,
    user-defined), "▁", the single characters of `scripts` and of no script, and the normal pieces with the
    lowest and highest scores (they set the scores of unknown characters and user-defined pieces)."""
    keep = {i for i, p in enumerate(pieces) if p.type in (CONTROL, UNKNOWN, BYTE, USER_DEFINED)}
    normal = [i for i, p in enumerate(pieces) if p.type == NORMAL]
    if normal:
        keep |= {min(normal, key=lambda i: pieces[i].score), max(normal, key=lambda i: pieces[i].score)}
    for i in normal:
        text = pieces[i].piece
        if text == "▁" or (len(text) == 1 and script_of(text) in scripts | {None}):
            keep.add(i)
    return keep


def select_pieces(pieces: list[Piece], counts: np.ndarray, size: int | None, min_count: int | None) -> Selection:
    """The kept ids: `always_kept`, then the used normal pieces, all those used `min_count` times or the most
    used ones (ties: the lower id) up to `size` pieces in all."""
    shares = language_scripts(pieces, counts)
    scripts = {s for s, share in shares.items() if share >= SCRIPT_SHARE}
    always = always_kept(pieces, scripts)
    used = [i for i in np.flatnonzero(counts) if i not in always and pieces[i].type == NORMAL]
    if size is None:
        chosen = [i for i in used if counts[i] >= (min_count or 1)]
    else:
        room = size - len(always)
        if room < 0:
            raise FactoryError(
                f"--size {size:,} is smaller than the {len(always):,} pieces trimming always keeps (specials, bytes, "
                "the scripts' characters); give a larger --size"
            )
        if room > len(used):
            raise FactoryError(
                f"the corpus uses {len(used):,} pieces besides the {len(always):,} always kept, fewer than --size "
                f"{size:,} asks for; give a --size of at most {len(used) + len(always):,}, more text, or --min-count"
            )
        chosen = sorted(used, key=lambda i: (-counts[i], i))[:room]
    return Selection(sorted(always | {int(i) for i in chosen}), len(always), len(used), sorted(scripts))


# ---- the corpus ---------------------------------------------------------------------------------
def language_sources(config: TrimConfig) -> dict[str, list]:
    """--corpus per language; a source without `LANG=` belongs to the one language of --langs. The codes are
    checked as `factory vocab` checks them (factory/core/languages.py; known to the language filter, unless it is off):
    they go into config.json and the card."""
    from factory import corpus as C
    from factory.core.languages import check_languages
    from factory.corpus.langid import check_codes, filter_name

    check_languages(config.langs, "--langs")
    check_languages(config.langid_skip, "--langid-skip")
    if config.langid:
        check_codes(config.langs, filter_name(config.langid), "--langs", config.langid_skip)
    sources: dict[str, list] = {lang: [] for lang in config.langs}
    for value in config.corpus:
        source = C.Source.parse(value)
        lang = source.lang or (config.langs[0] if len(config.langs) == 1 else None)
        if lang is None:
            raise FactoryError(f"--corpus {value}: which language? write it as LANG={value} (one of --langs)")
        if lang not in sources:
            raise FactoryError(f"--corpus {value} is {lang}, which is not in --langs {','.join(config.langs)}")
        if not source.is_hub and not Path(source.spec).exists():
            raise FactoryError(f"--corpus {source.spec}: no such file or folder")
        sources[lang].append(source)
    missing = [lang for lang, found in sources.items() if not found]
    if missing:
        raise FactoryError(
            f"--langs {','.join(missing)} has no --corpus; trimming keeps the pieces a language's text uses, so give "
            f"{missing[0]}=FILE (or a folder, or hf:NAME)"
        )
    return sources


def check_corpus_languages(sources: dict[str, list], config: TrimConfig) -> None:
    """Each source's first `LANGID_DOCS` documents must be mostly (`LANGUAGE_SHARE`) in the language it is given
    for, by the language filter `factory vocab` and `factory shards` keep documents with (same identifier and
    threshold): trimmed to another language's pieces, the model would lose its own language's, while the report,
    measured on that same text, says "words cut as before 100%". One line naming the source, the share in its
    language and what it mostly is."""
    from factory.core.languages import name
    from factory.corpus.langid import filter_name, identifier, threshold_of

    which = filter_name(config.langid)
    checked = [(lang, source) for lang, found in sources.items() if lang not in config.langid_skip for source in found]
    if which is None or not checked:
        return
    lid, threshold = identifier(which), threshold_of(which, config.langid_threshold)
    for lang, source in checked:
        texts = list(documents([source], config.text_field, LANGID_DOCS))
        guesses = [g for g in lid.identify_batch(texts) if g.lang]  # a text without letters tells nothing
        share = sum(lang in g.codes and g.prob >= threshold for g in guesses) / max(len(guesses), 1)
        if not guesses or share >= LANGUAGE_SHARE:
            continue
        top, n = Counter(lang if lang in g.codes else g.codes[0] for g in guesses).most_common(1)[0]
        low = f" with a probability under {threshold} (or lower --langid-threshold)" if top == lang else ""
        raise FactoryError(
            f"--corpus {lang}={source.spec}: {share:.0%} of its first {len(guesses):,} documents are {name(lang)} "
            f"({lang}) by the {which} language filter, {n / len(guesses):.0%} {name(top)} ({top}){low}; give "
            f"{name(lang)} text for {lang}, or pass --no-langid to trim with it unchecked"
        )


def documents(sources: list, text_field: str, limit: int) -> Iterator[str]:
    """Up to `limit` cleaned documents of one language's sources (NFKC and whitespace, as `factory vocab`)."""
    from factory import corpus as C

    cleaning, n = C.Cleaning(min_chars=1), 0
    for source in sources:
        for raw in C.read_source(source, text_field):
            text, _ = cleaning.clean(raw)
            if text:
                yield text
                n += 1
                if n >= limit:
                    return


def count_pieces(sp, texts: Iterator[str], keep: int) -> tuple[np.ndarray, list[str]]:
    """How often the tokenizer `sp` uses each piece on `texts`, and the first `keep` texts (for the report)."""
    counts = np.zeros(sp.get_piece_size(), dtype=np.int64)
    kept: list[str] = []
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(kept) < keep:
            kept.append(text)
        if len(batch) == BATCH:
            counts += _bincount(sp, batch, len(counts))
            batch = []
    if batch:
        counts += _bincount(sp, batch, len(counts))
    return counts, kept


def _bincount(sp, batch: list[str], size: int) -> np.ndarray:
    """Piece counts of a batch; the ids come back as arrays (no Python int per token), on all cores."""
    ids = sp.encode(batch, return_type="numpy")
    return np.bincount(np.concatenate([np.zeros(0, dtype=np.int32), *ids]), minlength=size)


# ---- the report ---------------------------------------------------------------------------------
def words_unchanged(old_sp, new_sp, texts: list[str]) -> tuple[int, int]:
    """(words cut into the same pieces by both tokenizers, words), over whitespace-separated words."""
    same = total = 0
    for old, new in zip(old_sp.encode(texts, out_type=str), new_sp.encode(texts, out_type=str), strict=True):
        a, b = _words(old), _words(new)
        if len(a) != len(b):  # never for a unigram model that splits at whitespace; counted as all changed
            total += len(a)
            continue
        same += sum(x == y for x, y in zip(a, b, strict=True))
        total += len(a)
    return same, total


def _words(pieces: list[str]) -> list[tuple[str, ...]]:
    words: list[list[str]] = []
    for piece in pieces:
        if piece.startswith("▁") or not words:
            words.append([])
        words[-1].append(piece)
    return [tuple(w) for w in words]


def fertility(sp, texts: list[str]) -> float:
    """Pieces per whitespace-separated word (as `factory vocab report`)."""
    words = [w for text in texts for w in text.split()]
    return round(sum(len(ids) for ids in sp.encode(words)) / len(words), 4) if words else 0.0


# ---- the whole step -----------------------------------------------------------------------------
def trim(config: TrimConfig) -> Derived:
    """One trim per --out at a time (its lock: a second process stops at once with one line)."""
    from factory.core.outputs import check_target, output_lock
    from factory.derive.common import check_out_apart

    check_out_apart(config.out, config.source)  # before --out's own checks: no advice to --force it
    check_target(config.out)
    with output_lock(config.out):
        return _trim(config)


def _trim(config: TrimConfig) -> Derived:
    """Trim `config.source` to `config.langs` into `config.out` (written whole or not at all); returns the
    manifest written there, with the report's figures, and the lines the command prints."""
    import sentencepiece as spm

    from factory.core.options import to_json
    from factory.core.outputs import check_output
    from factory.corpus import check_apart
    from factory.derive.common import layout_keys, open_source, sizes, write_derived
    from factory.model.tokenizer import Tokenizer
    from factory.vocab.spm_file import SpmModel

    started = time.perf_counter()
    check_output(config.out, config.force)
    sources = language_sources(config)  # a language without text is refused before anything slow
    check_apart(config.out, [source for found in sources.values() for source in found])  # not inside the corpus
    check_corpus_languages(sources, config)
    source = open_source(config.source)
    files = source.files
    tokenizer = Tokenizer.from_folder(files.tokenizer)
    tokenizer.check_fits(ModelConfig.from_hf(files.model.config), files.tokenizer, "the files do not belong together")
    model = SpmModel.read(files.tokenizer / "spm.model")
    counts, samples = count_corpus(tokenizer.sp, sources, config)
    selection = select_pieces(model.pieces, counts, config.size, config.min_count)
    trimmed = model.keep(selection.ids)
    index = row_index(selection.ids, len(model.pieces), files.model.vocab_rows)
    new_sp = spm.SentencePieceProcessor(model_proto=trimmed)
    manifest = TrimManifest(
        arguments=to_json(config),
        **source.provenance(),
        **sizes(files, len(index)),
        pieces_before=len(model.pieces),
        pieces_after=len(selection.ids),
        seconds=0.0,  # written at the end
        languages=list(config.langs),
        scripts=selection.scripts,
        always_kept=selection.always,
        used=selection.used,
        per_language={lang: language_report(tokenizer.sp, new_sp, texts) for lang, texts in samples.items()},
    )
    keys = {**layout_keys(len(selection.ids), len(index)), "languages": list(config.langs), **source.config_keys()}
    return write_derived(config.out, config.force, files, trimmed, lambda name, t: t.index_select(0, index),
                         len(index), keys, manifest, started, lambda m: summary(config.out, m))  # fmt: skip


def summary(out: Path, m: TrimManifest) -> list[str]:
    """What `factory trim` prints: the sizes before and after, and per language the words cut as before."""
    return [
        f"wrote {out}: {m.pieces_before:,} -> {m.pieces_after:,} pieces ({m.always_kept:,} always kept), "
        f"parameters {m.parameters_before['total']:,} -> {m.parameters_after['total']:,}, {m.seconds:.1f} s",
        *(f"  {lang:>5}: words cut as before {100 * r.unchanged:.2f}% of {r.words:,}; fertility "
          f"{r.fertility_before:.3f} -> {r.fertility_after:.3f}" for lang, r in m.per_language.items()),
    ]  # fmt: skip


def count_corpus(sp, sources: dict[str, list], config: TrimConfig) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Piece counts over every language's documents, and each language's first documents for the report."""
    counts = np.zeros(sp.get_piece_size(), dtype=np.int64)
    samples = {}
    for lang, found in sources.items():
        texts = documents(found, config.text_field, config.max_docs)
        lang_counts, samples[lang] = count_pieces(sp, texts, REPORT_DOCS)
        if not lang_counts.any():
            raise FactoryError(f"--corpus for {lang} holds no text; give a file with that language's text")
        log.debug("%s: %s pieces used, %s tokens", lang, f"{np.count_nonzero(lang_counts):,}",
                 f"{int(lang_counts.sum()):,}")  # fmt: skip
        counts += lang_counts
    return counts, samples


def language_report(old_sp, new_sp, texts: list[str]) -> TrimLanguage:
    same, words = words_unchanged(old_sp, new_sp, texts)
    return TrimLanguage(
        documents=len(texts),
        words=words,
        unchanged=round(same / max(words, 1), 6),
        fertility_before=fertility(old_sp, texts),
        fertility_after=fertility(new_sp, texts),
    )


def row_index(kept: list[int], pieces: int, rows: int):
    """The one index every per-vocabulary tensor is sliced with: the kept ids, [MASK] (old id `pieces`, new id
    len(kept)), then as many of the spare rows after [MASK] as the new size's layout has (pieces + 100, or the
    published counts: factory.model.presets.VocabSize), as far as the model has them."""
    import torch

    from factory.model.presets import VocabSize

    spare = min(VocabSize.from_pieces(len(kept)).rows - len(kept) - 1, rows - pieces - 1)
    return torch.tensor([*kept, pieces, *range(pieces + 1, pieces + 1 + spare)], dtype=torch.long)
