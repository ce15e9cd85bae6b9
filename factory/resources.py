"""Files that ship with factory (placeholder until the packaging work lands)."""

from __future__ import annotations

from pathlib import Path

from factory.errors import FactoryError

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"vocab": "vocab", "eval": "eval", "recipes": "recipes"}


def find_resource(kind: str, name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.exists() or path.suffix:
        return path
    candidate = ROOT / FOLDERS[kind] / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    raise FactoryError(f"no {kind} named {name_or_path!r}")
