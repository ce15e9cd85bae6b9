"""Typed configuration: one dataclass per step is the only home of each option's default, type, bounds and help.

A step's config (factory/*/config.py) is a frozen dataclass whose fields are declared with `option(...)`.
Everything else is derived from that one declaration:
- `resolve(Config, layers)` merges, lowest first, the defaults < files (a recipe section, a `--spec`, a suite's
  settings) < `--set` < command-line flags, then checks every value (unknown keys, types, ranges, NaN, choices,
  the config's own cross-field `problems()`) and raises *one* `ConfigError` naming every problem at once;
- `click_options(Config)` writes the Click options: `seq_len` -> `--seq-len`, the help text with its default.
  Click passes the raw strings through (no Click types), so a bad value is reported by the resolver with the
  others instead of stopping at the first one;
- `to_json(config)` is what a step writes into its manifest, with the config's schema version.

Values from YAML arrive typed (numbers, lists, booleans); values from flags and `--set` arrive as strings and
are parsed here, by the field's type. A boolean where text is expected is refused: YAML reads `no`, `on`, `yes`
as booleans, so a language code `no` (Norwegian) must be quoted.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING
from pathlib import Path
from typing import Any

from factory.core.errors import ConfigError, short_value

TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
NONE = {"none", "null", "~"}


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: Iterable[str] | None = None,
    flags: tuple[str, ...] = (),
    repeat: bool = False,
    secondary: bool = True,
    cli: bool = True,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
    switch: bool = False,
) -> Any:
    """A config field. `flags`: the option names (default `--field-name`); `repeat`: a list given by repeating the
    flag (`--corpus a --corpus b`) instead of one comma-separated value; `secondary`: a boolean gets `--no-X` too;
    `cli=False`: recipe/file only; `aliases`: other keys accepted in files (e.g. `languages` for `langs`);
    `switch`: a choice that can also be off (`X: str | None`): `--X CHOICE` and `--no-X`, and in files a
    boolean reads as on (the default choice) or off (None)."""
    meta = {
        "help": help,
        "low": low,
        "high": high,
        "low_open": low_open,
        "choices": tuple(choices) if choices is not None else None,
        "flags": flags,
        "repeat": repeat,
        "secondary": secondary,
        "cli": cli,
        "aliases": aliases,
        "metavar": metavar,
        "switch": default if switch else None,
    }
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ---- field types ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Kind:
    """A field's type reduced to what parsing needs: the base type, whether None is allowed, whether a list."""

    base: type
    optional: bool
    sequence: type | None  # list or tuple, or None for a scalar


def field_kinds(cls: type) -> dict[str, Kind]:
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(hints[f.name]) for f in dataclasses.fields(cls)}


def _kind(hint: Any) -> Kind:
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return Kind(typing.get_args(hint)[0], optional, origin)
    return Kind(hint, optional, None)


class Problem(ValueError):
    """One bad value; `resolve` collects them."""


