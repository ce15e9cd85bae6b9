"""`factory publish`: the staged folder, its model card, and the upload up to the HTTP boundary (fake Hub)."""

import json
import logging
import os
import shutil

import pytest
import torch
from click.testing import CliRunner
from conftest import model_folder, one_error_line
from fake_hub import FakeHub

from factory.cli.main import cli
from factory.core.manifest import write_manifest
from factory.model import load_model
from factory.model.presets import count_parameters
from factory.pretrain.manifest import Losses, PretrainManifest
from factory.publish.card import card_languages

TOKEN = "hf_fakeTOKEN0123456789abcdefSECRET"
TRAIN_LANGS = ["en", "pt", "ru"]
EVAL_LANGS = ["en", "pt", "ru", "zh"]


def pretrain_manifest(**figures):
    """The manifest pre-training writes into an exported discriminator, through the real schema; its warm-up,
    precision and hardware are not recorded (None), so the card must leave those rows out."""
    plan = dict(preset="debug", vocab_size=1000, embedding_rows=1100, seq_len=128, batch=32, micro_batch=32,
                accumulation=1, processes=1, lr=5e-4, steps=1234, tokens=1234 * 32 * 128)  # fmt: skip
    return PretrainManifest(
        arguments={"preset": "debug", "sharing": "gdes"},
        role="discriminator",
        **plan,
        sharing="gdes",
        rtd_lambda=50.0,
        parameters={"generator": 90_000, "discriminator": 120_000, "total": 210_000},
        flops_per_step=1.5e9,
        final=Losses(mlm_loss=3.2109, rtd_loss=0.2468, rtd_accuracy=0.91),
        tokens_per_s=930.5,
        wall_time_s=5432.0,
        shards="runs/x/shards",
        vocab_fingerprint="0123456789abcdef",
        **figures,
    )


def run(*args):
    """`factory publish ARGS` in-process."""
    return CliRunner().invoke(cli, ["publish", *(str(a) for a in args)])


def make_model_folder(folder, tiny_vocab, head="rtd", layers=2, seed=0, **factory):
    """What `factory vocab` writes (the tiny_vocab fixture is built by it) goes beside the weights."""
    return model_folder(folder, 1000, head=head, layers=layers, seed=seed, tokenizer=tiny_vocab, preset="debug",
                        **factory)  # fmt: skip


def xnli_results():
    """A results.json as `factory eval xnli` writes it (schema factory.eval/v1)."""
    acc = {"en": 61.25, "pt": 55.5, "ru": 52.75, "zh": 40.0}
    results = {
        lang: {
            "validation": {"accuracy": a + 1, "std": 0.5, "per_run": [a + 0.5, a + 1.5], "n": 2490},
            "test": {"accuracy": a, "std": 0.4, "per_run": [a - 0.4, a + 0.4], "n": 5010},
        }
        for lang, a in acc.items()
    }
    mean = sum(acc.values()) / len(acc)
    return {
        "schema": "factory.eval/v1",
        "suite": "xnli",
        "model": "model",
        "train_language": "en",
        "languages": EVAL_LANGS,
        "runs": 2,
        "seeds": [1, 2],
        "settings": {"lr": 2e-5, "epochs": 1},
        "results": results,
        "average": {"validation": {"accuracy": mean + 1, "std": 0.3}, "test": {"accuracy": mean, "std": 0.2}},
        "references": {
            "mDeBERTa-v3-base": {"en": 88.2, "ru": 80.8, "zh": 79.5, "avg": 79.8},
            "XLM-R-base": {"en": 85.8, "ru": 78.1, "zh": 76.7, "avg": 76.2},
        },
    }


def of_model(results, model):
    """`results` as `factory eval` writes them for the model folder `model`: with its weights' fingerprint."""
    from factory.model.folder import weights_fingerprint

    return {**results, "model_fingerprint": weights_fingerprint(model)}


