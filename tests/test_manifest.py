"""Typed manifests: what a step writes reads back as the same object; anything else is one clear error."""

import json

import pytest

from factory.core.errors import FactoryError, ManifestError
from factory.core.manifest import MANIFEST, find_manifest, read_manifest, write_manifest
from factory.evaluate.manifest import EvalFigures, EvalInputs, EvalManifest
from factory.model.manifest import InitManifest
from factory.pretrain.manifest import PretrainManifest
from factory.recipe.run import Step, is_done
from factory.recipe.steps import schema_for
from factory.shards.manifest import ShardFile, ShardsManifest
from factory.vocab.manifest import VocabManifest


def shards_manifest(**changes) -> ShardsManifest:
    figures = dict(vocab_fingerprint="0123456789abcdef", vocab_pieces=1000, mask_token_id=1000, seq_len=64,
                   documents=10, sequences=5, tokens=300, padding=20, corpus=["a.txt"])  # fmt: skip
    return ShardsManifest(
        arguments={"seq_len": 64}, shards=[ShardFile("shard-00000.arrow", 5)], **{**figures, **changes}
    )


def test_round_trip_and_the_json_keys(tmp_path):
    written = write_manifest(tmp_path, shards_manifest())
    assert read_manifest(tmp_path, ShardsManifest) == written
    data = json.loads((tmp_path / MANIFEST).read_text())
    assert list(data)[:5] == ["schema", "step", "created", "arguments", "versions"]
    assert data["schema"] == ShardsManifest.VERSION == 3 and data["step"] == "shards" and "config" not in data
    assert data["seq_len"] == 64 and data["shards"] == [
        {"file": "shard-00000.arrow", "sequences": 5, "language": "und"}
    ]
    eval_manifest = EvalManifest(step="eval xnli", arguments={}, inputs=EvalInputs("m"),
                                 figures=EvalFigures({"test": {"accuracy": 50}}, ["en"], ["test"]))  # fmt: skip
    write_manifest(tmp_path, eval_manifest)
    assert read_manifest(tmp_path, EvalManifest).step == "eval xnli" and schema_for("eval xnli") is EvalManifest
    assert schema_for("publish") is None


def test_one_of_several_kinds(tmp_path):
    write_manifest(tmp_path, InitManifest(arguments={"preset": "debug"}, parameters={"total": 1}))
    assert isinstance(read_manifest(tmp_path, (PretrainManifest, InitManifest)), InitManifest)


def _error(folder, kind=ShardsManifest) -> str:
    with pytest.raises(ManifestError) as caught:
        read_manifest(folder, kind)
    message = str(caught.value)
    assert isinstance(caught.value, FactoryError) and "\n" not in message
    return message


def test_missing_unreadable_other_step_other_version(tmp_path):
    assert find_manifest(tmp_path, ShardsManifest) is None
    assert str(tmp_path) in _error(tmp_path) and "`factory shards`" in _error(tmp_path)
    path = tmp_path / MANIFEST
    path.write_text("{not json")
    assert f"{path} is not valid JSON" in _error(tmp_path)
    path.write_text('["a list"]')
    assert "not a factory manifest" in _error(tmp_path)
    write_manifest(tmp_path, InitManifest(arguments={}, parameters={}))
    assert "is the manifest of `factory init`, not of `factory shards`" in _error(tmp_path)
    # a manifest as factory wrote them before the schemas (version 1: no "schema" key)
    old = {k: v for k, v in shards_manifest().to_json().items() if k not in ("schema", "corpus")}
    path.write_text(json.dumps(old))
    message = _error(tmp_path)
    assert "version-1 shards manifest" in message and "reads version 3" in message
    assert "run `factory shards` again" in message


def test_fields_are_checked_by_type(tmp_path):
    path = tmp_path / MANIFEST
    data = shards_manifest().to_json()
    for changes, expected in (
        ({"seq_len": "64"}, "seq_len should be an int"),
        ({"seq_len": True}, "seq_len should be an int"),
        ({"shards": [{"file": "x"}]}, "missing field shards[0].'sequences'"),
        ({"seq_lenn": 64}, "unknown field 'seq_lenn'"),
    ):
        path.write_text(json.dumps({**data, **changes}))
        assert expected in _error(tmp_path), changes
    del data["tokens"]
    path.write_text(json.dumps(data))
    assert "missing field 'tokens'" in _error(tmp_path)


def test_the_writer_checks_types_too():
    with pytest.raises(TypeError, match="ShardsManifest: seq_len should be an int"):
        shards_manifest(seq_len=64.0)
    with pytest.raises(TypeError, match="missing"):
        VocabManifest(arguments={})  # every figure of the step is required
    assert shards_manifest(tokens=300).tokens == 300


def test_factory_run_reruns_a_step_whose_manifest_is_another_version(tmp_path):
    step = Step("shards", "shards", {}, tmp_path)
    assert not is_done(step, {}, {"shards": {}})  # no manifest yet
    write_manifest(tmp_path, shards_manifest())
    assert is_done(step, {}, {"shards": {}})
    data = shards_manifest().to_json()
    (tmp_path / MANIFEST).write_text(json.dumps({**data, "schema": 1}))
    assert not is_done(step, {}, {"shards": {}})
