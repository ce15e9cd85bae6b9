"""Extractive QA: question + context windows, start/end targets, and answers mapped back to the context.

Features (BERT's run_squad, which XTREME runs): `[CLS] question [SEP] window [SEP]`, the question cut to
`max_query_length` pieces, the context split into windows of the pieces that fit, each window starting
`doc_stride` pieces after the previous one (so windows overlap when the context is long). A window that holds
the whole gold answer is trained to point at it; any other window, and an unanswerable question, at [CLS] (0).

Predictions (transformers' examples/pytorch/question-answering/utils_qa.py, as BERT's): per window, the
`n_best` highest start and end logits are paired; pairs outside the context, reversed, or longer than
`max_answer_length` pieces are skipped; the best pair over all windows (start + end logit) is the answer,
cut from the context's own characters through SentencePiece's offsets (tokenizer.encode_with_offsets).
The no-answer score is the smallest [CLS] start + end over the windows; SQuAD 2.0 answers "" when
null - best span > `null_score_diff_threshold`, and keeps that difference as the no-answer score of the
threshold search (qa_metrics.squad_v2).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from factory.core.errors import FactoryError
from factory.evaluate import qa_metrics
from factory.evaluate.data import QAExample
from factory.evaluate.tasks import Feature, TaskType


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str
    null_score_diff: float  # null score - best span score (higher: more likely unanswerable)
    start: int  # character span of the best non-null answer in the context (-1 if none)
    end: int


@dataclasses.dataclass(frozen=True)
class QASettings:
    """The post-processing knobs (FinetuneSettings carries them; defaults are BERT's and utils_qa's)."""

    doc_stride: int = 128
    max_query_length: int = 64
    n_best: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0
    version_2: bool = False


def windows(n_context: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(first, end) piece ranges of the context: `room` pieces each, starts `stride` apart, the last one ending
    at the context's end (BERT's doc_spans)."""
    out, start = [], 0
    while True:
        length = min(n_context - start, room)
        out.append((start, start + length))
        if start + length >= n_context:
            return out
        start += min(length, stride)


def qa_features(tokenizer, examples: list[QAExample], max_length: int, qa: QASettings) -> list[Feature]:
    out = []
    questions = tokenizer.encode_batch(e.question for e in examples)
    for index, (example, question) in enumerate(zip(examples, questions, strict=True)):
        question = question[: qa.max_query_length]
        ids, spans = tokenizer.encode_with_offsets(example.context)
        room = max_length - len(question) - 3
        if room < 1:
            raise ValueError(f"max_length {max_length} leaves no room for the context after the question")
        answer = _answer_pieces(spans, example)
        for first, end in windows(len(ids), room, qa.doc_stride):
            offset = len(question) + 2  # [CLS] question [SEP]
            target = (0, 0)
            if answer is not None and first <= answer[0] and answer[1] < end:
                target = (answer[0] - first + offset, answer[1] - first + offset)
            row = [tokenizer.cls_id, *question, tokenizer.sep_id, *ids[first:end], tokenizer.sep_id]
            row_spans = [None] * offset + [s if s[0] < s[1] else None for s in spans[first:end]] + [None]
            out.append(Feature(row, target, index, row_spans))
    return out


def _answer_pieces(spans: list[tuple[int, int]], example: QAExample) -> tuple[int, int] | None:
    """The first and last context piece of the first gold answer, or None (unanswerable)."""
    if not example.answers:
        return None
    start, end = example.starts[0], example.starts[0] + len(example.answers[0])
    covering = [k for k, (a, b) in enumerate(spans) if a < b and a < end and b > start]
    return (covering[0], covering[-1]) if covering else None


def best_answer(example: QAExample, features: list[Feature], outputs: list[Any], qa: QASettings) -> Answer:
    """utils_qa's postprocess_qa_predictions for one example (module docstring); `outputs` are each window's
    (start logits, end logits). The n_best x n_best candidate pairs of a window are scored at once (numpy), in
    utils_qa's order (starts, then ends, by falling logit), so ties go where its loop sends them."""
    null = None
    best: tuple[float, int, int] | None = None  # (score, first char, end char)
    for feature, (start_logits, end_logits) in zip(features, outputs, strict=True):
        start_logits = np.asarray(start_logits, dtype=np.float32)
        end_logits = np.asarray(end_logits, dtype=np.float32)
        null_here = float(start_logits[0] + end_logits[0])
        null = null_here if null is None or null_here < null else null
        starts = np.argsort(-start_logits, kind="stable")[: qa.n_best]
        ends = np.argsort(-end_logits, kind="stable")[: qa.n_best]
        spans = feature.spans
        inside_s = np.array([spans[k] is not None for k in starts])
        inside_e = np.array([spans[k] is not None for k in ends])
        length = ends[None, :] - starts[:, None] + 1  # (n_best, n_best), in pieces
        ok = inside_s[:, None] & inside_e[None, :] & (length >= 1) & (length <= qa.max_answer_length)
        if not ok.any():
            continue
        scores = np.where(ok, start_logits[starts][:, None] + end_logits[ends][None, :], -np.inf)
        i, j = np.unravel_index(int(scores.argmax()), scores.shape)
        if best is None or scores[i, j] > best[0]:
            best = (float(scores[i, j]), spans[starts[i]][0], spans[ends[j]][1])
    if best is None:  # no valid span anywhere: only the null answer
        return Answer("", float("inf"), -1, -1)
    diff = null - best[0]
    text = example.context[best[1] : best[2]]
    if qa.version_2 and diff > qa.null_score_diff_threshold:
        text = ""
    return Answer(text, diff, best[1], best[2])


