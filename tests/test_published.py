"""The published DeBERTa-v3 layouts (docs/derive.md#published-layouts), read exactly: folders the test builds in
the Hub's layout (fp16, fp32 and mixed files, with and without the GDES `_weight`, with the generator files, and
through a Hub-cache id) load as factory models whose outputs equal `transformers`' on the same files."""

import json
import shutil

import pytest
import torch
from conftest import micro_config, padded_batch
from published import hub_cache, published_folder

from factory.core.errors import ModelFolderError
from factory.core.sources import resolve_model
from factory.model import DebertaForMaskedLM, DebertaForRTD
from factory.model.folder import has_published_generator, load_model, read_weights, save_model

transformers = pytest.importorskip("transformers")
TOL = 1e-4
pytestmark = pytest.mark.usefixtures("one_thread")


def config():
    return micro_config(layers=2)  # debug preset: hidden 64, 2 heads, 1100 rows


def hf_model(folder, cls_name="DebertaV2Model", **overrides):
    cls = getattr(transformers, cls_name)
    hf_config = transformers.DebertaV2Config.from_pretrained(folder, **overrides)
    return cls.from_pretrained(folder, config=hf_config, dtype=torch.float32).eval()


def official_rtd_logits(h, state):
    """LMMaskPredictionHead of DeBERTa/apps/models/replaced_token_detection_model.py: classifier(gelu(dense(
    LN(h_CLS + h)))), written here from the file's tensors."""
    w = {k[len("mask_predictions.") :]: v.float() for k, v in state.items() if k.startswith("mask_predictions.")}
    x = torch.nn.functional.layer_norm(h[:, :1] + h, (h.shape[-1],), w["LayerNorm.weight"], w["LayerNorm.bias"], 1e-7)
    x = torch.nn.functional.gelu(x @ w["dense.weight"].t() + w["dense.bias"])
    return (x @ w["classifier.weight"].t() + w["classifier.bias"]).squeeze(-1)


