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
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from factory.core.errors import FactoryError, disk_failure
from factory.core.options import Layer, load_yaml, to_json
from factory.core.resources import find
from factory.core.vocab_sizes import MIN_PIECES
from factory.model.tokenizer import write_hf_files  # noqa: F401  (it lives with the tokenizer; callers import it here too)
from factory.vocab.config import MAX_LANGID_WORKERS, VocabConfig

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
    model_type: str = VocabConfig.model_type  # the user-facing defaults live in the step configs
    character_coverage: float = VocabConfig.character_coverage
    byte_fallback: bool = VocabConfig.byte_fallback
    split_digits: bool = True
    max_sentence_length: int = 1 << 16
    seed_sentencepiece_size: int = 1_000_000
    threads: int = 0  # 0: all cores


def train_spm(sample: Path, lines: int, folder: Path, settings: SpmSettings) -> None:
    """Train `folder/spm.model` + `spm.vocab` on the sample file (one sentence per line)."""
    import sentencepiece as spm

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
        raise disk_failure(e, folder.parent) or _spm_hint(str(e), settings) from None
    finally:
        rules.unlink(missing_ok=True)


def _spm_hint(message: str, settings: SpmSettings) -> FactoryError:
    """SentencePiece's errors are C++ check failures; say what they mean."""
    too_high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message)
    if too_high:
        most = int(too_high.group(2))
        if most < MIN_PIECES:  # no smaller --size is allowed: only more text helps
            return FactoryError(
                f"--size {settings.pieces}: this corpus has text for at most {most} pieces, fewer than the smallest "
                f"--size ({MIN_PIECES}); give more text"
            )
        return FactoryError(
            f"--size {settings.pieces} is more than this corpus supports (at most {most} pieces): "
            "use a smaller --size or give more text"
        )
    if "vocab_size" in message and "smaller" in message.lower():
        return FactoryError(f"--size {settings.pieces} is too small for this corpus's characters: raise --size")
    first = message.strip().splitlines()[-1] if message.strip() else "unknown error"
    return FactoryError(f"SentencePiece failed: {first[:300]}; check --size and the corpus")


# ---- the whole step -----------------------------------------------------------------------------
SPEC_NOTES = ("description", "source", "notes")  # free text in a spec, not settings


def spec_layer(name_or_path: str | Path) -> Layer:
    """A `vocab/*.yaml` spec (a path, or the name of a bundled one) as a config layer under the recipe and the
    flags. `corpus` may map languages to sources (`pt: hf:allenai/c4:pt` -> `pt=hf:allenai/c4:pt`)."""
    import yaml

    path = find("spec", name_or_path)  # a bundled name (cc100) or a file
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FactoryError(f"--spec {path}: cannot read it as YAML ({first}); see vocab/*.yaml") from None
    if not isinstance(data, dict):
        raise FactoryError(f"--spec {path}: a spec is a mapping (languages, size, corpus ...); see vocab/*.yaml")
    values = {str(k): v for k, v in data.items() if k not in SPEC_NOTES}
    if isinstance(values.get("corpus"), dict):
        values["corpus"] = [f"{lang}={src}" for lang, src in values["corpus"].items()]
    return Layer(values, f"spec {path}: ")


def with_spec(layers: list[Layer]) -> list[Layer]:
    """defaults < the spec named in any layer < the layers (a recipe section, then flags)."""
    spec = next((layer.values["spec"] for layer in reversed(layers) if layer.values.get("spec")), None)
    return [spec_layer(spec), *layers] if spec else layers


def build(config: VocabConfig) -> dict:
    """Corpus -> sample -> SentencePiece -> HF files -> report, written atomically into `config.out`."""
    from factory import corpus as C
    from factory.core.outputs import output_lock, staged_output
    from factory.model.presets import VocabSize

    size = VocabSize.parse(config.size)
    sources, langs = _check_inputs(config)
    workers = config.workers or min(MAX_LANGID_WORKERS, os.cpu_count() or 1)
    with output_lock(config.out), staged_output(config.out, config.force) as folder:
        work = folder / ".work"
        work.mkdir()
        sample = C.build_sample(
            sources,
            langs,
            work,
            C.LanguageFilter(langs, config.langid_threshold, workers, config.langid, tuple(config.langid_skip)),
            C.Cleaning(config.min_chars, config.max_chars, config.dedupe),
            config.alpha,
            config.max_sentences,
            config.text_field,
            config.seed,
        )
        spm_settings = SpmSettings(size.pieces, config.model_type, config.character_coverage, config.byte_fallback)
        train_spm(sample.sample_file, sample.sample_lines, folder, spm_settings)
        hf = write_hf_files(folder)
        report = _write_report(folder, work, config, sample)
        _write_vocab_manifest(folder, config, sources, langs, sample, hf, size.rows)
        import shutil

        shutil.rmtree(work)
    return report