@pytest.fixture(scope="module")
def family(tmp_path_factory, tiny_vocab):
    """A pre-trained-looking family: discriminator (+ manifest, + eval results) and generator folders."""
    root = tmp_path_factory.mktemp("family")
    model = make_model_folder(root / "model", tiny_vocab, languages=TRAIN_LANGS)
    write_manifest(model, pretrain_manifest())
    (model / "eval" / "xnli").mkdir(parents=True)
    (model / "eval" / "xnli" / "results.json").write_text(json.dumps(of_model(xnli_results(), model)))
    generator = make_model_folder(root / "generator", tiny_vocab, head="mlm", layers=1, seed=1, emd=False)
    return root, model, generator


@pytest.fixture(scope="module")
def staged(family):
    """`factory publish --dry-run` of the family: the staging folder and the command's output."""
    root, model, generator = family
    staging = root / "staging"
    result = run(model, "--repo-id", "me/deberta-v3-debug", "--generator", generator, "--staging", staging, "--dry-run")
    assert result.exit_code == 0, result.output
    return staging, result


# ---- 1. the card ---------------------------------------------------------------------------------
def test_card_reads_back_with_its_metadata(family, staged):
    from huggingface_hub import ModelCard

    _, model, _ = family
    staging, result = staged
    assert "dry run: nothing uploaded" in result.output and "4 results in its model-index" in result.output
    card = ModelCard.load(staging / "README.md")
    data = card.data
    assert data.language == ["multilingual", *TRAIN_LANGS] == card_languages(TRAIN_LANGS)
    assert data.license == "mit" and data.library_name == "transformers"
    assert {"deberta", "deberta-v3", "fill-mask"} <= set(data.tags)
    # model-index: one XNLI accuracy per language evaluated, on the dev split (as the published references)
    results = xnli_results()["results"]
    assert [r.dataset_config for r in data.eval_results] == EVAL_LANGS
    expected = [results[lang]["validation"]["accuracy"] for lang in EVAL_LANGS]
    assert [r.metric_value for r in data.eval_results] == expected
    assert {(r.task_type, r.dataset_type, r.dataset_split, r.metric_type) for r in data.eval_results} == {
        ("text-classification", "facebook/xnli", "validation", "accuracy")
    }
    assert data.model_name == "deberta-v3-debug"
    intro = card.text.split("## Architecture")[0]
    assert "debug DeBERTa-v3 encoder for English, Portuguese and Russian, pre-trained ELECTRA-style" in intro
    assert "gradient-disentangled embedding sharing (GDES)" in intro and "It has 2 layers" in intro


def test_card_body_numbers_come_from_the_files(family, staged):
    staging, _ = staged
    _, model, _ = family
    text = (staging / "README.md").read_text()
    counts = count_parameters(load_model(model).config)
    assert f"| Backbone parameters | {counts['backbone'] / 1e6:.3f}M |" in text
    assert f"| Embedding parameters | {counts['embedding'] / 1e6:.3f}M (1,100 x 64) |" in text
    assert "| Vocabulary | 1,000 SentencePiece pieces + [MASK]; 1,100 embedding rows |" in text
    for row in ("| Embedding sharing | gdes |", "| RTD loss weight (lambda) | 50.0 |", "| Steps | 1,234 |"):
        assert row in text
    assert "| Tokens seen | 5,054,464 |" in text and "| Wall time | 1h 30m |" in text
    assert "Hardware" not in text and "Warm-up" not in text  # not in the manifest: omitted, never invented
    # results beside the published references; a reference language that is missing shows "-"
    assert "| **deberta-v3-debug** | 53.4 ± 0.3 | 62.2 | 56.5 | 53.8 | 41.0 |" in text
    assert "evaluated on the validation (dev) set of each language" in text
    assert "| mDeBERTa-v3-base (published) | 79.8 | 88.2 | - | 80.8 | 79.5 |" in text
    assert 'AutoModelForSequenceClassification.from_pretrained("me/deberta-v3-debug", num_labels=3)' in text
    assert "@misc{he2021debertav3" in text and "@inproceedings{he2021deberta" in text
    assert "no Enhanced Mask Decoder (EMD) in Hugging Face form" in text  # the generator config says emd: false


