"""`factory vocab`: corpus -> SentencePiece vocabulary folder; `factory vocab report`: compare vocabularies."""

from __future__ import annotations

import json
from pathlib import Path

import click

from factory.commands import Number

# option name -> VocabArgs field, for options a --spec file may also set (flags win over the spec)
_SPEC_OPTIONS = [
    "size",
    "alpha",
    "max_sentences",
    "model_type",
    "character_coverage",
    "byte_fallback",
    "text_field",
    "min_chars",
    "max_chars",
    "dedupe",
    "langid",
    "langid_threshold",
]


@click.group(invoke_without_command=True)
@click.option(
    "--corpus", "corpus", multiple=True, help="Text: FILE, FOLDER, hf:REPO:CONFIG, or LANG=any of those. Repeatable."
)
@click.option("--lang", "lang", help="One language to keep (langdetect code, e.g. pt).")
@click.option("--langs", help="Several languages, comma-separated (e.g. en,pt,ru,zh), sampled with --alpha.")
@click.option(
    "--spec",
    type=click.Path(path_type=Path),
    help="A vocab spec: a bundled name (e.g. cc100, xnli15) or a YAML file like vocab/*.yaml.",
)
@click.option(
    "--size", default=None, help="SentencePiece pieces, specials included: 32k, 128k, 250k or a number.  [default: 32k]"
)
@click.option("--alpha", type=Number(0, 1), default=None, help="Language sampling p_i ∝ n_i^alpha.  [default: 0.3]")
@click.option(
    "--max-sentences", type=click.IntRange(min=1), default=None, help="Documents fed to SentencePiece.  [default: 10M]"
)
@click.option(
    "--model-type", type=click.Choice(["unigram", "bpe"]), default=None, help="SentencePiece model.  [default: unigram]"
)
@click.option(
    "--character-coverage",
    type=Number(0, 1, low_open=True),
    default=None,
    help="0.9995 (default); 1.0 for small alphabets.",
)
@click.option(
    "--byte-fallback/--no-byte-fallback",
    default=None,
    help="Unknown characters as byte pieces (sentencepiece only; HF gives [UNK]).  [default: off]",
)
@click.option("--text-field", default=None, help="Field/column of .jsonl/.parquet/.arrow/hf: sources.  [default: text]")
@click.option("--min-chars", type=click.IntRange(min=0), default=None, help="Drop shorter documents.  [default: 20]")
@click.option("--max-chars", type=click.IntRange(min=1), default=None, help="Drop longer documents.  [default: 20000]")
@click.option("--dedupe/--no-dedupe", default=None, help="Drop exact duplicates.  [default: on]")
@click.option("--langid/--no-langid", default=None, help="Language filter (langdetect profiles).  [default: on]")
@click.option(
    "--langid-threshold", type=click.FloatRange(0, 1), default=None, help="Minimum probability.  [default: 0.9]"
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Language-id processes.  [default: cores]")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling.")
@click.option("--out", type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--force", is_flag=True, help="Replace --out if it is not empty.")
@click.pass_context
def vocab(ctx: click.Context, **opts) -> None:
    """Train a DeBERTa-v3 SentencePiece vocabulary on one language or many.

    The corpus is cleaned (NFKC, whitespace, length bounds, exact duplicates), kept to the wanted
    language(s) by a fast langdetect filter, sampled across languages with p_i ∝ n_i^alpha, then fed to
    SentencePiece (unigram, digits split). Special ids are DeBERTa-v3's: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3,
    [MASK] right after the pieces. --out gets spm.model, the Hugging Face tokenizer files (same ids as
    DebertaV2Tokenizer), factory.json and vocab_report.{json,md}.

    \b
    Examples:
      factory vocab --corpus pt.txt --lang pt --size 32k --out vocab-pt/
      factory vocab --corpus mixed/ --langs en,pt,ru,zh --alpha 0.3 --size 128k --out v/
      factory vocab --spec vocab/xnli15.yaml --out vocab-xnli/
      factory vocab report vocab-pt/ v/ --corpus pt=test-pt.txt --corpus en=test-en.txt
    """
    if ctx.invoked_subcommand is not None:
        return
    import os

    from factory.errors import FactoryError
    from factory.vocab import VocabArgs, build, load_spec

    if opts["out"] is None:
        raise click.UsageError("Missing option '--out'.")
    spec = load_spec(opts["spec"]) if opts["spec"] else {}
    langs = _langs(opts["lang"], opts["langs"]) or spec.pop("langs", None) or []
    spec.pop("langs", None)
    corpus = list(opts["corpus"]) or spec.pop("corpus", [])
    spec.pop("corpus", None)
    if opts["lang"] and opts["langs"]:
        raise FactoryError("give --lang or --langs, not both")
    fields = {**spec, **{k: opts[k] for k in _SPEC_OPTIONS if opts[k] is not None}}
    workers = opts["workers"] or min(8, os.cpu_count() or 1)
    args = VocabArgs(corpus=corpus, out=opts["out"], langs=langs, workers=workers, seed=opts["seed"],
                     force=opts["force"], **fields)  # fmt: skip
    report = build(args)
    kept = report["corpus"]["kept_per_language"]
    click.echo(f"wrote {args.out}: {report['corpus']['read']} documents read, kept {kept}, "
               f"dropped {report['corpus']['dropped']}")  # fmt: skip
    for lang, r in report["languages"].items():
        click.echo(
            f"  {lang:>5}: fertility {r['fertility']:.3f}  unk {r['unk_rate']:.4f}  "
            f"bytes/token {r['bytes_per_token']:.2f}"
        )


def _langs(lang: str | None, langs: str | None) -> list[str]:
    if lang:
        return [lang.strip()]
    return [x.strip() for x in langs.split(",") if x.strip()] if langs else []


@vocab.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--corpus", "corpus", multiple=True, required=True, help="Text to evaluate on: FILE or LANG=FILE. Repeatable."
)
@click.option("--text-field", default="text", show_default=True, help="Field/column of .jsonl/.parquet/.arrow.")
@click.option("--max-docs", type=click.IntRange(min=1), default=2000, show_default=True, help="Documents per language.")
@click.option("--out", type=click.Path(path_type=Path), help="Write report.json and report.md into this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def report(folders: tuple[Path, ...], corpus: tuple[str, ...], text_field: str, max_docs: int, out: Path | None,
           as_json: bool) -> None:  # fmt: skip
    """Evaluate one or more vocabularies on the same text, side by side.

    Per language: fertility (pieces per word), share of words cut into 2+ pieces, [UNK] rate, character
    coverage and UTF-8 bytes per piece. Any folder with a DeBERTa-style spm.model works.

    \b
    Example:
      factory vocab report vocab-pt/ vocab-250k/ --corpus pt=pt.txt --corpus en=en.txt
    """
    from factory.errors import FactoryError
    from factory.vocab import evaluate, read_texts, report_markdown

    texts = read_texts(list(corpus), text_field, max_docs)
    reports = {}
    for folder in folders:
        if not (folder / "spm.model").is_file():
            raise FactoryError(f"{folder} has no spm.model; point at a vocabulary folder")
        reports[folder.name or str(folder)] = evaluate(folder, texts)
    markdown = report_markdown("Vocabulary report", reports)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
        (out / "report.md").write_text(markdown, encoding="utf-8")
    click.echo(json.dumps(reports, indent=2) if as_json else markdown)
