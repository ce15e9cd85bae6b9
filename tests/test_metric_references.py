"""Every score factory/evaluate/ computes, against the library that defines it, on seeded random cases.

factory computes its metrics itself (factory/evaluate/metrics.py, retrieval.py, report.py) to keep its runtime
dependencies light: scikit-learn and scipy (which seqeval pulls in) would be ~100 MB installed for a dozen lines
of arithmetic each. Those libraries are the definitions the numbers must match, so they are test-only
dependencies (pyproject.toml's `dev` extra, never `dependencies`). tests/test_metrics.py checks the same
functions on cases worked by hand; here each is compared with its reference on many random draws of varying
sizes and class counts, degenerate ones included (a single class, all right, all wrong, constant predictions,
no entity at all), and through the task types too, in the percent factory reports.

    accuracy, f1 (positive class), mcc   scikit-learn accuracy_score, f1_score, matthews_corrcoef
    pearson, spearman, ranks             scipy.stats pearsonr, spearmanr, rankdata('average')
    span F1/precision/recall, tag acc.   seqeval 1.x get_entities, f1/precision/recall_score, accuracy_score
    retrieval accuracy@1                 numpy argmax of the dot products, scipy cdist('cosine') for `score`
    mean/std over runs                   numpy mean, std(ddof=1)

Where the reference is undefined, factory does what it documents: mcc and f1 are 0 (as scikit-learn's with
zero_division=0), a correlation with a constant side is nan (as scipy's), reported as 0.0 by Regression.score.
The QA scores (qa_metrics.py) have no library reference: the official SQuAD/MLQA scripts are not packaged, so
tests/test_metrics.py checks them by hand.
"""

from __future__ import annotations

import math
import random
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import seqeval.metrics
import sklearn.metrics
import torch
from seqeval.metrics.sequence_labeling import get_entities as seqeval_entities

from factory.evaluate import metrics as m
from factory.evaluate import report, retrieval
from factory.evaluate.tasks import Classification, Regression, Tokens

CASES = 300  # random draws per family (seeded: the same cases every run)
TIGHT = 1e-12  # fractions
PERCENT = 1e-10  # what the task types report (x 100)


def quiet(fn, *args, **kwargs):
    """A reference call without its warnings (undefined metrics, constant input, 'seems not to be NE tag')."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ---- classification: accuracy, F1 of the positive class, Matthews correlation ----------------------------
def label_cases(seed: int = 29) -> list[tuple[list[int], list[int]]]:
    """(predictions, gold) pairs: random sizes 1-80 and 1-6 classes (ids not always from 0), predictions right at a
    random rate, and the degenerate shapes: one class everywhere, all right, all wrong, a constant prediction."""
    rng = random.Random(seed)
    cases = []
    for i in range(CASES):
        n, k = rng.randint(1, 80), rng.randint(1, 6)
        classes = rng.sample(range(8), k) if i % 3 == 0 else list(range(k))
        gold = [rng.choice(classes) for _ in range(n)]
        shape = i % 6
        if shape == 0:  # one class everywhere
            gold = [classes[0]] * n
            pred = list(gold)
        elif shape == 1:  # all right
            pred = list(gold)
        elif shape == 2:  # all wrong
            pred = [classes[(classes.index(g) + 1) % k] if k > 1 else g + 1 for g in gold]
        elif shape == 3:  # constant prediction
            pred = [rng.choice(classes)] * n
        else:  # right at a random rate
            rate = rng.random()
            pred = [g if rng.random() < rate else rng.choice(classes) for g in gold]
        cases.append((pred, gold))
    return cases


LABEL_CASES = label_cases()


def test_accuracy_matches_sklearn():
    for pred, gold in LABEL_CASES:
        expected = sklearn.metrics.accuracy_score(gold, pred)
        assert m.accuracy(pred, gold) == pytest.approx(expected, abs=TIGHT), (pred, gold)
        assert report.accuracy(pred, gold) == pytest.approx(100 * expected, abs=PERCENT), (pred, gold)


def test_f1_positive_matches_sklearn():
    """sklearn's F1 of the one class `positive` (also average='binary' where the labels are binary); 0 where there
    is no true positive, as scikit-learn's zero_division=0 (its default 'warn' also gives 0, with a warning)."""
    positives = [1, 0, 2]
    binary = 0
    for pred, gold in LABEL_CASES:
        per_class = quiet(sklearn.metrics.f1_score, gold, pred, labels=positives, average=None, zero_division=0)
        for positive, expected in zip(positives, per_class, strict=True):
            assert m.f1_positive(pred, gold, positive=positive) == pytest.approx(expected, abs=TIGHT), (pred, gold)
        if set(pred) | set(gold) <= {0, 1}:
            binary += 1
            for positive in (0, 1):
                expected = quiet(sklearn.metrics.f1_score, gold, pred, average="binary", pos_label=positive)
                assert m.f1_positive(pred, gold, positive=positive) == pytest.approx(expected, abs=TIGHT), (pred, gold)
    assert binary > 50  # the binary form was exercised


