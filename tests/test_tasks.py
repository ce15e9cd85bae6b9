"""Task types: QA answers map back to the exact characters, bad rows are one line, each type trains end to end,
SiFT off is the plain step bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import model_folder, one_error_line

from factory.cli.main import cli
from factory.core.errors import FactoryError
from factory.evaluate.data import QAExample, TagExample, examples_of
from factory.evaluate.qa import QASettings, best_answer, qa_features
from factory.evaluate.tasks import IGNORE, Tokens
from factory.model.tokenizer import Tokenizer

CJK_TEXT = [
    "北京是中华人民共和国的首都，也是全国的政治中心。",
    "上海是中国最大的城市之一，人民很多。",
    "O café crème é servido às três horas da tarde em Lisboa.",
    "Zé Ålesund ficou finalmente em São Tomé.",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    """A 400-piece vocabulary that knows CJK characters and accents (each becomes pieces of its own)."""
    from conftest import pseudo_text

    from factory.vocab.train import SpmSettings, train_spm

    folder = tmp_path_factory.mktemp("cjk_vocab")
    sample = folder / "sample.txt"
    sample.write_text("\n".join(pseudo_text(400) + CJK_TEXT * 20) + "\n", encoding="utf-8")
    train_spm(sample, 480, folder, SpmSettings(pieces=400, character_coverage=1.0, threads=2))
    return Tokenizer.from_folder(folder)


def _answer_logits(features, example):
    """Logits that point every window at the gold answer's pieces (where the window holds it)."""
    out = []
    for f in features:
        start, end = [0.0] * len(f.ids), [0.0] * len(f.ids)
        s, e = f.target
        start[s], end[e] = (10.0, 10.0) if (s, e) != (0, 0) else (5.0, 5.0)
        out.append((start, end))
    return out


@pytest.mark.parametrize(
    "context, answer",
    [
        ("O café crème é servido às três horas da tarde em Lisboa.", "café crème"),
        ("北京是中华人民共和国的首都，也是全国的政治中心。", "中华人民共和国"),
        ("Zé  Ålesund   ficou ﬁnalmente em São Tomé.", "São Tomé"),
    ],
)
def test_qa_answer_maps_back_to_the_exact_characters(tok, context, answer):
    """The predicted text is cut from the context's own characters: the gold answer widened to whole pieces
    (where a piece such as 国的 straddles its end), never re-spelt from the pieces (ﬁ, double spaces, accents)."""
    _, spans = tok.encode_with_offsets(context)
    a, b = context.index(answer), context.index(answer) + len(answer)
    covering = [s for s in spans if s[0] < s[1] and s[0] < b and s[1] > a]
    answer = context[covering[0][0] : covering[-1][1]]
    example = QAExample("q", "onde?", context, (answer,), (covering[0][0],))
    settings = QASettings(doc_stride=4)
    features = qa_features(tok, [example], 24, settings)  # tiny windows: the answer sits in some, not others
    assert len(features) > 1 and any(f.target != (0, 0) for f in features)
    got = best_answer(example, features, _answer_logits(features, example), settings)
    assert got.text == answer and context[got.start : got.end] == answer