def _check_inputs(config: VocabConfig) -> tuple[list, list[str]]:
    """The corpus sources and the languages, checked before any work is done."""
    from factory import corpus as C
    from factory.core.languages import check_languages
    from factory.corpus.langid import check_codes, filter_name

    sources = [C.Source.parse(c) for c in config.corpus]
    if not sources:
        raise FactoryError("no --corpus given: pass --corpus PATH (or lang=PATH), or a --spec with a corpus")
    C.check_apart(config.out, sources)
    langs = list(dict.fromkeys(config.langs or [s.lang for s in sources if s.lang]))
    if not langs:
        raise FactoryError("which language(s)? pass --lang pt, --langs en,pt,ru or --corpus pt=PATH")
    check_languages(langs + [s.lang for s in sources if s.lang], "--lang/--langs")
    check_languages(config.langid_skip, "--langid-skip")
    if config.langid:
        check_codes(langs + [s.lang for s in sources if s.lang], filter_name(config.langid), "--lang/--langs",
                    config.langid_skip)  # fmt: skip
    for source in sources:
        if not source.is_hub and not Path(source.spec).exists():
            raise FactoryError(f"--corpus {source.spec}: no such file or folder")
    return sources, langs


def _write_report(folder: Path, work: Path, config: VocabConfig, sample) -> dict:
    """vocab_report.{json,md}: the new vocabulary on the first documents kept of each language."""
    from factory.vocab.report import report_markdown, report_texts, segmentation_figures

    figures = segmentation_figures(folder, report_texts(work, sample.stats.kept, config.report_docs))
    corpus_counts = sample.stats.as_dict()
    report = {
        "languages": figures,
        "corpus": corpus_counts,
        "sample": {"alpha": config.alpha, "documents_per_language": sample.sizes, "lines": sample.sample_lines},
        "byte_fallback": config.byte_fallback,
        "hf_agreement": "ids identical to DebertaV2Tokenizer/AutoTokenizer (transformers 5.x)"
        + ("" if not config.byte_fallback else ", except unknown characters: bytes here, [UNK] in HF"),
    }
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    (folder / "vocab_report.json").write_text(text, encoding="utf-8")
    (folder / "vocab_report.md").write_text(report_markdown(f"Vocabulary {config.out.name}", {"this": figures},
                                                            corpus_counts), encoding="utf-8")  # fmt: skip
    return report


def _write_vocab_manifest(
    folder: Path, config: VocabConfig, sources: list, langs: list[str], sample, hf: dict, rows: int
) -> None:
    """factory.json: what the vocabulary was built from and the sizes a model needs to use it."""
    from factory.core.manifest import write_manifest
    from factory.core.outputs import fingerprint_file
    from factory.vocab.manifest import CorpusCounts, VocabManifest, VocabShape

    manifest = VocabManifest(
        arguments=to_json(config),
        inputs={s.spec: _fingerprint(s, fingerprint_file) for s in sources},
        counts=CorpusCounts(**sample.stats.as_dict(), sample=sample.sizes, sample_lines=sample.sample_lines),
        vocab=VocabShape(pieces=hf["pieces"], mask_id=hf["mask_id"], embedding_rows=rows),
        languages=langs,
        corpus=list(config.corpus),
        alpha=config.alpha,
    )
    write_manifest(folder, manifest)


def _fingerprint(source, fingerprint_file) -> str | dict:
    if source.is_hub:
        return "hub (streamed; not fingerprinted)"
    path = Path(source.spec)
    if path.is_file():
        return fingerprint_file(path)
    return {str(p.relative_to(path)): fingerprint_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
