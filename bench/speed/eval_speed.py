"""Evaluation speed beside `transformers`, in one run: a fine-tuning step of each task type, SiFT's cost per step,
and the QA post-processing per 1,000 examples.

    flock /tmp/factory-timing.lock python -m bench.speed.eval_speed --preset xsmall --tokenizer <model or vocab folder>

Fine-tuning step (one micro-batch: forward, loss, backward, AdamW step), on the same weights (ours saved, then read
by transformers' class) and the same inputs, each task at its suite's micro-batch and length:
    classification  ours: factory.evaluate.finetune.step_loss   HF: DebertaV2ForSequenceClassification(labels=)
    regression      (problem_type regression, MSE)              HF: DebertaV2ForSequenceClassification
    tokens          (first pieces labelled, -100 elsewhere)     HF: DebertaV2ForTokenClassification
    qa              (start/end cross-entropy)                   HF: DebertaV2ForQuestionAnswering
and ours with `--set sift=true` (three forwards and two backwards a step) beside ours without. Before timing,
each pair's loss is compared with dropout off (the steps timed compute the same thing). Rounds interleave the
implementations (HF, ours, ours+SiFT, then rotated), so load on a shared machine hits them alike; the figure is
the median per step.

QA post-processing: 1,000 SQuAD-style examples made from real text (contexts of 100+ words from --text, as
SQuAD's paragraphs are; with a small vocabulary many take two or more windows at length 384, stride 128),
random start/end logits per window (seeded), post-processed by ours (`QuestionAnswering.output` per window +
`.predictions`) and by `utils_qa`, the n-best post-processing of transformers'
examples/pytorch/question-answering, written out below as that file does it (numpy argsort of each window's
logits, every start x end pair checked against the offsets, the n-best list with its softmax probabilities,
the v2 null-score comparison) — not imported from an examples folder. Both start from the same per-window
logits tensors and offsets; the answers are compared (they must agree).

CPU time (`time.process_time`, every thread of this process) is the figure that survives a shared machine; wall
time is printed beside it. `--threads 1` (default) keeps the two equal when the process is not preempted.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.cli import add_threads, make_parser
from bench.timing import timed

TASKS = {  # task type -> (transformers class, micro-batch, length): the suites' micro_batch_size, max_length
    "classification": ("DebertaV2ForSequenceClassification", 16, 128),  # eval/xtreme.yaml pawsx, xnli
    "regression": ("DebertaV2ForSequenceClassification", 16, 128),  # eval/glue.yaml stsb
    "tokens": ("DebertaV2ForTokenClassification", 16, 128),  # eval/xtreme.yaml panx, udpos
    "qa": ("DebertaV2ForQuestionAnswering", 8, 384),  # eval/squad.yaml, xtreme.yaml xquad
}
LABELS = {
    "classification": ("entailment", "neutral", "contradiction"),
    "regression": (),
    "tokens": ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"),
    "qa": (),
}


# ---- the fine-tuning step -------------------------------------------------------------------------------------
def _inputs(task: str, batch: int, length: int, vocab: int, labels: int, seed: int):
    """Random ids (no padding) and targets in both shapes: ours (a list per row) and HF's keyword arguments."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab - 200, (batch, length), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2  # [CLS] ... [SEP]
    mask = torch.ones_like(ids)
    if task == "classification":
        y = torch.randint(0, labels, (batch,), generator=g)
        return ids, mask, y.tolist(), {"labels": y}
    if task == "regression":
        y = torch.rand(batch, generator=g) * 5
        return ids, mask, y.tolist(), {"labels": y}
    if task == "tokens":
        y = torch.randint(0, labels, (batch, length), generator=g)
        y[torch.rand(batch, length, generator=g) < 0.3] = -100  # pieces after a word's first
        y[:, 0], y[:, -1] = -100, -100
        return ids, mask, y.tolist(), {"labels": y}
    start = torch.randint(1, length - 40, (batch,), generator=g)
    end = start + torch.randint(0, 30, (batch,), generator=g)
    return ids, mask, list(zip(start.tolist(), end.tolist(), strict=True)), {"start_positions": start,
                                                                               "end_positions": end}  # fmt: skip