def test_qa_windows_cover_the_context_with_the_stride(tok):
    from factory.evaluate.qa import windows

    assert windows(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert windows(3, 4, 2) == [(0, 3)]
    context = " ".join(f"w{i}" for i in range(60))
    example = QAExample("q", "x", context, ("w57 w58",), (context.index("w57 w58"),))
    features = qa_features(tok, [example], 32, QASettings(doc_stride=8))
    holding = [f for f in features if f.target != (0, 0)]
    assert holding and all(f.spans[f.target[0]][0] == context.index("w57") for f in holding)


def test_squad2_null_wins_over_a_weak_span(tok):
    example = QAExample("q", "x", "um dois três quatro", (), ())
    settings = QASettings(version_2=True)
    features = qa_features(tok, [example], 64, settings)
    logits = [([3.0] + [0.0] * (len(f.ids) - 1), [3.0] + [0.0] * (len(f.ids) - 1)) for f in features]
    got = best_answer(example, features, logits, settings)
    assert got.text == "" and got.null_score_diff == pytest.approx(6.0)


def test_token_labels_on_the_first_piece_only(tok):
    task = Tokens(("O", "B-PER", "I-PER"))
    example = TagExample(("Ana", "pintamalunaterrava", "."), (1, 0, 0))
    (feature,) = task.features(tok, [example], 64, True)
    firsts = [k for k, t in enumerate(feature.target) if t != IGNORE]
    assert [feature.target[k] for k in firsts] == [1, 0, 0] and len(feature.ids) > len(firsts) + 2
    assert feature.target[0] == IGNORE and feature.target[-1] == IGNORE  # [CLS], [SEP]
    assert task.predictions([example], [feature], [[2] * len(feature.ids)]) == [[2, 2, 2]]


def test_a_long_sentence_is_cut_into_sequences_and_every_word_scored(tok):
    """XTREME's preprocessing: the pieces of a sentence that overflow max_length - 2 start a new sequence at a word
    boundary, and a word longer than a whole sequence becomes [UNK]; every word gets a prediction."""
    task = Tokens(("O", "B-PER", "I-PER"))
    words = tuple(f"palavra{k} cidadão" for k in range(12)) + ("x" * 80,)
    example = TagExample(words, tuple(k % 3 for k in range(len(words))))
    features = task.features(tok, [example], 16, True)
    assert len(features) > 2 and all(len(f.ids) <= 16 and f.example == 0 for f in features)
    tagged = [t for f in features for t in f.target if t != IGNORE]
    assert tagged == list(example.tags)  # each word's tag once, on its first piece, in order
    assert features[-1].ids[-2:] == [tok.unk_id, tok.sep_id]  # the 80-character word: one [UNK]
    preds = task.predictions([example], features, [[k % 3 for k in range(len(f.ids))] for f in features])
    assert len(preds[0]) == len(words)


@pytest.mark.parametrize(
    "kind, row, message",
    [
        ("qa", {"question": "q", "context": "abc def", "answers": {"text": ["def"], "answer_start": [3]}},
         "answer_start 3 does not point at the answer 'def'"),
        ("tokens", {"tokens": ["a", "b"], "tags": ["O", "B-XXX"]}, "tag 'B-XXX' is outside the label set"),
        ("regression", {"sentence1": "a", "sentence2": "b", "label": "high"}, "the target 'high' is not a number"),
        ("regression", {"sentence1": "a", "label": 1.0}, "no column sentence2"),
    ],
)  # fmt: skip
def test_bad_rows_are_one_line(kind, row, message):
    from factory.evaluate.suite import DEFAULT_COLUMNS

    with pytest.raises(FactoryError, match=message.replace("(", r"\(")):
        examples_of(kind, [("f.jsonl row 1", row)], DEFAULT_COLUMNS[kind], ("O", "B-PER"))


# ---- end to end on local files in the HF schemas -----------------------------------------------------------
@pytest.fixture(scope="module")
def model(tiny_vocab, tmp_path_factory):
    return model_folder(tmp_path_factory.mktemp("m"), 1000, layers=1, seed=0, tokenizer=tiny_vocab)


def _write(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _suite(tmp_path, text: str):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return str(path)


FAST = ["--set", "epochs=2", "--set", "batch_size=8", "--set", "micro_batch_size=4", "--set", "learning_rate=1e-3",
        "--set", "max_length=48", "--set", "warmup_steps=0"]  # fmt: skip


MINI_SUITE = """
suite: mini
tasks:
  sts: {task: regression, languages: [en], splits: [validation]}
  ner: {task: tokens, languages: [en, de], labels: [O, B-PER, I-PER], splits: [validation]}
  qa: {task: qa, languages: [en], splits: [validation], options: {qa_metric: squad}}
"""


def _mini_data(tmp_path):
    """A regression, a token and a QA task in their HF schemas, from pseudo-text (one folder per task)."""
    from conftest import pseudo_text

    lines = pseudo_text(40, seed=3)
    data = tmp_path / "data"
    reg = [{"sentence1": a, "sentence2": b, "label": float(len(a) % 5)} for a, b in zip(lines, lines[1:], strict=False)]
    _write(data / "sts", "train.jsonl", reg[:24])
    _write(data / "sts", "validation.jsonl", reg[24:])
    tags = [{"tokens": s.split(), "tags": ["B-PER" if w[0] in "bcd" else "O" for w in s.split()]} for s in lines]
    _write(data / "ner", "train.en.jsonl", tags[:24])
    _write(data / "ner", "validation.de.jsonl", tags[24:32])
    _write(data / "ner", "validation.en.jsonl", tags[32:])
    qa = []
    for k, s in enumerate(lines):
        word = s.split()[2]
        qa.append({"id": f"q{k}", "question": s.split()[1], "context": s,
                   "answers": {"text": [word], "answer_start": [s.index(" " + word) + 1]}})  # fmt: skip
    _write(data / "qa", "train.jsonl", qa[:24])
    _write(data / "qa", "validation.jsonl", qa[24:])
    return data, lines


@pytest.mark.slow
def test_every_task_type_trains_end_to_end(model, tmp_path):
    """A benchmark suite of a regression, a token and a QA task on files the test writes; the summary, each
    task's results and its predictions per example id; the card's model-index names every task."""
    data, lines = _mini_data(tmp_path)
    suite = _suite(tmp_path, MINI_SUITE)
    out = tmp_path / "out"
    args = ["eval", "glue", "--model", str(model), "--data", str(data), *FAST, "--out", str(out)]
    from unittest import mock

    from factory.evaluate.suite import load_suite

    with mock.patch("factory.evaluate.suite.load_suite", lambda name: load_suite(suite)):  # a suite of our own
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["tasks"]) == ["sts", "ner", "qa"] and summary["benchmark"] is True
    assert summary["tasks"]["sts"]["metrics"] == ["pearson", "spearman"]
    assert set(summary["tasks"]["ner"]["results"]) == {"en", "de"}
    assert {"f1", "exact_match"} <= set(summary["tasks"]["qa"]["average"]["validation"])
    rows = [json.loads(x) for x in (out / "qa" / "predictions" / "en.validation.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"q{k}" for k in range(24, 40)]
    assert all(r["prediction"] == "" or r["prediction"] in lines[24 + i] for i, r in enumerate(rows))
    tags_rows = [json.loads(x) for x in (out / "ner" / "predictions" / "de.validation.jsonl").read_text().splitlines()]
    assert all(len(r["prediction"]) == len(r["gold"]) for r in tags_rows)
    assert (out / "mini_summary.png").read_bytes()[:4] == b"\x89PNG" and "| sts | pearson" in (
        out / "results.md").read_text()  # fmt: skip
    from factory.publish.card_results import model_index, read_results

    index = model_index(read_results([out / "results.json"]))  # sts 1 language, ner 2, qa 1; two metrics each
    assert len(index) == 8 and {r.dataset_type for r in index} == {"local:sts", "local:ner", "local:qa"}
    assert {r.metric_type for r in index} == {"pearsonr", "spearmanr", "f1", "accuracy", "exact_match"}


@pytest.mark.slow
def test_task_types_and_sift_give_the_same_numbers_on_two_processes(model, tmp_path):
    """Regression, tokens and QA, with SiFT on, under torchrun on 2 CPU processes (gloo) and on 1: the same
    results and predictions (each micro-batch's data, dropout and SiFT noise are fixed by (seed, step, j))."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    data, _ = _mini_data(tmp_path)
    suite = _suite(tmp_path, MINI_SUITE)
    worker = [str(root / "tests" / "eval_worker.py"), suite, "eval", "glue", "--model", str(model), "--data",
              str(data), *FAST, "--set", "sift=true"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root), "ACCELERATE_USE_CPU": "true"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    outs = {}
    for n, launch in ((1, [sys.executable]), (2, torchrun)):
        outs[n] = tmp_path / f"out{n}"
        done = subprocess.run([*launch, *worker, "--out", str(outs[n])], capture_output=True, text=True, env=env,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    for task in ("sts", "ner", "qa"):
        one, two = (json.loads((outs[n] / task / "results.json").read_text()) for n in (1, 2))
        assert (one["settings"]["processes"], two["settings"]["processes"]) == (1, 2)
        assert one["settings"]["sift"] is True
        assert two["results"] == one["results"] and two["average"] == one["average"], task
        assert two["settings"]["final_train_loss"] == one["settings"]["final_train_loss"], task
        for path in sorted((outs[1] / task / "predictions").glob("*.jsonl")):
            assert (outs[2] / task / "predictions" / path.name).read_text() == path.read_text(), (task, path.name)


@pytest.mark.parametrize(
    "train, test, needles",
    [
        ([0, "paraphrase", 1], [0, 1], ["train.en.jsonl line 2", "'paraphrase' is a name", "line 1 has the id 0"]),
        ([0, 1, 1.5], [0, 1], ["train.en.jsonl line 3", "1.5 is not an integer id"]),
        ([0, 0, 0], [0, 1], ["validation.de.jsonl line 2", "label 'paraphrase' never occurs in the en train examples"]),
    ],
)  # fmt: skip
def test_suite_folders_check_labels_as_classify_does(model, tmp_path, train, test, needles):
    """A suite's local folder (here PAW-X's) gets the same label checks as `eval classify`'s files: ids and
    names not mixed, no fractional ids, no evaluated label the train examples never have; file and line named."""
    data = tmp_path / "d"
    _write(data, "train.en.jsonl", [{"sentence1": f"a{i}", "sentence2": "b", "label": v} for i, v in enumerate(train)])
    for split in ("validation", "test"):
        _write(data, f"{split}.de.jsonl", [{"sentence1": "a", "sentence2": "b", "label": v} for v in test])
    out = tmp_path / "out"
    args = ["eval", "pawsx", "--model", str(model), "--data", str(data), "--langs", "de", "--out", str(out)]
    one_error_line(CliRunner().invoke(cli, args), *needles, out=out)


@pytest.mark.parametrize("unlabelled", ["train", "validation"])
def test_a_split_whose_rows_are_all_left_out_is_one_line(model, tmp_path, unlabelled):
    """GLUE leaves out rows labelled -1 (its test splits'): a split whose rows were all -1 was scored on no
    example (CoLA's MCC 0.0, exit 0). Now one line naming the split and the language, before any compute."""
    data = tmp_path / "d"
    for split in ("train", "validation"):
        _write(data / "cola", f"{split}.jsonl", [{"sentence": f"a{i} b", "label": -1 if split == unlabelled else i % 2}
                                                 for i in range(8)])  # fmt: skip
    out = tmp_path / "out"
    args = ["eval", "glue", "--tasks", "cola", "--model", model, "--data", data, *FAST, "--out", out]
    one_error_line(args, f"{data / 'cola'}: the {unlabelled} split holds no en examples", "such as -1", out=out)


def test_bad_answer_start_is_one_line_exit_2(model, tmp_path):
    data = tmp_path / "d"
    row = {"id": "a", "question": "q", "context": "um dois", "answers": {"text": ["dois"], "answer_start": [0]}}
    _write(data, "train.jsonl", [row])
    _write(data, "validation.jsonl", [row])
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", "squad", "--model", str(model), "--data", str(data), "--out", str(out)])
    one_error_line(result, "answer_start 0 does not point at the answer 'dois'", out=out)


def _qa_rows(n: int) -> list[dict]:
    """`n` answerable SQuAD rows with distinct ids."""
    return [{"id": f"q{k}", "question": "q", "context": f"um dois {k}", "answers": {"text": ["dois"],
             "answer_start": [3]}} for k in range(n)]  # fmt: skip


@pytest.mark.parametrize("name, content", [("train.jsonl", ""), ("validation.jsonl", "\n  \n"),
                                           ("validation.tsv", "id\tquestion\tcontext\tanswers\n"),
                                           ("validation.parquet", None)])  # fmt: skip
def test_an_empty_split_file_is_named_as_empty_not_missing(model, tmp_path, name, content):
    """An empty file (0 bytes, blank lines, a tsv header alone, a table of 0 rows) is one line saying that file is
    empty; before, it read as no rows and was reported as a missing split ("has no train split; add train.jsonl")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data, split = tmp_path / "d", name.split(".")[0]
    for other in {"train", "validation"} - {split}:
        _write(data, f"{other}.jsonl", _qa_rows(2))
    if content is None:
        pq.write_table(pa.Table.from_pylist([], schema=pa.schema([("id", pa.string())])), data / name)
    else:
        (data / name).write_text(content)
    out = tmp_path / "out"
    args = ["eval", "squad", "--model", model, "--data", data, "--out", out]
    line = one_error_line(args, f"{data / name} is empty (no rows)", out=out)
    assert "has no" not in line, line
    (data / name).unlink()  # and a split with no file at all is still the missing split
    one_error_line(args, f"has no {split} split; add {split}.jsonl", out=out)


@pytest.mark.parametrize("suite", ["squad", "squad2"])
def test_qa_ids_shared_in_a_scored_split_are_one_line(model, tmp_path, suite):
    """SQuAD's and MLQA's scores match predictions to questions by id: two validation rows with one id were
    accepted, fine-tuned on and scored as one question, the other's prediction against its answers. Now one line
    naming the file, the id and both lines, before any compute."""
    data = tmp_path / "d"
    rows = _qa_rows(4)
    rows[3]["id"] = rows[1]["id"]
    _write(data, "train.jsonl", _qa_rows(8))  # a batch (FAST's 8): the unfixed code fine-tuned and scored
    _write(data, "validation.jsonl", rows)
    out = tmp_path / "out"
    one_error_line(["eval", suite, "--model", model, "--data", data, *FAST, "--out", out],
                   f"{data / 'validation.jsonl'}: line 2 and line 4 have the same id 'q1'", out=out)  # fmt: skip


def test_ids_are_checked_where_the_score_keys_on_them():
    """Only the evaluated splits of a type that scores by id: train rows, and classification, may share ids;
    rows of two files are both named whole."""
    from factory.evaluate.data import Example, check_data

    def qa(where, qid="x"):
        return QAExample(qid, "q", "um dois", ("dois",), (3,), where)

    data = {"train": {"en": [qa("t.jsonl line 1"), qa("t.jsonl line 2")]},
            "validation": {"en": [qa("v.en.jsonl line 1"), qa("v.en.jsonl line 2", "y")]}}  # fmt: skip
    check_data(data, "en", ["en"], "d", ("validation",), unique_ids=True)
    data["validation"]["en"].append(qa("v.jsonl line 7", "y"))
    with pytest.raises(FactoryError, match="^v.en.jsonl line 2 and v.jsonl line 7 have the same id 'y';"):
        check_data(data, "en", ["en"], "d", ("validation",), unique_ids=True)
    pairs = [Example("a", None, 0, "x", "f line 1"), Example("b", None, 1, "x", "f line 2")]
    check_data({"train": {"en": pairs}, "validation": {"en": pairs}}, "en", ["en"], "d", ("validation",), ("0", "1"))


@pytest.mark.parametrize(
    "suite, files, unanswered, scoring",
    [
        (["squad"], ("train.jsonl", "validation.jsonl"), "validation.jsonl", "SQuAD v1.1"),
        (["squad"], ("train.jsonl", "validation.jsonl"), "train.jsonl", "SQuAD v1.1"),
        (["xtreme", "--tasks", "xquad"], ("xquad/train.en.jsonl", "xquad/test.en.jsonl"), "xquad/test.en.jsonl",
         "SQuAD v1.1"),
        (["xtreme", "--tasks", "mlqa"], ("mlqa/train.en.jsonl", "mlqa/validation.en.jsonl", "mlqa/test.en.jsonl"),
         "mlqa/test.en.jsonl", "MLQA"),
    ],
)  # fmt: skip
def test_a_question_without_an_answer_under_v1_scoring_is_one_line(model, tmp_path, suite, files, unanswered,
                                                                   scoring):  # fmt: skip
    """SQuAD v1.1's and MLQA's scores need an answer for every question: an unanswerable row in a split scored
    that way was fine-tuned on, then `ValueError: max() arg is an empty sequence`. Now one line naming the file and
    the row, pointing at squad2, before any compute; train rows too (v1.1 data has no unanswerable question)."""
    data = tmp_path / "d"
    for name in files:
        rows = _qa_rows(8)
        if name == unanswered:
            rows[2]["answers"] = {"text": [], "answer_start": []}
        _write((data / name).parent, (data / name).name, rows)
    out = tmp_path / "out"
    args = ["eval", *suite, "--model", model, "--data", data, "--langs", "en", *FAST, "--out", out]
    line = one_error_line(args, f"{data / unanswered} line 3: no answer", f"scored as {scoring}", out=out)
    assert "use squad2 (v2 scoring) if unanswerable questions are intended" in line, line
    from factory.evaluate.runner import make_task
    from factory.evaluate.suite import load_suite

    squad2 = load_suite("squad2")
    make_task(squad2, squad2.settings).check_examples([QAExample("q", "q", "um", (), (), "f line 1")])  # v2: fine


def test_sift_off_is_the_plain_step_bit_for_bit(model):
    """sift=false trains exactly as a plain loop over the same batches, seeds and dropout masks."""
    from factory.core.options import Layer, resolve
    from factory.evaluate import finetune
    from factory.evaluate.config import FinetuneSettings
    from factory.evaluate.runner import make_accelerator
    from factory.evaluate.tasks import Classification
    from factory.model import load_model

    task = Classification(("a", "b"))
    features = [finetune.Feature([1, 5 + i % 7, 9 + i % 3, 2], i % 2, i) for i in range(16)]
    settings = resolve(FinetuneSettings, [Layer({"batch_size": 8, "micro_batch_size": 8, "epochs": 1,
                                                 "warmup_steps": 0, "learning_rate": 1e-3}, "")])  # fmt: skip
    torch.manual_seed(0)
    ours = load_model(model, head="cls", labels=("a", "b"))
    torch.manual_seed(0)
    plain = load_model(model, head="cls", labels=("a", "b"))
    ours, _ = finetune.train(make_accelerator("fp32"), ours, features, task, settings, seed=42)
    assert not ours.deberta.embeddings.LayerNorm._forward_pre_hooks  # nothing hooked when off
    optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-3, eps=1e-8, weight_decay=0.0)
    scheduler = finetune.linear_schedule(optimizer, finetune.plan(16, settings))
    plain.train()
    order = torch.randperm(16, generator=torch.Generator().manual_seed(42 * 1009))
    for step in range(2):
        rows = [features[i] for i in order[step * 8 : step * 8 + 8].tolist()]
        ids, mask = finetune.collate([f.ids for f in rows])
        torch.manual_seed(finetune._step_seed(42, step, 0))
        loss = torch.nn.functional.cross_entropy(
            plain(ids, mask).logits.float(), torch.tensor([f.target for f in rows])
        )
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    for (name, a), b in zip(ours.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_sift_on_changes_the_loss_and_trains(model):
    from factory.core.options import Layer, resolve
    from factory.evaluate import finetune
    from factory.evaluate.config import FinetuneSettings
    from factory.evaluate.runner import make_accelerator
    from factory.evaluate.tasks import Classification
    from factory.model import load_model

    task = Classification(("a", "b"))
    features = [finetune.Feature([1, 5 + i % 7, 9 + i % 3, 2], i % 2, i) for i in range(16)]
    losses = {}
    for on in (False, True):
        settings = resolve(FinetuneSettings, [Layer({"batch_size": 8, "micro_batch_size": 4, "epochs": 1,
                                                     "warmup_steps": 0, "sift": on}, "")])  # fmt: skip
        torch.manual_seed(0)
        m = load_model(model, head="cls", labels=("a", "b"))
        _, losses[on] = finetune.train(make_accelerator("fp32"), m, features, task, settings, seed=1)
    assert losses[True] > losses[False] > 0  # the adversarial term is added (and is positive)


# ---- a Hub dataset: `datasets` reading a repository in the Hub's layout, offline ----------------------------
PANX = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def _hub_repo(root, configs):
    """A dataset repository as the Hub holds google/xtreme: README.md's `configs` naming each config's Parquet
    files per split, the files written by `datasets` with the dataset's features (ClassLabel tags, SQuAD's
    answers struct)."""
    import datasets

    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, (columns, features) in splits.items():
            (root / config).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(columns, features=features).to_parquet(
                str(root / config / f"{split}-00000-of-00001.parquet"))  # fmt: skip
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    return root


def _panx_and_tydiqa(root, words):
    import datasets

    tags = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                              "ner_tags": datasets.Sequence(datasets.ClassLabel(names=PANX))})  # fmt: skip
    qa = datasets.Features({"id": datasets.Value("string"), "question": datasets.Value("string"),
                            "context": datasets.Value("string"),
                            "answers": datasets.Sequence({"text": datasets.Value("string"),
                                                          "answer_start": datasets.Value("int32")})})  # fmt: skip

    def tagged(n, seed):
        rows = [[words[(seed + 3 * i + k) % len(words)] for k in range(6)] for i in range(n)]
        return {"tokens": rows, "ner_tags": [[1 if w[0] in "bcd" else 0 for w in r] for r in rows]}, tags

    def questions(prefixes):
        ctx = [" ".join(words[i : i + 12]) for i in range(len(prefixes))]
        return {"id": [f"{p}-{i}" for i, p in enumerate(prefixes)], "question": [c.split()[1] for c in ctx],
                "context": ctx, "answers": [{"text": [c.split()[3]], "answer_start": [c.index(" " + c.split()[3]) + 1]}
                                            for c in ctx]}, qa  # fmt: skip

    return _hub_repo(root, {
        "PAN-X.en": {"train": tagged(16, 0), "validation": tagged(6, 1)},
        "PAN-X.de": {"validation": tagged(6, 2)},
        "tydiqa": {"train": questions(["english"] * 16), "validation": questions(["english", "arabic"] * 4)},
    })  # fmt: skip


@pytest.fixture
def hub_repo(tmp_path, monkeypatch):
    import datasets.config
    from conftest import pseudo_text

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # nothing into ~/.cache
    words = " ".join(pseudo_text(20, seed=5)).replace(".", "").split()
    return _panx_and_tydiqa(tmp_path / "xtreme-repo", words)


def test_hub_rows_read_configs_per_language_and_languages_by_id_prefix(hub_repo):
    """PAN-X's config per language ("PAN-X.{lang}") and TyDiQA's one config sorted into languages by the id's
    prefix, read by `datasets` from the repository's own README configs; ClassLabel tags arrive as ids and
    SQuAD's answers struct as lists, which the task types take."""
    from factory.evaluate.data import hub_rows
    from factory.evaluate.suite import DEFAULT_COLUMNS

    rows = hub_rows(str(hub_repo), "PAN-X.{lang}", "validation", ["en", "de"], None)
    assert sorted(rows) == ["de", "en"] and len(rows["de"]) == 6
    where, row = rows["de"][0]
    assert where == f"hf:{hub_repo} (PAN-X.de) validation row 1" and set(row["ner_tags"]) <= {0, 1}
    columns = {**DEFAULT_COLUMNS["tokens"], "tags": "ner_tags"}
    (example, *_) = examples_of("tokens", rows["en"], columns, PANX)
    assert example.tags == tuple(rows["en"][0][1]["ner_tags"])
    by_prefix = hub_rows(str(hub_repo), "tydiqa", "validation", ["en", "ar"], {"english": "en", "arabic": "ar"})
    assert {k: len(v) for k, v in by_prefix.items()} == {"en": 4, "ar": 4}
    (question, *_) = examples_of("qa", by_prefix["ar"], DEFAULT_COLUMNS["qa"], ())
    assert question.id == "arabic-1" and question.context[question.starts[0] :].startswith(question.answers[0])


@pytest.mark.slow
def test_a_suite_on_a_hub_repository_end_to_end(model, hub_repo, tmp_path):
    """`factory eval` on a suite whose dataset is hf:<a repository in the Hub layout>: tokens with a config per
    language, QA with one config split by id prefix; results.json names the dataset, the card's model-index its
    id, config and split."""
    from unittest import mock

    from factory.evaluate.suite import load_suite
    from factory.publish.card_results import model_index, read_results

    suite = _suite(tmp_path, f"""
suite: mini
tasks:
  panx: {{task: tokens, dataset: "hf:{hub_repo}", config: "PAN-X.{{lang}}", languages: [en, de], labels: {PANX},
          columns: {{words: tokens, tags: ner_tags}}, splits: [validation]}}
  tydiqa: {{task: qa, dataset: "hf:{hub_repo}", config: tydiqa, id_languages: {{english: en, arabic: ar}},
            languages: [en, ar], splits: [validation], options: {{qa_metric: squad}}}}
""")  # fmt: skip
    out = tmp_path / "out"
    with mock.patch("factory.evaluate.suite.load_suite", lambda name: load_suite(suite)):
        result = CliRunner().invoke(cli, ["eval", "glue", "--model", str(model), *FAST, "--out", str(out)])
    assert result.exit_code == 0, result.output
    panx = json.loads((out / "panx" / "results.json").read_text())
    assert panx["dataset"]["id"] == str(hub_repo) and panx["dataset"]["config"] == "PAN-X.{lang}"
    assert set(panx["results"]) == {"en", "de"}
    index = model_index(read_results([out / "results.json"]))
    assert {(r.dataset_type, r.dataset_config, r.dataset_split) for r in index} == {
        (str(hub_repo), "PAN-X.en", "validation"), (str(hub_repo), "PAN-X.de", "validation"),
        (str(hub_repo), "tydiqa", "validation")}  # fmt: skip


# ---- a multi-task suite is whole or absent, and resumable ------------------------------------------------------
TWO_TASKS = """
suite: two
tasks:
  sts: {task: regression, languages: [en], splits: [validation]}
  ner: {task: tokens, languages: [en, de], labels: [O, B-PER, I-PER], splits: [validation]}
"""


def _counted_suite(monkeypatch, tmp_path, fail: dict):
    """TWO_TASKS as `eval glue`'s suite; returns the tasks fine-tuned, in order. `fail[task]`: an exception the
    task raises at its start (taken out of `fail` once raised)."""
    from factory.evaluate import benchmark
    from factory.evaluate.suite import load_suite

    suite = _suite(tmp_path, TWO_TASKS)
    monkeypatch.setattr("factory.evaluate.suite.load_suite", lambda name: load_suite(suite))
    ran, execute = [], benchmark.execute

    def counted(prepared, accelerator):
        name = prepared.request.suite.name
        ran.append(name)
        if name in fail:
            raise fail.pop(name)
        return execute(prepared, accelerator)

    monkeypatch.setattr(benchmark, "execute", counted)
    return ran


def _files(folder):
    """Every file's bytes, but the manifests' (they hold the time and --out)."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.name != "factory.json" else b"" for p in
            sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), RuntimeError("a crash in the second task")])
def test_a_suite_stopped_in_its_second_task_leaves_no_out_and_the_rerun_keeps_the_first(
    model, tmp_path, monkeypatch, stop
):
    """Ctrl-C or a crash in the second task: no --out at all (not a half folder of the first task); the same
    command again fine-tunes only the second task, and writes what a straight run writes, byte for byte."""
    data, _ = _mini_data(tmp_path)
    ran = _counted_suite(monkeypatch, tmp_path, {"ner": stop})
    out = tmp_path / "out"
    args = ["eval", "glue", "--model", str(model), "--data", str(data), *FAST, "--set", "epochs=1", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    if isinstance(stop, KeyboardInterrupt):
        one_error_line(result, "interrupted", code=130, alone=False)
    else:
        assert isinstance(result.exception, RuntimeError), result.output
    assert ran == ["sts", "ner"] and not out.exists()
    work = tmp_path / ".out.eval-work"
    assert (work / "sts" / "results.json").is_file()  # the finished task, kept for the rerun
    (work / ".ner.tmp-killed").mkdir()  # what a kill -9 inside the task's own staged write would leave
    (work / ".ner.tmp-killed" / "results.json").write_text("{")
    result = CliRunner().invoke(cli, args)  # the same command: resumes
    assert result.exit_code == 0, result.output
    assert ran == ["sts", "ner", "ner"]  # sts was kept, not fine-tuned again
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []  # no work folder left
    straight = tmp_path / "straight"
    result = CliRunner().invoke(cli, [*args[:-1], str(straight)])
    assert result.exit_code == 0, result.output
    assert ran[3:] == ["sts", "ner"]
    assert _files(out) == _files(straight)
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["tasks"]) == ["sts", "ner"] and "| sts | pearson" in (out / "results.md").read_text()


def test_a_finished_task_with_other_settings_runs_again(model, tmp_path, monkeypatch):
    """The rerun keeps a finished task only for the same inputs: a changed --set fine-tunes it again."""
    data, _ = _mini_data(tmp_path)
    ran = _counted_suite(monkeypatch, tmp_path, {"ner": RuntimeError("stop")})
    out = tmp_path / "out"
    args = ["eval", "glue", "--model", str(model), "--data", str(data), *FAST, "--set", "epochs=1", "--out", str(out)]
    assert isinstance(CliRunner().invoke(cli, args).exception, RuntimeError) and not out.exists()
    result = CliRunner().invoke(cli, [*args, "--set", "seed=7"])
    assert result.exit_code == 0, result.output
    assert ran == ["sts", "ner", "sts", "ner"]
    assert json.loads((out / "sts" / "results.json").read_text())["seeds"] == [7]


# ---- an option a suite cannot honour: one line before any work ------------------------------------------------
@pytest.mark.parametrize(
    "suite, options, needles",
    [
        ("glue", ["--train-lang", "de"], ["--train-lang de", "rte can fine-tune only on en", "accept en"]),
        ("xtreme", ["--tasks", "pawsx,xquad,mlqa", "--train-lang", "de"],
         ["--train-lang de", "xquad, mlqa can fine-tune only on en", "accept en"]),
        ("xtreme", ["--tasks", "pawsx,panx", "--langs", "de,xx"], ["unknown language xx in --langs"]),
        ("xtreme", ["--tasks", "pawsx,tydiqa", "--langs", "de"], ["--langs de", "tydiqa tests none of them"]),
        ("assin2", ["--langs", "en"], ["unknown language en in --langs", "test pt"]),
        ("assin2", ["--train-lang", "en"], ["--train-lang en", "sts, rte can fine-tune only on pt"]),
    ],
)  # fmt: skip
def test_an_option_a_suite_cannot_honour_is_one_line(model, tmp_path, suite, options, needles):
    """--train-lang and --langs hold for every task of a suite: a task that cannot honour one is named, where
    the option used to be dropped for it (every language tested, or the suite's train language used)."""
    out = tmp_path / "out"
    one_error_line(["eval", suite, "--model", model, *options, "--out", out], *needles, out=out)


def test_a_train_language_the_tasks_have_is_honoured_and_reported(model, tmp_path):
    """xtreme's pawsx has training data in German: --train-lang de fine-tunes on it, and results.json, the
    task's results.md and the summary say so."""
    from conftest import pseudo_text

    lines = pseudo_text(48, seed=5)
    rows = [{"sentence1": lines[i], "sentence2": lines[i + 1], "label": i % 2} for i in range(47)]
    data = tmp_path / "data"
    _write(data / "pawsx", "train.de.jsonl", rows[:24])
    for split, part in (("validation", rows[24:36]), ("test", rows[36:])):
        _write(data / "pawsx", f"{split}.de.jsonl", part)
        _write(data / "pawsx", f"{split}.fr.jsonl", part)
    out = tmp_path / "out"
    args = ["eval", "xtreme", "--model", str(model), "--data", str(data), "--tasks", "pawsx", "--train-lang", "de",
            "--langs", "de,fr", *FAST, "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "pawsx" / "results.json").read_text())
    assert report["train_language"] == "de" and report["languages"] == ["de", "fr"]
    assert report["settings"]["train_examples"] == 24
    assert "fine-tuned on `de`" in (out / "pawsx" / "results.md").read_text()
    assert "Fine-tuned on `de`: pawsx." in (out / "results.md").read_text()