def test_card_without_manifest_or_results_says_so(tmp_path, tiny_vocab):
    model = make_model_folder(tmp_path / "bare", tiny_vocab, head="none")
    result = run(model, "--repo-id", "me/bare", "--dry-run", "--language", "pt")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "bare-hub" / "README.md").read_text()
    assert "No pre-training manifest" in text and "## Results" not in text and "model-index" not in text
    assert "pre-trained ELECTRA-style" not in text  # no manifest says so: not claimed
    assert "language:\n- pt\n" in text  # one language: no `multilingual`


# ---- 2. transformers loads the staged folder -----------------------------------------------------
def test_staged_folder_loads_in_transformers(staged, tiny_vocab):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    from factory.model.tokenizer import Tokenizer

    staging, _ = staged
    assert sorted(p.name for p in staging.iterdir()) == [
        "README.md",
        "added_tokens.json",
        "config.json",
        "generator",
        "model.safetensors",
        "special_tokens_map.json",
        "spm.model",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    ours = Tokenizer.from_folder(staging)
    text = "bacedi lomu. zeção ra"
    expected = [1, *ours.encode(text), 2]
    for use_fast in (False, True):  # transformers 5 has one DebertaV2Tokenizer and ignores use_fast
        tok = AutoTokenizer.from_pretrained(staging, use_fast=use_fast)
        assert tok(text)["input_ids"] == expected
        assert (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id) == (0, 1, 2, 3)
        assert tok.mask_token_id == ours.mask_id == 1000
    ids = torch.tensor([expected])
    hf = AutoModel.from_pretrained(staging).eval()
    with torch.no_grad():
        ref = load_model(staging, head="none")(ids).last_hidden_state  # (1, T, 64)
        assert torch.allclose(hf(ids).last_hidden_state, ref, atol=1e-4)
    clf = AutoModelForSequenceClassification.from_pretrained(staging, num_labels=3)
    assert clf(ids).logits.shape == (1, 3)
    gen = AutoModelForMaskedLM.from_pretrained(staging, subfolder="generator")
    assert gen.config.num_hidden_layers == 1


# ---- 3 + 4. upload through a fake Hub; the token appears nowhere ----------------------------------
@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """HF_ENDPOINT -> a fake Hub on loopback, a known token, offline mode off for huggingface_hub only."""
    from huggingface_hub import constants

    with FakeHub(user="me") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # as if HF_ENDPOINT was set before the import
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
        yield hub


def _files_under(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_upload_sends_exactly_the_staged_folder_and_retries(family, tmp_path, hub_env, caplog):
    caplog.set_level(logging.DEBUG)
    _, model, generator = family
    staging = tmp_path / "staging"
    args = [model, "--repo-id", "me/deberta-v3-debug", "--generator", generator, "--staging", staging]

    hub_env.fail["create"] = [500]  # create_repo is not retried by huggingface_hub: the command fails
    failed = run(*args, "--revision", "step-1234")
    lines = [line for line in failed.output.splitlines() if line.strip()]
    assert failed.exit_code == 1 and len(lines) == 1, failed.output
    assert lines[0].startswith("Error: the Hub answered HTTP 500 when trying to create the repository")
    assert "run the same command again to retry" in lines[0]
    assert not hub_env.files  # nothing committed

    hub_env.fail["commit"] = [500]  # the commit POST is retried by huggingface_hub itself (after 1 s)
    retried = run(*args, "--revision", "step-1234")  # the same command again
    assert retried.exit_code == 0, retried.output
    assert sum(r["path"].endswith("/commit/step-1234") for r in hub_env.requests) == 2
    assert "published me/deberta-v3-debug@step-1234" in retried.output
    arrived = hub_env.files[("me/deberta-v3-debug", "step-1234")]
    assert arrived == _files_under(staging)  # names and bytes, generator/ included
    assert "generator/model.safetensors" in arrived and "README.md" in arrived
    assert hub_env.branches["me/deberta-v3-debug"] == {"main", "step-1234"}
    assert all(
        r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in hub_env.requests if "api/models" in r["path"]
    )

    main = run(*args[:-2], "--staging", tmp_path / "staging-main", "--private")  # to main, repo already there
    assert main.exit_code == 0, main.output
    assert hub_env.files[("me/deberta-v3-debug", "main")] == _files_under(tmp_path / "staging-main")

    # 4. the token is in no file written (staging, model folders, HF_HOME) and in no output or log
    outputs = [failed.output, retried.output, main.output, caplog.text]
    outputs += [failed.stderr, retried.stderr, main.stderr]
    assert all(TOKEN not in text for text in outputs)
    written = [*tmp_path.rglob("*"), *family[0].rglob("*")]
    assert written and all(TOKEN.encode() not in p.read_bytes() for p in written if p.is_file())


# ---- 5. bad input: one line, exit code 2 ---------------------------------------------------------
def _one_error_line(result):
    line = one_error_line(result)
    assert TOKEN not in result.output
    return line


@pytest.mark.parametrize("repo_id", ["no-namespace", "a/b/c", "me/bad name", "me/double--dash", "/name", "me/x.git"])
def test_malformed_repo_id(family, tmp_path, repo_id):
    line = _one_error_line(run(family[1], "--repo-id", repo_id, "--dry-run", "--staging", tmp_path / "s"))
    assert "is not a Hub repository id" in line and "namespace/name" in line
    assert not (tmp_path / "s").exists()


def test_folder_without_weights(family, tmp_path):
    folder = tmp_path / "noweights"
    folder.mkdir()
    shutil.copy(family[1] / "config.json", folder / "config.json")
    line = _one_error_line(run(folder, "--repo-id", "me/x", "--dry-run"))
    assert "has no weights" in line
    assert not (tmp_path / "noweights-hub").exists()


def test_no_token_says_how_to_log_in(family, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))
    line = _one_error_line(run(family[1], "--repo-id", "me/x", "--staging", tmp_path / "s"))
    assert "no Hugging Face token" in line and "hf auth login" in line and "HF_TOKEN" in line
    assert not (tmp_path / "s").exists()


def test_repo_of_someone_else(family, tmp_path, hub_env):
    hub_env.repos["microsoft/mdeberta-v3-base"] = "microsoft"
    line = _one_error_line(run(family[1], "--repo-id", "microsoft/mdeberta-v3-base", "--staging", tmp_path / "s"))
    assert "no write access to microsoft/mdeberta-v3-base (403)" in line and "belongs to another user" in line
    assert ("microsoft/mdeberta-v3-base", "main") not in hub_env.files


def test_wrong_vocabulary_is_refused(family, tmp_path, tiny_vocab):
    folder = tmp_path / "m"
    model_folder(folder, 2000, tokenizer=tiny_vocab)
    line = _one_error_line(run(folder, "--repo-id", "me/x", "--dry-run"))
    assert "[MASK]=1000" in line and "[MASK]=2000" in line
    assert not (tmp_path / "m-hub").exists()  # validation runs before the staging folder is put in place


def test_staging_folder_with_other_files_is_refused(family, tmp_path):
    staging = tmp_path / "mine"
    staging.mkdir()
    (staging / "notes.txt").write_text("keep me")
    line = _one_error_line(run(family[1], "--repo-id", "me/x", "--dry-run", "--staging", staging))
    assert "holds files publish did not write (notes.txt)" in line
    assert (staging / "notes.txt").read_text() == "keep me"


def test_bad_results_file(family, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"schema": "something/else", "results": {}}))
    line = _one_error_line(run(family[1], "--repo-id", "me/x", "--dry-run", "--results", bad))
    assert "is not a factory.eval/v1 results file" in line


