"""Task types: how rows become model inputs and targets, the loss, and how outputs become predictions and scores.

One class per type, never per benchmark (a benchmark is a suite file in eval/):
    classification   [CLS] A [SEP] (B [SEP]) -> a label; cross-entropy         (XNLI, PAWS-X, GLUE, ASSIN 2 RTE)
    regression       the same inputs -> one number; MSE                        (STS-B, ASSIN 2 STS)
    tokens           words -> one tag per word, on the word's first piece; cross-entropy over those pieces, -100
                     elsewhere (XTREME's run_tag.py)                            (PAN-X, UD-POS)
    qa               question + context windows -> start/end logits; n-best spans (factory/evaluate/qa.py)
                                                                                 (SQuAD, XQuAD, MLQA, TyDiQA)
The runner (runner.py) and the training loop (finetune.py) are the same for all: a task type hands them
`Feature`s (ids + target) and gets back each feature's output, which it turns into per-example predictions.
runner.task_type picks the class a suite names; the examples themselves are records in data.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from factory.evaluate import metrics
from factory.evaluate.data import Example

IGNORE = -100  # the label of pieces that are not a word's first (nn.CrossEntropyLoss's ignore_index)


@dataclasses.dataclass(frozen=True)
class Feature:
    """One model input: `ids` ([CLS] ... [SEP]), its target, and the example it came from (QA: one per window)."""

    ids: list[int]
    target: Any
    example: int
    spans: list[tuple[int, int] | None] | None = None  # QA: each piece's characters in the context, None outside


class TaskType:
    """What every type provides; `name` is the suite file's `task:` value."""

    name: ClassVar[str]
    head: ClassVar[str]  # the model head (factory.model.heads.HEADS)
    metrics: ClassVar[tuple[str, ...]]  # default metrics, the first is the one averaged and charted
    scored_by_id: ClassVar[bool] = False  # `score` matches predictions to gold by example id: ids must be unique

    def __init__(self, labels: Sequence[str] = (), metric_names: Sequence[str] = (), **options: Any):
        self.labels = tuple(labels)
        self.options = options
        self.metric_names = tuple(metric_names) or self.metrics

    @property
    def model_labels(self) -> tuple[str, ...]:
        return self.labels

    problem_type: ClassVar[str | None] = None

    def check_examples(self, examples: list) -> None:
        """Refuse, in one line naming its row, an example this type cannot train on or score with its options; run on
        every split used, before any compute (what the rows alone say was checked when they were read)."""

    def features(self, tokenizer, examples: list, max_length: int, train: bool) -> list[Feature]:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: list[Any]) -> torch.Tensor:
        raise NotImplementedError

    def output(self, logits: torch.Tensor, length: int) -> Any:
        """What prediction keeps of one row's logits (a picklable value gathered across processes)."""
        raise NotImplementedError

    def predictions(self, examples: list, features: list[Feature], outputs: list[Any]) -> list[Any]:
        """One prediction per example from its features' outputs."""
        return outputs

    def score(self, examples: list, predictions: list[Any], lang: str) -> dict[str, float]:
        """Metric name -> value in percent (correlations x 100, as GLUE tables print them)."""
        raise NotImplementedError

    def gold(self, example) -> Any:
        return example.label

    @staticmethod
    def sift_view(logits: torch.Tensor) -> torch.Tensor:
        """Logits as (rows, classes) distributions for SiFT's symmetric KL: every position's labels."""
        return logits.reshape(-1, logits.shape[-1])

    def shown(self, prediction: Any) -> Any:
        """A prediction as the predictions file shows it to a reader."""
        return prediction


def _pair_ids(tokenizer, examples: list[Example], max_length: int) -> list[list[int]]:
    a = tokenizer.encode_batch(e.text_a for e in examples)
    if examples and examples[0].text_b is None:
        return [tokenizer.single(x, max_length) for x in a]
    b = tokenizer.encode_batch(e.text_b or "" for e in examples)
    return [tokenizer.pair(x, y, max_length) for x, y in zip(a, b, strict=True)]


