"""Every metric against cases computed by hand from the official definitions (docs/evaluation.md#metrics)."""

from __future__ import annotations

import math

import pytest

from factory.evaluate import metrics as m
from factory.evaluate import qa_metrics as qa


def test_glue_metrics_by_hand():
    preds, gold = [1, 1, 0, 0, 1], [1, 0, 1, 0, 1]  # tp 2, tn 1, fp 1, fn 1
    assert m.accuracy(preds, gold) == 0.6
    assert m.f1_positive(preds, gold) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m.mcc(preds, gold) == pytest.approx((2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))
    assert m.mcc([1, 1, 1], [0, 1, 1]) == 0.0  # one predicted class: undefined, 0 as sklearn
    assert m.f1_positive([0, 0], [0, 0]) == 0.0
    # three classes: n 6, 4 correct, true counts (2, 2, 2), predicted (3, 2, 1)
    three = m.mcc([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2])
    assert three == pytest.approx((4 * 6 - (2 * 3 + 2 * 2 + 2 * 1)) / math.sqrt((36 - 12) * (36 - 14)))


def test_pearson_and_spearman_by_hand():
    x, y = [1, 2, 3, 4], [2, 4, 5, 4]
    assert m.pearson(x, y) == pytest.approx(3.5 / math.sqrt(5 * 4.75))
    assert m.ranks(y) == [1.0, 2.5, 4.0, 2.5]  # the two 4s share ranks 2 and 3
    assert m.spearman(x, y) == pytest.approx(3 / math.sqrt(5 * 4.5))
    assert math.isnan(m.pearson([1, 1, 1], [1, 2, 3]))


def test_seqeval_documented_example():
    """seqeval's README: one of two MISC/PER chunks found -> F1 0.50; 8 of 10 tags right -> accuracy 0.80."""
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O", "B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O", "B-PER", "I-PER", "O"]]
    assert m.span_f1(gold, pred)["f1"] == pytest.approx(0.5)
    assert m.token_accuracy(gold, pred) == pytest.approx(0.8)


def test_seqeval_chunk_rules():
    assert m.get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert m.get_entities(["I-PER", "I-PER", "O"]) == [("PER", 0, 1)]  # conlleval: I after O opens a chunk
    assert m.get_entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]  # a type change closes one
    assert m.get_entities([["B-PER"], ["I-PER"]]) == [("PER", 0, 0), ("PER", 2, 2)]  # sentences kept apart
    # UD-POS as XTREME scores it: the first letter is read as the tag, the rest as the type (seqeval 1.x)
    pos = ["NOUN", "NOUN", "VERB", "SCONJ", "DET"]
    assert m.get_entities(pos) == [("OUN", 0, 1), ("ERB", 2, 2), ("CONJ", 3, 3), ("ET", 4, 4)]
    half = m.span_f1([pos], [["NOUN", "NOUN", "VERB", "ADP", "DET"]])
    assert half == pytest.approx({"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4})


def test_squad_normalisation_and_f1():
    assert qa.normalize_answer("The  Cat's, hat!") == "cats hat"
    assert qa.f1("the cat sat", "a cat sat down") == pytest.approx(0.8)  # 2 shared of 2 gold, 3 predicted
    assert qa.exact("Paris.", "paris") == 1.0
    v1 = qa.squad_v1({"q1": ["Denver Broncos", "The Broncos"], "q2": ["1990"]}, {"q1": "broncos", "q2": "1991"})
    assert v1 == {"exact_match": 50.0, "f1": pytest.approx(50.0)}  # q1 exact against "The Broncos"
    assert qa.squad_v1({"q": ["x"]}, {"q": ""}) == {"exact_match": 0.0, "f1": 0.0}


def test_squad_v2_empty_gold_rules():
    golds = {"none": [], "punct": [".", "the"], "ans": ["Rome"]}
    out = qa.squad_v2(golds, {"none": "", "punct": "", "ans": "Rome"})
    assert out["exact"] == 100.0 and out["f1"] == 100.0
    assert out["HasAns_total"] == 2.0 and out["NoAns_total"] == 1.0  # "punct" has answers (which normalise to "")
    wrong = qa.squad_v2(golds, {"none": "Rome", "punct": "x", "ans": ""})
    assert wrong["exact"] == 0.0 and wrong["f1"] == 0.0


def test_squad_v2_threshold_search_by_hand():
    golds = {"q1": ["paris"], "q2": ["london"], "q3": [], "q4": []}
    preds = {"q1": "paris", "q2": "rome", "q3": "berlin", "q4": "oslo"}
    na = {"q1": 0.1, "q2": 0.6, "q3": 0.9, "q4": 0.3}
    # start: all "" -> 2 right (q3, q4); q1 (0.1) +1 = 3 (best, at 0.1); q4 -1; q2 +0; q3 -1
    out = qa.squad_v2(golds, preds, na)
    assert out["best_exact"] == 75.0 and out["best_exact_thresh"] == 0.1
    assert out["best_f1"] == 75.0 and out["best_f1_thresh"] == 0.1
    assert out["exact"] == 25.0  # the script's default threshold 1.0 leaves every prediction
    assert qa.squad_v2(golds, preds, na, threshold=0.5)["exact"] == 50.0  # q2 and q3 answered "": q3 right


def test_mlqa_normalisation():
    assert qa.mlqa_normalize("Der Hund, die Katze", "de") == "hund katze"
    assert qa.normalize_answer("Der Hund, die Katze") == "der hund die katze"  # SQuAD's is English only
    assert qa.mlqa_normalize("«Olá»", "es") == "olá" and qa.normalize_answer("«Olá»") == "«olá»"
    assert qa.mlqa_normalize("los gatos", "es") == "gatos"
    assert qa.mlqa_normalize("الكتاب", "ar") == "كتاب"
    assert qa.mixed_segmentation("北京是中国的首都。abc d") == [*"北京是中国的首都。", "abc", "d"]
    assert qa.mlqa_normalize("北京是首都。", "zh") == "北 京 是 首 都"
    out = qa.mlqa({"q": ["北京"]}, {"q": "北京市"}, "zh")  # 2 characters shared, 3 predicted
    assert out == {"exact_match": 0.0, "f1": pytest.approx(80.0)}
    with pytest.raises(ValueError, match="MLQA has no normalisation for 'fr'"):
        qa.mlqa_normalize("x", "fr")