def dry_run(model, staging, *args):
    """`factory publish MODEL --repo-id me/x --dry-run --staging STAGING ARGS` in-process."""
    return run(model, "--repo-id", "me/x", "--dry-run", "--staging", staging, *args)


def test_a_staging_folder_being_written_is_refused(family, tmp_path):
    """publish took no lock: two at once on one staging folder both exited 0, each rewriting it under the other's
    upload. It holds the staging folder's lock, as every step holds its output's."""
    from factory.core.outputs import output_lock

    staging = tmp_path / "s"
    with output_lock(staging, "--staging"):
        line = _one_error_line(dry_run(family[1], staging))
    assert f"--staging {staging} is being written by another factory process (pid {os.getpid()})" in line
    assert not staging.exists()
    assert dry_run(family[1], staging).exit_code == 0  # released
    assert not list(tmp_path.glob(".*.lock"))  # and removed on a normal exit


def test_a_generator_of_another_vocabulary_is_named_as_such(family, tmp_path, tiny_vocab):
    """It used to fail the tokenizer check with "pass --tokenizer", which cannot help: the generator and the
    model must share one vocabulary (one pre-training run), and the line names both."""
    model, staging = family[1], tmp_path / "s"
    other_size = model_folder(tmp_path / "g2000", 2000, head="mlm", layers=1)
    line = _one_error_line(dry_run(model, staging, "--generator", other_size))
    assert f"the generator {other_size} has another vocabulary than the model" in line
    assert f"2,100 embedding rows, [MASK]=2000 ({other_size / 'config.json'})" in line
    assert f"the model's 1,100 embedding rows, [MASK]=1000 ({model / 'config.json'})" in line
    assert "from the same pre-training run" in line and "--tokenizer" not in line
    same_size = make_model_folder(tmp_path / "g1000", tiny_vocab, head="mlm", layers=1)
    (same_size / "spm.model").write_bytes(b"the spm.model of another run")  # only its bytes are compared
    line = _one_error_line(dry_run(model, staging, "--generator", same_size))
    assert f"its {same_size / 'spm.model'} is not the model's {model / 'spm.model'}" in line
    assert not staging.exists()


