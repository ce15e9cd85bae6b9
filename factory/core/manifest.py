"""Manifests: the `factory.json` each step writes into its output folder, one typed schema per step.

A later step reads an earlier step's manifest (pre-training reads the shards' and the vocabulary's, the model
card reads pre-training's, `factory run` asks whether a step's output is complete). With one dataclass per
step, a reader names the fields it wants and a writer cannot leave one out; a folder written by another
step or by another version of factory is refused in one line that says which command to run again, instead
of failing on a missing key far from the cause.

Every manifest carries `schema` (the version of its step's schema) and `step`, then the common fields
(`created`, `arguments` = the resolved config the step ran with, `versions`), then its step's own.
Version 1 is the untyped manifests that
came before (no `schema` key); version 2 keeps their keys, so a tool that read those still finds them. A
reader accepts exactly its own version: a field that is added or changes meaning bumps `VERSION`.

This module is the base every schema extends, `ModelSource` (which several steps record) and the reading,
writing and checking; each step's schema lives in its package (factory/vocab/manifest.py, factory/shards/...,
factory/model/manifest.py for `factory init`), and factory/recipe/steps.py names the one each step writes.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import json
import platform
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from factory.core.errors import ManifestError

MANIFEST = "factory.json"

M = TypeVar("M", bound="Manifest")


def versions() -> dict[str, str]:
    """factory, Python, the platform and the libraries already imported: enough to tell two runs apart."""
    from factory import __version__

    out = {"factory": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for mod in ("torch", "sentencepiece", "datasets", "accelerate"):
        module = sys.modules.get(mod)
        if module is not None:
            out[mod] = getattr(module, "__version__", "?")
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(kw_only=True)
class Manifest:
    """What every step records: which step, when, with which arguments and library versions."""

    STEP: ClassVar[str] = ""  # the `step` value, or its first word ("eval" for "eval xnli")
    COMMAND: ClassVar[str] = ""  # the command that writes it, for error messages
    VERSION: ClassVar[int] = 2

    schema: int = 0  # 0: this class's VERSION
    step: str = ""  # "": this class's STEP
    created: str = field(default_factory=_now)
    arguments: dict[str, Any]  # the step's resolved config (its factory/*/config.py, with its own `schema`), as it ran
    versions: dict[str, str] = field(default_factory=versions)

    def __post_init__(self) -> None:
        """Fill in `schema`/`step`, build nested objects from dicts, and check every value against its type:
        a writer that passes a wrong one fails here, in its own tests, not in the step that reads it."""
        cls = type(self)
        self.schema = self.schema or cls.VERSION
        self.step = self.step or cls.STEP
        hints = _hints(cls)
        for f in dataclasses.fields(self):
            try:
                setattr(self, f.name, _conform(getattr(self, f.name), hints[f.name], f.name))
            except _Mismatch as e:
                raise TypeError(f"{cls.__name__}: {e}") from None

    @classmethod
    def owns(cls, step: Any) -> bool:
        """Whether a manifest with this `step` value is this schema's ("eval xnli" is an eval manifest)."""
        return isinstance(step, str) and step.split(" ", 1)[0] == cls.STEP

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- where a model came from ---------------------------------------------------------------------
@dataclass
class ModelSource:
    """A model a step read (factory/core/sources.py): the text given and, for a Hub id, the repository and the commit
    its files came from (so the exact files can be fetched again)."""

    given: str
    repo_id: str | None = None  # None: a local folder
    revision: str | None = None  # the commit hash (Hub ids only)


# ---- writing and reading -------------------------------------------------------------------------
def write_manifest(folder: Path, manifest: M) -> M:
    """Write `manifest` as `folder/factory.json` (Paths and other objects as strings)."""
    text = json.dumps(manifest.to_json(), indent=2, default=str) + "\n"
    (Path(folder) / MANIFEST).write_text(text)
    return manifest


