"""`factory trim` and `factory transplant` (factory/derive/): the SentencePiece file cut at the wire level, every
per-vocabulary tensor of every network in both layouts (factory's two folders; the published pytorch_model.bin
with the GDES `_weight` delta and the generator files), exact outputs after trimming, exact shared rows after a
transplant, and the user mistakes."""

import json
from pathlib import Path

import pytest
import textgen
import torch
from conftest import one_error_line
from published import hub_cache, published_folder

from factory.derive.networks import ROW_TENSORS, read_model_files

pytestmark = pytest.mark.usefixtures("one_thread")
LANGS = ("en", "pt", "ru", "zh", "ar")


# ---- fixtures: a multilingual vocabulary and one RTD model saved in both layouts ---------------------
@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> Path:
    """A 1000-piece vocabulary of five languages in four scripts (the project's own text), with the HF files."""
    from factory.vocab.train import SpmSettings, train_spm, write_hf_files

    folder = tmp_path_factory.mktemp("multi_vocab")
    lines = [line for lang in LANGS for line in textgen.generate(lang, 300)]
    (folder / ".sample.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    train_spm(folder / ".sample.txt", len(lines), folder, SpmSettings(pieces=1000, threads=1))
    (folder / ".sample.txt").unlink()
    write_hf_files(folder)
    return folder


@pytest.fixture(scope="module")
def rtd(vocab):
    """A micro RTD model on `vocab` whose GDES delta is not zero (so folded table != generator table)."""
    from factory.model.presets import PRESETS, VocabSize
    from factory.pretrain.rtd import build_rtd_model

    config = PRESETS["debug"].config(VocabSize.from_pieces(1000))
    model = build_rtd_model(config, generator_layers=1, seed=3)
    with torch.no_grad():
        model.embedding_delta.normal_(0, 0.01)
        model.generator.lm_predictions.lm_head.bias.normal_(0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def factory_layout(tmp_path_factory, rtd, vocab) -> Path:
    """What `factory pretrain` exports: run/discriminator + run/generator (model.safetensors), tokenizer in each."""
    from factory.model.folder import save_model
    from factory.model.tokenizer import copy_tokenizer_files
    from factory.pretrain.rtd import export_discriminator, export_generator

    run = tmp_path_factory.mktemp("factory_layout")
    for name, net in (("discriminator", export_discriminator(rtd)), ("generator", export_generator(rtd))):
        save_model(net, run / name)
        copy_tokenizer_files(vocab, run / name)
    return run


def published_layout(folder: Path, vocab: Path, dtype: str = "fp32") -> Path:
    """The microsoft/mdeberta-v3-base file layout (tests/published.py) on `vocab`."""
    from factory.model.presets import PRESETS, VocabSize

    config = PRESETS["debug"].config(VocabSize.from_pieces(1000))
    return published_folder(folder, config, dtype=dtype, tokenizer=vocab, seed=4)


def run(args: list) -> object:
    from click.testing import CliRunner

    from factory.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pt_corpus(tmp_path_factory) -> Path:
    return write_lines(tmp_path_factory.mktemp("pt") / "pt.txt", textgen.generate("pt", 300))


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory, factory_layout, pt_corpus) -> Path:
    out = tmp_path_factory.mktemp("trimmed") / "pt"
    run(["trim", factory_layout, "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--out", out])
    return out


def manifest(folder: Path) -> dict:
    return json.loads((folder / "factory.json").read_text())


def kept_ids(old: Path, new: Path) -> list[int]:
    """Old id of each new piece (the pieces are unique strings)."""
    import sentencepiece as spm

    a = spm.SentencePieceProcessor(model_file=str(old / "spm.model"))
    b = spm.SentencePieceProcessor(model_file=str(new / "spm.model"))
    return [a.piece_to_id(b.id_to_piece(i)) for i in range(b.get_piece_size())]


# ---- the SentencePiece file ---------------------------------------------------------------------------
def test_spm_model_reads_and_cuts_like_protobuf(vocab):
    """Our wire-level reader sees what sentencepiece's own protobuf classes see, and a cut file is the original
    with only the dropped pieces missing: kept records byte for byte, the specs equal, and sentencepiece loads it."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    from factory.vocab.spm_file import SpmModel

    data = (vocab / "spm.model").read_bytes()
    proto = pb.ModelProto.FromString(data)
    model = SpmModel(data)
    assert [(p.piece, p.score, p.type) for p in model.pieces] == [(p.piece, p.score, p.type) for p in proto.pieces]
    keep = [0, 1, 2, 3, *range(4, 1000, 3)]
    cut = pb.ModelProto.FromString(model.keep(keep))
    assert [p.SerializeToString() for p in cut.pieces] == [proto.pieces[i].SerializeToString() for i in keep]
    assert cut.normalizer_spec == proto.normalizer_spec and cut.trainer_spec == proto.trainer_spec
    assert spm.SentencePieceProcessor(model_proto=model.keep(keep)).get_piece_size() == len(keep)
    with pytest.raises(ValueError):
        model.keep([5, 4])
    inner = spm.SentencePieceProcessor(model_proto=model.without_dummy_prefix())
    assert pb.ModelProto.FromString(model.without_dummy_prefix()).normalizer_spec.add_dummy_prefix is False
    assert not any(p.startswith("▁") for p in inner.encode("professor", out_type=str))


def test_spm_model_refuses_other_files(tmp_path):
    from factory.core.errors import FactoryError
    from factory.vocab.spm_file import SpmModel

    with pytest.raises(FactoryError, match="not a SentencePiece model"):
        SpmModel(b"\xff\xff\xff")


# ---- the layouts --------------------------------------------------------------------------------------
def test_both_layouts_are_read_with_every_network(factory_layout, rtd, vocab, tmp_path):
    files = read_model_files(factory_layout)
    assert [(n.role, str(n.folder), n.weights_name) for n in files.networks] == [
        ("model", "discriminator", "model.safetensors"), ("generator", "generator", "model.safetensors")]  # fmt: skip
    published = read_model_files(published_layout(tmp_path / "pub", vocab))
    assert [(n.role, n.config_name, n.weights_name) for n in published.networks] == [
        ("model", "config.json", "pytorch_model.bin"),
        ("generator", "generator_config.json", "pytorch_model.generator.bin"),
    ]
    rows = {n.role: sorted(n.row_names()) for n in published.networks}
    assert rows == {
        "model": ["deberta.embeddings.word_embeddings._weight", "deberta.embeddings.word_embeddings.weight",
                  "lm_predictions.lm_head.bias"],
        "generator": ["deberta.embeddings.word_embeddings.weight", "lm_predictions.lm_head.bias"],
    }  # fmt: skip
    assert all(any(n.endswith(r) for r in ROW_TENSORS) for net in published.networks for n in net.row_names())


# ---- trim ---------------------------------------------------------------------------------------------
def test_trim_keeps_outputs_identical(trimmed, factory_layout):
    """A text whose pieces are all kept: the same pieces, ids one to one, identical hidden states, RTD logits and
    generator MLM logits (over the kept ids)."""
    from factory.model.folder import load_model
    from factory.model.tokenizer import Tokenizer

    old_dir, new_dir = factory_layout / "discriminator", trimmed
    old, new = Tokenizer.from_folder(old_dir), Tokenizer.from_folder(new_dir)
    assert new.num_pieces < old.num_pieces // 2
    kept = kept_ids(old_dir, new_dir)
    texts = textgen.generate("pt", 40, seed=9)  # held out: other sentences than the corpus
    exact = [t for t in texts if old.sp.encode(t, out_type=str) == new.sp.encode(t, out_type=str)]
    assert len(exact) >= 30
    ids_old = [old.single(old.encode(t), 128) for t in exact]
    ids_new = [new.single(new.encode(t), 128) for t in exact]
    to_new = {o: n for n, o in enumerate(kept)} | {old.mask_id: new.mask_id}
    assert [[to_new[i] for i in row] for row in ids_old] == ids_new
    disc_old, disc_new = load_model(old_dir), load_model(new_dir)
    gen_old, gen_new = load_model(factory_layout / "generator"), load_model(trimmed / "generator")
    index = torch.tensor([*kept, old.mask_id])
    for a, b in zip(ids_old, ids_new, strict=True):
        a, b = torch.tensor([a]), torch.tensor([b])
        with torch.no_grad():
            assert torch.equal(disc_old(a).last_hidden_state, disc_new(b).last_hidden_state)
            assert torch.equal(disc_old(a).logits, disc_new(b).logits)
            assert torch.equal(gen_old(a).logits[..., index], gen_new(b).logits[..., : len(index)])


def test_trim_slices_every_row_tensor_with_one_index(trimmed, factory_layout):
    old, new = read_model_files(factory_layout), read_model_files(trimmed)
    kept = kept_ids(factory_layout / "discriminator", trimmed)
    mask = len(kept_ids(factory_layout / "discriminator", factory_layout / "discriminator"))
    spare = new.model.vocab_rows - len(kept) - 1
    assert spare == 99  # pieces + 100 rows, as `factory vocab` sizes models (the old model has its 99 spare rows)
    index = torch.tensor([*kept, mask, *range(mask + 1, mask + 1 + spare)])
    for a, b in zip(old.networks, new.networks, strict=True):
        assert set(a.state) == set(b.state)
        for name, tensor in a.state.items():
            want = tensor.index_select(0, index) if name in a.row_names() else tensor
            assert torch.equal(b.state[name], want), name
        assert b.config["vocab_size"] == len(index) and b.config["factory"]["mask_token_id"] == len(kept)


def test_trim_ids_agree_in_spm_slow_and_fast_tokenizers(trimmed):
    from test_vocab import _all_ids

    texts = textgen.generate("pt", 20, seed=4) + textgen.generate("zh", 5, seed=4) + ["Olá, mundo! 123 ção"]
    ids, _ = _all_ids(trimmed, texts)
    assert ids["spm"] == ids["DebertaV2Tokenizer"] == ids["AutoTokenizer"] == ids["tokenizer.json"]
    assert any(3 in row for row in ids["spm"][-6:-1])  # Chinese is [UNK] now: the test reaches removed pieces


def test_trim_adds_no_unknown_to_the_language_and_reports(trimmed, factory_layout):
    from factory.model.tokenizer import Tokenizer

    old, new = Tokenizer.from_folder(factory_layout / "discriminator"), Tokenizer.from_folder(trimmed)
    held_out = textgen.generate("pt", 200, seed=11) + ["Ação, pães e órgãos à vista: 42 €."]
    assert sum(row.count(3) for row in new.encode_batch(held_out)) == sum(
        row.count(3) for row in old.encode_batch(held_out))  # fmt: skip
    m = manifest(trimmed)
    assert m["step"] == "trim" and m["languages"] == ["pt"] and m["scripts"] == ["LATIN"]
    assert m["base"] == {"given": str(factory_layout), "repo_id": None, "revision": None} and m["base_manifest"] is None
    pt = m["per_language"]["pt"]
    assert pt["unchanged"] == 1.0 and pt["fertility_before"] == pt["fertility_after"] > 1  # min-count 1: all kept
    assert m["parameters_after"]["total"] < m["parameters_before"]["total"]
    assert m["parameters_before"]["backbone"] == m["parameters_after"]["backbone"]
    assert m["pieces_after"] == m["always_kept"] + m["used"] and m["seconds"] > 0
    assert manifest(trimmed / "generator") == m and not (trimmed / "discriminator").exists()
    assert json.loads((trimmed / "config.json").read_text())["factory"]["languages"] == ["pt"]


def test_trim_size_keeps_the_most_used_pieces(trimmed, factory_layout, pt_corpus, tmp_path):
    """--size N: exactly N pieces, the least used ones dropped (so some words are cut differently now)."""
    import numpy as np
    import sentencepiece as spm

    from factory.derive.trim import always_kept
    from factory.vocab.spm_file import SpmModel

    full = manifest(trimmed)
    size = full["pieces_after"] - 40
    out = tmp_path / "sized"
    result = run(["trim", factory_layout, "--lang", "pt", "--corpus", pt_corpus, "--size", size, "--out", out])
    assert "words cut as before" in result.output
    m = manifest(out)
    assert m["pieces_after"] == size and m["always_kept"] == full["always_kept"]
    assert m["per_language"]["pt"]["unchanged"] < 1.0
    assert m["per_language"]["pt"]["fertility_after"] > m["per_language"]["pt"]["fertility_before"]
    old = factory_layout / "discriminator"
    sp = spm.SentencePieceProcessor(model_file=str(old / "spm.model"))
    counts = np.bincount([i for row in sp.encode(textgen.generate("pt", 300)) for i in row], minlength=1000)
    always = always_kept(SpmModel.read(old / "spm.model").pieces, {"LATIN"})
    before, after = set(kept_ids(old, trimmed)), set(kept_ids(old, out))
    dropped, chosen = sorted(before - after), sorted(after - always)
    assert len(dropped) == 40 and after < before
    assert counts[dropped].max() <= counts[chosen].min()  # the least used went


def test_trim_published_layout_fp16(vocab, pt_corpus, tmp_path, hf_cache):
    """A Hub id in the published layout: the files go out as they came (the same names and keys; fp16 tensors
    widened to fp32, exactly), every per-vocabulary tensor sliced (the `_weight` delta, both MLM biases, the
    generator's table), the rest value for value; the discriminator's hidden states and the generator's (EMD) MLM
    logits are identical on kept text."""
    from factory.model.folder import load_model
    from factory.model.tokenizer import Tokenizer

    src = published_layout(tmp_path / "pub", vocab, "mixed")
    commit = hub_cache(hf_cache, "org/multi", src)
    out = tmp_path / "out"
    run(["trim", "org/multi", "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--out", out])
    files = {"config.json", "pytorch_model.bin", "generator_config.json", "pytorch_model.generator.bin", "spm.model"}
    assert {p.name for p in out.iterdir()} >= files | {"tokenizer.json", "tokenizer_config.json", "factory.json"}
    assert manifest(out)["base"] == {"given": "org/multi", "repo_id": "org/multi", "revision": commit}
    kept = kept_ids(src, out)
    index = torch.tensor([*kept, 1000, *range(1001, 1001 + 99)])
    for name in ("pytorch_model.bin", "pytorch_model.generator.bin"):
        a, b = (torch.load(f / name, weights_only=True) for f in (src, out))
        assert set(a) == set(b) and {t.dtype for t in a.values()} == {torch.float16, torch.float32}
        for key, tensor in a.items():
            sliced = any(key.endswith(r) for r in ROW_TENSORS)
            assert b[key].dtype == torch.float32
            assert torch.equal(b[key], (tensor.index_select(0, index) if sliced else tensor).float()), key
    assert "architectures" not in json.loads((out / "config.json").read_text())
    assert json.loads((out / "generator_config.json").read_text())["vocab_size"] == len(index)
    old, new = Tokenizer.from_folder(src), Tokenizer.from_folder(out)
    texts = textgen.generate("pt", 20, seed=5)
    text = next(t for t in texts if old.sp.encode(t, out_type=str) == new.sp.encode(t, out_type=str))
    a, b = torch.tensor([old.single(old.encode(text), 64)]), torch.tensor([new.single(new.encode(text), 64)])
    with torch.no_grad():
        assert torch.equal(load_model(src)(a).last_hidden_state, load_model(out)(b).last_hidden_state)
        gen_a, gen_b = load_model(src, generator=True), load_model(out, generator=True)
        assert gen_a.config.emd and torch.equal(gen_a(a).logits[..., index[: len(kept) + 1]],
                                                 gen_b(b).logits[..., : len(kept) + 1])  # fmt: skip


def test_trim_of_a_runs_discriminator_takes_its_generator(factory_layout, trimmed, pt_corpus, pt_vocab, tmp_path):
    """SRC = OUT/discriminator of `factory pretrain`: the trained generator beside it (the one `pretrain --init-from`
    would take) is trimmed with it, by the same index, as when SRC is the run folder; transplant takes it along too.
    `pretrain --init-from` of the result continues RTD with that generator, on the new vocabulary. (Trim used to
    write the discriminator alone, and --init-from then derived a fresh generator.)"""
    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.start import open_start

    out = tmp_path / "from-disc"
    run(["trim", factory_layout / "discriminator", "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--out", out])
    got, want = read_model_files(out), read_model_files(trimmed)  # `trimmed`: the run folder's trim
    assert [n.role for n in got.networks] == ["model", "generator"]
    for a, b in zip(got.networks, want.networks, strict=True):
        assert a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    start = open_start(PretrainConfig(init_from=str(out), shards=tmp_path, out=tmp_path / "continued"))
    assert start.generator.kind == "folder" and start.generator.folder == out / "generator"
    assert start.generator_config.vocab_size == start.config.vocab_size == want.model.vocab_rows
    moved = tmp_path / "moved"
    run(["transplant", factory_layout / "discriminator", "--vocab", pt_vocab, "--out", moved])
    generator, old = read_model_files(moved).networks[1], read_model_files(factory_layout).networks[1]
    assert generator.role == "generator" and generator.vocab_rows == 800  # 700 pieces + [MASK] + 99 spare rows
    assert all(torch.equal(t, old.state[k]) for k, t in generator.state.items() if k not in generator.row_names())


def test_a_model_derived_from_fp16_files_gives_factorys_numbers_in_transformers(vocab, pt_corpus, pt_vocab, tmp_path):
    """The README's promise for what factory writes: `AutoModel.from_pretrained(folder)`, with no dtype argument,
    gives factory's numbers. transformers 5 loads a checkpoint in the dtype its config.json names, else in its
    weights' dtype: derived from fp16 files, the weights used to stay fp16 and AutoModel ran in fp16 (6.9e-3 off
    factory's fp32); they are written in fp32 now (exactly the same values) and config.json says `float32`."""
    import transformers

    from factory.model.folder import load_model
    from factory.model.tokenizer import Tokenizer

    src = published_layout(tmp_path / "pub", vocab, "fp16")
    outs = {"trim": tmp_path / "trimmed", "transplant": tmp_path / "moved"}
    run(["trim", src, "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--out", outs["trim"]])
    run(["transplant", src, "--vocab", pt_vocab, "--out", outs["transplant"]])
    for out in outs.values():
        tokenizer = Tokenizer.from_folder(out)
        ids = torch.tensor([tokenizer.single(tokenizer.encode(t), 64) for t in textgen.generate("pt", 4, seed=5)])
        theirs = transformers.AutoModel.from_pretrained(out).eval()
        with torch.no_grad():
            a, b = load_model(out)(ids).last_hidden_state, theirs(ids).last_hidden_state
        assert (a - b.float()).abs().max() <= 1e-5 and theirs.dtype == torch.float32
        assert json.loads((out / "config.json").read_text())["dtype"] == "float32"


# ---- transplant ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pt_vocab(tmp_path_factory) -> Path:
    """A Portuguese-only vocabulary (another segmentation than the multilingual one)."""
    from factory.vocab.train import SpmSettings, train_spm, write_hf_files

    folder = tmp_path_factory.mktemp("pt_vocab")
    lines = textgen.generate("pt", 600, seed=2)
    write_lines(folder / ".sample.txt", lines)
    train_spm(folder / ".sample.txt", len(lines), folder, SpmSettings(pieces=700, threads=1))
    (folder / ".sample.txt").unlink()
    write_hf_files(folder)
    return folder


def test_transplant_copies_shared_rows_and_averages_new_ones(factory_layout, pt_vocab, tmp_path):
    import sentencepiece as spm

    out = tmp_path / "mean"
    result = run(["transplant", factory_layout, "--vocab", pt_vocab, "--out", out])
    assert "shared (rows copied)" in result.output
    old_sp = spm.SentencePieceProcessor(model_file=str(factory_layout / "discriminator" / "spm.model"))
    new_sp = spm.SentencePieceProcessor(model_file=str(pt_vocab / "spm.model"))
    old, new = read_model_files(factory_layout), read_model_files(out)
    pieces = new_sp.get_piece_size()
    shared = [(j, old_sp.piece_to_id(new_sp.id_to_piece(j))) for j in range(pieces)
              if old_sp.piece_to_id(new_sp.id_to_piece(j)) != 3 or j == 3]  # fmt: skip
    fresh = [j for j in range(pieces) if j not in dict(shared)]
    assert len(shared) > 100 and len(fresh) > 100
    m = manifest(out)
    assert (m["shared"], m["new"], m["init"]) == (len(shared), len(fresh), "mean") and m["pieces_per_new"] > 1
    for a, b in zip(old.networks, new.networks, strict=True):
        for name in a.row_names():
            for j, i in [*shared, (pieces, 1000)]:  # [MASK] keeps its row too
                assert torch.equal(b.state[name][j], a.state[name][i]), (name, j)
        for name in set(a.state) - set(a.row_names()):
            assert torch.equal(b.state[name], a.state[name])
    piece = next(new_sp.id_to_piece(j) for j in fresh if new_sp.id_to_piece(j).startswith("▁"))
    parts = old_sp.encode(piece[1:])  # a word-start piece: the old tokenizer's cut of the word
    table = old.model.state["deberta.embeddings.word_embeddings.weight"]
    got = new.model.state["deberta.embeddings.word_embeddings.weight"][new_sp.piece_to_id(piece)]
    assert len(parts) > 1 and torch.allclose(got, table[parts].mean(0), atol=1e-6)


def test_transplant_random_published_layout_keeps_gdes_consistent(vocab, pt_vocab, tmp_path):
    """--init random: a new piece's rows are one fresh draw in the folded table and the generator's, 0 in the
    `_weight` delta and the biases, so folded = generator + delta still holds row by row."""
    src = published_layout(tmp_path / "pub", vocab)
    out = tmp_path / "random"
    run(["transplant", src, "--vocab", pt_vocab, "--init", "random", "--seed", "1", "--out", out])
    disc = torch.load(out / "pytorch_model.bin", weights_only=True)
    gen = torch.load(out / "pytorch_model.generator.bin", weights_only=True)
    table, delta = disc["deberta.embeddings.word_embeddings.weight"], disc["deberta.embeddings.word_embeddings._weight"]
    e_g = gen["deberta.embeddings.word_embeddings.weight"]
    m = manifest(out)
    assert m["init"] == "random" and m["pieces_per_new"] is None
    assert torch.allclose(table, e_g + delta, atol=1e-6)  # held before (the fixture's), holds after
    new_rows = (delta == 0).all(1)  # the fixture's delta is random everywhere
    assert int(new_rows[:700].sum()) == m["new"]
    assert 0.01 < float(table[:700][new_rows[:700]].std()) < 0.03  # N(0, initializer_range)


def test_transplant_onto_a_vocabulary_with_no_new_piece(factory_layout, trimmed, tmp_path, monkeypatch):
    """A vocabulary within the model's (its own, a trimmed subset): every piece keeps its row, the command says "0
    new" and the card says every row was copied (both used to format the missing pieces-per-new figure: a
    TypeError traceback, exit 1, with --out written). A failure after the model is written leaves no --out."""
    from huggingface_hub import ModelCard

    import factory.derive.transplant as T

    for vocab in (factory_layout / "discriminator", trimmed):
        out = tmp_path / vocab.name
        result = run(["transplant", factory_layout, "--vocab", vocab, "--out", out])
        m = manifest(out)
        assert m["new"] == 0 and m["shared"] == m["pieces_after"] and m["pieces_per_new"] is None
        assert f"{m['shared']:,} shared (rows copied), 0 new; parameters" in result.output
        old, new = read_model_files(factory_layout), read_model_files(out)
        kept = kept_ids(factory_layout / "discriminator", vocab)
        index = torch.tensor([*kept, 1000, *range(1001, 1001 + new.model.vocab_rows - len(kept) - 1)])
        for a, b in zip(old.networks, new.networks, strict=True):
            assert all(torch.equal(b.state[k], a.state[k].index_select(0, index)) for k in a.row_names())
    run(["publish", out, "--repo-id", "me/moved", "--dry-run", "--staging", tmp_path / "hub"])
    card = ModelCard.load(tmp_path / "hub" / "README.md").text
    assert f"The {m['shared']:,} pieces of the new vocabulary are all pieces of the base's" in card

    def broken(out, m):
        raise RuntimeError("a summary that fails")

    monkeypatch.setattr(T, "summary", broken)
    out = tmp_path / "failed"
    from click.testing import CliRunner

    from factory.cli.main import cli

    result = CliRunner().invoke(cli, ["transplant", str(factory_layout), "--vocab", str(trimmed), "--out", str(out)])
    assert result.exit_code != 0 and not out.exists() and not list(tmp_path.glob(".failed*"))


# ---- user mistakes ------------------------------------------------------------------------------------
def test_bad_input_is_one_line_and_writes_nothing(factory_layout, pt_corpus, pt_vocab, tmp_path):
    out = tmp_path / "out"
    base = ["trim", factory_layout, "--out", out]
    one_error_line([*base, "--langs", "pt,es", "--corpus", f"pt={pt_corpus}"], "es", "--corpus", out=out)
    one_error_line([*base, "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--size", "900"], "--size", out=out)
    one_error_line([*base, "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--size", "1000", "--min-count", "2"],
                   "not both", out=out)  # fmt: skip
    one_error_line(["trim", factory_layout, "--out", out, "--corpus", str(pt_corpus)], "--langs", out=out)
    not_deberta = tmp_path / "bert"
    not_deberta.mkdir()
    (not_deberta / "config.json").write_text('{"model_type": "bert", "vocab_size": 10}')
    one_error_line(["trim", not_deberta, "--langs", "pt", "--corpus", pt_corpus, "--out", out], "deberta-v2", out=out)
    one_error_line(["transplant", not_deberta, "--vocab", pt_vocab, "--out", out], "deberta-v2", out=out)
    one_error_line(["transplant", factory_layout, "--vocab", not_deberta, "--out", out], "spm.model", out=out)
    one_error_line(["trim", tmp_path / "nope", "--langs", "pt", "--corpus", pt_corpus, "--out", out], "nope", out=out)
    # a language code that is not one (it used to go into config.json and the card; `portuguese=` read as part of a
    # path: "no such file or folder")
    one_error_line([*base, "--langs", "xx", "--corpus", pt_corpus], "--langs", "unknown language code 'xx'", out=out)
    one_error_line([*base, "--langs", "pt", "--corpus", f"portuguese={pt_corpus}"],
                   "unknown language code 'portuguese' (did you mean pt?)", out=out)  # fmt: skip


def test_out_is_never_a_folder_the_step_reads(factory_layout, pt_corpus, pt_vocab, tmp_path):
    """--out that is SRC (or a symlink to it), inside it, the generator beside it, --vocab, or a folder holding one
    of them: refused whatever --force says, and without advising --force; nothing is touched. (`trim SRC --out SRC
    --force` used to replace SRC by its trim, after a refusal without --force that advised --force.)"""
    import shutil

    run_dir = tmp_path / "runs" / "a"
    shutil.copytree(factory_layout, run_dir)
    src, vocab = run_dir / "discriminator", tmp_path / "vocab"
    shutil.copytree(pt_vocab, vocab)
    (tmp_path / "link").symlink_to(src)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    trim = ["trim", src, "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--out"]
    transplant = ["transplant", src, "--vocab", vocab, "--out"]
    cases = [
        ([*trim, src], "is SRC"), ([*trim, src, "--force"], "is SRC"),
        ([*trim, tmp_path / "link", "--force"], "is SRC"),
        ([*trim, src / "pt"], "is inside SRC"), ([*trim, run_dir / "generator", "--force"], "SRC's generator"),
        ([*trim, tmp_path / "runs", "--force"], "holds SRC"), ([*trim, run_dir], "holds SRC"),
        ([*transplant, src, "--force"], "is SRC"), ([*transplant, vocab, "--force"], "is --vocab"),
        ([*transplant, run_dir / "generator"], "SRC's generator"),
    ]  # fmt: skip
    for args, needle in cases:
        line = one_error_line(args, needle, "give --out a folder of its own")
        assert "pass --force" not in line, line
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before
    assert not list(tmp_path.rglob(".*.lock"))


def test_a_corpus_in_another_language_is_refused(factory_layout, pt_corpus, tmp_path):
    """--corpus pt=ENGLISH: checked by the language filter vocab and shards use, refused in one line naming the file,
    its share of Portuguese and what it mostly is (it used to trim to English pieces and report "words cut as before
    100.00%"); --no-langid trims unchecked, --langid-skip pt lets pt through."""
    english = write_lines(tmp_path / "en.txt", textgen.generate("en", 300))
    out = tmp_path / "out"
    args = ["trim", factory_layout, "--langs", "pt", "--corpus", f"pt={english}", "--out", out]
    one_error_line(args, f"--corpus pt={english}: 0% of its first 300 documents are Portuguese (pt)",
                   "100% English (en)", "--no-langid", out=out)  # fmt: skip
    mixed = write_lines(tmp_path / "mixed.txt", textgen.generate("pt", 100) + textgen.generate("en", 200))
    one_error_line([*args[:5], f"pt={mixed}", *args[6:]], "33% of its first 300", "67% English", out=out)
    one_error_line([*args, "--langid", "langdetect"], "by the langdetect language filter", out=out)
    run([*args, "--no-langid"])
    run([*args, "--langid-skip", "pt", "--force"])
    mostly = write_lines(tmp_path / "mostly.txt", textgen.generate("pt", 200) + textgen.generate("en", 100))
    run(["trim", factory_layout, "--langs", "pt", "--corpus", f"pt={mostly}", "--out", tmp_path / "mostly"])


# ---- the card -----------------------------------------------------------------------------------------
def test_card_of_a_trimmed_hub_model_says_what_it_came_from(vocab, pt_corpus, tmp_path, hf_cache):
    """publish --dry-run of a trim of a Hub model: base_model + base_model_relation in the metadata (the Hub's model
    tree), the revision, what was done and the figures the trim measured; the generator goes along."""
    from huggingface_hub import ModelCard

    src = published_layout(tmp_path / "pub", vocab)
    commit = hub_cache(hf_cache, "org/multi", src)
    out = tmp_path / "trimmed"
    run(["trim", "org/multi@main", "--langs", "pt", "--corpus", f"pt={pt_corpus}", "--out", out])
    staging = tmp_path / "hub"
    run(["publish", out, "--repo-id", "me/multi-pt", "--dry-run", "--staging", staging])
    card = ModelCard.load(staging / "README.md")
    assert card.data.base_model == "org/multi" and card.data.base_model_relation == "finetune"
    assert card.data.language == ["pt"]
    m = manifest(out)
    text = card.text
    assert f"trimmed from [org/multi](https://huggingface.co/org/multi) (revision `{commit[:12]}`)" in text
    assert "## Derivation" in text and "Portuguese" in text and f"1,000 -> {m['pieces_after']:,}" in text
    assert f"| Portuguese | {m['per_language']['pt']['words']:,} | 100.00% |" in text
    assert "its own card says how it was pre-trained" in text
    assert (staging / "generator" / "config.json").is_file()


def test_card_of_a_transplant_of_our_model_keeps_its_pretraining(factory_layout, pt_vocab, tmp_path):
    """A local base: no base_model metadata (it takes a Hub id), the folder named in the text; a base made by
    `factory pretrain` lends its pre-training table."""
    import shutil

    from huggingface_hub import ModelCard

    from factory.pretrain.manifest import PretrainManifest

    base = tmp_path / "base"
    shutil.copytree(factory_layout, base)
    pretrain = json.loads(json.dumps(PRETRAIN_FIGURES))
    (base / "discriminator" / "factory.json").write_text(json.dumps(PretrainManifest(**pretrain).to_json()))
    out = tmp_path / "moved"
    run(["transplant", base, "--vocab", pt_vocab, "--out", out])
    staging = tmp_path / "hub"
    run(["publish", out, "--repo-id", "me/moved", "--dry-run", "--staging", staging])
    card = ModelCard.load(staging / "README.md")
    assert card.data.base_model is None
    assert f"moved from `{base}` onto a new vocabulary" in card.text
    assert "(FVT)" in card.text and "| Steps | 7 |" in card.text
    assert f"## Pre-training\n\nHow `{base}` was pre-trained (before the derivation above)" in card.text
    assert (staging / "generator" / "model.safetensors").is_file()  # out/generator/ goes along by itself


PRETRAIN_FIGURES = {
    "arguments": {}, "role": "discriminator", "preset": "debug", "vocab_size": 1000, "embedding_rows": 1100,
    "seq_len": 32, "batch": 4, "micro_batch": 4, "accumulation": 1, "processes": 1, "lr": 0.001, "sharing": "gdes",
    "rtd_lambda": 50.0, "steps": 7, "tokens": 896, "parameters": {"total": 1}, "flops_per_step": 1.0, "shards": "s",
    "vocab_fingerprint": "x",
}  # fmt: skip


# ---- factory run ---------------------------------------------------------------------------------------
def test_a_recipe_trims_and_publishes(vocab, pt_corpus, tmp_path):
    """steps.trim in a recipe: the recipe's corpus feeds it, the trimmed folder is what publish stages (with its
    generator), a second run skips both, --dry-run shows the command."""
    src = published_layout(tmp_path / "pub", vocab)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\ncorpus: [pt={pt_corpus}]\nsteps:\n  trim: {{source: {src}, langs: pt}}\n"
                      "  publish: {repo_id: me/t}\n")  # fmt: skip
    dry = run(["run", recipe, "--dry-run", "--run-dir", tmp_path / "run"])
    assert f"factory trim {src} --langs pt --corpus pt={pt_corpus}" in dry.output
    assert f"factory publish {tmp_path / 'run' / 'trim'} --repo-id me/t" in dry.output
    assert not (tmp_path / "run").exists()
    first = run(["run", recipe, "--run-dir", tmp_path / "run"])
    assert "ran trim, publish" in first.output
    assert manifest(tmp_path / "run" / "trim")["step"] == "trim"
    assert (tmp_path / "run" / "hub" / "generator" / "config.json").is_file()
    assert "nothing (all up to date)" in run(["run", recipe, "--run-dir", tmp_path / "run"]).output
    both = tmp_path / "both.yaml"
    both.write_text(f"name: b\nsteps:\n  trim: {{source: {src}, langs: pt, corpus: [{pt_corpus}]}}\n"
                    f"  transplant: {{source: {src}, vocab: {vocab}}}\n")  # fmt: skip
    one_error_line(["run", both, "--dry-run"], "steps.trim and steps.transplant")


def test_a_recipe_transplants_then_continues(factory_layout, pt_vocab, tmp_path):
    """transplant -> shards (cut with the transplanted model's tokenizer) -> pretrain --init-from the transplant."""
    corpus = write_lines(tmp_path / "pt.txt", textgen.generate("pt", 120, seed=8))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: c\ncorpus: [pt={corpus}]\nsteps:\n  transplant: {{source: {factory_layout}, vocab: {pt_vocab}}}\n"
        "  shards: {seq_len: 32, langs: [pt], langid: false}\n"
        "  pretrain: {batch: 4, max_steps: 3, warmup: 1, save_every: 3, log_every: 1}\n"
    )  # fmt: skip
    result = run(["run", recipe, "--run-dir", tmp_path / "run"])
    assert "ran transplant, shards, pretrain" in result.output
    pretrain = manifest(tmp_path / "run" / "pretrain")
    assert pretrain["init_from"]["source"]["given"] == str(tmp_path / "run" / "transplant")
    assert manifest(tmp_path / "run" / "shards")["vocab_pieces"] == 700


