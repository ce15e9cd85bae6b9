"""`factory run RECIPE`: the whole pipeline of a model family from one YAML file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("recipe")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set steps.pretrain.max_steps=100 (repeatable).",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the steps write [default: the recipe's run_dir, else runs/NAME].",
)
@click.option("--dry-run", is_flag=True, help="Print the plan (commands, parameters, tokens, FLOPs, time, disk).")
@click.option("--resume", is_flag=True, help="Continue an interrupted pre-training from its last checkpoint.")
@click.option(
    "--publish",
    "do_publish",
    is_flag=True,
    help="Upload to the Hub at the end (otherwise the card and folder are only staged).",
)
def run(
    recipe: Path, overrides: tuple[str, ...], run_dir: Path | None, dry_run: bool, resume: bool, do_publish: bool
) -> None:
    """Run a recipe: corpus -> vocab -> shards -> pretrain -> eval -> card (-> Hub with --publish).

    Each step writes one folder under the run folder. A step whose output is already there and whose
    arguments and inputs have not changed is skipped, so running a finished recipe again is instant,
    and deleting one step's folder re-runs that step and the ones after it.

    \b
    Examples:
      factory run demo                                     # the bundled demo: offline, minutes on a laptop
      factory run recipes/debertina-base.yaml --dry-run    # what it would take
      factory run recipes/demo.yaml --set steps.pretrain.max_steps=50 --run-dir runs/quick
    """
    from factory.recipe import build_plan, load_recipe, plan_lines, run_plan

    spec = load_recipe(recipe, list(overrides))
    folder = run_dir or Path(spec.get("run_dir") or Path("runs") / spec["name"])
    plan = build_plan(spec, folder, publish=do_publish)
    click.echo(f"recipe {spec['name']}: {len(plan)} steps in {folder}")
    if dry_run:
        for line in plan_lines(plan, spec):
            click.echo(line)
        return
    ran = run_plan(plan, folder, resume)
    click.echo(f"done: ran {', '.join(ran) if ran else 'nothing (all up to date)'}; outputs in {folder}")
