"""factory/core/sources.py: a folder or a Hub id `org/name[@revision]`, resolved offline from a cache the test
builds."""

import pytest
from conftest import micro_config
from published import hub_cache, published_folder

from factory.core.errors import ModelFolderError
from factory.core.sources import parse_hub_id, resolve_model

REPO = "microsoft/deberta-v3-xsmall"


@pytest.fixture
def published(tmp_path, tiny_vocab):
    return published_folder(tmp_path / "published", micro_config(), tokenizer=tiny_vocab)


def test_parse_hub_id():
    assert parse_hub_id("microsoft/deberta-v3-xsmall") == ("microsoft/deberta-v3-xsmall", None)
    assert parse_hub_id("org/name@v1.0") == ("org/name", "v1.0")
    assert parse_hub_id("org/name@refs/pr/4") == ("org/name", "refs/pr/4")
    for text in ("runs/demo/pretrain", "name", "org/na--me", "org/name@", "org/name@a b", "./x/y"):
        assert parse_hub_id(text) is None, text


def test_a_folder_is_used_as_it_is(published):
    model = resolve_model(published)
    assert model.path == published and not model.is_hub and model.revision is None


def test_a_hub_id_resolves_to_the_cached_commit(published, hf_cache):
    commit = hub_cache(hf_cache, REPO, published)
    model = resolve_model(REPO)
    assert model.is_hub and model.repo_id == REPO and model.revision == commit
    assert model.path.name == commit and (model.path / "pytorch_model.bin").is_file()
    assert model.describe() == {"given": REPO, "repo_id": REPO, "revision": commit}
    assert resolve_model(f"{REPO}@{commit}").path == model.path  # a commit
    other = hub_cache(hf_cache, REPO, published, branch="v2", commit="b" * 40)
    assert resolve_model(f"{REPO}@v2").revision == other  # a branch or tag: the commit it points at


def test_parts_the_snapshot_must_hold(tmp_path, hf_cache, tiny_vocab):
    bare = published_folder(tmp_path / "bare", micro_config(), generator=False)  # no spm.model
    hub_cache(hf_cache, "org/bare", bare)
    assert (resolve_model("org/bare", parts=("model", "generator")).path / "config.json").is_file()
    with pytest.raises(ModelFolderError, match="no spm.model"):
        resolve_model("org/bare", parts=("tokenizer",))


def test_unusable_names_are_one_line(tmp_path, hf_cache):
    with pytest.raises(ModelFolderError, match="HF_HUB_OFFLINE is set") as e:
        resolve_model("org/not-cached")
    assert "hf download org/not-cached" in str(e.value)
    with pytest.raises(ModelFolderError, match="neither a folder nor a Hub model id"):
        resolve_model(tmp_path / "no" / "such" / "folder")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFolderError, match="is a file"):
        resolve_model(tmp_path / "file")
