"""Vocabularies: train SentencePiece with DeBERTa-v3's special tokens, write the HF tokenizer files, report.

The one hard contract: ids from our `spm.model` (sentencepiece), from `transformers`' `DebertaV2Tokenizer`
and from `AutoTokenizer`, all loaded from the folder, are identical. transformers 5.x ignores whatever the
folder says about normalisation and always builds (tokenization_deberta_v2.py, 5.23):
    Replace(r"\\s{2,}|[\\n\\r\\t]" -> " ") -> NFC -> Strip(right) -> Metaspace("▁", prepend always)
    -> Unigram(byte_fallback=False), unknown characters -> [UNK]
So we make SentencePiece do the same: its normaliser is a rule table (`normalization_rules`) that maps
whitespace runs and tabs/newlines to one space, every canonically-decomposed sequence to its NFC form and
pairs of combining marks to canonical order,
with `add_dummy_prefix` and `remove_extra_whitespaces` doing the prefix and the stripping. Byte fallback is
off by default, because HF's fast tokenizer cannot do it; `byte_fallback=True` is offered for users who
only tokenise with sentencepiece, and the report says the HF ids then differ on unknown characters.
Known differences, both outside ordinary text: a trailing non-ASCII space (U+00A0, U+3000...) that HF strips
and sentencepiece keeps; whitespace runs of 4+ that mix non-ASCII spaces; NFC across a non-composing mark
(e.g. e + U+0330 + U+0301) and out-of-order marks of different scripts or in runs of three.
Literal "[MASK]" in text is a special token for HF only.

The training corpus is NFKC-normalised by `factory.corpus` (ligatures, full-width forms unfolded), so
compatibility characters that NFC keeps (ﬁ, Ａ) are [UNK] at run time: the same in all three tokenizers.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from factory.errors import FactoryError
from factory.resources import find
from factory.tokenizer import MASK_TOKEN, SPECIAL_TOKENS

log = logging.getLogger(__name__)

SPECIALS, MASK = SPECIAL_TOKENS, MASK_TOKEN
# Unicode White_Space: what Rust's regex \s and char::is_whitespace match (tokenizers' Replace and Strip)
WHITESPACE = [chr(c) for c in (9, 10, 11, 12, 13, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B))]
WHITESPACE += [chr(c) for c in (0x2028, 0x2029, 0x202F, 0x205F, 0x3000)]


# ---- normalisation as SentencePiece rules -------------------------------------------------------
def _nfc_rules() -> dict[str, str]:
    """source -> NFC target, for every character NFC changes and for the canonically equivalent spellings
    (fully or partly decomposed, marks in any order) of every composed character."""
    rules: dict[str, str] = {}
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        nfc = unicodedata.normalize("NFC", ch)
        if nfc != ch:
            rules[ch] = nfc
            continue
        nfd = unicodedata.normalize("NFD", ch)
        if nfd == ch:
            continue
        spellings = {nfd}
        for k in range(2, len(nfd)):
            head = unicodedata.normalize("NFC", nfd[:k])
            if len(head) == 1:
                spellings.add(head + nfd[k:])
        for spelling in list(spellings):
            if 2 < len(spelling) <= 5:
                spellings.update(spelling[0] + "".join(p) for p in itertools.permutations(spelling[1:]))
        for spelling in spellings:
            if spelling != ch and unicodedata.normalize("NFC", spelling) == ch:
                rules[spelling] = ch
    return rules


def _mark_order_rules() -> dict[str, str]:
    """Two combining marks out of canonical order -> swapped, as NFC's reordering does: e.g. Arabic shadda +
    fatha -> fatha + shadda, which is how vocalised Arabic is usually typed (found on real text: 19 of 10,400
    Debian-handbook paragraphs, all Arabic, differed before). Pairs within one 256-code-point page only
    (~10k rules, not ~400k): marks of different scripts rarely meet."""
    marks = [chr(c) for c in range(0x300, 0x20000) if unicodedata.combining(chr(c))]
    rules = {}
    for a, b in itertools.permutations(marks, 2):
        if ord(a) >> 8 == ord(b) >> 8 and unicodedata.combining(a) > unicodedata.combining(b):
            if unicodedata.normalize("NFC", a + b) == b + a:
                rules[a + b] = b + a
    return rules


def _whitespace_rules() -> dict[str, str]:
    """Tabs/newlines -> space; runs of 2-3 whitespace with a non-ASCII one -> one space (ASCII-space runs
    are collapsed by SentencePiece's own `remove_extra_whitespaces`)."""
    plain = {" ", "\t", "\n", "\r"}
    rules = {w: " " for w in "\t\n\r"}
    for run in itertools.chain(itertools.product(WHITESPACE, repeat=2), itertools.product(WHITESPACE, repeat=3)):
        if not plain.issuperset(run):
            rules["".join(run)] = " "
    return rules


def normalization_rules() -> dict[str, str]:
    return {**_mark_order_rules(), **_nfc_rules(), **_whitespace_rules()}


def write_rules_tsv(path: Path) -> None:
    """SentencePiece's `normalization_rule_tsv` format: code points in hex, source TAB target."""
    with open(path, "w", encoding="ascii") as f:
        for source, target in sorted(normalization_rules().items()):
            f.write(" ".join(f"{ord(c):X}" for c in source) + "\t" + " ".join(f"{ord(c):X}" for c in target) + "\n")


# ---- training -----------------------------------------------------------------------------------
@dataclass
class SpmSettings:
    """SentencePiece settings (DeBERTa-v3: unigram; digits split; coverage 0.9995, 1.0 for small alphabets)."""

    pieces: int = 32000
    model_type: str = "unigram"
    character_coverage: float = 0.9995
    byte_fallback: bool = False
    split_digits: bool = True
    max_sentence_length: int = 1 << 16
    seed_sentencepiece_size: int = 1_000_000
    threads: int = 0  # 0: all cores

    def check(self) -> None:
        if self.model_type not in ("unigram", "bpe"):
            raise FactoryError(f"--model-type {self.model_type!r}: use unigram or bpe")
        if not 0.9 <= self.character_coverage <= 1.0:
            raise FactoryError("--character-coverage must be between 0.9 and 1.0 (0.9995 usual, 1.0 small alphabets)")


def train_spm(sample: Path, lines: int, folder: Path, settings: SpmSettings) -> None:
    """Train `folder/spm.model` + `spm.vocab` on the sample file (one sentence per line)."""
    import sentencepiece as spm

    settings.check()
    rules = folder / ".normalization.tsv"
    write_rules_tsv(rules)
    try:
        spm.SentencePieceTrainer.train(
            input=str(sample),
            model_prefix=str(folder / "spm"),
            vocab_size=settings.pieces,
            model_type=settings.model_type,
            character_coverage=settings.character_coverage,
            byte_fallback=settings.byte_fallback,
            split_digits=settings.split_digits,
            normalization_rule_tsv=str(rules),
            add_dummy_prefix=True,
            remove_extra_whitespaces=True,
            pad_id=0,
            bos_id=1,
            eos_id=2,
            unk_id=3,
            pad_piece="[PAD]",
            bos_piece="[CLS]",
            eos_piece="[SEP]",
            unk_piece="[UNK]",
            input_sentence_size=0,  # the sample is already the size we want
            shuffle_input_sentence=False,
            max_sentence_length=settings.max_sentence_length,
            seed_sentencepiece_size=settings.seed_sentencepiece_size,
            train_extremely_large_corpus=lines > 20_000_000,
            num_threads=settings.threads or os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise _spm_hint(str(e), settings) from None
    finally:
        rules.unlink(missing_ok=True)


def _spm_hint(message: str, settings: SpmSettings) -> FactoryError:
    """SentencePiece's errors are C++ check failures; say what they mean."""
    too_high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message)
    if too_high:
        return FactoryError(
            f"--size {settings.pieces} is more than this corpus supports (at most {too_high.group(2)} pieces): "
            "use a smaller --size or give more text"
        )
    if "vocab_size" in message and "smaller" in message.lower():
        return FactoryError(f"--size {settings.pieces} is too small for this corpus's characters: raise --size")
    first = message.strip().splitlines()[-1] if message.strip() else "unknown error"
    return FactoryError(f"SentencePiece failed: {first[:300]}; check --size and the corpus")


# ---- Hugging Face files -------------------------------------------------------------------------
def write_hf_files(folder: Path, max_length: int = 512) -> dict[str, int]:
    """tokenizer.json (fast), tokenizer_config.json, special_tokens_map.json, added_tokens.json.

    tokenizer.json carries exactly the pipeline transformers 5.x builds for DebertaV2Tokenizer, so that a
    plain `tokenizers.Tokenizer.from_file` or `PreTrainedTokenizerFast` gives the same ids as well.
    """
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(folder / "spm.model"))
    pieces = sp.get_piece_size()
    for piece, idx in SPECIALS.items():
        if sp.id_to_piece(idx) != piece:
            raise FactoryError(f"{folder}/spm.model: id {idx} is not {piece}; retrain it with `factory vocab`")
    # Control and unknown pieces score 0.0: DebertaV2Tokenizer finds its unk id as vocab.index(("[UNK]", 0.0))
    vocab = [
        [sp.id_to_piece(i), 0.0 if sp.is_control(i) or sp.is_unknown(i) else float(sp.get_score(i))]
        for i in range(pieces)
    ]
    mask_id = pieces
    _write_json(folder / "tokenizer.json", tokenizer_json(vocab, mask_id))
    special_map = {
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": MASK,
    }
    added = {str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
                      "single_word": False} for t, i in {**SPECIALS, MASK: mask_id}.items()}  # fmt: skip
    config = {
        "tokenizer_class": "DebertaV2Tokenizer",
        "do_lower_case": False,
        "split_by_punct": False,
        "vocab_type": "spm",
        "add_prefix_space": True,
        "model_max_length": max_length,
        **special_map,
        "added_tokens_decoder": added,
    }
    _write_json(folder / "tokenizer_config.json", config)
    _write_json(folder / "special_tokens_map.json", special_map)
    _write_json(folder / "added_tokens.json", {MASK: mask_id})
    return {"pieces": pieces, "mask_id": mask_id}


