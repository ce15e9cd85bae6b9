"""The YAML files factory ships (eval suites, recipes, vocab specs), found by name or taken as a path.

A checkout keeps them in its top-level folders `eval/`, `recipes/` and `vocab/` (the documented layout);
a wheel carries copies of the same folders under `factory/bundled/` (setup.py's build step puts them
there), because site-packages has no checkout around it. `folder` looks in the package first and falls
back to the checkout, so an editable install, a plain checkout on PYTHONPATH and a wheel all find the
same files, and a recipe's data beside it (recipes/demo/corpus) comes along.

Names are bare words (`xnli`, `demo`, `cc100`); anything with a `/` or a suffix is a path.
"""

from __future__ import annotations

from pathlib import Path

from factory.core.errors import FactoryError

# kind -> the folder that holds its files (in the checkout, and under factory/bundled/ in a wheel)
KINDS = {"suite": "eval", "recipe": "recipes", "spec": "vocab"}
PACKAGE = Path(__file__).resolve().parents[1]  # factory/ (this file is factory/core/resources.py)
CHECKOUT = PACKAGE.parent


def folder(kind: str) -> Path:
    """Where the bundled files of `kind` live: the installed copy if there is one, else the checkout's."""
    sub = KINDS[kind]
    installed = PACKAGE / "bundled" / sub
    return installed if installed.is_dir() else CHECKOUT / sub


def names(kind: str) -> list[str]:
    """The bundled names of `kind`, sorted (`xnli`, `pawsx` for suites)."""
    where = folder(kind)
    return sorted(p.stem for p in where.glob("*.yaml")) if where.is_dir() else []


def find(kind: str, name_or_path: str | Path) -> Path:
    """A bundled file by name (`demo` -> recipes/demo.yaml), else the given path if it is a file.

    A bare name is looked up among the bundled files first, so a folder that happens to be called `xnli`
    in the working directory does not shadow the suite; a suffix-less file of that name is used only when
    nothing is bundled under it. Anything else is one FactoryError line that lists the bundled names.
    """
    text = str(name_or_path)
    path = Path(text)
    bare = "/" not in text and "\\" not in text and not path.suffix
    if bare and (folder(kind) / f"{text}.yaml").is_file():
        return folder(kind) / f"{text}.yaml"
    if path.is_file():
        return path
    available = ", ".join(names(kind)) or "none"
    if bare:
        raise FactoryError(f"no bundled {kind} named {text!r}; bundled: {available} (or give a path to a YAML file)")
    state = "is a folder, not a YAML file" if path.exists() else "not found"
    raise FactoryError(f"{kind} file {path} {state}; give a YAML file or a bundled name ({available})")
