"""Bundled suites, recipes and vocab specs: found by name (checkout or wheel), paths still accepted."""

import ast
from pathlib import Path

import pytest

from factory.core import resources
from factory.core.errors import FactoryError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "kind, name, expected", [("suite", "xnli", "eval/xnli.yaml"), ("recipe", "demo", "recipes/demo.yaml"),
                             ("spec", "cc100", "vocab/cc100.yaml")],
)  # fmt: skip
def test_a_name_finds_the_bundled_file(kind, name, expected):
    assert resources.find(kind, name) == ROOT / expected
    assert name in resources.names(kind)


def test_every_bundled_file_is_listed():
    for kind, sub in resources.KINDS.items():
        assert resources.names(kind) == sorted(p.stem for p in (ROOT / sub).glob("*.yaml"))


def test_a_path_is_taken_as_given(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: x\n")
    assert resources.find("recipe", mine) == mine
    assert resources.find("recipe", str(mine)) == mine


def test_unknown_name_lists_the_bundled_ones():
    with pytest.raises(FactoryError) as e:
        resources.find("suite", "xnlii")
    message = str(e.value)
    bundled = ", ".join(sorted(p.stem for p in (ROOT / "eval").glob("*.yaml")))
    assert "\n" not in message and "'xnlii'" in message and f"bundled: {bundled} " in message


def test_missing_path_and_folder_are_one_line(tmp_path):
    with pytest.raises(FactoryError, match=r"not found; .*demo") as e:
        resources.find("recipe", tmp_path / "nope.yaml")
    assert "\n" not in str(e.value)
    with pytest.raises(FactoryError, match="is a folder"):
        resources.find("recipe", tmp_path)


def test_a_folder_in_the_working_directory_does_not_shadow_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "xnli").mkdir()  # e.g. `factory eval xnli --out xnli`
    assert resources.find("suite", "xnli") == ROOT / "eval" / "xnli.yaml"
    (tmp_path / "mysuite").write_text("labels: [a, b]\n")  # a suffix-less file is used when nothing is bundled
    assert resources.find("suite", "mysuite") == Path("mysuite")


def test_an_installed_copy_is_preferred_over_the_checkout(tmp_path, monkeypatch):
    """What a wheel has: factory/bundled/<folder>/, with a recipe's data beside it."""
    (tmp_path / "bundled" / "recipes" / "demo" / "corpus").mkdir(parents=True)
    (tmp_path / "bundled" / "recipes" / "demo.yaml").write_text("name: demo\n")
    monkeypatch.setattr(resources, "PACKAGE", tmp_path)
    assert resources.find("recipe", "demo") == tmp_path / "bundled" / "recipes" / "demo.yaml"
    assert resources.folder("suite") == ROOT / "eval"  # nothing installed for suites: the checkout's


def test_setup_bundles_the_folders_resources_reads():
    tree = ast.parse((ROOT / "setup.py").read_text())
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    assert ast.literal_eval(assigned["BUNDLED"]) == tuple(resources.KINDS.values())
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert all(f"graft {sub}" in manifest for sub in resources.KINDS.values())


def _spec(name: str):
    """A bundled vocab spec through the resolver, as `factory vocab --spec NAME` reads it."""
    from factory.core.options import Layer, resolve
    from factory.vocab.config import VocabConfig
    from factory.vocab.train import with_spec

    return resolve(VocabConfig, with_spec([Layer({"spec": name, "out": "unused"})]))


def test_the_three_loaders_take_names():
    from factory.evaluate.suite import load_suite
    from factory.recipe.run import load_recipe

    assert load_suite("xnli").name == "xnli"
    assert load_recipe(Path("demo"))["_dir"] == str(ROOT / "recipes")
    assert len(_spec("cc100").langs) == 110


def test_spec_language_codes_are_strings():
    """YAML 1.1 reads a bare `no` (Norwegian) as false: every code in every spec must come back a string."""
    for name in resources.names("spec"):
        spec = _spec(name)  # the resolver refuses a boolean where a code is expected
        assert all(isinstance(lang, str) for lang in spec.langs), name
        assert all(isinstance(c, str) and not c.startswith(("False=", "True=")) for c in spec.corpus), name


def test_recipe_sources_are_strings():
    """The same YAML trap in a recipe: `hf:statmt/cc100:no` once came out as `...:False`."""
    import yaml

    for name in resources.names("recipe"):
        recipe = yaml.safe_load(resources.find("recipe", name).read_text(encoding="utf-8"))
        sources = list(recipe.get("corpus") or [])
        for step in (recipe.get("steps") or {}).values():
            sources += list((step or {}).get("corpus") or []) if isinstance(step, dict) else []
        assert all(isinstance(s, str) and not s.endswith((":False", ":True")) for s in sources), name
