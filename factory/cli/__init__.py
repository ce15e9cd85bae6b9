"""The `factory` command line: main.py is the entry point (the group, its lazy command table, the errors'
one-line messages), and one thin module per step parses its options (generated from the step's config),
validates them and calls the step's library function. Only click is imported here, so `factory --help` stays
instant; `factory = "factory.cli:main"` (pyproject.toml) and `python -m factory` run `main`."""

from factory.cli.main import COMMANDS, FactoryGroup, cli, main

__all__ = ["COMMANDS", "FactoryGroup", "cli", "main"]