@pytest.mark.parametrize("dtype", ["fp16", "fp32", "mixed"])
@pytest.mark.parametrize("delta", [True, False], ids=["with-_weight", "folded-only"])
def test_discriminator_equals_transformers(tmp_path, dtype, delta):
    folder = published_folder(tmp_path / "m", config(), dtype=dtype, delta=delta)
    assert "architectures" not in json.loads((folder / "config.json").read_text())
    model = load_model(folder)
    assert isinstance(model, DebertaForRTD)  # the RTD head is kept, not an MLM head guessed
    ids, mask = padded_batch(1000, 37)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask)
        hf = hf_model(folder)(input_ids=ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    assert (ours.last_hidden_state - hf)[keep].abs().max() <= TOL
    expected = official_rtd_logits(hf, read_weights(folder))  # the trained head scores replaced tokens
    assert (ours.logits - expected)[keep].abs().max() <= TOL


def hf_generator_folder(folder, out):
    """The published generator as a folder transformers reads: its own files renamed, legacy=false (the official
    head names) — transformers has no EMD, so it gives the plain MLM head's logits."""
    out.mkdir()
    cfg = json.loads((folder / "generator_config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "legacy": False}))
    shutil.copy(folder / "pytorch_model.generator.bin", out / "pytorch_model.bin")
    return out


def reference_emd_logits(hf, positions, ids, mask):
    """The official EnhancedMaskDecoder (DeBERTa/apps/models/masked_language_model.py) built from transformers'
    own modules: the last layer run twice with queries H + P, H = the second-to-last hidden state."""
    out = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    enc = hf.deberta.encoder
    hidden = out.hidden_states[-2]
    query = hidden + positions[: ids.shape[1]]
    mask4, rel = enc.get_attention_mask(mask), enc.get_rel_embedding()
    relative_pos = enc.get_rel_pos(hidden)
    for _ in range(2):
        query = enc.layer[-1](hidden, mask4, query_states=query, relative_pos=relative_pos, rel_embeddings=rel)[0]
    return hf.lm_predictions(query, hf.deberta.embeddings.word_embeddings)


@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_generator_with_and_without_the_emd(tmp_path, dtype):
    folder = published_folder(tmp_path / "m", config(), dtype=dtype, generator_layers=2)
    assert has_published_generator(folder)
    gen = load_model(folder, generator=True)
    assert isinstance(gen, DebertaForMaskedLM) and gen.config.emd is True  # it carries the positions the EMD reads
    hf = hf_model(hf_generator_folder(folder, tmp_path / "hf"), "DebertaV2ForMaskedLM", legacy=False)
    positions = read_weights(folder, "pytorch_model.generator.bin")["deberta.embeddings.position_embeddings.weight"]
    ids, mask = padded_batch(1000, 29)
    keep = mask.bool()
    with torch.no_grad():
        expected = reference_emd_logits(hf, positions.float(), ids, mask)
        assert (gen(ids, mask).logits - expected)[keep].abs().max() <= TOL
        plain = gen.__class__(gen.config.replace(emd=False))  # the same weights without the decoder
        plain.load_state_dict({k: v for k, v in gen.state_dict().items() if "position_embeddings" not in k})
        assert (plain.eval()(ids, mask).logits - hf(input_ids=ids, attention_mask=mask).logits)[keep].abs().max() <= TOL
        assert (plain(ids, mask).logits - expected)[keep].abs().max() > 1e-2  # the EMD changes the predictions


def test_one_layer_generator_reads_the_embeddings(tmp_path):
    """factory's debug-size generators have one layer: H is then the embeddings' output (the official code would
    index encoder_layers[-2] out of range)."""
    folder = published_folder(tmp_path / "m", config(), generator_layers=1)
    gen = load_model(folder, generator=True)
    ids, mask = padded_batch(1000, 16)
    with torch.no_grad():
        h = gen.deberta.embeddings(ids, mask.bool())
        out = gen.enhanced_mask_decoder(ids, mask)
        layer, rel = gen.deberta.encoder.layer[-1], gen.deberta.encoder.rel_table()
        query = h + gen.deberta.embeddings.position_embeddings.weight[:16]
        for _ in range(2):
            query = layer(h, mask.bool(), rel, query)
    assert torch.equal(out, query)


def test_a_hub_id_loads_the_cached_files(tmp_path, hf_cache):
    folder = published_folder(tmp_path / "m", config(), dtype="fp16")
    commit = hub_cache(hf_cache, "microsoft/deberta-v3-xsmall", folder)
    source = resolve_model("microsoft/deberta-v3-xsmall", parts=("model", "generator"))
    assert source.revision == commit
    ids, mask = padded_batch(1000, 21)
    with torch.no_grad():
        a = load_model(source.path)(ids, mask).last_hidden_state
        b = load_model(folder)(ids, mask).last_hidden_state
    assert torch.equal(a, b)
    assert load_model(source.path, generator=True).config.emd


def test_export_writes_a_factory_folder_transformers_reads(tmp_path):
    folder = published_folder(tmp_path / "m", config(), dtype="fp16")
    save_model(load_model(folder), tmp_path / "out")
    names = set(read_weights(tmp_path / "out"))
    assert not any(n.endswith("._weight") or n.startswith("lm_predictions.") for n in names)
    assert {"mask_predictions.classifier.weight", "deberta.embeddings.word_embeddings.weight"} <= names
    ids, mask = padded_batch(1000, 19)
    with torch.no_grad():
        a = hf_model(folder)(input_ids=ids, attention_mask=mask).last_hidden_state
        b = hf_model(tmp_path / "out")(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (a - b)[mask.bool()].abs().max() <= TOL
    gen_out = tmp_path / "gen"
    save_model(load_model(folder, generator=True), gen_out)
    saved = json.loads((gen_out / "config.json").read_text())
    assert saved["emd"] is True and "deberta.embeddings.position_embeddings.weight" in read_weights(gen_out)
    assert load_model(gen_out).config.emd  # and it round-trips


def test_not_a_state_dict_is_one_line(tmp_path):
    folder = published_folder(tmp_path / "m", config())
    torch.save({"a": [1, 2]}, folder / "pytorch_model.bin")
    with pytest.raises(ModelFolderError, match="no state dict of tensors"):
        load_model(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not a torch file")
    with pytest.raises(ModelFolderError, match="cannot be read as weights"):
        load_model(folder)
    with pytest.raises(ModelFolderError, match="no published generator"):
        load_model(published_folder(tmp_path / "n", config(), generator=False), generator=True)


# ---- the commands: eval and publish take the published layout, by Hub id -----------------------------
def test_eval_retrieval_of_a_hub_id(tmp_path, hf_cache, tiny_vocab):
    from click.testing import CliRunner
    from conftest import pseudo_text

    from factory.cli.main import cli

    folder = published_folder(tmp_path / "m", config(), dtype="fp16", tokenizer=tiny_vocab)
    commit = hub_cache(hf_cache, "microsoft/mdeberta-v3-base", folder)
    data = tmp_path / "aligned"
    data.mkdir()
    texts = list(dict.fromkeys(pseudo_text(30, seed=3)))[:20]
    for lang in ("en", "pt"):
        (data / f"{lang}.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "out"
    argv = ["eval", "retrieval", "--model", "microsoft/mdeberta-v3-base", "--data", str(data), "--out", str(out)]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert report["model"] == "microsoft/mdeberta-v3-base" and report["revision"] == commit
    assert report["results"]["pt"]["to_pivot"]["accuracy"] == 100.0  # the same text: found every time
    manifest = json.loads((out / "factory.json").read_text())
    assert manifest["inputs"]["source"]["revision"] == commit


@pytest.mark.slow  # a fine-tuning of a micro model: ~10 s on 2 shared cores
def test_eval_xnli_of_a_hub_id(tmp_path, hf_cache):
    from click.testing import CliRunner
    from test_eval import DEMO, FAST

    from factory.cli.main import cli
    from factory.vocab.train import SpmSettings, train_spm

    vocab = tmp_path / "vocab"  # test_eval's word-level vocabulary of the demo set
    vocab.mkdir()
    rows = [json.loads(line) for line in (DEMO / "train.jsonl").read_text().splitlines()]
    texts = [t for row in rows for t in (row["premise"], row["hypothesis"])]
    (tmp_path / "sample.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    train_spm(tmp_path / "sample.txt", len(texts), vocab, SpmSettings(pieces=300, character_coverage=1.0, threads=2))
    folder = published_folder(tmp_path / "m", config().replace(vocab_size=400), dtype="fp16", tokenizer=vocab)
    commit = hub_cache(hf_cache, "org/published", folder)
    out = tmp_path / "xnli"
    argv = ["eval", "xnli", "--model", "org/published", "--data", str(DEMO), *FAST, "--set", "epochs=1",
            "--langs", "en,ru", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert report["model"] == "org/published" and report["revision"] == commit and report["languages"] == ["en", "ru"]


def test_publish_rewrites_a_published_layout(tmp_path, hf_cache, tiny_vocab):
    from click.testing import CliRunner

    from factory.cli.main import cli

    folder = published_folder(tmp_path / "m", config(), dtype="fp16", tokenizer=tiny_vocab)
    hub_cache(hf_cache, "microsoft/deberta-v3-xsmall", folder)
    staging = tmp_path / "staged"
    argv = ["publish", "microsoft/deberta-v3-xsmall", "--repo-id", "me/copy", "--staging", str(staging), "--dry-run"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    files = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
    assert {"model.safetensors", "config.json", "special_tokens_map.json", "generator/model.safetensors"} <= files
    assert "pytorch_model.bin" not in files
    assert json.loads((staging / "generator" / "config.json").read_text())["emd"] is True
    assert isinstance(load_model(staging), DebertaForRTD)
