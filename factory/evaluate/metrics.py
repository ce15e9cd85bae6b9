"""The metrics the model cards and XTREME report, computed exactly as their official scripts do.

Classification and regression (GLUE's, as `run_glue` computes them with scikit-learn and scipy): accuracy,
F1 of the positive class (MRPC, QQP), Matthews correlation (CoLA), Pearson and Spearman (STS-B, ASSIN 2 STS).
Tags (PAN-X, UD-POS, as XTREME's `run_tag.py` computes them with seqeval's default, conlleval-style mode):
span F1 over the chunks of `get_entities`, and token accuracy beside it.

All are written here rather than imported: scipy and scikit-learn (which seqeval pulls in) would be ~100 MB
of runtime dependencies for a dozen lines of arithmetic each. tests/test_metrics.py checks every function
against cases computed by hand from the official definitions, and seqeval's documented examples.
Scores are fractions (0-1) here; the runner reports them in percent, as the papers do.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence


def accuracy(predictions: Sequence, labels: Sequence) -> float:
    return sum(p == g for p, g in zip(predictions, labels, strict=True)) / max(1, len(labels))


def f1_positive(predictions: Sequence[int], labels: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class (sklearn's `f1_score` with average='binary'; 0 when there is no true positive)."""
    pairs = list(zip(predictions, labels, strict=True))
    tp = sum(p == positive and g == positive for p, g in pairs)
    fp = sum(p == positive and g != positive for p, g in pairs)
    fn = sum(p != positive and g == positive for p, g in pairs)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def mcc(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation coefficient, multi-class form (sklearn's `matthews_corrcoef`; 0 when undefined)."""
    n = len(labels)
    classes = sorted(set(predictions) | set(labels))
    correct = sum(p == g for p, g in zip(predictions, labels, strict=True))
    t = {k: sum(g == k for g in labels) for k in classes}  # true count per class
    p = {k: sum(x == k for x in predictions) for k in classes}  # predicted count per class
    cov_ytyp = correct * n - sum(t[k] * p[k] for k in classes)
    cov_ypyp = n * n - sum(v * v for v in p.values())
    cov_ytyt = n * n - sum(v * v for v in t.values())
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r (scipy.stats.pearsonr's statistic); nan when either side is constant. Constant is told by the
    values, not by a zero sum of squares: the mean of six 0.1s is not exactly 0.1, which left tiny deviations and
    an r of +-1.7e-16 where scipy says nan."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    dx, dy = [a - mx for a in x], [b - my for b in y]
    sxx, syy = sum(a * a for a in dx), sum(b * b for b in dy)
    return max(-1.0, min(1.0, sum(a * b for a, b in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)))


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given their average rank (scipy.stats.rankdata's 'average')."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r over the average ranks (scipy.stats.spearmanr)."""
    return pearson(ranks(x), ranks(y))


# ---- tags: seqeval's default (conlleval-compatible) mode ---------------------------------------------------
def _split(chunk: str) -> tuple[str, str]:
    """seqeval 1.x, prefix format: the tag is the first character, the type what follows the first '-' after it
    ('B-PER' -> B, PER; 'NOUN' -> N, OUN; 'O' -> O, '_')."""
    return chunk[0], chunk[1:].split("-", maxsplit=1)[-1] or "_"


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def get_entities(seq: Sequence[str] | Sequence[Sequence[str]]) -> list[tuple[str, int, int]]:
    """(type, first, last) of every chunk, as seqeval's `get_entities` (sentences joined with an 'O' between)."""
    if any(isinstance(s, (list, tuple)) for s in seq):
        seq = [item for sentence in seq for item in [*sentence, "O"]]
    prev_tag, prev_type, begin, chunks = "O", "", 0, []
    for i, chunk in enumerate([*seq, "O"]):
        tag, type_ = _split(chunk)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def span_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision/recall/F1 over chunks (seqeval's f1_score, default mode, average='micro')."""
    true, pred = defaultdict(set), defaultdict(set)
    for type_, start, end in get_entities([list(s) for s in gold]):
        true[type_].add((start, end))
    for type_, start, end in get_entities([list(s) for s in predicted]):
        pred[type_].add((start, end))
    tp = sum(len(true[t] & pred[t]) for t in set(true) | set(pred))
    n_pred, n_true = sum(len(v) for v in pred.values()), sum(len(v) for v in true.values())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """seqeval's accuracy_score: the share of tags that match, over every token of every sentence."""
    pairs = [(g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)]
    return sum(g == p for g, p in pairs) / max(1, len(pairs))
