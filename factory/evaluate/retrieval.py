"""Parallel-sentence retrieval (XTREME's Tatoeba/BUCC protocol): how well does the encoder align languages?

No fine-tuning: each text is encoded once, its hidden states at one layer are pooled into a vector, and an item
of language x must find its translation among all the pivot's items by cosine similarity (x -> pivot), and the
other way round (pivot -> x). Accuracy@1 in each direction is the share of items whose nearest candidate is
their translation (a candidate with exactly the gold text counts too: duplicates cannot be told apart).

The protocol (docs/retrieval.md), every part stated in results.json:
- layer: a fraction of the depth, hidden state round(F x depth), the embeddings being 0. The default 0.55 is
  XTREME's middle layer (7 of 12 for mBERT, 13 of 24 for XLM-R large): Pires et al. (2019) found translation
  retrieval peaks in the middle layers, the top ones being tuned to the pre-training task;
- pooling: the mean over the text's own tokens ([CLS]/[SEP] and padding left out, since those are the same
  tokens in every language and carry no content), or over every non-pad token as XTREME's script does, or the
  [CLS] vector;
- centring: each language's mean vector is subtracted first. Libovicky et al. (2020) found that a large part of
  a multilingual encoder's vector says which language it is, and that removing each language's centroid makes
  retrieval far more accurate; on by default;
- candidates: every pivot item paired with the language (the pool size is `n` in the results).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from typing import Any

import torch
from torch import nn

from factory.core.errors import ConfigError
from factory.evaluate.config import RetrievalConfig
from factory.evaluate.parallel import Pairs, Parallel
from factory.model.tokenizer import Tokenizer

log = logging.getLogger(__name__)
DIRECTIONS = ("to_pivot", "from_pivot")  # x -> pivot, pivot -> x


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How texts become vectors and vectors are compared (RetrievalConfig's fields of the same names)."""

    layer: float = RetrievalConfig.layer
    pooling: str = RetrievalConfig.pooling
    centre: bool = RetrievalConfig.centre
    max_length: int = RetrievalConfig.max_length
    batch_size: int = RetrievalConfig.batch_size

    @classmethod
    def of(cls, config: RetrievalConfig) -> Protocol:
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


def layer_index(fraction: float, depth: int) -> int:
    """Hidden state round(fraction x depth) (halves up), 0 = the embeddings, `depth` = the last layer."""
    return max(0, min(depth, int(fraction * depth + 0.5)))


def encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder of any factory model (a headed one keeps it in `.deberta`)."""
    return getattr(model, "deberta", model)


def hidden_state(encoder: nn.Module, ids: torch.Tensor, mask: torch.Tensor, layer: int) -> torch.Tensor:
    """(B, L, H) output of hidden state `layer` (0: the embeddings), as DebertaModel.hidden_states computes it."""
    keep = mask.bool()
    keep_or_none = None if bool(keep.all()) else keep
    x = encoder.embeddings(ids, keep_or_none)
    return x if layer == 0 else encoder.encoder(x, keep_or_none)[layer - 1]


def pool(h: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, L, H) -> (B, H) as the protocol says; a text with no token of its own falls back to mean_all."""
    if pooling == "cls":
        return h[:, 0].float()
    weights = mask.bool()
    if pooling == "mean":
        content = weights & (ids != Tokenizer.cls_id) & (ids != Tokenizer.sep_id)
        weights = torch.where(content.any(1, keepdim=True), content, weights)
    w = weights.unsqueeze(-1).to(torch.float32)
    return (h.float() * w).sum(1) / w.sum(1).clamp_min(1.0)


@torch.no_grad()
def embed(model: nn.Module, tokenizer: Tokenizer, texts: list[str], protocol: Protocol, device) -> torch.Tensor:
    """(N, H) float32 vectors of `texts`, in order (batched by length: less padding)."""
    from factory.evaluate.finetune import collate

    encoder = encoder_of(model)
    was_training = encoder.training
    encoder.eval()
    layer = layer_index(protocol.layer, encoder.config.num_hidden_layers)
    rows = [tokenizer.single(x, protocol.max_length) for x in tokenizer.encode_batch(texts)]
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    out = torch.zeros(len(rows), encoder.config.hidden_size)
    for start in range(0, len(order), protocol.batch_size):
        batch = order[start : start + protocol.batch_size]
        ids, mask = (t.to(device) for t in collate([rows[i] for i in batch]))
        out[batch] = pool(hidden_state(encoder, ids, mask, layer), ids, mask, protocol.pooling).cpu()
    encoder.train(was_training)
    return out