def tokenizer_json(vocab: list[list], mask_id: int) -> dict:
    """The `tokenizers` serialisation (format 1.0) of DebertaV2Tokenizer's 5.x pipeline, written by hand so
    that `factory` needs no `tokenizers` at run time; tests load it with `tokenizers` and `transformers`."""
    special = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    added = [{"id": i, "content": t, **special} for t, i in {**SPECIALS, MASK: mask_id}.items()]
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}

    def template(*parts: tuple[str, str, int]) -> list[dict]:
        return [{kind: {"id": name, "type_id": type_id}} for kind, name, type_id in parts]

    cls, sep = ("SpecialToken", "[CLS]", 0), ("SpecialToken", "[SEP]", 0)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Replace", "pattern": {"Regex": r"\s{2,}|[\n\r\t]"}, "content": " "},
                {"type": "NFC"},
                {"type": "Strip", "strip_left": False, "strip_right": True},
            ],
        },
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [metaspace]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": template(cls, ("Sequence", "A", 0), sep),
            "pair": template(cls, ("Sequence", "A", 0), sep, ("Sequence", "B", 1), ("SpecialToken", "[SEP]", 1)),
            "special_tokens": {t: {"id": t, "ids": [SPECIALS[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": SPECIALS["[UNK]"], "vocab": vocab, "byte_fallback": False},
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---- report -------------------------------------------------------------------------------------
@dataclass
class LanguageReport:
    """How a vocabulary cuts one language's text."""

    documents: int
    words: int
    pieces: int
    fertility: float  # pieces per whitespace-separated word
    continued_words: float  # share of words cut into 2+ pieces
    unk_rate: float  # share of pieces that are [UNK]
    char_coverage: float  # share of (non-space) characters that are in some piece
    bytes_per_token: float  # UTF-8 bytes of text per piece


def evaluate(folder: Path, texts_by_lang: dict[str, list[str]]) -> dict[str, dict]:
    """Per-language figures of the vocabulary in `folder` on the given texts (plus `all`)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(Path(folder) / "spm.model"))
    chars_in_vocab = {ch for i in range(sp.get_piece_size()) for ch in sp.id_to_piece(i)}
    unk = sp.unk_id()
    out, totals = {}, Counter()
    for lang, texts in texts_by_lang.items():
        c = Counter()
        for text in texts:
            words = text.split()
            c["documents"] += 1
            c["words"] += len(words)
            c["bytes"] += len(text.encode("utf-8"))
            for ids in sp.encode(words):
                c["pieces"] += len(ids)
                c["continued"] += len(ids) > 1 + (ids[:1] == [sp.piece_to_id("▁")])
                c["unk"] += ids.count(unk)
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
        fertility=ratio("pieces", "words"),
        continued_words=ratio("continued", "words"),
        unk_rate=ratio("unk", "pieces"),
        char_coverage=ratio("covered", "chars"),
        bytes_per_token=ratio("bytes", "pieces"),
    )


FIGURES = ["fertility", "continued_words", "unk_rate", "char_coverage", "bytes_per_token"]


def report_markdown(title: str, reports: dict[str, dict[str, dict]], corpus: dict | None = None) -> str:
    """A table per figure: one row per language, one column per vocabulary (side by side)."""
    names = list(reports)
    langs = list(next(iter(reports.values())))
    lines = [f"# {title}", ""]
    lines.append("fertility = pieces per word; continued = share of words cut in 2+ pieces; unk = share of")
    lines.append("pieces that are [UNK]; coverage = share of characters found in the vocabulary.")
    lines.append("")
    for figure in FIGURES:
        lines += [f"## {figure}", "", "| language | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for lang in langs:
            row = [f"{reports[n].get(lang, {}).get(figure, float('nan')):.4f}" for n in names]
            lines.append(f"| {lang} | " + " | ".join(row) + " |")
        lines.append("")
    if corpus:
        lines += ["## documents", "", "| | count |", "|---|---|", f"| read | {corpus['read']} |"]
        lines += [f"| kept {k} | {v} |" for k, v in corpus["kept_per_language"].items()]
        lines += [f"| dropped: {k} | {v} |" for k, v in corpus["dropped"].items()]
        lines.append("")
    return "\n".join(lines)


# ---- the whole step -----------------------------------------------------------------------------
@dataclass
class VocabArgs:
    """Everything `factory vocab` needs; defaults < a `vocab/*.yaml` spec < command-line flags."""

    corpus: list[str]
    out: Path
    langs: list[str]
    size: str = "32k"
    alpha: float = 0.3
    max_sentences: int = 10_000_000
    model_type: str = "unigram"
    character_coverage: float = 0.9995
    byte_fallback: bool = False
    text_field: str = "text"
    min_chars: int = 20
    max_chars: int = 20000
    dedupe: bool = True
    langid: bool = True
    langid_threshold: float = 0.9
    workers: int = 1
    report_docs: int = 2000
    seed: int = 0
    force: bool = False


SPEC_KEYS = {"languages": "langs", "corpus": "corpus", "size": "size", "alpha": "alpha"}


def load_spec(path: Path) -> dict:
    """A `vocab/*.yaml` spec -> VocabArgs fields. `corpus` may map languages to sources."""
    import yaml

    path = find("spec", path)  # a bundled name (cc100) or a file
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FactoryError(f"--spec {path}: cannot read it as YAML ({first}); see vocab/*.yaml") from None
    if not isinstance(data, dict):
        raise FactoryError(f"--spec {path}: a spec is a mapping (languages, size, corpus ...); see vocab/*.yaml")
    fields = set(VocabArgs.__dataclass_fields__)
    out = {}
    for key, value in data.items():
        name = SPEC_KEYS.get(key, key.replace("-", "_"))
        if name in ("description", "source", "notes"):
            continue
        if name not in fields:
            raise FactoryError(f"--spec {path}: unknown key {key!r}; known: {', '.join(sorted(fields))}")
        if name == "corpus" and isinstance(value, dict):
            value = [f"{lang}={src}" for lang, src in value.items()]
        out[name] = value
    return out


def build(args: VocabArgs) -> dict:
    """Corpus -> sample -> SentencePiece -> HF files -> report, written atomically into `args.out`."""
    from factory import corpus as C
    from factory.langid import check_codes
    from factory.outputs import check_output, fingerprint_file, staged_output, write_manifest
    from factory.presets import VocabSize

    size = VocabSize.parse(args.size)
    sources = [C.Source.parse(c) for c in args.corpus]
    if not sources:
        raise FactoryError("no --corpus given: pass --corpus PATH (or lang=PATH), or a --spec with a corpus")
    langs = list(dict.fromkeys(args.langs or [s.lang for s in sources if s.lang]))
    if not langs:
        raise FactoryError("which language(s)? pass --lang pt, --langs en,pt,ru or --corpus pt=PATH")
    if args.langid:
        check_codes(langs + [s.lang for s in sources if s.lang], "--lang/--langs")
    for source in sources:
        if not source.is_hub and not Path(source.spec).exists():
            raise FactoryError(f"--corpus {source.spec}: no such file or folder")
    check_output(args.out, args.force)
    with staged_output(args.out, args.force) as folder:
        work = folder / ".work"
        work.mkdir()
        sample = C.build_sample(
            sources,
            langs,
            work,
            C.LanguageFilter(langs, args.langid_threshold, args.workers, args.langid),
            C.Cleaning(args.min_chars, args.max_chars, args.dedupe),
            args.alpha,
            args.max_sentences,
            args.text_field,
            args.seed,
        )
        spm_settings = SpmSettings(size.pieces, args.model_type, args.character_coverage, args.byte_fallback)
        train_spm(sample.sample_file, sample.sample_lines, folder, spm_settings)
        hf = write_hf_files(folder)
        texts = _report_texts(work, sample.stats.kept, args.report_docs)
        figures = evaluate(folder, texts)
        corpus_counts = sample.stats.as_dict()
        report = {
            "languages": figures,
            "corpus": corpus_counts,
            "sample": {"alpha": args.alpha, "documents_per_language": sample.sizes, "lines": sample.sample_lines},
            "byte_fallback": args.byte_fallback,
            "hf_agreement": "ids identical to DebertaV2Tokenizer/AutoTokenizer (transformers 5.x)"
            + ("" if not args.byte_fallback else ", except unknown characters: bytes here, [UNK] in HF"),
        }
        _write_json(folder / "vocab_report.json", report)
        (folder / "vocab_report.md").write_text(report_markdown(f"Vocabulary {args.out.name}", {"this": figures},
                                                                corpus_counts), encoding="utf-8")  # fmt: skip
        fingerprints = {s.spec: _fingerprint(s, fingerprint_file) for s in sources}
        arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()}
        write_manifest(
            folder,
            "vocab",
            arguments,
            inputs=fingerprints,
            counts={**corpus_counts, "sample": sample.sizes, "sample_lines": sample.sample_lines},
            vocab={"pieces": hf["pieces"], "mask_id": hf["mask_id"], "embedding_rows": size.rows},
        )
        import shutil

        shutil.rmtree(work)
    return report


def _report_texts(work: Path, kept: Counter, limit: int) -> dict[str, list[str]]:
    spool = next(work.glob("spool-*"))
    texts = {}
    for lang in sorted(kept):
        with open(spool / f"{lang}.txt", encoding="utf-8") as f:
            texts[lang] = [line.rstrip("\n") for line in itertools.islice(f, limit)]
    return texts


def _fingerprint(source, fingerprint_file) -> str | dict:
    if source.is_hub:
        return "hub (streamed; not fingerprinted)"
    path = Path(source.spec)
    if path.is_file():
        return fingerprint_file(path)
    return {str(p.relative_to(path)): fingerprint_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


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
