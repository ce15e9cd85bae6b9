"""Build hook: the wheel carries the checkout's eval/, recipes/ and vocab/ folders as package data.

They stay top-level in the repository (the documented layout, and the paths recipes and docs use), so
`build_py` copies them to `factory/bundled/` in the build tree; `factory.core.resources` looks there first
and falls back to the checkout, which is what an editable install (`pip install -e .`) sees.
Everything else about the package is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("eval", "recipes", "vocab")  # factory.core.resources.KINDS' folders


class BuildWithBundledData(build_py):
    """`build_py`, then the three data folders into build_lib/factory/bundled/ (not in editable mode)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the source tree is used in place: resources.py finds the checkout's folders
        root = Path(__file__).resolve().parent
        for name in BUNDLED:
            target = Path(self.build_lib) / "factory" / "bundled" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(root / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildWithBundledData})