def accuracy_at_1(queries: torch.Tensor, candidates: torch.Tensor, gold: list[str], block: int = 4096) -> float:
    """% of queries i whose most similar candidate is candidate i (or has exactly its text, `gold`).

    The similarities are taken `block` queries at a time: a BUCC-size pool (10^5 items) never holds n x n."""
    best: list[int] = []
    for start in range(0, len(queries), block):
        best += (queries[start : start + block] @ candidates.T).argmax(1).tolist()
    return 100.0 * sum(gold[j] == gold[i] for i, j in enumerate(best)) / len(best)


def score(other: torch.Tensor, pivot: torch.Tensor, pairs: Pairs, centre: bool) -> dict[str, dict[str, Any]]:
    """Both directions for one language: (n, H) vectors of its items and of their pivot translations."""
    if centre:
        other, pivot = other - other.mean(0), pivot - pivot.mean(0)
    other, pivot = nn.functional.normalize(other, dim=1), nn.functional.normalize(pivot, dim=1)
    n = len(pairs.other)
    entry = {"n": n, "chance": round(100.0 / n, 2)}
    return {
        "to_pivot": {"accuracy": round(accuracy_at_1(other, pivot, pairs.pivot), 2), **entry},
        "from_pivot": {"accuracy": round(accuracy_at_1(pivot, other, pairs.other), 2), **entry},
    }


def measure(model: nn.Module, tokenizer: Tokenizer, data: Parallel, protocol: Protocol, device=None):
    """(results, average) of one model: {lang: {direction: {accuracy, n, chance}}}, {direction: {accuracy}}.

    Each distinct text of a language is encoded once (the pivot's are shared by every language in the .txt and
    table layouts). The model's train/eval mode is restored afterwards, so a training loop can call this."""
    device = device or next(model.parameters()).device
    needed: dict[str, dict[str, None]] = {data.pivot: {}}
    for lang, pairs in data.pairs.items():
        needed[data.pivot].update(dict.fromkeys(pairs.pivot))
        needed.setdefault(lang, {}).update(dict.fromkeys(pairs.other))
    vectors = {}
    for lang, texts in needed.items():
        matrix = embed(model, tokenizer, list(texts), protocol, device)
        vectors[lang] = {text: matrix[i] for i, text in enumerate(texts)}
    results = {}
    for lang, pairs in data.pairs.items():
        other = torch.stack([vectors[lang][t] for t in pairs.other])
        pivot = torch.stack([vectors[data.pivot][t] for t in pairs.pivot])
        results[lang] = score(other, pivot, pairs, protocol.centre)
    average = {d: {"accuracy": round(statistics.fmean(r[d]["accuracy"] for r in results.values()), 2)}
               for d in DIRECTIONS}  # fmt: skip
    return results, average


def protocol_json(protocol: Protocol, depth: int, data: Parallel) -> dict[str, Any]:
    """The protocol as results.json states it."""
    pooled = {
        "mean": "mean over the text's own tokens ([CLS], [SEP] and padding left out)",
        "mean_all": "mean over every non-pad token, [CLS] and [SEP] included (XTREME's script)",
        "cls": "the [CLS] vector",
    }[protocol.pooling]
    return {
        "layer": protocol.layer,
        "layer_index": layer_index(protocol.layer, depth),
        "depth": depth,
        "layer_note": "hidden state round(layer x depth), embeddings = 0; the default 0.55 is XTREME's middle "
        "layer (7 of 12 mBERT, 13 of 24 XLM-R large), where translation retrieval peaks (Pires et al. 2019)",
        "pooling": protocol.pooling,
        "pooling_note": pooled,
        "centre": protocol.centre,
        "centre_note": "each language's mean vector subtracted (Libovicky et al. 2020)" if protocol.centre else "off",
        "similarity": "cosine",
        "metric": "accuracy@1 (%); a candidate with exactly the gold text counts as a hit",
        "directions": {"to_pivot": f"x -> {data.pivot}", "from_pivot": f"{data.pivot} -> x"},
        "candidates": f"every {data.pivot} item paired with the language (pool size n per language)",
        "max_length": protocol.max_length,
        "layout": data.layout,
    }


