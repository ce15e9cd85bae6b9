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


class DiskFull(RunFailure):
    """A write failed for lack of space. The message says so and to free some; the CLI adds what a rerun of the
    command that failed keeps (factory.cli.main.RERUN), which only it knows."""


class WorkerDied(RunFailure):
    """A worker process ended without answering (what the caller can add: how to resume). Raised by both corpus
    worker pool (factory/corpus/pool.py) with `worker_death`'s line."""


def worker_death(code: int | None) -> str:
    """The one line for a worker process that ended with exit code `code` (None: not known) before answering."""
    import signal

    if code is not None and code < 0:
        name = signal.Signals(-code).name
        how = f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    else:
        how = f"exited with code {code}" if code is not None else "closed its pipe"
    return f"a worker process {how} before answering"


# ---- the operating system's errors ---------------------------------------------------------------
# A path the user gave that cannot be used (a name too long, no permission, a file where a folder should be):
# their mistake, exit 2. Anything else the OS reports (a full disk, an I/O error) is a failure of the run: exit 1.
_USER_ERRNOS = {"ENAMETOOLONG", "EACCES", "EPERM", "EROFS", "ENOTDIR", "EISDIR", "EEXIST", "ENOENT", "ELOOP"}
_HINTS = {
    "ENAMETOOLONG": "use shorter names (most file systems allow 255 bytes per name)",
    "EACCES": "pick a path this user can write (or read)",
    "EPERM": "pick a path this user can write (or read)",
    "EROFS": "the file system is read-only; pick another path",
    "ENOSPC": "free some space (or pick another disk) and run the step again; a resumable step continues with --resume",
    "EDQUOT": "the disk quota is used up; free some space and run the step again",
}


def os_failure(error: OSError) -> FactoryError | RunFailure:
    """An OSError as one line naming the file and what is wrong; the class says whose problem it is."""
    import errno

    name = errno.errorcode.get(error.errno or 0, "")
    what = error.strerror or str(error) or type(error).__name__
    names = [n for n in (error.filename, getattr(error, "filename2", None)) if n is not None]
    where = (": " + " -> ".join(short_path(n) for n in names)) if names else ""
    hint = f"; {_HINTS[name]}" if name in _HINTS else ""
    cls = FactoryError if name in _USER_ERRNOS else RunFailure
    return cls(f"{what}{where}{hint}")


def short_path(path: object, longest: int = 40) -> str:
    """A path for a one-line message: any name over `longest` characters is cut, with its size in bytes, so a
    300-byte name does not fill the line it is named in."""
    import os

    parts = str(os.fsdecode(path) if isinstance(path, bytes) else path).split("/")
    return "/".join(p if len(p) <= longest else f"{p[:12]}...({len(p.encode())} bytes)" for p in parts)


def short_value(value: object, longest: int = 60, *, quote: bool = True) -> str:
    """A value the user gave, for a one-line message: as repr() writes it (str() with `quote=False`), cut after
    `longest` characters with its length, so a 20 KB `--set` value does not make a 20 KB error line while the
    line still shows what the value began with. Paths: `short_path`."""
    text = repr(value) if quote else str(value)
    if len(text) <= longest:
        return text
    size = len(value) if isinstance(value, str) else len(text)
    return f"{text[:longest]}...({size:,} characters)"


# ---- the Hub ----------------------------------------------------------------------------------------
_NETWORK = ("ConnectionError", "ConnectError", "ConnectTimeout", "ReadTimeout", "Timeout", "TimeoutError",
            "LocalEntryNotFoundError", "gaierror")  # fmt: skip
_NETWORK_TEXT = ("Name or service not known", "Couldn't reach", "Temporary failure in name resolution",
                 "Connection refused", "Network is unreachable", "timed out")  # fmt: skip


def hub_failure(error: BaseException, what: str, fix: str = "pass a local path instead") -> FactoryError | RunFailure:
    """A failure to load `what` from the Hugging Face Hub as one line. Offline by choice (HF_HUB_OFFLINE) and a
    name the Hub does not have are the user's to fix (exit 2); a network that does not answer is a failure of
    the run (exit 1: retrying later may work)."""
    import os

    text = str(error).strip()
    first = (text.splitlines()[0] if text else type(error).__name__)[:200]
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return FactoryError(f"{what}: not in the local cache and the Hub is off (HF_HUB_OFFLINE=1) ({first}); {fix}")
    names = {k.__name__ for k in type(error).__mro__}
    if names & set(_NETWORK) or any(t in text for t in _NETWORK_TEXT):
        return RunFailure(f"{what}: could not reach the Hugging Face Hub ({first}); check the network and run again, "
                          f"or {fix}")  # fmt: skip
    return FactoryError(f"{what}: {first}; check the name, or {fix}")


# ---- a full disk -----------------------------------------------------------------------------------
# What the writers say when the disk is full: Python (errno 28), safetensors ("os error 28"), pyarrow ("[errno
# 28]"), torch.save ("file write failed" from its zip writer, inline_container.cc), SentencePiece (a failed
# WriteLine check).
_FULL_TEXT = ("No space left on device", "os error 28", "errno 28", "file write failed", "output->WriteLine")


def disk_failure(error: BaseException, folder: object = None) -> DiskFull | None:
    """A DiskFull line (exit 1) when `error` is a write that failed for lack of space, else None. `folder`:
    where the step was writing, to say how much space is left there."""
    import errno

    text = str(error)
    full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    if not (full or any(t in text for t in _FULL_TEXT)):
        return None
    left = ""
    if folder is not None:
        import shutil

        try:
            left = f" ({shutil.disk_usage(folder).free / 2**20:,.1f} MiB free in {short_path(folder)})"
        except OSError:
            left = ""
    return DiskFull(
        f"the disk is full{left}: a write failed ({type(error).__name__}); free some space (or pick another disk)"
    )
