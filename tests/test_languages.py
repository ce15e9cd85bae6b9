"""The language table (factory/core/languages.py): it covers every code the project's specs and recipes use, the
CC100 configs and the language filter's profiles, and an unknown code is one line with a suggestion."""

from pathlib import Path

import pytest
import yaml

from factory.core.errors import FactoryError
from factory.core.languages import CC100, NAMES, check_languages, name

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE_KEYS = {"languages", "langs", "language", "lang", "train_lang", "train_language", "pivot", "probe_pivot"}
KEYWORDS = {"all"}  # `eval.*.langs: all`


def codes_in(node, key: str | None = None):
    """(where, code) for every language code in a YAML tree: language keys' values, `corpus` mapping keys and
    the LANG= prefixes of corpus entries."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "corpus" and isinstance(v, dict):
                yield from ((f"corpus key {c!r}", c) for c in v)
            yield from codes_in(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from codes_in(item, key)
    elif key in LANGUAGE_KEYS:
        for code in str(node).split(",") if isinstance(node, str) else [node]:
            if code not in KEYWORDS:
                yield key, code.strip() if isinstance(code, str) else code
    elif key == "corpus" and isinstance(node, str) and "=" in node.split(":", 1)[0]:
        yield "corpus prefix", node.split("=", 1)[0]


def yaml_files() -> list[Path]:
    return sorted([*(ROOT / "vocab").glob("*.yaml"), *(ROOT / "recipes").glob("*.yaml")])


def test_every_code_in_the_specs_and_recipes_is_a_string_of_the_table():
    found = [(path, where, code) for path in yaml_files() for where, code in codes_in(yaml.safe_load(path.read_text()))]
    assert len(found) > 150 and {"vocab/cc100.yaml", "recipes/demo.yaml"} <= {
        str(p.relative_to(ROOT)) for p, _, _ in found
    }
    bad = [f"{p.relative_to(ROOT)}: {where} {code!r}" for p, where, code in found
           if not isinstance(code, str) or code not in NAMES]  # fmt: skip
    assert not bad, (
        "codes outside factory/core/languages.py (a bare YAML `no` reads as False: quote it):\n" + "\n".join(bad)
    )


def test_the_walker_sees_what_yaml_does_to_a_bare_no():
    tree = yaml.safe_load("languages: [en, no]\ncorpus:\n  no: x.txt\nsteps: {pretrain: {corpus: [pt=a.txt]}}")
    assert list(codes_in(tree)) == [("languages", "en"), ("languages", False), ("corpus key False", False),
                                    ("corpus prefix", "pt")]  # fmt: skip


def test_the_table_covers_cc100_and_the_language_filter():
    from factory.corpus.langid.profiles import profile_codes

    spec = yaml.safe_load((ROOT / "vocab" / "cc100.yaml").read_text())
    assert set(spec["languages"]) <= set(CC100) and len(CC100) == 116
    assert set(profile_codes()) <= set(NAMES) and "und" in NAMES
    assert name("no") == "Norwegian" and name("zh_hans") == "Chinese (Simplified)" and name("ns") == "Northern Sotho"


def test_unknown_codes_are_one_line_with_a_suggestion():
    assert check_languages(["pt", "zh_hant"]) == ["pt", "zh_hant"]
    with pytest.raises(FactoryError) as caught:
        check_languages(["pt", "zh-hans"], "--langs")
    message = str(caught.value)
    assert "'zh-hans'" in message and "did you mean zh_hans?" in message and "\n" not in message
    for given, meant in (("portuguese", "pt"), ("Portugese", "pt"), ("chinese", "zh"), ("ruu", "ru")):  # names too
        with pytest.raises(FactoryError, match=rf"did you mean {meant}\?"):
            check_languages([given])
    with pytest.raises(FactoryError, match="boolean.*quote 'no'"):
        check_languages([False])


def test_a_multilingual_recipe_declares_every_source_and_its_shards_step_resolves():
    """The mDeBERTa recipe's pre-training sources are the vocabulary spec's, each with its `LANG=` (an undeclared
    source would be `und`, or one language), and its shards step resolves those languages as run would: the
    language filter on (fastText's lid.176), with the 12 CC100 languages lid.176 does not know let through; without
    that list, one line naming them and --no-langid."""
    from types import SimpleNamespace

    from factory.corpus import Source
    from factory.corpus.langid import known_codes
    from factory.shards.plan import resolve_languages

    recipe = yaml.safe_load((ROOT / "recipes" / "mdeberta-v3-base.yaml").read_text())
    spec = yaml.safe_load((ROOT / "vocab" / "cc100.yaml").read_text())
    assert recipe["corpus"] == [f"{lang}={source}" for lang, source in spec["corpus"].items()]
    sources = [Source.parse(c) for c in recipe["corpus"]]
    shards = recipe["steps"]["shards"]
    skip = shards["langid_skip"]
    assert skip == spec["langid_skip"] and shards["langid"] == spec["langid"] == "fasttext"
    assert set(skip) == set(spec["languages"]) - known_codes("fasttext")  # exactly the ones it does not know
    langs, langid = resolve_languages(SimpleNamespace(langs=None, langid=shards["langid"], langid_skip=skip), sources)
    assert langs == list(spec["corpus"]) and len(langs) > 100 and langid == "fasttext"
    with pytest.raises(FactoryError, match="does not know 'ff', 'ha'.*pass --no-langid") as caught:  # no skip list
        resolve_languages(SimpleNamespace(langs=None, langid=True, langid_skip=[]), sources)
    assert "\n" not in str(caught.value)