def test_language_codes_are_checked_on_every_way_into_the_card(family, tmp_path, tiny_vocab):
    """`publish --language portuguese` wrote `portuguese` into the card's YAML: --language is checked against the
    table vocab uses (factory/core/languages.py), and so is every code the card writer is given."""
    from factory.core.errors import FactoryError
    from factory.publish.card import build_card, collect_facts

    model, staging = family[1], tmp_path / "s"
    line = _one_error_line(dry_run(model, staging, "--language", "portuguese"))
    assert "--language: unknown language code 'portuguese'" in line and " pt " in line  # the codes it knows
    line = one_error_line(["run", "demo", "--set", "steps.publish.language=portuguese", "--dry-run", "--run-dir",
                           tmp_path / "run"])  # fmt: skip
    assert "unknown language code 'portuguese'" in line and not (tmp_path / "run").exists()
    # codes from config.json (written by a step that did not check them) are named with their file
    unchecked = make_model_folder(tmp_path / "unchecked", tiny_vocab, languages=["en", "portuguese"])
    line = _one_error_line(dry_run(unchecked, staging))
    assert f"{unchecked / 'config.json'} languages (give the card's with --language)" in line and "portuguese" in line
    assert not staging.exists()
    assert dry_run(unchecked, staging, "--language", "pt").exit_code == 0
    # the card writer itself refuses, whoever built the facts
    facts = collect_facts(model, "me/x")
    facts.languages = ["en", "portuguese"]
    with pytest.raises(FactoryError, match="the card's languages: unknown language code 'portuguese'"):
        build_card(facts)


def _aligned(folder):
    """Parallel en/de text for `factory eval retrieval` (the same 20 sentences: every item is found)."""
    from conftest import pseudo_text

    folder.mkdir()
    texts = list(dict.fromkeys(pseudo_text(30, seed=3)))[:20]
    for lang in ("en", "de"):
        (folder / f"{lang}.txt").write_text("\n".join(texts) + "\n")
    return folder


def _evaluate(model, data, out):
    """`factory eval retrieval` (no fine-tuning: the cheapest real results.json); returns the file."""
    argv = ["eval", "retrieval", "--model", model, "--data", data, "--out", out]
    result = CliRunner().invoke(cli, [str(a) for a in argv])
    assert result.exit_code == 0, result.output
    return out / "results.json"


