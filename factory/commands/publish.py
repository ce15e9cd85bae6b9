"""`factory publish`: a model folder -> a Hugging Face Hub repository with a model card."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("model_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--repo-id", required=True, help="Hub repository, namespace/name (e.g. my-org/deberta-v3-xsmall-pt).")
@click.option("--private", is_flag=True, help="Create the repository private (ignored if it exists).")
@click.option("--revision", help="Branch to commit to, created if needed (e.g. step-100000 for a checkpoint).")
@click.option("--generator", type=click.Path(path_type=Path), help="Generator folder, uploaded as generator/.")
@click.option("--tokenizer", type=click.Path(path_type=Path), help="Folder with spm.model + tokenizer files [DIR].")
@click.option("--results", multiple=True, type=click.Path(path_type=Path), help="results.json of `factory eval`.")
@click.option("--language", multiple=True, help="Language code for the card (repeatable) [from the manifests].")
@click.option("--dataset", multiple=True, help="Hub dataset id trained on, for the card (repeatable).")
@click.option("--license", "license_", default="mit", show_default=True, help="License id for the card.")
@click.option("--staging", type=click.Path(path_type=Path), help="Folder to assemble the upload in [DIR-hub].")
@click.option("--dry-run", is_flag=True, help="Write and validate the staging folder; upload nothing.")
def publish(
    model_dir: Path,
    repo_id: str,
    private: bool,
    revision: str | None,
    generator: Path | None,
    tokenizer: Path | None,
    results: tuple[Path, ...],
    language: tuple[str, ...],
    dataset: tuple[str, ...],
    license_: str,
    staging: Path | None,
    dry_run: bool,
) -> None:
    """Publish a model folder to the Hugging Face Hub, with a model card built from its manifests.

    Assembles the exact repository in a staging folder (config.json, weights, tokenizer files,
    README.md, and the generator in generator/), checks that it loads, then creates the repository
    and commits the folder. Numbers in the card come from config.json, the factory.json manifests and
    results.json (DIR/results.json and DIR/eval/*/results.json are picked up by themselves).

    The token comes from HF_TOKEN or `hf auth login`; it is never printed or written anywhere.

    \b
    Examples:
      factory publish runs/xsmall/model --repo-id me/deberta-v3-xsmall-pt --dry-run
      factory publish runs/xsmall/model --repo-id me/deberta-v3-xsmall-pt --generator runs/xsmall/generator
      factory publish runs/xsmall/ckpt-100000 --repo-id me/deberta-v3-xsmall-pt --revision step-100000
    """
    from factory.hub import publish as run_publish

    summary = run_publish(  # a failed upload is an UploadFailed (RunFailure): one line, exit 1, by the CLI
        model_dir,
        repo_id,
        staging=staging,
        tokenizer_dir=tokenizer,
        generator_dir=generator,
        results=list(results),
        languages=list(language),
        datasets=list(dataset),
        license=license_,
        private=private,
        revision=revision,
        dry_run=dry_run,
    )
    click.echo(
        f"staged {len(summary['files'])} files in {summary['staging']} (card with "
        f"{summary['languages_evaluated']} XNLI results); validated"
    )
    if summary["url"]:
        click.echo(f"published {repo_id}{'@' + revision if revision else ''}: {summary['url']}")
    else:
        click.echo("dry run: nothing uploaded")