def test_trim_keeps_byte_and_user_defined_pieces(tmp_path):
    """A vocabulary with byte fallback and a user-defined piece (as the published v3 ones have bytes): both kinds
    are always kept, the cut model loads (sentencepiece requires every byte piece under byte fallback) and
    characters outside the kept scripts still come out as the same byte pieces."""
    import numpy as np
    import sentencepiece as spm
    from conftest import pseudo_text

    from factory.derive.trim import select_pieces
    from factory.vocab.spm_file import BYTE, USER_DEFINED, SpmModel

    sample = write_lines(tmp_path / "s.txt", pseudo_text(2000) + textgen.generate("ru", 200))
    spm.SentencePieceTrainer.train(
        input=str(sample), model_prefix=str(tmp_path / "spm"), vocab_size=1200, byte_fallback=True,
        user_defined_symbols=["<url>"], pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]",
        bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]", minloglevel=2, num_threads=1,
    )  # fmt: skip
    model = SpmModel.read(tmp_path / "spm.model")
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    counts = np.bincount([i for row in sp.encode(pseudo_text(300, seed=5)) for i in row], minlength=1200)
    kept = select_pieces(model.pieces, counts, None, None).ids
    special = [i for i, p in enumerate(model.pieces) if p.type in (BYTE, USER_DEFINED)]
    assert len(special) == 257 and set(special) <= set(kept) and not set(kept) >= set(range(1200))
    cut = spm.SentencePieceProcessor(model_proto=model.keep(kept))
    assert [p for p in cut.encode("Привет", out_type=str) if p.startswith("<0x")]  # Cyrillic dropped: bytes now
    assert "<url>" in cut.encode("bada <url> ção", out_type=str)
    assert cut.encode("bada <url> ção €", out_type=str) == sp.encode("bada <url> ção €", out_type=str)
