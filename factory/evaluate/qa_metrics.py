"""Extractive-QA scores exactly as the official scripts compute them (docs/evaluation.md#qa-metrics).

- SQuAD v1.1 (`evaluate-v1.1.py`; XTREME scores XQuAD and TyDiQA-GoldP with it): lower-case, drop ASCII
  punctuation, drop the English articles a/an/the, collapse whitespace; exact match and token F1, each the best
  over the gold answers.
- SQuAD v2.0 (`evaluate-v2.0.py`): the same normalisation; a gold answer that normalises to nothing is left out,
  and a question with none left has the single gold "" (unanswerable), where F1 is 1 if and only if the
  prediction is empty too. With a no-answer score per question, the threshold search gives best_exact/best_f1
  and their thresholds.
- MLQA (`mlqa_evaluation_v1.py`, XTREME's MLQA scorer): per-language articles, every Unicode punctuation
  character, and Chinese split into single characters (CJK ideographs and punctuation) before whitespace.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache

_ASCII_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)

# mlqa_evaluation_v1.py's tables
MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",
    "hi": None,  # no formal articles
    "zh": None,
}
MLQA_WHITESPACE = ("en", "es", "hi", "vi", "de", "ar")
MLQA_MIXED = ("zh",)
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@lru_cache(maxsize=1)
def unicode_punctuation() -> frozenset[str]:
    """Every character of a Unicode category P*, plus ASCII punctuation (MLQA's PUNCT)."""
    chars = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}
    return frozenset(chars | _ASCII_PUNCT)


# ---- SQuAD ---------------------------------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(gold: str, prediction: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(prediction))


def f1(gold: str, prediction: str) -> float:
    """Token F1 after normalisation; two empty answers agree (v2.0's rule; v1.1 gives 0 where nothing overlaps)."""
    gold_tokens, pred_tokens = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    return _overlap_f1(gold_tokens, pred_tokens)


def _overlap_f1(gold_tokens: list[str], pred_tokens: list[str]) -> float:
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v1(golds: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> dict[str, float]:
    """evaluate-v1.1.py: {"exact_match", "f1"} in percent, over every question of `golds` (a missing prediction
    scores 0, as the script does after its warning)."""
    em = f = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        em += max(exact(a, prediction) for a in answers)
        f += max(_v1_f1(a, prediction) for a in answers)
    n = max(1, len(golds))
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f / n}


def _v1_f1(gold: str, prediction: str) -> float:
    """v1.1's F1: no special case for empty answers (0 tokens in common is 0)."""
    return _overlap_f1(normalize_answer(gold).split(), normalize_answer(prediction).split())


def squad_v2(
    golds: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    no_answer_scores: Mapping[str, float] | None = None,
    threshold: float = 1.0,
) -> dict[str, float]:
    """evaluate-v2.0.py: exact/f1 (percent) over all questions and split by HasAns/NoAns; with `no_answer_scores`
    (higher: more likely unanswerable; the script's na_prob) also best_exact/best_f1 and their thresholds."""
    has_answer = {qid: bool(answers) for qid, answers in golds.items()}
    exact_raw, f1_raw = {}, {}
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        kept = [a for a in answers if normalize_answer(a)] or [""]
        exact_raw[qid] = max(exact(a, predictions[qid]) for a in kept)
        f1_raw[qid] = max(f1(a, predictions[qid]) for a in kept)
    scores = no_answer_scores or {qid: 0.0 for qid in predictions}
    exact_t = _apply_threshold(exact_raw, scores, has_answer, threshold)
    f1_t = _apply_threshold(f1_raw, scores, has_answer, threshold)
    out = {"exact": _mean(exact_t, golds), "f1": _mean(f1_t, golds), "total": float(len(golds))}
    for name, keep in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid in golds if has_answer[qid] == keep]
        if ids:
            out.update({f"{name}_exact": _mean(exact_t, ids), f"{name}_f1": _mean(f1_t, ids),
                        f"{name}_total": float(len(ids))})  # fmt: skip
    if no_answer_scores is not None:
        out["best_exact"], out["best_exact_thresh"] = best_threshold(predictions, exact_raw, scores, has_answer)
        out["best_f1"], out["best_f1_thresh"] = best_threshold(predictions, f1_raw, scores, has_answer)
    return out


def _mean(scores: Mapping[str, float], ids) -> float:
    ids = list(ids)
    return 100.0 * sum(scores.get(qid, 0.0) for qid in ids) / max(1, len(ids))


def _apply_threshold(
    scores: Mapping[str, float], na: Mapping[str, float], has_answer: Mapping[str, bool], threshold: float
) -> dict[str, float]:
    """A question whose no-answer score is above the threshold is answered "": right if it has no answer."""
    return {qid: float(not has_answer[qid]) if na[qid] > threshold else s for qid, s in scores.items()}


def best_threshold(
    predictions: Mapping[str, str], scores: Mapping[str, float], na: Mapping[str, float], has_answer: Mapping[str, bool]
) -> tuple[float, float]:
    """evaluate-v2.0.py's find_best_thresh: start from answering "" everywhere, then, in increasing no-answer
    score, let each question keep its prediction; the best running score (percent of `scores`) and the no-answer
    score it was reached at."""
    current = best = float(sum(1 for v in has_answer.values() if not v))
    best_thresh = 0.0
    for qid in sorted(na, key=lambda k: na[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            diff = scores[qid]
        else:
            diff = -1.0 if predictions[qid] else 0.0
        current += diff
        if current > best:
            best, best_thresh = current, na[qid]
    return 100.0 * best / max(1, len(scores)), best_thresh


# ---- MLQA ----------------------------------------------------------------------------------------------
def mixed_segmentation(text: str) -> list[str]:
    """Each CJK ideograph and punctuation character is a token; runs of anything else split on whitespace."""
    punct, out, run = unicode_punctuation(), [], ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            out.extend(run.split())
            run = ""
            out.append(ch)
        else:
            run += ch
    out.extend(run.split())
    return out


def mlqa_normalize(text: str, lang: str) -> str:
    if lang not in MLQA_ARTICLES:
        raise ValueError(f"MLQA has no normalisation for {lang!r}; it knows {', '.join(MLQA_ARTICLES)}")
    punct = unicode_punctuation()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if MLQA_ARTICLES[lang]:
        text = re.sub(MLQA_ARTICLES[lang], " ", text)
    tokens = mixed_segmentation(text) if lang in MLQA_MIXED else text.split()
    return " ".join(t for t in tokens if t.strip())


def mlqa(golds: Mapping[str, Sequence[str]], predictions: Mapping[str, str], lang: str) -> dict[str, float]:
    """mlqa_evaluation_v1.py: {"exact_match", "f1"} in percent, the best over the gold answers."""
    em = f = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        prediction = mlqa_normalize(predictions[qid], lang)
        em += max(float(mlqa_normalize(a, lang) == prediction) for a in answers)
        f += max(_overlap_f1(mlqa_normalize(a, lang).split(), prediction.split()) for a in answers)
    n = max(1, len(golds))
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f / n}
