"""`factory eval`: zero-shot fine-tuning on the demo NLI set, results files, process-count invariance, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import model_folder, one_error_line

from factory.cli.main import cli
from factory.evaluate import demo_nli

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "nli"
# A tiny model learns the demo set's cues in ~30 optimizer steps at this learning rate (the card's 2e-5 is for
# a pre-trained 86M-parameter encoder, not a random 2-layer one).
FAST = ["--set", "epochs=3", "--set", "learning_rate=2e-3"]


@pytest.fixture(scope="module")
def nli_model(tmp_path_factory):
    """A random debug-size deberta-v2 folder whose spm.model is trained on the demo set's text.

    The conftest `tiny_vocab` is syllable soup: it splits English into ~67 pieces per pair, three times
    slower to fine-tune and harder to learn than this word-level 300-piece vocabulary.
    """
    from factory.vocab.train import SpmSettings, train_spm

    folder = tmp_path_factory.mktemp("nli_model")
    texts = [t for row in _rows(DEMO / "train.jsonl") for t in (row["premise"], row["hypothesis"])]
    sample = tmp_path_factory.mktemp("nli_sample") / "sample.txt"
    sample.write_text("\n".join(texts) + "\n", encoding="utf-8")
    train_spm(sample, len(texts), folder, SpmSettings(pieces=300, character_coverage=1.0, threads=2))
    return model_folder(folder, 300, layers=2, seed=0)  # sized for the vocabulary above


@pytest.fixture(scope="module")
def one_process(nli_model, tmp_path_factory):
    """`factory eval xnli` on the demo set in this process: (output folder, CLI output)."""
    out = tmp_path_factory.mktemp("eval") / "xnli"
    args = ["eval", "xnli", "--model", str(nli_model), "--data", str(DEMO), *FAST, "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_demo_set_is_the_generator_output(tmp_path):
    for path in demo_nli.write(tmp_path):
        assert path.read_bytes() == (DEMO / path.name).read_bytes(), f"regenerate {path.name}: see demo_nli.py"
    rows = _rows(DEMO / "validation.jsonl")
    by_lang = {lang: [r for r in rows if r["language"] == lang] for lang in demo_nli.LANGUAGES}
    assert len(by_lang) >= 3 and all(len(v) == len(by_lang["en"]) for v in by_lang.values())
    assert [r["label"] for r in by_lang["en"]] == [r["label"] for r in by_lang["ru"]]  # translations, same labels
    assert by_lang["en"][0]["premise"] != by_lang["ru"][0]["premise"]


@pytest.mark.slow
def test_fine_tuned_on_english_beats_chance_and_reports_every_language(one_process):
    out, output = one_process
    report = json.loads((out / "results.json").read_text())
    assert report["languages"] == ["de", "en", "es", "ru"]  # every language of the data, in the suite's order
    for lang in report["languages"]:
        assert lang in output
    assert report["results"]["en"]["validation"]["accuracy"] > 50.0  # chance is 33.3
    assert report["results"]["en"]["test"]["accuracy"] > 50.0


@pytest.mark.slow
def test_accuracies_recomputed_from_saved_predictions(one_process):
    out, _ = one_process
    report = json.loads((out / "results.json").read_text())
    per_run_average = []
    for lang in report["languages"]:
        for split in ("validation", "test"):
            rows = _rows(out / "predictions" / f"{lang}.{split}.jsonl")
            gold = [r["label"] for r in _rows(DEMO / f"{split}.jsonl") if r["language"] == lang]
            assert [r["label"] for r in rows] == gold
            accuracy = 100 * sum(r["predictions"][0] == r["label"] for r in rows) / len(rows)
            entry = report["results"][lang][split]
            assert entry["n"] == len(rows)
            assert entry["per_run"] == [round(accuracy, 2)]
            assert entry["accuracy"] == pytest.approx(accuracy, abs=0.01)
            if split == "validation":
                per_run_average.append(accuracy)
    assert report["average"]["validation"]["accuracy"] == pytest.approx(sum(per_run_average) / 4, abs=0.01)


@pytest.mark.slow
def test_results_files_and_references(one_process):
    out, _ = one_process
    report = json.loads((out / "results.json").read_text())
    suite = yaml.safe_load((ROOT / "eval" / "xnli.yaml").read_text())
    assert set(report) == {
        "schema", "suite", "model", "train_language", "languages", "runs", "seeds", "settings", "results",
        "average", "references", "main_metric", "model_fingerprint",
    }  # fmt: skip
    assert report["main_metric"] == "accuracy"
    assert report["schema"] == "factory.eval/v1" and report["suite"] == "xnli" and report["train_language"] == "en"
    assert report["runs"] == 1 and report["seeds"] == [42]
    for key in ("learning_rate", "epochs", "batch_size", "max_length", "warmup"):
        assert key in report["settings"]
    assert report["settings"]["learning_rate"] == 2e-3 and report["settings"]["max_length"] == 256
    for split in ("validation", "test"):
        assert set(report["average"][split]) == {"accuracy", "std"}
        for lang in report["languages"]:
            assert set(report["results"][lang][split]) == {"accuracy", "std", "per_run", "n"}
    assert report["references"] == {
        name: {k: float(v) for k, v in t.items()} for name, t in suite["references"].items()
    }
    assert report["references"]["mDeBERTa-v3-base"]["avg"] == 79.8 and report["references"]["XLM-R-base"]["en"] == 85.8
    md = (out / "results.md").read_text()
    en_row = next(line for line in md.splitlines() if line.startswith("| en |"))
    assert (
        "88.2" in en_row and "85.8" in en_row and f"{report['results']['en']['validation']['accuracy']:.1f}" in en_row
    )
    assert "| **avg**" in md and "79.8" in md
    png = (out / "xnli_accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    manifest = json.loads((out / "factory.json").read_text())
    assert manifest["step"] == "eval xnli" and "model_fingerprint" in manifest["inputs"]


@pytest.mark.slow
def test_two_processes_give_the_same_numbers(nli_model, one_process, tmp_path):
    out1, _ = one_process
    out2 = tmp_path / "two"
    # torchrun: `accelerate launch --cpu` starts one process unless MPI is set up; Accelerate reads torchrun's env
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "factory"]
    args = ["eval", "xnli", "--model", str(nli_model), "--data", str(DEMO), *FAST, "--out", str(out2)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(launch + args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((o / "results.json").read_text()) for o in (out1, out2))
    assert two["settings"]["processes"] == 2 and one["settings"]["processes"] == 1
    assert two["results"] == one["results"] and two["average"] == one["average"]
    for name in os.listdir(out1 / "predictions"):  # same predictions, none duplicated or lost
        assert (out2 / "predictions" / name).read_text() == (out1 / "predictions" / name).read_text()


@pytest.mark.slow
def test_classify_pairs_from_files_without_validation(nli_model, tmp_path):
    rows = _rows(DEMO / "test.jsonl")
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"text": r["hypothesis"], "label": int(r["label"] == 2),
                                           "language": r["language"]}) for r in rows) + "\n")  # fmt: skip
    out = tmp_path / "out"
    args = ["eval", "classify", "--model", str(nli_model), "--train", str(train), "--test", str(train)]
    args += ["--labels", "affirmed,negated", "--set", "epochs=1", "--langs", "en,ru", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert report["suite"] == "classify" and report["languages"] == ["en", "ru"]
    assert list(report["results"]["en"]) == ["test"] and report["references"] == {}
    assert report["results"]["ru"]["test"]["n"] == 90


# ---- bad input: one line, exit code 2, no output folder ----------------------------------------------------
def _bad_data(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    for split in ("train", "validation", "test"):
        if kind == "missing_split" and split == "test":
            continue
        rows = _rows(DEMO / f"{split}.jsonl")[:40]
        if kind == "bad_label" and split == "validation":
            rows[7]["label"] = 3
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize(
    "case, expected",
    [
        ("not_deberta", "not 'deberta-v2'"),
        ("no_spm", "no spm.model"),
        ("unknown_language", "unknown language xx"),
        ("missing_split", "no test split"),
        ("bad_label", "label 3 is outside 0..2"),
        ("offline_hub", "could not load hf:facebook/xnli"),
    ],
)
def test_bad_input_is_one_line_exit_2(case, expected, nli_model, tmp_path):
    import shutil

    model, data, langs = nli_model, str(DEMO), "all"
    if case in ("not_deberta", "no_spm"):
        model = tmp_path / "model"
        shutil.copytree(nli_model, model)
        if case == "not_deberta":
            config = json.loads((model / "config.json").read_text())
            (model / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
        else:
            (model / "spm.model").unlink()
    elif case == "unknown_language":
        langs = "en,xx"
    elif case in ("missing_split", "bad_label"):
        data = str(_bad_data(tmp_path, case))
    elif case == "offline_hub":
        data = "hf:facebook/xnli"
        langs = "en"
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", "xnli", "--model", str(model), "--data", data, "--langs", langs,
                                      "--out", str(out)])  # fmt: skip
    one_error_line(result, expected)
    assert not out.exists()


def test_help_documents_the_data_layout():
    result = CliRunner().invoke(cli, ["eval", "xnli", "--help"])
    assert result.exit_code == 0
    assert "{split}.{lang}.{ext}" in result.output and "premise, hypothesis" in result.output


def test_local_layouts_tsv_and_parquet_per_language(tmp_path):
    """{split}.{lang}.tsv and .parquet read the same examples as the all-language jsonl files."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    from factory.evaluate.data import examples_of, folder_rows

    for split in ("train", "validation", "test"):
        rows = _rows(DEMO / f"{split}.jsonl")
        for lang in ("en", "ru"):
            mine = [{k: r[k] for k in ("premise", "hypothesis", "label")} for r in rows if r["language"] == lang]
            if lang == "en":
                with open(tmp_path / f"{split}.{lang}.tsv", "w", newline="", encoding="utf-8") as f:
                    writer = csv.DictWriter(f, ["premise", "hypothesis", "label"], delimiter="\t")
                    writer.writeheader()
                    writer.writerows(mine)
            else:
                pq.write_table(
                    pa.Table.from_pylist(mine), tmp_path / f"{'dev' if split == 'validation' else split}.ru.parquet"
                )
    columns, labels = {"text_a": "premise", "text_b": "hypothesis", "label": "label"}, ("entailment", "neutral",
                                                                                         "contradiction")  # fmt: skip
    ours, reference = (
        {split: {lang: examples_of("classification", rows, columns, labels) for lang, rows in by_lang.items()}
         for split, by_lang in folder_rows(p, ("train", "validation", "test"), None).items()}
        for p in (tmp_path, DEMO)
    )  # fmt: skip
    for split in ("train", "validation", "test"):
        assert sorted(ours[split]) == ["en", "ru"]
        for lang in ("en", "ru"):
            assert ours[split][lang] == reference[split][lang]


