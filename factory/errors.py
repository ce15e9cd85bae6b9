"""Typed errors. The library raises these; the CLI turns them into one line and exit code 2.

A `FactoryError` is always a *user* mistake that the user can fix (bad flag, wrong folder, unreadable
corpus), so its message must say what is wrong and how to fix it, in one line.
"""


class FactoryError(Exception):
    """A problem with the user's input: one line, what is wrong and how to fix it."""


class ConfigError(FactoryError):
    """A preset, size or model config that cannot be used."""


class ModelFolderError(FactoryError):
    """A folder that is not a usable deberta-v2 model."""


class OutputExistsError(FactoryError):
    """An output folder we must not overwrite (without --force) or cannot write."""


class ManifestError(FactoryError):
    """A factory.json that is missing, unreadable, or written by another step or another version of factory."""