def test_mcc_matches_sklearn():
    undefined = 0
    for pred, gold in LABEL_CASES:
        expected = quiet(sklearn.metrics.matthews_corrcoef, gold, pred)
        assert m.mcc(pred, gold) == pytest.approx(expected, abs=TIGHT), (pred, gold)
        undefined += len(set(pred)) == 1 or len(set(gold)) == 1
    assert undefined > 50  # one class on a side: 0.0 in both


def test_classification_score_in_percent():
    task = Classification(labels=[str(i) for i in range(8)], metric_names=("accuracy", "f1", "mcc"))
    for pred, gold in LABEL_CASES[::3]:  # the functions are checked on every case above; this, the percent
        scores = task.score([SimpleNamespace(label=g) for g in gold], pred, "en")
        expected = {
            "accuracy": sklearn.metrics.accuracy_score(gold, pred),
            "f1": quiet(sklearn.metrics.f1_score, gold, pred, labels=[1], average=None, zero_division=0)[0],
            "mcc": quiet(sklearn.metrics.matthews_corrcoef, gold, pred),
        }
        assert scores == pytest.approx({k: 100 * v for k, v in expected.items()}, abs=PERCENT), (pred, gold)


# ---- regression: Pearson, Spearman (ties) --------------------------------------------------------------
def score_cases(seed: int = 29) -> list[tuple[list[float], list[float]]]:
    """(predictions, gold) pairs of sizes 2-80: continuous, heavily tied (a few levels, as STS-B's 0-5 in
    halves), integer, exactly (anti)correlated, monotone but not linear, and one side constant (the regression
    head's collapsed case; 0.1 and 0.7, whose mean in floating point is not the value, once gave +-1.7e-16)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(CASES):
        n = int(rng.integers(2, 81))
        gold = rng.normal(size=n)
        shape = i % 8
        if shape == 0:
            pred = gold + rng.normal(scale=rng.uniform(0.01, 3), size=n)
        elif shape == 1:  # ties on both sides
            gold = rng.integers(0, 11, size=n) / 2
            pred = np.round(gold + rng.normal(scale=1, size=n))
        elif shape == 2:  # few levels, many ties
            gold, pred = rng.integers(0, 3, size=n).astype(float), rng.integers(0, 3, size=n).astype(float)
        elif shape == 3:  # exact linear relation, either sign
            pred = rng.choice([-2.0, 0.5, 3.0]) * gold + 1.0
        elif shape == 4:  # monotone, not linear: Spearman 1
            pred = np.exp(gold)
        elif shape == 5:  # a constant side
            pred = np.full(n, rng.choice([0.0, 2.5, -1.0, 3.0, 0.1, 0.7]))  # 0.1, 0.7: a mean that is not exact
            if i % 16 == 5:
                gold, pred = pred, gold
        elif shape == 6:  # both constant
            gold, pred = np.full(n, 1.0), np.full(n, 4.5)
        else:  # independent
            pred = rng.uniform(0, 5, size=n)
        cases.append((pred.tolist(), gold.tolist()))
    return cases


SCORE_CASES = score_cases()


def same_or_both_nan(got: float, expected: float, tol: float) -> bool:
    if math.isnan(expected):
        return math.isnan(got)
    return not math.isnan(got) and abs(got - expected) <= tol


def test_ranks_match_scipy_rankdata():
    for pred, gold in SCORE_CASES:
        for values in (pred, gold):
            assert m.ranks(values) == scipy.stats.rankdata(values, method="average").tolist()


def test_pearson_and_spearman_match_scipy():
    nan = 0
    for pred, gold in SCORE_CASES:
        pearson = float(quiet(scipy.stats.pearsonr, pred, gold)[0])
        spearman = float(quiet(scipy.stats.spearmanr, pred, gold)[0])
        assert same_or_both_nan(m.pearson(pred, gold), pearson, TIGHT), (pred, gold, m.pearson(pred, gold), pearson)
        assert same_or_both_nan(m.spearman(pred, gold), spearman, TIGHT), (pred, gold, m.spearman(pred, gold))
        nan += math.isnan(pearson)
    assert nan > 50  # the undefined case was exercised: nan in both


def test_regression_score_in_percent():
    """Regression.score reports the correlations x 100, and 0.0 where scipy's is nan (a constant side)."""
    task = Regression(metric_names=("pearson", "spearman"))
    for pred, gold in SCORE_CASES:
        scores = task.score([SimpleNamespace(label=g) for g in gold], pred, "en")
        for name, fn in (("pearson", scipy.stats.pearsonr), ("spearman", scipy.stats.spearmanr)):
            expected = float(quiet(fn, pred, gold)[0])
            expected = 0.0 if math.isnan(expected) else 100 * expected
            assert scores[name] == pytest.approx(expected, abs=PERCENT), (name, pred, gold)