def read_manifest(folder: Path, kind: type[M] | tuple[type[Manifest], ...]) -> M:
    """The manifest in `folder`, as `kind` (or as whichever of several kinds its step is)."""
    manifest = find_manifest(folder, kind)
    if manifest is None:
        raise ManifestError(f"{folder} has no {MANIFEST}; give the folder that {_commands(kind)} wrote")
    return manifest


def find_manifest(folder: Path, kind: type[M] | tuple[type[Manifest], ...]) -> M | None:
    """Like `read_manifest`, but None when the folder has no factory.json (a manifest is optional there)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path} is not valid JSON ({e}); run {_commands(kinds)} again") from None
    step = data.get("step") if isinstance(data, dict) else None
    cls = next((k for k in kinds if k.owns(step)), None)
    if cls is None:
        what = f"the manifest of `factory {step}`" if isinstance(step, str) else "not a factory manifest"
        raise ManifestError(f"{path} is {what}, not of {_commands(kinds)}; give the folder that it wrote")
    version = data.get("schema", 1)
    if version != cls.VERSION:
        raise ManifestError(
            f"{path} is a version-{version} {cls.STEP} manifest and this factory reads version {cls.VERSION}; "
            f"run `{cls.COMMAND}` again to rewrite it"
        )
    return _from_json(cls, data, path)


def parse_manifest(data: dict[str, Any], kind: type[M]) -> M | None:
    """A manifest kept inside another (a derived model's `base_manifest`) as `kind`, or None when it is another
    step's, another version's, or does not fit the schema: provenance that cannot be read is left out."""
    if not (isinstance(data, dict) and kind.owns(data.get("step")) and data.get("schema", 1) == kind.VERSION):
        return None
    try:
        return _from_json(kind, data, Path(MANIFEST))
    except ManifestError:
        return None


def manifest_fingerprint(folder: Path) -> str | None:
    """sha256 prefix of the manifest's bytes: changes whenever its step ran again (`created` changes too)."""
    path = Path(folder) / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def _commands(kind: type[Manifest] | tuple[type[Manifest], ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(f"`{k.COMMAND}`" for k in kinds)


# ---- checking a JSON tree against the dataclasses -----------------------------------------------
class _Mismatch(Exception):
    """A value that does not fit its field; the reader and the writer word it differently."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_json(cls: type[M], data: dict[str, Any], path: Path) -> M:
    fix = f"; run `{cls.COMMAND}` again"
    try:
        return cls(**_fields(cls, data))
    except _Mismatch as e:
        raise ManifestError(f"{path}: {e}{fix}") from None


def _fields(cls: type, data: Any, where: str = "") -> dict[str, Any]:
    """The keyword arguments of `cls` from a JSON object: every required field there, no unknown one."""
    if not isinstance(data, dict):
        raise _Mismatch(f"{where or cls.__name__} should be an object, found {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    missing = [n for n, f in fields.items() if n not in data and _required(f)]
    if unknown or missing:
        problems = [f"unknown field {where}{n!r}" for n in unknown] + [f"missing field {where}{n!r}" for n in missing]
        raise _Mismatch(", ".join(problems))
    hints = _hints(cls)
    return {name: _conform(value, hints[name], f"{where}{name}") for name, value in data.items()}


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _conform(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the type hint `hint`; a nested dataclass is built from its JSON object."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _conform(value, inner[0], where) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else hint(**_fields(hint, value, f"{where}."))
    if origin is list:
        _expect(isinstance(value, list), value, "a list", where)
        return [_conform(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        _expect(isinstance(value, dict), value, "an object", where)
        return {k: _conform(v, args[1], f"{where}.{k}") for k, v in value.items()} if args else value
    if hint is float:  # JSON has one kind of number: 50 is a fine value for a float field
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), value, "a number", where)
        return float(value)
    if hint is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), value, "an int", where)
    elif isinstance(hint, type):
        _expect(isinstance(value, hint), value, f"a {hint.__name__}", where)
    return value


def _expect(ok: bool, value: Any, what: str, where: str) -> None:
    if not ok:
        raise _Mismatch(f"{where} should be {what}, found {_show(value)}")


def _show(value: Any) -> str:
    return json.dumps(value, default=str)[:60]