def test_results_of_another_model_are_refused(family, tmp_path, tiny_vocab):
    """`publish A --results <B's results.json>` put B's scores into A's card. results.json records the fingerprint
    of the weights evaluated: publish takes the results of its model's weights (the folder evaluated, a copy of it)
    and refuses any other, naming the file and both models."""
    model, staging = family[1], tmp_path / "s"
    other = make_model_folder(tmp_path / "other", tiny_vocab, seed=1)
    results = _evaluate(other, _aligned(tmp_path / "aligned"), tmp_path / "eval-other")
    line = _one_error_line(dry_run(model, staging, "--results", results))
    assert line.startswith(f"Error: {results} holds the results of {other} (weights ") and f"not of {model}" in line
    assert "the model being published" in line and f"--model {model}" in line
    assert not staging.exists()
    for same in (other, shutil.copytree(other, tmp_path / "copy")):
        result = dry_run(same, staging, "--results", results)
        assert result.exit_code == 0, result.output
        assert "## Results: parallel retrieval" in (staging / "README.md").read_text()
    # a results.json from before eval recorded the fingerprint must name the model published
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({**xnli_results(), "model": str(other)}))
    line = _one_error_line(dry_run(model, staging, "--results", legacy))
    assert f"{legacy} names the model {other}, not {model}" in line and "records no fingerprint" in line
    assert dry_run(other, staging, "--results", legacy).exit_code == 0


def test_results_of_a_hub_id_are_of_its_snapshot_and_its_copies(tmp_path, hf_cache, tiny_vocab):
    """A published-layout model evaluated by Hub id: publishing the Hub id or a folder of the same files takes its
    results (publish rewrites the layout, but compares the weights evaluated); another model does not."""
    from published import hub_cache, published_folder

    from factory.model.presets import PRESETS, VocabSize

    config = PRESETS["debug"].config(VocabSize.from_pieces(1000), num_hidden_layers=2)
    folder = published_folder(tmp_path / "m", config, dtype="fp16", tokenizer=tiny_vocab)
    hub_cache(hf_cache, "microsoft/mdeberta-v3-base", folder)
    results = _evaluate("microsoft/mdeberta-v3-base", _aligned(tmp_path / "aligned"), tmp_path / "eval")
    staging = tmp_path / "s"
    for same in ("microsoft/mdeberta-v3-base", folder):
        result = dry_run(same, staging, "--results", results)
        assert result.exit_code == 0, result.output
    other = published_folder(tmp_path / "n", config, dtype="fp16", tokenizer=tiny_vocab, seed=1)
    line = _one_error_line(dry_run(other, staging, "--results", results))
    assert "holds the results of microsoft/mdeberta-v3-base (weights " in line and f"not of {other}" in line


def test_unreachable_hub_is_one_line_and_retryable(family, tmp_path, hub_env, monkeypatch):
    from huggingface_hub import constants

    hub_env.stop()  # nothing listens on that port any more
    monkeypatch.setattr(constants, "ENDPOINT", hub_env.url)
    result = run(family[1], "--repo-id", "me/x", "--staging", tmp_path / "s")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: could not reach {hub_env.url} to create the repository")