# ---- tags: seqeval's default (conlleval) mode ----------------------------------------------------------
PANX = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
IOBES = [*PANX, "E-PER", "S-PER", "E-LOC", "S-LOC", "E-ORG", "S-ORG"]
UDPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
         "SCONJ", "SYM", "VERB", "X"]  # fmt: skip
ODD = [*PANX, "B-MISC-X", "I-MISC-X", "B", "I", "O-PER", "B-", "_"]  # malformed: read as seqeval 1.x reads them
SCHEMES = {"panx": PANX, "iobes": IOBES, "udpos": UDPOS, "odd": ODD}


def tag_cases(seed: int = 29) -> list[tuple[list[str], list[list[str]], list[list[str]]]]:
    """(tag set, gold sentences, predicted sentences): 1-8 sentences of 0-20 tags in one scheme (IOB2 as PAN-X,
    IOBES, UD-POS, malformed), gold drawn at random (so I- after O and type changes occur), the prediction a copy
    with a random share of its tags redrawn; and the degenerate ones: no entity anywhere, all right, all O."""
    rng = random.Random(seed)
    cases = []
    names = sorted(SCHEMES)
    for i in range(CASES):
        tags = SCHEMES[names[i % len(names)]]
        lengths = [rng.randint(0, 20) for _ in range(rng.randint(1, 8))]
        weights = [rng.random() for _ in tags]
        gold = [rng.choices(tags, weights, k=n) for n in lengths]
        shape = (i // len(names)) % 5
        if shape == 0:  # no entity in the gold or the prediction
            gold = [["O"] * n for n in lengths]
            pred = [list(s) for s in gold]
        elif shape == 1:  # all right
            pred = [list(s) for s in gold]
        elif shape == 2:  # nothing predicted
            pred = [["O"] * n for n in lengths]
        else:
            rate = rng.random()
            pred = [[t if rng.random() > rate else rng.choice(tags) for t in s] for s in gold]
        cases.append((tags, gold, pred))
    return cases


TAG_CASES = tag_cases()


def test_get_entities_matches_seqeval():
    for _, gold, pred in TAG_CASES:
        for sentences in (gold, pred):
            assert m.get_entities(sentences) == quiet(seqeval_entities, sentences), sentences
            for s in sentences:
                assert m.get_entities(s) == quiet(seqeval_entities, s), s


def test_span_f1_and_token_accuracy_match_seqeval():
    empty = 0
    for _, gold, pred in TAG_CASES:
        expected = {
            "precision": quiet(seqeval.metrics.precision_score, gold, pred),
            "recall": quiet(seqeval.metrics.recall_score, gold, pred),
            "f1": quiet(seqeval.metrics.f1_score, gold, pred),
        }
        assert m.span_f1(gold, pred) == pytest.approx(expected, abs=TIGHT), (gold, pred)
        if sum(map(len, gold)):
            accuracy = seqeval.metrics.accuracy_score(gold, pred)
            assert m.token_accuracy(gold, pred) == pytest.approx(accuracy, abs=TIGHT), (gold, pred)
        else:  # no token at all: factory 0.0, seqeval (numpy's mean of nothing) nan
            assert m.token_accuracy(gold, pred) == 0.0
        empty += not quiet(seqeval_entities, gold)
    assert empty > 50  # no gold entity: 0.0 in both


def test_tokens_score_in_percent():
    for tags, gold, pred in TAG_CASES:
        if not sum(map(len, gold)):
            continue
        tags = tags if "O" in tags else [*tags, "O"]  # UD-POS has none: the all-O degenerate cases
        task = Tokens(labels=tags, metric_names=("f1", "accuracy"))
        examples = [SimpleNamespace(tags=[tags.index(t) for t in s]) for s in gold]
        scores = task.score(examples, [[tags.index(t) for t in s] for s in pred], "en")
        expected = {
            "f1": quiet(seqeval.metrics.f1_score, gold, pred),
            "accuracy": seqeval.metrics.accuracy_score(gold, pred),
        }
        assert scores == pytest.approx({k: 100 * v for k, v in expected.items()}, abs=PERCENT), (gold, pred)


# ---- retrieval: accuracy@1 ----------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Tiny matrix products: torch's thread pool only costs time on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def retrieval_cases(seed: int = 29):
    """(query vectors, candidate vectors, texts; float64): n 1-60 items, dimension 2-32, texts from a
    small vocabulary (duplicates: a candidate with the gold text counts as a hit, and equal texts have equal
    vectors, so exact ties never decide a hit), queries their translation's vector plus noise (0: all right;
    large: near chance), some with an offset every vector shares (what centring removes)."""
    rng = np.random.default_rng(seed)
    for i in range(CASES // 3):
        n, dim = int(rng.integers(1, 61)), int(rng.integers(2, 33))
        vocabulary = [f"t{j}" for j in range(int(rng.integers(1, n + 1)))]
        texts = [vocabulary[j] for j in rng.integers(0, len(vocabulary), size=n)]
        points = {t: rng.normal(size=dim) for t in vocabulary}
        candidates = np.stack([points[t] for t in texts])
        noise = 0.0 if i % 5 == 0 else rng.uniform(0, 2)
        queries = candidates + rng.normal(scale=noise, size=candidates.shape)
        if i % 4 == 0:
            shift = rng.normal(scale=5, size=dim)
            queries, candidates = queries + shift, candidates - shift
        yield queries, candidates, texts


def test_accuracy_at_1_matches_numpy_argmax(one_thread):
    for queries, candidates, texts in retrieval_cases():
        best = (queries @ candidates.T).argmax(1)
        expected = 100.0 * np.mean([texts[j] == texts[i] for i, j in enumerate(best)])
        q, c = torch.from_numpy(queries), torch.from_numpy(candidates)
        for block in (1, 7, 4096):  # the block split never changes the answer
            assert retrieval.accuracy_at_1(q, c, texts, block=block) == pytest.approx(expected, abs=PERCENT)


def test_retrieval_score_matches_scipy_cosine(one_thread):
    """`score` (centred, cosine) against scipy's cosine distance: the nearest candidate of each query, both ways,
    rounded to 2 decimals as results.json shows it; `chance` is 100 / n."""
    for queries, candidates, texts in retrieval_cases(seed=30):
        pairs = SimpleNamespace(other=texts, pivot=texts)
        for centre in (False, True):
            other, pivot = queries, candidates
            if centre:
                other, pivot = queries - queries.mean(0), candidates - candidates.mean(0)
            got = retrieval.score(torch.from_numpy(queries), torch.from_numpy(candidates), pairs, centre)
            for direction, (a, b) in {"to_pivot": (other, pivot), "from_pivot": (pivot, other)}.items():
                nearest = scipy.spatial.distance.cdist(a, b, "cosine").argmin(1)
                hits = [texts[j] == texts[i] for i, j in enumerate(nearest)]
                n = len(texts)
                expected = {"accuracy": round(100.0 * np.mean(hits), 2), "n": n, "chance": round(100.0 / n, 2)}
                assert got[direction] == expected, (direction, centre, queries, candidates, texts)


# ---- report: mean and sample std over runs -------------------------------------------------------------
def test_mean_std_matches_numpy():
    rng = np.random.default_rng(29)
    for i in range(CASES):
        runs = rng.uniform(0, 100, size=int(rng.integers(1, 11)))
        if i % 10 == 0:
            runs[:] = runs[0]  # the same score every run: std 0
        mean, std = report.mean_std(runs.tolist())
        assert mean == pytest.approx(np.mean(runs), abs=PERCENT)
        # numpy's ddof=1 std of one run is nan; factory reports 0 (report.py: "0 for one run")
        assert std == pytest.approx(np.std(runs, ddof=1) if len(runs) > 1 else 0.0, abs=PERCENT)