def check_one_process(hint: str = "run `factory eval retrieval` without torchrun / accelerate launch") -> None:
    """Retrieval runs in one process: a launch of several is refused before anything runs."""
    from factory.core.launch import launched_processes

    if launched_processes() > 1:
        raise ConfigError(f"retrieval runs in one process (it fine-tunes nothing: seconds on a CPU); {hint}")


def run(config: RetrievalConfig) -> dict[str, Any]:
    """`factory eval retrieval`: check everything, measure the model (and its control), write the folder; one
    process at a time per --out (its lock)."""
    from factory.core.outputs import check_target, output_lock

    check_one_process()
    check_target(config.out)
    with output_lock(config.out):
        return _run(config)


def _run(config: RetrievalConfig) -> dict[str, Any]:
    from factory.core.outputs import check_output
    from factory.core.sources import resolve_model
    from factory.evaluate.control import CONTROL, PRETRAINED, arms, with_control
    from factory.evaluate.parallel import read_parallel
    from factory.evaluate.runner import check_model
    from factory.model.folder import read_config, weights_fingerprint

    source = resolve_model(config.model)  # a folder or a Hub id (factory/core/sources.py)
    given, config = config, dataclasses.replace(config, model=source.path)
    check_model(config.model)
    check_output(config.out, config.force)
    data = read_parallel(config.data, config.pivot, config.langs)  # every data problem before a model is built
    protocol = Protocol.of(config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    measured = {}
    for arm in arms(config.model, config.control):  # the model, then (--control random) its control
        model = arm.model("none").to(device)
        measured[arm.name] = (arm, *measure(model, arm.tokenizer(), data, protocol, device))
        log.info("%s: average %s", arm.name, measured[arm.name][2])
        del model
    depth = read_config(config.model).num_hidden_layers
    _, results, average = measured[PRETRAINED]
    report = {
        "schema": "factory.eval/v1",
        "suite": "retrieval",
        "model": source.given,
        "model_fingerprint": weights_fingerprint(config.model),  # the weights evaluated: publish checks them
        **({"revision": source.revision} if source.is_hub else {}),
        "pivot": data.pivot,
        "languages": list(data.pairs),
        "data": data.source,
        "protocol": protocol_json(protocol, depth, data),
        "results": results,
        "average": average,
    }
    if CONTROL in measured:
        arm, control, control_average = measured[CONTROL]
        report = with_control(report, arm, control, control_average, DIRECTIONS)
    _write(given, config.model, source, report)
    return report


def _write(config: RetrievalConfig, folder, source, report: dict[str, Any]) -> None:
    """`config` as the user gave it (`model` may be a Hub id); `folder` holds the files read; `source` says where
    they came from (factory/core/sources.py)."""
    import json

    from factory.core.manifest import ModelSource, write_manifest
    from factory.core.options import to_json
    from factory.core.outputs import fingerprint_file, staged_output
    from factory.evaluate.manifest import EvalFigures, EvalInputs, EvalManifest
    from factory.evaluate.report import retrieval_chart, retrieval_markdown

    with staged_output(config.out, config.force) as tmp:
        (tmp / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        (tmp / "results.md").write_text(retrieval_markdown(report))
        retrieval_chart(report, tmp / "retrieval_accuracy.png")
        weights = folder / "model.safetensors"
        manifest = EvalManifest(
            step="eval retrieval",
            arguments=to_json(config),
            inputs=EvalInputs(
                model=str(config.model),
                model_fingerprint=fingerprint_file(weights) if weights.is_file() else None,
                source=ModelSource(**source.describe()),
            ),
            figures=EvalFigures(average=report["average"], languages=report["languages"], splits=list(DIRECTIONS)),
        )
        write_manifest(tmp, manifest)
