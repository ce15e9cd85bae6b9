"""Every benchmark imports and has its entry point, and its --help names it as it is run."""

import importlib
import pkgutil

import pytest

KINDS = ("speed", "studies", "device", "faults", "data")
SCRIPTS = [
    f"bench.{kind}.{info.name}"
    for kind in KINDS
    for info in pkgutil.iter_modules(importlib.import_module(f"bench.{kind}").__path__)
]
LIBRARIES = {"bench.studies.quality_arms", "bench.studies.quality_data", "bench.studies.quality_report"}


def test_the_kinds_hold_the_scripts():
    assert len(SCRIPTS) >= 18 and "bench.speed.step" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_imports_and_has_main(name):
    module = importlib.import_module(name)
    assert module.__doc__, name
    if name not in LIBRARIES:
        assert callable(getattr(module, "main", None)), f"{name} has no main()"


@pytest.mark.parametrize("name", ["bench.speed.shards", "bench.faults.kills", "bench.data.demo_table"])
def test_help_names_the_module(name, capsys):
    module = importlib.import_module(name)
    with pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {name} ")