def parse_value(value: Any, kind: Kind, meta: Mapping[str, Any]) -> Any:
    """`value` (typed from YAML, or a string from a flag) as the field's type, checked against its bounds."""
    on = meta.get("switch")
    if on is not None and (isinstance(value, bool) or str(value).strip().lower() in TRUE | FALSE):
        return on if _convert(value, bool) else None  # a switch: on (its default choice) or off
    if value is None or (isinstance(value, str) and kind.optional and value.strip().lower() in NONE):
        if kind.optional:
            return None
        raise Problem("needs a value")
    if kind.sequence is not None:
        if isinstance(value, str):
            items = [value] if meta.get("repeat") else [x.strip() for x in value.split(",") if x.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise Problem(f"{short_value(value)} is not a list")
        return kind.sequence(_scalar(item, kind.base, meta) for item in items)
    return _scalar(value, kind.base, meta)


def _scalar(value: Any, base: type, meta: Mapping[str, Any]) -> Any:
    parsed = _convert(value, base)
    choices = meta.get("choices")
    if choices is not None and parsed not in choices:
        raise Problem(f"{short_value(value)} is not one of {', '.join(map(str, choices))}")
    if base in (int, float):
        low, high = meta.get("low"), meta.get("high")
        if low is not None and (parsed < low or (meta.get("low_open") and parsed == low)):
            raise Problem(f"{short_value(value, quote=False)} must be {'>' if meta.get('low_open') else '>='} {low:g}")
        if high is not None and parsed > high:
            raise Problem(f"{short_value(value, quote=False)} must be <= {high:g}")
    return parsed


def _convert(value: Any, base: type) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
            return value.strip().lower() in TRUE
        raise Problem(f"{short_value(value)} is not true or false")
    if isinstance(value, bool):
        hint = "; YAML reads yes/no/on/off as booleans, so quote it (e.g. 'no')" if base is str else ""
        raise Problem(f"{short_value(value)} is a boolean, not a {base.__name__}{hint}")
    if base is str:
        if isinstance(value, (str, int, float)):
            return str(value)
        raise Problem(f"{short_value(value)} is not text")
    if base is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise Problem(f"{short_value(value)} is not a path")
    if base in (int, float):
        return _number(value, base)
    raise TypeError(f"config fields of type {base} are not supported")  # a programming error, not a user's


# One grammar for every count (tokens, steps, sentences, ...): a number, with an exponent or a suffix.
_COUNT = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*")
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def _count_value(text: str) -> float | None:
    """A count's value ('1.5k' -> 1500.0), None when the text is not in the count grammar."""
    match = _COUNT.fullmatch(text)
    return float(match.group(1)) * _SCALE[match.group(2).lower()] if match else None


def parse_count(text: str) -> int:
    """'1e9', '500M', '2B', '1.5k', '1000000' -> a whole number, at least 1 (ValueError otherwise)."""
    value = _count_value(str(text))
    if value is None:
        raise ValueError(f"{short_value(text)} is not a count (e.g. 1e9, 500M, 2B)")
    if not math.isfinite(value):
        raise ValueError(f"{short_value(text)} {_not_finite(text)}")
    if value < 1:
        raise ValueError(f"{short_value(text)} must be at least 1")
    return int(round(value))


MAX_DIGITS = 18  # the longest run of digits a grammar's whole number needs (no count factory takes nears 10**18)


def whole_number(digits: str) -> int | None:
    """A grammar's run of decimal digits as an int (a vocabulary size, a task's I/N), or None past MAX_DIGITS
    (leading zeros aside): a number no bound lets through, which the caller refuses as too large in its own words.
    int() itself raises ValueError past 4300 digits, which would be a traceback."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_DIGITS else None


def _not_finite(value: Any) -> str:
    """Why a value that parsed to infinity or NaN is refused: digits past a float's range (about 1.8e308) read as
    infinity, and are simply too large."""
    written = str(value).lower()
    return "is not a finite number" if "inf" in written or "nan" in written else "is too large"


def _number(value: Any, base: type) -> int | float:
    try:
        number = float(value) if isinstance(value, str) else value
        if not isinstance(number, (int, float)):
            raise ValueError
    except ValueError:
        number = _count_value(value) if base is int and isinstance(value, str) else None
        if number is None:  # a whole-number option takes the count grammar too: 10M, 2B, 1.5k
            counts = " (or a count: 10M, 2B, 1e9)" if base is int else ""
            raise Problem(f"{short_value(value)} is not a number{counts}") from None
    if not math.isfinite(number):
        raise Problem(f"{short_value(value)} {_not_finite(value)}")
    if base is int:
        if number != int(number):
            raise Problem(f"{short_value(value)} is not a whole number")
        return int(number)
    return float(number)


# ---- YAML ----------------------------------------------------------------------------------------
def load_yaml(text: str) -> Any:
    """YAML as factory reads every file and value a user writes (a recipe and its `--set` values, a vocab spec, a
    suite file): `yaml.safe_load`, except that an integer a float cannot hold (past about 1.8e308) stays the text
    it was written as. The resolver then refuses it as too large, as it refuses the same digits given to a flag;
    SafeLoader itself raises Python's ValueError for more than 4300 digits, which would be a traceback."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader: no Python objects


@functools.cache
def _yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader with `_integer` for YAML's integers."""

    def _integer(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
        try:
            value = yaml.SafeLoader.construct_yaml_int(loader, node)
            float(value)  # OverflowError past a float's range (0x/0o/0b digits convert to int at any length)
        except (ValueError, OverflowError):  # ValueError: more digits than int() converts
            return node.value
        return value

    Loader.add_constructor("tag:yaml.org,2002:int", _integer)
    return Loader


# ---- merging -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Layer:
    """Values from one source. `name` prefixes each key in messages: `steps.pretrain.` for a recipe section,
    `--` for flags (keys then read as flags: `--seq-len`), `--set ` for overrides."""

    values: Mapping[str, Any]
    name: str = ""

    def where(self, key: str) -> str:
        return f"Invalid value for '--{key.replace('_', '-')}'" if self.name == "--" else f"{self.name}{key}"


def resolve(cls: type, layers: Iterable[Layer], fixed: Mapping[str, Any] | None = None, wired_by: str = ""):
    """defaults < layers (lowest first) < `fixed` (values the program sets itself, e.g. the folders that
    `factory run` connects: a layer that sets one is a problem). Every problem is reported in one error."""
    config, problems = check(cls, layers, fixed, wired_by)
    if problems:
        fail(problems)
    return config


def fail(problems: list[str]) -> typing.NoReturn:
    """One ConfigError (one line, exit 2) for all the problems found."""
    raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems))