def test_mean_and_std_over_runs():
    from factory.evaluate.report import summarise

    per_run = {"en": {"validation": [80.0, 84.0], "test": [70.0, 70.0]}, "fr": {"validation": [60.0, 62.0],
               "test": [50.0, 54.0]}}  # fmt: skip
    counts = {lang: {"validation": 10, "test": 20} for lang in per_run}
    results, average = summarise(per_run, counts, ("validation", "test"))
    assert results["en"]["validation"] == {"accuracy": 82.0, "std": 2.83, "per_run": [80.0, 84.0], "n": 10}
    assert results["en"]["test"]["std"] == 0.0
    assert average["validation"]["accuracy"] == 71.5 and average["validation"]["per_run"] == [70.0, 73.0]
    assert average["validation"]["std"] == 2.12


# ---- labels as datasets users have them: names and ClassLabel ------------------------------------------------
def test_label_names_map_to_ids_and_are_inferred(tmp_path):
    """A label is an id or a name; without --labels the names come from ClassLabel, else sorted strings."""
    import datasets

    from factory.core.errors import FactoryError
    from factory.evaluate.data import infer_labels, label_id, to_examples

    for a, b in (("positive", "negative"), (1, 0)):  # names or ids (mixing them is refused: test_faults)
        rows = [{"text": "a", "label": a, "language": "en"}, {"text": "b", "label": b, "language": "en"}]
        examples = to_examples(rows, "x", "text", None, ("negative", "positive"))["en"]
        assert [e.label for e in examples] == [1, 0]
    assert label_id("1", ("negative", "positive"), "tsv") == 1  # tsv gives ids as text
    with pytest.raises(FactoryError, match="'neutral' is neither one of negative, positive"):
        label_id("neutral", ("negative", "positive"), "row 3")
    strings = tmp_path / "s.jsonl"
    strings.write_text("".join(json.dumps({"text": t, "label": t, "language": "en"}) + "\n" for t in "zyz"))
    assert infer_labels({"train": strings}) == ("y", "z")  # sorted: the same order on every run
    ints = tmp_path / "i.jsonl"
    ints.write_text("".join(json.dumps({"text": "t", "label": i, "language": "en"}) + "\n" for i in (2, 0)))
    assert infer_labels({"train": ints}) == ("0", "1", "2")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["pos", "neg"]),
         "language": datasets.Value("string")}
    )  # fmt: skip
    parquet = tmp_path / "c.parquet"
    rows = {"text": ["a", "b"], "label": [1, 0], "language": ["en", "en"]}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(parquet))
    assert infer_labels({"train": parquet}) == ("pos", "neg")  # ClassLabel's order, not sorted


@pytest.mark.slow
def test_classify_with_string_labels_and_no_label_list(nli_model, tmp_path):
    rows = _rows(DEMO / "test.jsonl")
    train = tmp_path / "train.jsonl"
    names = {0: "entailment", 1: "neutral", 2: "contradiction"}
    train.write_text("".join(json.dumps({"text": r["hypothesis"], "label": names[int(r["label"])],
                                         "language": r["language"]}) + "\n" for r in rows))  # fmt: skip
    out = tmp_path / "out"
    args = ["eval", "classify", "--model", str(nli_model), "--train", str(train), "--test", str(train)]
    result = CliRunner().invoke(cli, [*args, "--set", "epochs=1", "--langs", "en", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert report["settings"]["labels"] == ["contradiction", "entailment", "neutral"]
    assert report["results"]["en"]["test"]["n"] == 90