def _models(task: str, preset: str, vocab: str, folder: Path):
    """Ours, ours with SiFT attached, and transformers' class, all from the same saved weights."""
    import transformers

    from factory.evaluate import sift
    from factory.evaluate.config import FinetuneSettings
    from factory.evaluate.runner import task_type
    from factory.model import build_model, load_model, save_model
    from factory.model.presets import PRESETS, VocabSize

    kind = task_type(task, LABELS[task])
    config = PRESETS[preset].config(VocabSize.parse(vocab), labels=kind.model_labels, problem_type=kind.problem_type)
    save_model(build_model(config, kind.head, seed=0), folder)
    ours, with_sift = load_model(folder), load_model(folder)
    settings = FinetuneSettings(sift=True)
    perturbation = sift.attach(with_sift, settings.sift_learning_rate, settings.sift_init)
    theirs = getattr(transformers, TASKS[task][0]).from_pretrained(folder)
    assert theirs.config.num_labels == len(kind.model_labels) and theirs.config.problem_type == kind.problem_type
    return kind, config, ours, with_sift, perturbation, theirs, settings


def _step(model, run_loss):
    """One timed step: the loss, backward, AdamW, zero_grad; returns (CPU s, wall s)."""
    optimizer = model._bench_optimizer
    with timed() as t:
        loss = run_loss()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return t.cpu_s, t.wall_s


def time_task(task: str, args: argparse.Namespace, accelerator) -> dict:
    from factory.evaluate.finetune import step_loss

    _, batch, length = TASKS[task]
    with tempfile.TemporaryDirectory() as tmp:
        kind, config, ours, with_sift, perturbation, theirs, settings = _models(task, args.preset, args.vocab,
                                                                                 Path(tmp))  # fmt: skip
    ids, mask, targets, hf_targets = _inputs(task, batch, length, config.vocab_size, max(1, len(kind.labels)), 0)
    plain = settings.__class__()

    def ours_loss(model=ours, p=None, s=plain):
        return step_loss(accelerator, model, kind, ids, mask, targets, s, p)

    def hf_loss():
        return theirs(input_ids=ids, attention_mask=mask, **hf_targets).loss

    for m in (ours, with_sift, theirs):  # the same loss with dropout off: the steps compute the same thing
        m.eval()
    with torch.no_grad():
        same = abs(ours_loss().item() - hf_loss().item())
    arms = {
        "transformers": (theirs, hf_loss),
        "ours": (ours, ours_loss),
        "ours+SiFT": (with_sift, lambda: ours_loss(with_sift, perturbation, settings)),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    for model, _ in arms.values():
        model.train()
        model._bench_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    names = list(arms)
    for r in range(args.warmup + args.iters):
        for name in names[r % 3 :] + names[: r % 3]:  # rotate the order each round
            model, loss = arms[name]
            t = _step(model, loss)
            if r >= args.warmup:
                times[name].append(t)
    out = {"task": task, "batch": batch, "length": length, "loss_diff_no_dropout": same}
    for name, ts in times.items():
        out[name] = {"cpu_s": statistics.median(c for c, _ in ts), "wall_s": statistics.median(w for _, w in ts)}
    return out


# ---- QA post-processing ---------------------------------------------------------------------------------------
def qa_set(text: Path, tokenizer_folder: Path, n: int, seed: int = 0):
    """`n` SQuAD-style rows from real text (bench/data/eval_data.py's rule on 100+ word contexts) -> examples,
    windows."""
    from bench.data.eval_data import qa_rows
    from factory.evaluate.data import examples_of
    from factory.evaluate.qa import QASettings, qa_features
    from factory.model.tokenizer import Tokenizer

    lines = [x.strip() for x in text.read_text(encoding="utf-8").splitlines() if x.strip()]
    contexts, current = [], []
    for line in lines:  # consecutive lines joined into contexts of 100+ words
        current.append(line)
        if sum(len(x.split()) for x in current) >= 100:
            contexts.append(" ".join(current))
            current = []
    rows = qa_rows(contexts, "en", n, random.Random(seed))
    if len(rows) < n:
        raise SystemExit(f"{text} gives {len(rows)} contexts of 100+ words; {n} are needed")
    examples = examples_of("qa", [(f"row {k}", r) for k, r in enumerate(rows)],
                           {"question": "question", "context": "context", "answers": "answers", "id": "id"}, ())
    features = qa_features(Tokenizer.from_folder(tokenizer_folder), examples, 384, QASettings(doc_stride=128))
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(len(f.ids), 2, generator=g) * 3 for f in features]
    return examples, features, logits


