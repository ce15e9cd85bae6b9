"""`factory vocab`: corpus -> SentencePiece vocabulary folder; `factory vocab report`: compare vocabularies."""

from __future__ import annotations

import json
from pathlib import Path

import click

from factory.core.options import click_options, from_flags, resolve
from factory.vocab.config import VocabConfig, VocabReportConfig


@click.group(invoke_without_command=True)
@click_options(VocabConfig)
@click.pass_context
def vocab(ctx: click.Context, **flags) -> None:
    """Train a DeBERTa-v3 SentencePiece vocabulary on one language or many.

    The corpus is cleaned (NFKC, whitespace, length bounds, exact duplicates), kept to the wanted
    language(s) by a fast langdetect filter, sampled across languages with p_i ∝ n_i^alpha, then fed to
    SentencePiece (unigram, digits split). Special ids are DeBERTa-v3's: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3,
    [MASK] right after the pieces. --out gets spm.model, the Hugging Face tokenizer files (same ids as
    DebertaV2Tokenizer), factory.json and vocab_report.{json,md}. Settings: defaults < --spec < flags.

    \b
    Examples:
      factory vocab --corpus pt.txt --lang pt --size 32k --out vocab-pt/
      factory vocab --corpus mixed/ --langs en,pt,ru,zh --alpha 0.3 --size 128k --out v/
      factory vocab --spec xnli15 --out vocab-xnli/
      factory vocab report vocab-pt/ v/ --corpus pt=test-pt.txt --corpus en=test-en.txt
    """
    if ctx.invoked_subcommand is not None:
        return
    from factory.vocab.train import build, with_spec

    config = resolve(VocabConfig, with_spec([from_flags(flags)]))
    report = build(config)
    kept = report["corpus"]["kept_per_language"]
    click.echo(f"wrote {config.out}: {report['corpus']['read']} documents read, kept {kept}, "
               f"dropped {report['corpus']['dropped']}")  # fmt: skip
    for lang, r in report["languages"].items():
        click.echo(
            f"  {lang:>5}: coverage {r['char_coverage']:.4f}  fertility {r['fertility']:.3f}  unk {r['unk_rate']:.4f}  "
            f"bytes/token {r['bytes_per_token']:.2f}"
        )


@vocab.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click_options(VocabReportConfig)
def report(**flags) -> None:
    """Evaluate one or more vocabularies on the same text, side by side.

    Per language: character coverage (read it first), fertility (pieces per word, each [UNK] counted as the
    characters it stands for, so a vocabulary without a script does not look frugal), share of words cut into
    2+ pieces, [UNK] rate and UTF-8 bytes per piece. Any folder with a DeBERTa-style spm.model works.

    \b
    Example:
      factory vocab report vocab-pt/ vocab-250k/ --corpus pt=pt.txt --corpus en=en.txt
    """
    from factory.core.errors import FactoryError
    from factory.core.outputs import check_target
    from factory.vocab.report import read_texts, report_markdown, segmentation_figures

    config = resolve(VocabReportConfig, [from_flags(flags)])
    if config.out is not None:
        check_target(config.out)  # before the texts are read: a file or an unwritable path is one line
    texts = read_texts(config.corpus, config.text_field, config.max_docs)
    reports = {}
    for folder in config.folders:
        if not (folder / "spm.model").is_file():
            raise FactoryError(f"{folder} has no spm.model; point at a vocabulary folder")
        reports[folder.name or str(folder)] = segmentation_figures(folder, texts)
    markdown = report_markdown("Vocabulary report", reports)
    if config.out is not None:
        config.out.mkdir(parents=True, exist_ok=True)
        (config.out / "report.json").write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
        (config.out / "report.md").write_text(markdown, encoding="utf-8")
    click.echo(json.dumps(reports, indent=2) if config.json else markdown)