class QuestionAnswering(TaskType):
    """Options: `qa_metric` squad (v1.1), squad_v2 or mlqa; the QASettings knobs."""

    name, head, scored_by_id = "qa", "qa", True

    @property
    def scorer(self) -> str:
        return self.options.get("qa_metric", "squad")

    @property
    def metrics(self):  # type: ignore[override]
        if self.scorer == "squad_v2":
            return ("f1", "exact", "best_f1", "best_exact", "best_f1_thresh", "best_exact_thresh")
        return ("f1", "exact_match")

    def __init__(self, labels=(), metric_names=(), **options):
        super().__init__(labels, metric_names, **options)
        self.settings = QASettings(**{k: v for k, v in options.items() if k in QASettings.__dataclass_fields__})

    @property
    def model_labels(self):
        return ("LABEL_0", "LABEL_1")  # HF sizes qa_outputs by num_labels: 2

    def check_examples(self, examples: list[QAExample]) -> None:
        """SQuAD v1.1's and MLQA's scripts take the best score over a question's gold answers, so every question
        needs one (with none, `max()` of nothing failed after the fine-tuning). Train rows too: v1.1 data has no
        unanswerable question, and its decoding never answers "", so such a row is SQuAD 2.0 data, whose scoring
        is qa_metric squad_v2 (`factory eval squad2`)."""
        if self.scorer == "squad_v2":
            return
        unanswered = next((e for e in examples if not e.answers), None)
        if unanswered is not None:
            scoring = {"mlqa": "MLQA"}.get(self.scorer, "SQuAD v1.1")
            raise FactoryError(
                f"{unanswered.where}: no answer, but this task is scored as {scoring}, where every question has one; "
                "give it its answer, or use squad2 (v2 scoring) if unanswerable questions are intended"
            )

    def features(self, tokenizer, examples, max_length, train):
        return qa_features(tokenizer, examples, max_length, self.settings)

    def loss(self, logits, targets):
        """HF's: the mean of the start and end cross-entropies."""
        target = torch.tensor(targets, device=logits.device)  # (B, 2)
        start = nn.functional.cross_entropy(logits[..., 0].float(), target[:, 0])
        end = nn.functional.cross_entropy(logits[..., 1].float(), target[:, 1])
        return (start + end) / 2

    @staticmethod
    def sift_view(logits):
        """(B, L, 2) -> (2B, L): the start and the end distributions over the positions."""
        return logits.transpose(1, 2).reshape(-1, logits.shape[1])

    def output(self, logits, length):
        row = logits[:length].float().numpy()  # (L, 2); copies: nothing keeps the batch's tensor alive
        return row[:, 0].copy(), row[:, 1].copy()

    def predictions(self, examples, features, outputs):
        by_example: list[list[int]] = [[] for _ in examples]
        for k, feature in enumerate(features):
            by_example[feature.example].append(k)
        return [
            best_answer(e, [features[k] for k in ks], [outputs[k] for k in ks], self.settings)
            for e, ks in zip(examples, by_example, strict=True)
        ]

    def score(self, examples, predictions, lang):
        golds = {e.id: list(e.answers) for e in examples}
        texts = {e.id: p.text for e, p in zip(examples, predictions, strict=True)}
        if self.scorer == "squad_v2":
            na = {e.id: p.null_score_diff for e, p in zip(examples, predictions, strict=True)}
            out = qa_metrics.squad_v2(golds, texts, na)
        elif self.scorer == "mlqa":
            out = qa_metrics.mlqa(golds, texts, lang)
        else:
            out = qa_metrics.squad_v1(golds, texts)
        return {name: float(out[name]) for name in self.metric_names}

    def gold(self, example):
        return list(example.answers)

    def shown(self, prediction):
        return prediction.text