def utils_qa_postprocess(examples: list[dict], features: list[dict], predictions, version_2: bool,
                         n_best_size: int = 20, max_answer_length: int = 30, null_threshold: float = 0.0):  # fmt: skip
    """The anchor: transformers' examples/pytorch/question-answering/utils_qa.py `postprocess_qa_predictions`,
    step for step (written here, not imported). Returns (answer per id, null score diff per id, n-best per id)."""
    all_start, all_end = predictions
    index_of = {e["id"]: i for i, e in enumerate(examples)}
    per_example = collections.defaultdict(list)
    for i, f in enumerate(features):
        per_example[index_of[f["example_id"]]].append(i)
    answers, diffs, nbest = collections.OrderedDict(), collections.OrderedDict(), collections.OrderedDict()
    for k, example in enumerate(examples):
        null, prelim = None, []
        for i in per_example[k]:
            start_logits, end_logits, offsets = all_start[i], all_end[i], features[i]["offset_mapping"]
            score = start_logits[0] + end_logits[0]
            if null is None or null["score"] > score:
                null = {"offsets": (0, 0), "score": score, "start_logit": start_logits[0], "end_logit": end_logits[0]}
            starts = np.argsort(start_logits)[-1 : -n_best_size - 1 : -1].tolist()
            ends = np.argsort(end_logits)[-1 : -n_best_size - 1 : -1].tolist()
            for s in starts:
                for e in ends:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    prelim.append({"offsets": (offsets[s][0], offsets[e][1]), "score": start_logits[s] + end_logits[e],
                                   "start_logit": start_logits[s], "end_logit": end_logits[e]})  # fmt: skip
        if version_2:
            prelim.append(null)
            null_score = null["score"]  # kept: the n-best loop below pops "score" from this same dict
        best = sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best_size]
        if version_2 and not any(p["offsets"] == (0, 0) for p in best):
            best.append(null)
        for p in best:
            a, b = p.pop("offsets")
            p["text"] = example["context"][a:b]
        if not best or (len(best) == 1 and best[0]["text"] == ""):
            best.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        scores = np.array([p.pop("score") for p in best])
        exp = np.exp(scores - np.max(scores))
        for prob, p in zip(exp / exp.sum(), best, strict=True):
            p["probability"] = prob
        if not version_2:
            answers[example["id"]] = best[0]["text"]
        else:
            j = 0
            while best[j]["text"] == "":
                j += 1
            diff = null_score - best[j]["start_logit"] - best[j]["end_logit"]
            diffs[example["id"]] = float(diff)
            answers[example["id"]] = "" if diff > null_threshold else best[j]["text"]
        nbest[example["id"]] = [
            {key: (float(v) if isinstance(v, (np.float16, np.float32, np.float64)) else v) for key, v in p.items()}
            for p in best
        ]
    return answers, diffs, nbest


