"""`factory eval retrieval` and `--control random`: known answers, every data layout, the control's identity,
the control object in results.json, bad input."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import pseudo_text

from factory.cli.main import cli
from factory.core.errors import FactoryError
from factory.evaluate.control import CONTROL_SEED, arms, control_encoder_state
from factory.evaluate.parallel import read_parallel
from factory.evaluate.retrieval import layer_index, pool

N = 40
TEXTS = list(dict.fromkeys(pseudo_text(N + 5, seed=7)))[:N]  # distinct items


@pytest.fixture(scope="module")
def model_dir(tiny_vocab, tmp_path_factory):
    """A random 2-layer debug-shape discriminator folder (config.json, weights, spm.model), as pretrain exports."""
    from factory.model import build_model, save_model
    from factory.model.presets import PRESETS, VocabSize
    from factory.model.tokenizer import TOKENIZER_FILES

    folder = tmp_path_factory.mktemp("model")
    config = PRESETS["debug"].config(VocabSize.from_pieces(1000), num_hidden_layers=2)
    save_model(build_model(config, "rtd", seed=0), folder)
    for name in TOKENIZER_FILES:
        shutil.copy(tiny_vocab / name, folder / name)
    return folder


def _txt(folder: Path, columns: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for lang, lines in columns.items():
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _retrieval(model: Path, data: Path | str, out: Path, *extra: str):
    args = ["eval", "retrieval", "--model", str(model), "--data", str(data), "--out", str(out), *extra]
    return CliRunner().invoke(cli, args)


# ---- known answers ------------------------------------------------------------------------------------------
def test_the_same_text_in_every_language_is_found_every_time(model_dir, tmp_path):
    data = _txt(tmp_path / "same", {"en": TEXTS, "de": TEXTS, "fr": TEXTS})
    result = _retrieval(model_dir, data, tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["schema"] == "factory.eval/v1" and report["suite"] == "retrieval" and report["pivot"] == "en"
    assert report["languages"] == ["de", "fr"] and "control" not in report
    for lang in ("de", "fr"):
        for direction in ("to_pivot", "from_pivot"):
            assert report["results"][lang][direction] == {"accuracy": 100.0, "n": N, "chance": 2.5}
    assert report["average"] == {"to_pivot": {"accuracy": 100.0}, "from_pivot": {"accuracy": 100.0}}
    protocol = report["protocol"]
    assert (protocol["layer"], protocol["layer_index"], protocol["depth"]) == (0.55, 1, 2)
    assert protocol["pooling"] == "mean" and protocol["centre"] is True and protocol["similarity"] == "cosine"
    assert "XTREME" in protocol["layer_note"] and "every en item" in protocol["candidates"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "results.json", "results.md", "retrieval_accuracy.png", "factory.json"
    }  # fmt: skip
    assert "| de | 40 | 100.0 | 100.0 |" in (tmp_path / "out" / "results.md").read_text()
    assert "de" in result.output and "100.0" in result.output


def test_shuffled_lines_score_exactly_their_fixed_points(model_dir, tmp_path):
    """de is en with its lines permuted: each de item finds its own text, which is the gold only at a fixed point."""
    order = list(range(N))
    random.Random(0).shuffle(order)
    fixed = [i for i in range(N) if order[i] == i]
    order[:4] = [0, 1, 2, 3] if not fixed else order[:4]  # make sure some items stay in place
    fixed = sum(order[i] == i for i in range(N))
    assert 0 < fixed < N and sorted(order) == list(range(N))
    data = _txt(tmp_path / "shuffled", {"en": TEXTS, "de": [TEXTS[j] for j in order]})
    assert _retrieval(model_dir, data, tmp_path / "out").exit_code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["de"]
    assert results["to_pivot"]["accuracy"] == round(100 * fixed / N, 2)
    assert results["from_pivot"]["accuracy"] == round(100 * fixed / N, 2)


def test_unrelated_text_is_about_chance(model_dir, tmp_path):
    other = list(dict.fromkeys(pseudo_text(N + 5, seed=99)))[:N]
    data = _txt(tmp_path / "unrelated", {"en": TEXTS, "xx": other})
    assert _retrieval(model_dir, data, tmp_path / "out", "--layer", "1").exit_code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["xx"]
    assert results["to_pivot"]["accuracy"] <= 5 * 2.5 and results["from_pivot"]["accuracy"] <= 5 * 2.5


def test_hidden_states_are_the_models_own(model_dir):
    from factory.evaluate.retrieval import accuracy_at_1, hidden_state
    from factory.model import load_model

    model = load_model(model_dir, head="none")
    ids = torch.tensor([[1, 50, 60, 70, 2], [1, 80, 2, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        last = model(ids, mask).last_hidden_state
        assert torch.allclose(hidden_state(model, ids, mask, 2), last, atol=1e-6)
        assert torch.allclose(hidden_state(model, ids, mask, 0), model.embeddings(ids, mask.bool()), atol=1e-6)
    vectors = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
    gold = [str(i) for i in range(10)]
    assert accuracy_at_1(vectors, vectors, gold, block=3) == 100.0  # blocks of queries give the same answer
    assert accuracy_at_1(vectors, vectors.roll(1, 0), gold, block=4) == 0.0


def test_layer_fraction_and_pooling():
    assert [layer_index(0.55, d) for d in (12, 24, 2, 4, 6)] == [7, 13, 1, 2, 3]  # XTREME's 7/12 and 13/24
    assert (layer_index(0, 12), layer_index(1, 12), layer_index(0.5, 3)) == (0, 12, 2)
    h = torch.arange(2 * 5 * 1, dtype=torch.float32).view(2, 5, 1)  # value = position (+5 in row 1)
    ids = torch.tensor([[1, 7, 8, 2, 0], [1, 2, 0, 0, 0]])  # [CLS] a b [SEP] [PAD]; [CLS] [SEP] (no content)
    mask = (ids != 0).long()
    assert pool(h, ids, mask, "mean")[:, 0].tolist() == [1.5, 5.5]  # tokens 1-2; row 1 falls back to mean_all
    assert pool(h, ids, mask, "mean_all")[:, 0].tolist() == [1.5, 5.5]
    assert pool(h, torch.tensor([[1, 7, 7, 7, 2]] * 2), torch.ones(2, 5), "mean_all")[:, 0].tolist() == [2.0, 7.0]
    assert pool(h, ids, mask, "cls")[:, 0].tolist() == [0.0, 5.0]


# ---- layouts --------------------------------------------------------------------------------------------------
def _columns() -> dict[str, list[str]]:
    return {"en": TEXTS[:6], "de": [f"de {t}" for t in TEXTS[:6]], "fr": [f"fr {t}" for t in TEXTS[:6]]}


def _write_layout(tmp_path: Path, layout: str) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp_path.mkdir(parents=True, exist_ok=True)
    cols = _columns()
    rows = [{"id": i, **{lang: cols[lang][i] for lang in cols}} for i in range(6)]
    if layout == "txt":
        return str(_txt(tmp_path / "txt", cols))
    if layout in ("tsv", "tsv_header"):
        folder = tmp_path / layout
        folder.mkdir()
        for lang in ("de", "fr"):
            head = f"en\t{lang}\n" if layout == "tsv_header" else ""
            body = "".join(f"{e}\t{x}\n" for e, x in zip(cols["en"], cols[lang], strict=True))
            (folder / f"{lang}.tsv").write_text(head + body, encoding="utf-8")
        return str(folder)
    if layout == "jsonl":
        path = tmp_path / "pairs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return str(path)
    if layout == "translation_jsonl":
        path = tmp_path / "translation.jsonl"
        path.write_text("".join(json.dumps({"translation": {k: r[k] for k in cols}}) + "\n" for r in rows))
        return str(path)
    table = pa.Table.from_pylist(rows)
    if layout == "parquet":
        pq.write_table(table, tmp_path / "pairs.parquet")
        return str(tmp_path / "pairs.parquet")
    (tmp_path / "hub" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "hub" / "data" / "test-00000-of-00001.parquet")
    return f"hf:{tmp_path / 'hub'}"  # a dataset folder, read by `datasets` offline


@pytest.mark.parametrize("layout", ["txt", "tsv", "tsv_header", "jsonl", "translation_jsonl", "parquet", "hub"])
def test_every_layout_gives_the_same_pairs(layout, tmp_path):
    data = read_parallel(_write_layout(tmp_path, layout), "en")
    cols = _columns()
    assert list(data.pairs) == ["de", "fr"] and data.pivot == "en"  # the `id` column (numbers) is not a language
    for lang in ("de", "fr"):
        assert data.pairs[lang].pivot == cols["en"] and data.pairs[lang].other == cols[lang]
    assert data.layout == {"tsv_header": "tsv", "jsonl": "table", "translation_jsonl": "table",
                           "parquet": "table"}.get(layout, layout)  # fmt: skip
    assert list(read_parallel(_write_layout(tmp_path / "again", layout), "en", "fr").pairs) == ["fr"]


def test_an_item_missing_in_one_language_is_left_out_of_that_language_only(tmp_path):
    cols = _columns()
    cols["de"][2] = " "
    data = read_parallel(str(_txt(tmp_path / "gap", cols)), "en")
    assert data.pairs["de"].pivot == [t for i, t in enumerate(cols["en"]) if i != 2]
    assert data.pairs["fr"].pivot == cols["en"]


# ---- the control ----------------------------------------------------------------------------------------------
def _parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_control_has_the_models_config_tokenizer_and_size(model_dir):
    from factory.model import load_model
    from factory.model.folder import read_config

    pretrained, control = arms(model_dir, "random")
    assert control.is_control and not pretrained.is_control
    assert control.config() == pretrained.config() == read_config(model_dir)
    assert control.tokenizer().path == pretrained.tokenizer().path == model_dir / "spm.model"
    ours, theirs = load_model(model_dir, head="none"), control.model("none")
    assert theirs.config == ours.config and _parameters(theirs) == _parameters(ours)
    assert not torch.equal(theirs.embeddings.word_embeddings.weight, ours.embeddings.word_embeddings.weight)
    assert control.describe()["seed"] == CONTROL_SEED and CONTROL_SEED not in (0, 42, 43, 44)
    # a fixed control: the same weights every time, drawn without moving the caller's random stream
    state = torch.random.get_rng_state()
    again = control_encoder_state(model_dir)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(again[k], v) for k, v in theirs.state_dict().items())
    # fine-tuning: the same fresh head for both arms under the same seed, the same parameter count
    torch.manual_seed(42)
    a = pretrained.model("cls", labels=("x", "y", "z"))
    torch.manual_seed(42)
    b = control.model("cls", labels=("x", "y", "z"))
    assert torch.equal(a.classifier.weight, b.classifier.weight) and _parameters(a) == _parameters(b)
    assert b.config.labels == ("x", "y", "z")


def _same_shape(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_shape(a[k], b[k]) for k in a)
    return type(a) is type(b) or {type(a), type(b)} <= {int, float}


def test_control_random_adds_a_control_object_to_retrieval(model_dir, tmp_path):
    order = list(range(N))
    random.Random(1).shuffle(order)
    data = _txt(tmp_path / "d", {"en": TEXTS, "de": TEXTS, "fr": [TEXTS[j] for j in order]})
    result = _retrieval(model_dir, data, tmp_path / "out", "--control", "random")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert _same_shape(report["results"], report["control"]) and report["control"]["de"]["to_pivot"]["n"] == N
    assert _same_shape(report["average"], report["control_average"])
    assert report["control_model"]["kind"] == "random" and report["control_model"]["seed"] == CONTROL_SEED
    for lang in ("de", "fr", "avg"):
        ours = report["average"] if lang == "avg" else report["results"][lang]
        theirs = report["control_average"] if lang == "avg" else report["control"][lang]
        for d in ("to_pivot", "from_pivot"):
            assert report["gain"][lang][d] == round(ours[d]["accuracy"] - theirs[d]["accuracy"], 2)
    assert report["control"]["de"]["to_pivot"]["accuracy"] == 100.0  # identical text: any model finds it
    md = (tmp_path / "out" / "results.md").read_text()
    assert "control x → en" in md and "gain x → en" in md and "| de | 40 | 100.0 | 100.0 | 100.0 | 100.0 | +0.0" in md
    assert "control (random init" in result.output


@pytest.mark.slow  # two fine-tunings of a micro model: ~10 s on 2 shared cores
def test_control_random_on_classify_fine_tunes_both_with_the_same_seeds(model_dir, tmp_path):
    rows = [{"text": t, "label": i % 2, "language": lang} for lang in ("en", "de") for i, t in enumerate(TEXTS[:16])]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "classify", "--model", str(model_dir), "--train", str(data), "--test", str(data), "--set",
            "epochs=1", "--set", "batch_size=8", "--set", "micro_batch_size=8", "--set", "max_length=16", "--control",
            "random",
            "--out", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert _same_shape(report["results"], report["control"]) and list(report["control"]) == ["de", "en"]
    assert set(report["control"]["en"]["test"]) == {"accuracy", "std", "per_run", "n"}
    assert _same_shape(report["average"], report["control_average"])
    assert report["gain"]["en"]["test"] == round(
        report["results"]["en"]["test"]["accuracy"] - report["control"]["en"]["test"]["accuracy"], 2
    )
    assert len(report["control_model"]["final_train_loss"]) == 1 and report["seeds"] == [42]
    assert (tmp_path / "out" / "predictions" / "control" / "en.test.jsonl").is_file()
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| language | ours validation | ours test | control validation | control test | gain validation | " \
           "gain test |\n" in md and "Control: the same config and tokenizer" in md  # fmt: skip
    assert f"| en | - | {report['results']['en']['test']['accuracy']:.1f} | - |" in md


@pytest.mark.parametrize("command", ["xnli", "pawsx", "classify", "retrieval"])
def test_every_eval_command_has_the_control_option(command):
    result = CliRunner().invoke(cli, ["eval", command, "--help"])
    assert result.exit_code == 0 and "--control [none|random]" in result.output


# ---- bad input: one line, exit 2, nothing written --------------------------------------------------------------
@pytest.mark.parametrize(
    "case, expected",
    [
        ("misaligned", "not aligned (de.txt 39, en.txt 40 lines)"),
        ("one_language", "has only one language"),
        ("pivot_missing", "the pivot 'en' is not in --data"),
        ("pivot_missing_table", "the pivot 'en' is not in --data"),
        ("tsv_other_pivot", "pairs fr with de, not the pivot en"),
        ("unknown_lang", "--langs xx not in --data"),
        ("no_data", "not a folder of <lang>.txt"),
        ("tsv_bad_line", "de.tsv:3: not pivot<TAB>translation (1 field(s))"),
        ("pivot_in_langs", "--langs names the pivot en"),
        ("offline_hub", "cannot load hf:nobody/no-such-set"),
        ("bad_control", "'--control': 'yes' is not one of none, random"),
        ("bad_layer", "'--layer': 2 must be <= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2(case, expected, model_dir, tmp_path):
    extra: list[str] = []
    data: Path | str = tmp_path / "data"
    if case == "misaligned":
        _txt(data, {"en": TEXTS, "de": TEXTS[:-1]})
    elif case == "one_language":
        _txt(data, {"en": TEXTS})
    elif case == "pivot_missing":
        _txt(data, {"de": TEXTS, "fr": TEXTS})
    elif case == "pivot_missing_table":
        data = tmp_path / "t.jsonl"
        data.write_text("".join(json.dumps({"de": t, "fr": t}) + "\n" for t in TEXTS))
    elif case == "tsv_other_pivot":
        data.mkdir()
        (data / "de.tsv").write_text("fr\tde\n" + "".join(f"{t}\t{t}\n" for t in TEXTS))
    elif case == "tsv_bad_line":
        data.mkdir()
        (data / "de.tsv").write_text("en\tde\na\tb\nno tab here\n")
    elif case == "no_data":
        data = tmp_path / "missing"
    elif case == "offline_hub":
        data = "hf:nobody/no-such-set"
    else:
        _txt(data, {"en": TEXTS, "de": TEXTS})
        extra = {"unknown_lang": ["--langs", "de,xx"], "bad_control": ["--control", "yes"],
                 "pivot_in_langs": ["--langs", "de,en"], "bad_layer": ["--layer", "2"]}[case]  # fmt: skip
    out = tmp_path / "out"
    result = _retrieval(model_dir, data, out, *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output
    assert not out.exists()


def test_read_parallel_refuses_a_language_with_one_item(tmp_path):
    with pytest.raises(FactoryError, match="de has 1 item"):
        read_parallel(str(_txt(tmp_path / "d", {"en": ["a", "b"], "de": ["", "x"]})), "en")
