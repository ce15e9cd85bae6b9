"""`factory publish`: a model folder -> a Hugging Face Hub repository with a model card."""

from __future__ import annotations

import click

from factory.core.options import click_options, from_flags, resolve
from factory.publish.config import PublishConfig


@click.command()
@click.argument("model_dir", metavar="DIR")
@click_options(PublishConfig)
def publish(**flags) -> None:
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
    from factory.publish.hub import publish

    config = resolve(PublishConfig, [from_flags(flags)])
    summary = publish(config)  # a failed upload is an UploadFailed (RunFailure): one line, exit 1, by the CLI
    click.echo(
        f"staged {len(summary['files'])} files in {summary['staging']} (card with "
        f"{summary['results_in_index']} results in its model-index); validated"
    )
    if summary["url"]:
        click.echo(f"published {config.repo_id}{'@' + config.revision if config.revision else ''}: {summary['url']}")
    else:
        click.echo("dry run: nothing uploaded")
