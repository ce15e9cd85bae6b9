"""`factory run RECIPE`: the whole pipeline of a model family from one YAML file."""

from __future__ import annotations

from pathlib import Path

import click

from factory.core.options import click_options, from_flags, resolve
from factory.recipe.config import RunConfig


@click.command()
@click.argument("recipe")
@click_options(RunConfig)
def run(**flags) -> None:
    """Run a recipe: corpus -> vocab -> shards -> pretrain -> eval -> card (-> Hub with --publish).

    Each step writes one folder under the run folder. A step whose output is already there and whose
    arguments and inputs have not changed is skipped, so running a finished recipe again is instant,
    and deleting one step's folder re-runs that step and the ones after it. An interrupted pre-training
    continues from its last checkpoint; one whose settings or inputs changed is refused, never deleted
    (--resume continues it with the new settings).

    \b
    Examples:
      factory run demo                                     # the bundled demo: offline, minutes on a laptop
      factory run recipes/debertina-base.yaml --dry-run    # what it would take
      factory run recipes/demo.yaml --set steps.pretrain.max_steps=50 --run-dir runs/quick
    """
    from factory.recipe.run import build_plan, load_recipe, plan_lines, run_plan

    config = resolve(RunConfig, [from_flags(flags)])
    spec = load_recipe(config.recipe, config.set)
    folder = config.run_dir or Path(spec.get("run_dir") or Path("runs") / spec["name"])
    plan = build_plan(spec, folder, publish=config.publish)
    click.echo(f"recipe {spec['name']}: {len(plan)} steps in {folder}")
    if config.dry_run:
        for line in plan_lines(plan, spec):
            click.echo(line)
        return
    ran = run_plan(plan, folder, config.resume)
    click.echo(f"done: ran {', '.join(ran) if ran else 'nothing (all up to date)'}; outputs in {folder}")