class Classification(TaskType):
    name, head, metrics = "classification", "cls", ("accuracy",)

    def features(self, tokenizer, examples, max_length, train):
        ids = _pair_ids(tokenizer, examples, max_length)
        return [Feature(x, e.label, i) for i, (x, e) in enumerate(zip(ids, examples, strict=True))]

    def loss(self, logits, targets):
        return nn.functional.cross_entropy(logits.float(), torch.tensor(targets, device=logits.device))

    def output(self, logits, length):
        return int(logits.argmax(-1))

    def score(self, examples, predictions, lang):
        gold = [e.label for e in examples]
        every = {
            "accuracy": lambda: metrics.accuracy(predictions, gold),
            "f1": lambda: metrics.f1_positive(predictions, gold),
            "mcc": lambda: metrics.mcc(predictions, gold),
        }
        return {name: 100.0 * every[name]() for name in self.metric_names}

    def shown(self, prediction):
        return self.labels[prediction]


class Regression(TaskType):
    name, head, metrics, problem_type = "regression", "cls", ("pearson", "spearman"), "regression"

    @property
    def model_labels(self):
        return ("LABEL_0",)  # one output, as HF's num_labels=1

    def features(self, tokenizer, examples, max_length, train):
        ids = _pair_ids(tokenizer, examples, max_length)
        return [Feature(x, float(e.label), i) for i, (x, e) in enumerate(zip(ids, examples, strict=True))]

    def loss(self, logits, targets):
        target = torch.tensor(targets, dtype=torch.float32, device=logits.device)
        return nn.functional.mse_loss(logits.float().squeeze(-1), target)

    def output(self, logits, length):
        return float(logits[0])

    def score(self, examples, predictions, lang):
        gold = [float(e.label) for e in examples]
        every = {"pearson": metrics.pearson, "spearman": metrics.spearman}
        out = {}
        for name in self.metric_names:
            value = every[name](predictions, gold)
            out[name] = 0.0 if math.isnan(value) else 100.0 * value  # a constant prediction correlates with nothing
        return out

    def shown(self, prediction):
        return round(prediction, 4)


class Tokens(TaskType):
    """XTREME's run_tag.py on its preprocessed data (utils_preprocess.py, panx/udpos_tokenize): each word encoded on
    its own, its first piece carrying the tag (-100 on the others); a word with no pieces, or more than a whole
    sequence holds, becomes [UNK]; a sentence whose pieces overflow max_length - 2 is cut into several sequences
    at word boundaries, so every word is predicted and scored (docs/evaluation.md#token-classification)."""

    name, head, metrics = "tokens", "tokens", ("f1", "accuracy")

    def features(self, tokenizer, examples, max_length, train):
        room = max_length - 2  # [CLS] ... [SEP]
        out = []
        for i, example in enumerate(examples):
            ids: list[int] = []
            targets: list[int] = []
            for word, tag in zip(tokenizer.encode_batch(example.words), example.tags, strict=True):
                word = word if 0 < len(word) <= room else [tokenizer.unk_id]
                if ids and len(ids) + len(word) > room:  # this word starts the example's next sequence
                    out.append(Feature([tokenizer.cls_id, *ids, tokenizer.sep_id], [IGNORE, *targets, IGNORE], i))
                    ids, targets = [], []
                ids += word
                targets += [tag] + [IGNORE] * (len(word) - 1)
            out.append(Feature([tokenizer.cls_id, *ids, tokenizer.sep_id], [IGNORE, *targets, IGNORE], i))
        return out

    def loss(self, logits, targets):
        length = logits.shape[1]
        padded = torch.full((len(targets), length), IGNORE, dtype=torch.long)
        for row, t in enumerate(targets):
            padded[row, : len(t)] = torch.tensor(t)
        return nn.functional.cross_entropy(logits.float().flatten(0, 1), padded.flatten().to(logits.device))

    def output(self, logits, length):
        return logits[:length].argmax(-1).tolist()

    def predictions(self, examples, features, outputs):
        """Each word's tag: the prediction at its first piece, the example's sequences taken in order."""
        preds: list[list[int]] = [[] for _ in examples]
        for feature, out in zip(features, outputs, strict=True):
            preds[feature.example] += [out[k] for k, t in enumerate(feature.target) if t != IGNORE]
        return preds

    def score(self, examples, predictions, lang):
        gold = [self.gold(e) for e in examples]
        pred = [self.shown(p) for p in predictions]
        every = {
            "f1": lambda: metrics.span_f1(gold, pred)["f1"],
            "accuracy": lambda: metrics.token_accuracy(gold, pred),
        }
        return {name: 100.0 * every[name]() for name in self.metric_names}

    def gold(self, example):
        return [self.labels[t] for t in example.tags]

    def shown(self, prediction):
        return [self.labels[t] for t in prediction]