def test_card_shows_the_control_and_the_retrieval_results(tmp_path, tiny_vocab):
    """`--control random` results: the XNLI table gains a control row and a gain row; a retrieval results.json
    written by `factory eval retrieval` gets its own table (both directions, control and gain)."""
    from conftest import pseudo_text

    model = make_model_folder(tmp_path / "model", tiny_vocab, languages=TRAIN_LANGS)
    results = xnli_results()
    results["control"] = {lang: {s: {**v, "accuracy": v["accuracy"] - 10} for s, v in r.items()}
                          for lang, r in results["results"].items()}  # fmt: skip
    results["control_average"] = {s: {**v, "accuracy": v["accuracy"] - 10} for s, v in results["average"].items()}
    results["gain"] = {lang: {"validation": 10.0, "test": 10.0} for lang in [*EVAL_LANGS, "avg"]}
    (model / "eval" / "xnli").mkdir(parents=True)
    (model / "eval" / "xnli" / "results.json").write_text(json.dumps(of_model(results, model)))
    texts = list(dict.fromkeys(pseudo_text(30, seed=3)))[:20]
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    for lang in ("en", "de"):
        (aligned / f"{lang}.txt").write_text("\n".join(texts) + "\n")
    args = ["eval", "retrieval", "--model", model, "--data", aligned, "--out", model / "eval" / "retrieval",
            "--control", "random"]  # fmt: skip
    assert CliRunner().invoke(cli, [str(a) for a in args]).exit_code == 0
    result = run(model, "--repo-id", "me/deberta-v3-debug", "--dry-run")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "model-hub" / "README.md").read_text()
    assert "| random-init control | 43.4 | 52.2 | 46.5 | 43.8 | 31.0 |" in text
    assert "| gain over the control (points) | +10.0 | +10.0 | +10.0 | +10.0 | +10.0 |" in text
    assert "the gain is what pre-training bought" in text
    assert "## Results: parallel retrieval" in text and "| Language | x → en | en → x | control → / ← |" in text
    # the same text in both languages: the model and its control both find every item, a gain of 0
    assert "| de | 100.0 | 100.0 | 100.0 / 100.0 | +0.0 / +0.0 |" in text
    assert "among 20 candidates" in text and "centred" in text


def _task_results(task, metrics, langs, splits, dataset, **extra):
    """One task's entry as the runner writes it (factory/evaluate/runner.py _report, kept by the summary)."""
    value = {m: 50.0 + k for k, m in enumerate(metrics)}
    return {"task": task, "metrics": metrics, "main_metric": metrics[0], "languages": langs, "train_language": "en",
            "runs": 1, "seeds": [42], "dataset": dataset, "references": {},
            "results": {lang: {s: dict(value) for s in splits} for lang in langs},
            "average": {s: dict(value) for s in splits}, **extra}  # fmt: skip