def check(cls: type, layers: Iterable[Layer], fixed: Mapping[str, Any] | None = None, wired_by: str = ""):
    """`resolve` without raising: (the config or None, the problems), so a recipe can report every step's."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kinds = field_kinds(cls)
    keys = {alias: name for name, f in fields.items() for alias in f.metadata.get("aliases", ())}
    keys.update({name: name for name in fields})
    settable = [name for name in fields if name not in (fixed or {})]
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for layer in layers:
        for key, value in layer.values.items():
            name = keys.get(str(key).replace("-", "_"))
            if name is None:
                problems.append(_unknown(layer, str(key), settable))
            elif fixed and name in fixed:
                problems.append(f"{layer.where(str(key))} is set by {wired_by or 'the program'}; remove it")
            else:
                try:
                    merged[name] = parse_value(value, kinds[name], fields[name].metadata)
                except Problem as e:
                    problems.append(f"{layer.where(str(key))}: {e}")
    merged.update(fixed or {})
    for name, f in fields.items():
        if name not in merged and default_of(f) is MISSING:
            problems.append(f"--{name.replace('_', '-')} is required")
    if problems:
        return None, problems
    config = cls(**merged)
    problems = config.problems() if hasattr(config, "problems") else []
    return (None if problems else config), problems


def _unknown(layer: Layer, key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key.replace("-", "_"), valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(sorted(valid))}"
    return f"{layer.name.rstrip('. :') or 'config'}: unknown key {short_value(key)}{hint}"


def override(config, layers: Iterable[Layer]):
    """`config` with more layers on top (e.g. `--set` over a suite's settings), checked like `resolve`."""
    return resolve(type(config), [Layer(to_values(config), ""), *layers])


def to_values(config) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def to_json(config) -> dict[str, Any]:
    """The resolved config as JSON values (paths as text, tuples as lists), with its schema version."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    values = {name: plain(value) for name, value in to_values(config).items()}
    return {"schema": getattr(config, "SCHEMA", 1), **values}


# ---- Click ---------------------------------------------------------------------------------------
def click_options(cls: type, exclude: Iterable[str] = ()) -> Callable:
    """A decorator adding one Click option per CLI field of `cls` (in field order). Each option passes the raw
    value (None when not given) so that `from_flags` + `resolve` check all of them together."""
    import click

    kinds = field_kinds(cls)
    skip = set(exclude)
    made = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        made.append(_click_option(click, f, kinds[f.name]))

    def decorate(command: Callable) -> Callable:
        for make in reversed(made):
            command = make(command)
        return command

    return decorate


def _click_option(click, f: dataclasses.Field, kind: Kind) -> Callable:
    meta = f.metadata
    flags = list(meta.get("flags") or (f"--{f.name.replace('_', '-')}",))
    help_text = meta.get("help", "") + _default_text(f, kind)
    if kind.base is bool and kind.sequence is None:
        if meta.get("secondary", True):
            flags = [f"{flags[0]}/--no-{flags[0][2:]}", *flags[1:]]
            return click.option(*flags, f.name, default=None, help=help_text)
        return click.option(*flags, f.name, is_flag=True, default=None, help=help_text)
    if meta.get("switch") is not None:  # --X CHOICE, and --no-X (named in X's help) giving "off" to the same parameter
        value = _value_option(click, f, kind, flags, help_text)
        off = click.option(f"--no-{flags[0][2:]}", f.name, flag_value="off", default=None, hidden=True)
        return lambda command: off(value(command))
    return _value_option(click, f, kind, flags, help_text)


def _value_option(click, f: dataclasses.Field, kind: Kind, flags: list[str], help_text: str) -> Callable:
    meta = f.metadata
    choices = meta.get("choices")
    metavar = meta.get("metavar") or (f"[{'|'.join(choices)}]" if choices else _metavar(kind, meta))
    complete = (lambda ctx, param, incomplete: [c for c in choices if c.startswith(incomplete)]) if choices else None
    return click.option(
        *flags,
        f.name,
        default=None,
        multiple=bool(meta.get("repeat")),
        metavar=metavar,
        help=help_text,
        shell_complete=complete,
    )


def _metavar(kind: Kind, meta: Mapping[str, Any]) -> str:
    names = {int: "INT", float: "NUMBER", Path: "PATH", str: "TEXT"}
    return names.get(kind.base, "TEXT") + (",..." if kind.sequence and not meta.get("repeat") else "")


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (a fresh one for lists), or MISSING for a required field."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _default_text(f: dataclasses.Field, kind: Kind) -> str:
    default = default_of(f)
    if default is MISSING:
        return "  [required]" if f.metadata.get("cli", True) else ""
    if kind.base is bool and kind.sequence is None:  # a plain flag (--force) is off unless given
        return f"  [default: {'on' if default else 'off'}]" if f.metadata.get("secondary", True) else ""
    if default is None or default == () or default == []:
        return ""
    shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
    return f"  [default: {shown}]"


def command_line(config) -> list[str]:
    """The flags that give `config` from the defaults (for showing a plan; `factory run` itself passes the
    config object, never a command line)."""
    kinds = field_kinds(type(config))
    args: list[str] = []
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), kinds[f.name]
        if not f.metadata.get("cli", True) or value == _unset(config, f):
            continue
        if value is None and f.metadata.get("switch") is None:
            continue
        flag = (f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",))[0]
        if value is None and f.metadata.get("switch") is not None:
            args.append(f"--no-{flag[2:]}")
        elif kind.base is bool and kind.sequence is None:
            args.append(flag if value else f"--no-{flag[2:]}")
        elif kind.sequence is not None and f.metadata.get("repeat"):
            args += [part for item in value for part in (flag, str(item))]
        elif kind.sequence is not None:
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]
    return args


def _unset(config, f: dataclasses.Field) -> Any:
    """What `config` holds for `f` when it is not given: its default, or what the config fills in itself then
    (PretrainConfig's preset and layout for a run from scratch), which a command line need not say either."""
    default = default_of(f)
    return default if default is MISSING else getattr(dataclasses.replace(config, **{f.name: default}), f.name)


def from_flags(values: Mapping[str, Any]) -> Layer:
    """The options the user actually gave (Click passes None, or () for a repeatable option, otherwise)."""
    given = {k: v for k, v in values.items() if v is not None and v != ()}
    return Layer(given, "--")
