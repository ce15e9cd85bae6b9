"""`factory pretrain --init-from`: continued RTD + GDES from a published-layout discriminator (a folder or a Hub id
from a cache the test builds): step 0 is the published model, the generator is the published one (EMD on) or
derived by the rule, the official update order reads the updated E_G, a resume is exact, the card names the base
model, `factory run` plans it, and a bad start is one line (docs/derive.md#continued-pre-training)."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from conftest import micro_config, one_error_line, padded_batch, word_shards
from published import hub_cache, published_folder
from safetensors.torch import load_file

from factory.cli.main import cli
from factory.model.folder import load_model
from factory.pretrain.config import PretrainConfig
from factory.pretrain.loop import build_model
from factory.pretrain.plan import make_plan
from factory.pretrain.start import open_start

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = "microsoft/deberta-v3-xsmall"


@pytest.fixture(scope="module")
def data(tiny_vocab, tmp_path_factory):
    """Published-layout folders (fp16 with `_weight` and the generator files; fp32 without a generator) and shards
    made with their spm.model."""
    root = tmp_path_factory.mktemp("continue")
    config = micro_config(layers=2)
    fp16 = published_folder(root / "fp16", config, dtype="fp16", tokenizer=tiny_vocab, generator_layers=1)
    bare = published_folder(root / "bare", config, dtype="fp32", delta=False, generator=False, tokenizer=tiny_vocab)
    shards = word_shards(tiny_vocab, root, lines=200, words=600)
    return {"fp16": fp16, "bare": bare, "shards": shards, "root": root}


def start_args(src, shards, out, **extra) -> PretrainConfig:
    return PretrainConfig(**{"init_from": str(src), "shards": shards, "out": out, "batch": 8, "max_steps": 4, **extra})


def run_model(args: PretrainConfig):
    """The RTD model exactly as `setup` builds it for the run (weights only: no Accelerator, nothing written)."""
    from factory.pretrain.start import replace_vocab

    args = replace_vocab(args, open_start(args))
    return build_model(args, make_plan(args, 32)).eval()


@pytest.mark.parametrize("kind", ["fp16", "bare"])
def test_step_0_is_the_published_discriminator(data, tmp_path, kind):
    model = run_model(start_args(data[kind], data["shards"], tmp_path / "out"))
    published = load_model(data[kind])
    effective = model.discriminator_embedding()
    table = published.deberta.embeddings.word_embeddings.weight
    file = torch.load(data[kind] / "pytorch_model.bin", weights_only=True)
    file_table = file["deberta.embeddings.word_embeddings.weight"]
    assert torch.equal(effective.to(file_table.dtype), file_table)  # exactly, in the file's dtype
    assert (effective - table).abs().max() <= 1e-7 * table.abs().max()  # in fp32: the last bit at most
    ids, mask = padded_batch(1000, 24)
    with torch.no_grad():
        ours = model.discriminator(ids, mask, effective)
        theirs = published(ids, mask)
    keep = mask.bool()
    assert (ours.last_hidden_state - theirs.last_hidden_state)[keep].abs().max() <= 1e-5
    assert (ours.logits - theirs.logits)[keep].abs().max() <= 1e-5  # the trained RTD head, kept


def test_the_published_generator_is_continued_with_its_decoder(data, tmp_path):
    model = run_model(start_args(data["fp16"], data["shards"], tmp_path / "out"))
    assert model.generator.config.emd is True and model.generator.config.num_hidden_layers == 1
    published = load_model(data["fp16"], generator=True)
    ids, mask = padded_batch(1000, 24)
    with torch.no_grad():
        a, b = model.generator(ids, mask).logits, published(ids, mask).logits
    assert (a - b)[mask.bool()].abs().max() <= 1e-5
    off = run_model(start_args(data["fp16"], data["shards"], tmp_path / "off", emd="off"))
    assert not off.generator.config.emd


@pytest.mark.parametrize("rule", ["lower-half", "fresh"])
def test_a_generator_derived_by_the_rule(data, tmp_path, rule):
    args = start_args(data["bare"], data["shards"], tmp_path / "out", generator_rule=rule)
    assert open_start(args).generator.kind == "derived" and make_plan(args, 32).generator_warmup == 0
    warm = start_args(data["bare"], data["shards"], tmp_path / "o", generator_rule=rule, generator_warmup=3)
    assert make_plan(warm, 32).generator_warmup == 3
    model = run_model(args)
    disc, gen = model.discriminator.state_dict(), model.generator.state_dict()
    assert model.generator.config.num_hidden_layers == 1 and not model.generator.config.emd
    same_layer = torch.equal(gen["deberta.encoder.layer.0.attention.self.query_proj.weight"],
                             disc["deberta.encoder.layer.0.attention.self.query_proj.weight"])  # fmt: skip
    assert same_layer == (rule == "lower-half")
    assert torch.equal(model.generator_embedding(), load_model(data["bare"]).deberta.embeddings.word_embeddings.weight)
    assert torch.count_nonzero(model.embedding_delta) == 0  # E_G is W itself: the delta starts at 0


def test_official_order_steps_the_generator_first(data, tmp_path):
    """One official step = the generator's AdamW step, then the discriminator's on the same replacements with the
    updated E_G: rebuilt here from the model's own halves, against the loop's result."""
    import copy

    from factory.pretrain.batches import prepare_step
    from factory.pretrain.mixing import build_mix
    from factory.pretrain.optim import clip_groups_, make_optimizer
    from factory.shards.read import ShardSet

    out = tmp_path / "run"
    argv = ["pretrain", "--init-from", data["fp16"], "--shards", data["shards"], "--out", out, "--batch", "8",
            "--max-steps", "1", "--lr", "1e-3", "--warmup", "0", "--dropout", "0", "--update-order", "official",
            "--mixed-precision", "no", "--rtd-lambda", "10"]  # fmt: skip
    result = CliRunner().invoke(cli, [str(a) for a in argv])
    assert result.exit_code == 0, result.output
    args = start_args(data["fp16"], data["shards"], out, lr=1e-3, warmup=0, dropout=0.0, max_steps=1)
    model = run_model(args).train()
    plan = make_plan(args, 32)
    shards = ShardSet(data["shards"])
    order = build_mix(args, shards, plan.batch, plan.steps).order(args.seed)
    step = prepare_step(shards, order, plan, 0, 0, model.mask_id, args.seed, args.masking)  # the loop's step 0
    (batch,) = step.batches
    ids, masked, uniforms = batch.ids, batch.masked, batch.uniforms
    expected = copy.deepcopy(model)
    gen_params = {id(p) for p in expected.generator.parameters()}
    g_opt = make_optimizer(expected, 1e-3, False, keep=lambda p: id(p) in gen_params)
    d_opt = make_optimizer(expected, 1e-3, False, keep=lambda p: id(p) not in gen_params)
    g = expected(ids, masked, uniforms, part="generator")
    (g.mlm_loss_sum / step.masked).backward()
    clip_groups_(expected.clip_groups(), 1.0)
    g_opt.step()
    g_opt.zero_grad(set_to_none=True)
    d = expected(ids, masked, None, part="discriminator", replaced_ids=g.replaced_ids)
    (10 * d.rtd_loss_sum / step.tokens).backward()
    clip_groups_(expected.clip_groups(), 1.0)
    d_opt.step()
    trained = load_file(str(out / "checkpoints" / "step-00000001" / "model.safetensors"))
    for name, tensor in expected.state_dict().items():
        torch.testing.assert_close(trained[name], tensor, atol=2e-6, rtol=0, msg=name)


# ---- the command: a Hub id, the exports, the card, resume ----------------------------------------
def pretrain(src, shards, out, *extra):
    argv = ["pretrain", "--init-from", src, "--shards", shards, "--out", out, "--batch", "8", "--log-every", "1",
            "--mixed-precision", "no", "--dropout", "0", *extra]  # fmt: skip
    return CliRunner().invoke(cli, [str(a) for a in argv])


@pytest.fixture
def hub_id(data, hf_cache):
    return REPO, hub_cache(hf_cache, REPO, data["fp16"])


def test_a_hub_id_continues_and_the_card_names_the_base(data, hub_id, tmp_path, tiny_vocab):
    repo, commit = hub_id
    shards = tmp_path / "shards"
    made = CliRunner().invoke(cli, ["shards", "--vocab", repo, "--corpus", str(data["root"] / "corpus.txt"),
                                    "--seq-len", "32", "--no-dedupe", "--out", str(shards)])  # fmt: skip
    assert made.exit_code == 0, made.output
    manifest = json.loads((shards / "factory.json").read_text())
    assert manifest["vocab_source"] == {"given": repo, "repo_id": repo, "revision": commit}
    out = tmp_path / "run"
    result = pretrain(repo, shards, out, "--max-steps", "3")
    assert result.exit_code == 0, result.output
    run = json.loads((out / "factory.json").read_text())
    assert run["init_from"]["source"] == {"given": repo, "repo_id": repo, "revision": commit}
    assert run["init_from"]["generator"] == "published" and run["init_from"]["emd"] is True
    gen = json.loads((out / "generator" / "config.json").read_text())
    assert gen["emd"] is True and gen["factory"]["base_model"] == {"repo_id": repo, "revision": commit}
    assert load_model(out / "generator").config.emd  # the exported generator keeps its decoder
    assert (out / "discriminator" / "special_tokens_map.json").is_file()  # written from the model's spm.model
    staged = CliRunner().invoke(cli, ["publish", str(out / "discriminator"), "--generator", str(out / "generator"),
                                      "--repo-id", "me/xsmall-continued", "--dry-run"])  # fmt: skip
    assert staged.exit_code == 0, staged.output
    card = (out / "discriminator-hub" / "README.md").read_text()
    assert f"base_model: {repo}" in card and "base_model_relation: finetune" in card
    assert f"(revision `{commit[:12]}`) with 768 tokens (3 steps)" in card
    assert 'Enhanced Mask Decoder (EMD, `"emd": true`' in card


def test_an_init_from_run_resumes_exactly(data, tmp_path):
    extra = ["--max-steps", "6", "--save-every", "3", "--keep", "3", "--update-order", "official", "--lr", "1e-3",
             "--generator-warmup", "2", "--warmup-from-zero", "--warmup", "2"]  # fmt: skip
    straight = tmp_path / "straight"
    assert pretrain(data["fp16"], data["shards"], straight, *extra).exit_code == 0
    cut = tmp_path / "cut"  # the same run stopped after its step-3 checkpoint
    shutil.copytree(straight, cut)
    for name in ("checkpoints/step-00000006", "discriminator", "generator", "factory.json"):
        shutil.rmtree(cut / name) if (cut / name).is_dir() else (cut / name).unlink()
    resumed = pretrain(data["fp16"], data["shards"], cut, *extra, "--resume", "auto")
    assert resumed.exit_code == 0, resumed.output
    a = [json.loads(x) for x in (straight / "train.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (cut / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in b] == list(range(1, 7)) and a[0]["rtd_loss"] == 0.0  # 2 generator-only steps
    for ra, rb in zip(a, b, strict=True):
        assert ra["mlm_loss"] == pytest.approx(rb["mlm_loss"], abs=1e-6)
        assert ra["rtd_loss"] == pytest.approx(rb["rtd_loss"], abs=1e-6)
    last = "checkpoints/step-00000006/model.safetensors"
    wa, wb = load_file(str(straight / last)), load_file(str(cut / last))
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=1e-6, rtol=0, msg=name)
    other = pretrain(data["bare"], data["shards"], cut, *extra, "--resume", "auto")  # another start: refused
    one_error_line(other, "another run", "--init-from")


# ---- factory run: a continue recipe ----------------------------------------------------------------
def test_factory_run_plans_a_continue_recipe(data, hub_id, tmp_path):
    repo, commit = hub_id
    recipe = tmp_path / "continue.yaml"
    recipe.write_text(
        "name: continue\n"
        f"corpus: [{data['root'] / 'corpus.txt'}]\n"
        "steps:\n"
        "  shards: {seq_len: 32, dedupe: false}\n"
        f"  pretrain: {{init_from: {repo}, batch: 8, max_steps: 3, update_order: official, warmup_from_zero: true}}\n"
    )
    result = CliRunner().invoke(cli, ["run", str(recipe), "--dry-run", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert f"factory shards --vocab {repo}" in result.output
    assert f"--init-from {repo}" in result.output and "--vocab" not in result.output.split("factory pretrain")[1]
    assert f"continue from {repo}@{commit[:12]}" in result.output and "update order official" in result.output
    assert "generator: the published generator beside it (1 layer, EMD auto)" in result.output
    assert not (tmp_path / "r").exists()
    done = CliRunner().invoke(cli, ["run", str(recipe), "--run-dir", str(tmp_path / "r")])
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "r" / "pretrain" / "factory.json").read_text())
    assert manifest["init_from"]["generator"] == "published"


def test_the_bundled_continue_recipe_is_the_official_one():
    import yaml

    from factory.core.resources import find

    recipe = yaml.safe_load(find("recipe", "deberta-v3-xsmall-continue").read_text())
    step = recipe["steps"]["pretrain"]
    assert step["init_from"] == REPO and "vocab" not in recipe["steps"]
    settings = (float(step["lr"]), step["warmup"], step["rtd_lambda"], step["max_steps"], step["batch"])
    assert settings == (5e-5, 10000, 10, 100000, 256)
    assert step["update_order"] == "official" and step["warmup_from_zero"] is True


# ---- bad input: one line, exit 2, nothing written ----------------------------------------------------
def test_a_bad_start_is_one_line(data, tmp_path, tiny_vocab):
    out = tmp_path / "out"
    bert = published_folder(tmp_path / "bert", micro_config(), tokenizer=tiny_vocab)
    (bert / "config.json").write_text(json.dumps({**json.loads((bert / "config.json").read_text()),
                                                  "model_type": "bert"}))  # fmt: skip
    one_error_line(pretrain(bert, data["shards"], out, "--max-steps", "2"), "not 'deberta-v2'", out=out)
    wide = published_folder(tmp_path / "wide", micro_config(hidden_size=128, num_attention_heads=2),
                            tokenizer=tiny_vocab)  # fmt: skip
    one_error_line(pretrain(data["fp16"], data["shards"], out, "--init-generator", wide), "does not fit",
                   "hidden_size is 128", out=out)  # fmt: skip
    other_vocab = published_folder(tmp_path / "v", micro_config(vocab_size=1200), tokenizer=tiny_vocab)
    one_error_line(pretrain(data["fp16"], data["shards"], out, "--init-generator", other_vocab), "vocab_size is 1200",
                   out=out)  # fmt: skip
    vocab = tmp_path / "vocab"
    shutil.copytree(tiny_vocab, vocab)
    (vocab / "spm.model").write_bytes((vocab / "spm.model").read_bytes() + b"\n")  # another file
    one_error_line(pretrain(data["fp16"], data["shards"], out, "--vocab", vocab), "is not the vocabulary of",
                   "factory transplant", out=out)  # fmt: skip
    one_error_line(pretrain(data["fp16"], data["shards"], out, "--layers", "4"), "shape comes from --init-from")
    one_error_line(pretrain(data["fp16"], data["shards"], out, "--sharing", "es", "--update-order", "official"),
                   "--update-order official")  # fmt: skip
    one_error_line(pretrain("org/not-cached", data["shards"], out), "HF_HUB_OFFLINE", out=out)
    no_init = ["pretrain", "--init-generator", str(data["fp16"]), "--vocab", str(tiny_vocab), "--shards",
               str(data["shards"]), "--out", str(out)]  # fmt: skip
    one_error_line(no_init, "--init-generator needs --init-from")


def test_shape_options_beside_init_from_are_refused(data, tmp_path):
    """--init-from's config.json is the model's shape: a --preset or --layout beside it used to be ignored without a
    word (the model stayed the source's shape), while --layers was refused; now each is refused the same way, in
    a recipe too, and a run that names none still plans."""
    out = tmp_path / "out"
    for extra in (["--preset", "large"], ["--preset", "base"], ["--layout", "pad128"]):
        line = one_error_line(pretrain(data["fp16"], data["shards"], out, *extra, "--dry-run"), out=out)
        assert f"{extra[0]}: the shape comes from --init-from's config.json" in line
    assert pretrain(data["fp16"], data["shards"], out, "--dry-run").exit_code == 0
    recipe = tmp_path / "continue.yaml"
    recipe.write_text(f"name: c\nsteps:\n  pretrain: {{init_from: {data['fp16']}, preset: large}}\n")
    one_error_line(["run", recipe, "--dry-run", "--run-dir", tmp_path / "r"], "--preset: the shape comes from")


@pytest.mark.slow  # two torchrun processes (gloo): ~30 s on 2 shared cores
def test_official_order_and_the_generator_warmup_on_two_processes_match_one(data, tmp_path):
    """DDP with each forward using one network (find_unused_parameters): the same losses and weights as one
    process accumulating the same global batch."""
    from test_pretrain import launch

    extra = ["--max-steps", "3", "--save-every", "3", "--update-order", "official", "--micro-batch", "2",
             "--generator-warmup", "1", "--lr", "1e-3", "--warmup", "1"]  # fmt: skip
    one = tmp_path / "one"
    assert pretrain(data["fp16"], data["shards"], one, *extra).exit_code == 0
    two = tmp_path / "two"
    argv = ["pretrain", "--init-from", data["fp16"], "--shards", data["shards"], "--out", two, "--batch", "8",
            "--log-every", "1", "--mixed-precision", "no", "--dropout", "0", *extra]  # fmt: skip
    launch(["-m", "factory", *map(str, argv)], processes=2)
    assert json.loads((two / "factory.json").read_text())["processes"] == 2
    a = [json.loads(x) for x in (one / "train.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (two / "train.jsonl").read_text().splitlines()]
    for ra, rb in zip(a, b, strict=True):
        for key in ("mlm_loss", "rtd_loss", "rtd_accuracy"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-5), (ra["step"], key)
    last = "checkpoints/step-00000003/model.safetensors"
    wa, wb = load_file(str(one / last)), load_file(str(two / last))
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=1e-5, rtol=0, msg=name)


def test_official_order_under_fsdp_is_refused_in_one_line(data, tmp_path, monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from test_distributed import fake_backend

    fake_backend(monkeypatch, "fsdp", FullyShardedDataParallelPlugin(fsdp_version=2))
    out = tmp_path / "out"
    result = pretrain(data["fp16"], data["shards"], out, "--max-steps", "1", "--update-order", "official")
    one_error_line(result, "--update-order official keeps two optimizers", "use DDP", out=out)


def test_the_base_model_of_a_derived_folder_is_the_hub_model_it_came_from(data, tmp_path):
    """A folder `factory trim`/`transplant` wrote records its base in factory.json (`base`); a continued model's
    exports in config.json (`factory.base_model`): either way the card's base_model is the Hub model."""
    from factory.core.sources import resolve_model
    from factory.pretrain.start import base_model

    trimmed = tmp_path / "trimmed"
    shutil.copytree(data["fp16"], trimmed)
    assert base_model(resolve_model(trimmed)) is None  # a folder that says nothing: trained from scratch
    base = {"given": "microsoft/mdeberta-v3-base", "repo_id": "microsoft/mdeberta-v3-base", "revision": "a" * 40}
    (trimmed / "factory.json").write_text(json.dumps({"step": "trim", "base": base}))
    assert base_model(resolve_model(trimmed)) == {"repo_id": base["repo_id"], "revision": base["revision"]}
    continued = tmp_path / "continued"
    shutil.copytree(data["fp16"], continued)
    config = json.loads((continued / "config.json").read_text())
    config["factory"] = {"base_model": {"repo_id": "org/base", "revision": None}}
    (continued / "config.json").write_text(json.dumps(config))
    assert base_model(resolve_model(continued)) == {"repo_id": "org/base", "revision": None}