def test_model_index_holds_every_task_with_its_dataset_config_split_and_metrics(tmp_path, tiny_vocab):
    """A GLUE summary, an XTREME summary and a SQuAD 2.0 results.json: every task, language, dev split and metric
    in the model-index, with the Hub's dataset id, config and split name and the Hub's task and metric ids."""
    from huggingface_hub import ModelCard

    model = make_model_folder(tmp_path / "model", tiny_vocab, languages=TRAIN_LANGS)
    glue = {"schema": "factory.eval/v1", "suite": "glue", "benchmark": True, "model": "m", "references": {}, "tasks": {
        "cola": _task_results("classification", ["mcc", "accuracy"], ["en"], ["validation"],
                              {"id": "nyu-mll/glue", "config": "cola", "splits": {"validation": "validation"}}),
        "stsb": _task_results("regression", ["pearson", "spearman"], ["en"], ["validation"],
                              {"id": "nyu-mll/glue", "config": "stsb", "splits": {}}),
        "mnli": _task_results("classification", ["accuracy"], ["en"], ["validation_matched", "validation_mismatched"],
                              {"id": "nyu-mll/glue", "config": "mnli", "splits": {}})}}  # fmt: skip
    xtreme = {"schema": "factory.eval/v1", "suite": "xtreme", "benchmark": True, "model": "m", "references": {},
              "tasks": {
        "panx": _task_results("tokens", ["f1", "accuracy"], ["en", "de"], ["validation", "test"],
                              {"id": "google/xtreme", "config": "PAN-X.{lang}", "splits": {}}),
        "udpos": _task_results("tokens", ["f1"], ["de"], ["test"], {"local": "/data/xtreme/udpos"}),
        "xquad": _task_results("qa", ["f1", "exact_match"], ["de"], ["test"],
                               {"id": "google/xquad", "config": "xquad.{lang}", "splits": {"test": "validation"}}),
        "tatoeba": _task_results("retrieval", ["accuracy"], ["de"], ["to_pivot", "from_pivot"], None)}}  # fmt: skip
    squad2 = {"schema": "factory.eval/v1", "suite": "squad2", **_task_results(
        "qa", ["f1", "exact", "best_f1", "best_exact", "best_f1_thresh", "best_exact_thresh"], ["en"], ["validation"],
        {"id": "rajpurkar/squad_v2", "config": None, "splits": {}})}  # fmt: skip
    for name, results in (("glue", glue), ("xtreme", xtreme), ("squad2", squad2)):
        (model / "eval" / name).mkdir(parents=True)
        (model / "eval" / name / "results.json").write_text(json.dumps(of_model(results, model)))
    result = run(model, "--repo-id", "me/m", "--dry-run")
    assert result.exit_code == 0, result.output
    card = ModelCard.load(tmp_path / "model-hub" / "README.md")
    got = {(r.dataset_type, r.dataset_config, r.dataset_split, r.dataset_name, r.task_type, r.metric_type,
            r.metric_name, r.metric_value) for r in card.data.eval_results}  # fmt: skip
    cls, tok, qa = "text-classification", "token-classification", "question-answering"
    assert got == {
        ("nyu-mll/glue", "cola", "validation", "CoLA (en)", cls, "matthews_correlation", "Matthews correlation x 100",
         50.0),
        ("nyu-mll/glue", "cola", "validation", "CoLA (en)", cls, "accuracy", "accuracy", 51.0),
        ("nyu-mll/glue", "stsb", "validation", "STS-B (en)", cls, "pearsonr", "Pearson correlation x 100", 50.0),
        ("nyu-mll/glue", "stsb", "validation", "STS-B (en)", cls, "spearmanr", "Spearman correlation x 100", 51.0),
        ("nyu-mll/glue", "mnli", "validation_matched", "MNLI (en)", cls, "accuracy", "accuracy", 50.0),
        ("nyu-mll/glue", "mnli", "validation_mismatched", "MNLI (en)", cls, "accuracy", "accuracy", 50.0),
        # PAN-X: dev only (test left to the table), the config per language, zero-shot named
        ("google/xtreme", "PAN-X.en", "validation", "PAN-X (en)", tok, "f1", "F1", 50.0),
        ("google/xtreme", "PAN-X.en", "validation", "PAN-X (en)", tok, "accuracy", "accuracy", 51.0),
        ("google/xtreme", "PAN-X.de", "validation", "PAN-X (de)", tok, "f1", "F1 (zero-shot, fine-tuned on en)", 50.0),
        ("google/xtreme", "PAN-X.de", "validation", "PAN-X (de)", tok, "accuracy",
         "accuracy (zero-shot, fine-tuned on en)", 51.0),
        # local files are named as such, never as the benchmark's dataset
        ("local:udpos", "de", "test", "udpos-format udpos (de)", tok, "f1", "F1 (zero-shot, fine-tuned on en)", 50.0),
        # XQuAD's test is the Hub dataset's `validation` split
        ("google/xquad", "xquad.de", "validation", "XQuAD (de)", qa, "f1", "F1 (zero-shot, fine-tuned on en)", 50.0),
        ("google/xquad", "xquad.de", "validation", "XQuAD (de)", qa, "exact_match",
         "exact match (zero-shot, fine-tuned on en)", 51.0),
        # SQuAD 2.0: F1 and EM; the threshold searched on the same split stays out of the index
        ("rajpurkar/squad_v2", None, "validation", "SQuAD 2.0 (en)", qa, "f1", "F1", 50.0),
        ("rajpurkar/squad_v2", None, "validation", "SQuAD 2.0 (en)", qa, "exact_match", "exact match", 51.0),
    }  # fmt: skip
    assert "15 results in its model-index" in result.output
    text = card.text
    assert "## Results: GLUE" in text and "| cola | mcc | validation | 50.0 | 50.0 |" in text
    assert "## Results: XTREME" in text and "| panx | f1 | validation | 50.0 | 50.0 | 50.0 |" in text
    assert "## Results: SQuAD 2.0" in text and "| squad2 | f1 | validation | 50.0 | 50.0 |" in text