def time_postprocess(args: argparse.Namespace, qa: tuple) -> dict:
    from factory.evaluate.runner import task_type

    examples, features, logits = qa
    hf_examples = [{"id": e.id, "context": e.context} for e in examples]
    hf_features = [{"example_id": examples[f.example].id, "offset_mapping": f.spans} for f in features]
    out = {"examples": len(examples), "windows": len(features)}
    for version_2 in (False, True):
        kind = task_type("qa", (), (), qa_metric="squad_v2" if version_2 else "squad", version_2=version_2)
        runs: dict[str, list[tuple[float, float]]] = {"utils_qa": [], "ours": []}
        for r in range(args.warmup + args.iters):
            for name in ("utils_qa", "ours") if r % 2 == 0 else ("ours", "utils_qa"):
                with timed() as t:
                    if name == "ours":
                        outputs = [kind.output(x, len(x)) for x in logits]
                        ours = kind.predictions(examples, features, outputs)
                    else:
                        arrays = [x.numpy() for x in logits]
                        theirs, diffs, _ = utils_qa_postprocess(hf_examples, hf_features, ([a[:, 0] for a in arrays],
                                                                [a[:, 1] for a in arrays]), version_2)  # fmt: skip
                if r >= args.warmup:
                    runs[name].append((t.cpu_s, t.wall_s))
        agree = sum(o.text == theirs[e.id] for o, e in zip(ours, examples, strict=True))
        diff_gap = max(abs(o.null_score_diff - diffs[e.id]) for o, e in zip(ours, examples, strict=True)) \
            if version_2 else None  # fmt: skip
        scale = 1000 / len(examples)
        out["v2" if version_2 else "v1"] = {
            "agree": agree,
            "max_null_diff_gap": diff_gap,
            **{name: {"cpu_s_per_1000": statistics.median(c for c, _ in ts) * scale,
                      "wall_s_per_1000": statistics.median(w for _, w in ts) * scale} for name, ts in runs.items()},
        }  # fmt: skip
    return out


# ---- report ---------------------------------------------------------------------------------------------------
def main() -> None:
    p = make_parser(__spec__, __doc__)
    p.add_argument("--preset", default="xsmall", help="model size preset (default xsmall)")
    p.add_argument("--vocab", default="128k", help="vocabulary size of the random model (default 128k, the v3's)")
    p.add_argument("--tasks", default=",".join(TASKS), help="task types to time")
    p.add_argument("--iters", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    add_threads(p)
    p.add_argument("--tokenizer", type=Path, required=True, help="a folder with spm.model (the QA windows)")
    p.add_argument("--text", type=Path, default=Path("/work/real/en.txt"), help="real text for the QA contexts")
    p.add_argument("--qa-examples", type=int, default=1000, help="QA examples post-processed (default 1000)")
    p.add_argument("--json", type=Path, default=Path(__file__).parents[1] / "eval_speed.json")  # bench/, git-ignored
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    qa = qa_set(args.text, args.tokenizer, args.qa_examples)  # first: a set that cannot be made stops the run now
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch thread(s)"
    report = {"machine": machine, "torch": torch.__version__, "preset": args.preset, "vocab": args.vocab, "steps": []}
    for t in (t.strip() for t in args.tasks.split(",") if t.strip()):
        report["steps"].append(time_task(t, args, accelerator))
        args.json.write_text(json.dumps(report, indent=2) + "\n")  # each figure kept as soon as it is measured
    report["qa_postprocess"] = post = time_postprocess(args, qa)
    steps = report["steps"]
    print(f"fine-tuning step, {args.preset} (vocab {args.vocab}), median of {args.iters} — {machine}")
    print(f"{'task':<15}{'batch x len':>12}{'HF ms':>9}{'ours ms':>9}{'ours/HF':>9}{'+SiFT ms':>10}{'SiFT/off':>9}"
          f"{'|loss diff|':>12}  (CPU time; wall in the JSON)")  # fmt: skip
    for s in steps:
        hf, ours, sift = (1000 * s[k]["cpu_s"] for k in ("transformers", "ours", "ours+SiFT"))
        print(f"{s['task']:<15}{str(s['batch']) + ' x ' + str(s['length']):>12}{hf:>9.0f}{ours:>9.0f}"
              f"{ours / hf:>8.2f}x{sift:>10.0f}{sift / ours:>8.2f}x{s['loss_diff_no_dropout']:>12.1e}")  # fmt: skip
    print(f"QA post-processing, {post['examples']} examples ({post['windows']} windows), per 1,000 examples:")
    print(f"{'':<6}{'utils_qa s':>11}{'ours s':>9}{'ours/utils_qa':>15}{'same answers':>14}")
    for v in ("v1", "v2"):
        x = post[v]
        a, b = x["utils_qa"]["cpu_s_per_1000"], x["ours"]["cpu_s_per_1000"]
        print(f"{v:<6}{a:>11.3f}{b:>9.3f}{b / a:>14.2f}x{x['agree']:>9}/{post['examples']}"
              + (f"  (max |null diff| gap {x['max_null_diff_gap']:.1e})" if x["max_null_diff_gap"] is not None else ""))
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
