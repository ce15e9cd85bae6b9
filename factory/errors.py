"""Typed errors, all of them. The library raises these; the CLI turns each into one `Error: ...` line.

Two families, told apart by who can fix the problem:

- `FactoryError` is a *user* mistake (bad flag, wrong folder, unreadable corpus): the message says what is
  wrong and how to fix it, in one line, and the exit code is 2, as for Click's own usage errors.
- `RunFailure` is a failure at run time that is not the user's input (a loss that became non-finite, a
  server that did not answer): the message says what happened and what to do next (resume, retry), and the
  exit code is 1, so scripts can tell "fix the command" from "the run failed".
"""


class FactoryError(Exception):
    """A problem with the user's input: one line, what is wrong and how to fix it (exit code 2)."""


class RunFailure(Exception):
    """A run that failed for a reason other than the user's input: one line, what to do next (exit code 1)."""


# ---- user mistakes --------------------------------------------------------------------------------
class ConfigError(FactoryError):
    """Options that cannot be used: the config resolver's error (every bad value at once), a preset or size."""


class ModelFolderError(FactoryError):
    """A folder that is not a usable deberta-v2 model."""


class OutputExistsError(FactoryError):
    """An output folder we must not overwrite (without --force) or cannot write."""


class RecipeError(FactoryError):
    """A recipe that cannot be run as written."""


class ShardError(FactoryError):
    """Shards that are missing, empty or do not fit the vocabulary / model."""


class HubAccessError(FactoryError):
    """The Hub refused the token or the repository (401/403): the user must fix the token or the repo id."""


class ManifestError(FactoryError):
    """A factory.json that is missing, unreadable, or written by another step or another version of factory."""


# ---- runtime failures -----------------------------------------------------------------------------
class TrainingError(RunFailure):
    """Training cannot go on (a non-finite loss); the message names the last good checkpoint to resume from."""


class UploadFailed(RunFailure):
    """The upload failed for a reason that is not the user's input (5xx, connection): retrying may work."""
