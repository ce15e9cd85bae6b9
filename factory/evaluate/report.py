"""Results of an evaluation: accuracies (mean and std over runs), results.json, results.md, the chart, predictions.

Accuracies are percentages (0-100) as in the papers; `std` is the sample standard deviation over runs
(0 for one run). The average is taken per run over the evaluated languages, then over runs.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from factory.core.markdown import markdown_table
from factory.evaluate.data import Example

SCHEMA = "factory.eval/v1"


def accuracy(predictions: list[int], labels: list[int]) -> float:
    return 100.0 * sum(p == g for p, g in zip(predictions, labels, strict=True)) / max(1, len(labels))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(
    per_run: dict[str, dict[str, list]],
    counts: dict[str, dict[str, int]],
    splits: tuple[str, ...],
    metrics: tuple[str, ...] = ("accuracy",),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """{lang: {split: [scores per run]}} -> (results, average) in the results.json shape. A run's scores are
    {metric: percent} (a bare number is an accuracy). Each entry has every metric's mean, and `std`/`per_run` of
    the first (the main one); with several metrics also `metric_std` for each."""

    def scores(value) -> dict[str, float]:
        return value if isinstance(value, dict) else {"accuracy": value}

    def entry(runs: list[dict[str, float]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        stds = {}
        for m in metrics:
            mean, std = mean_std([r[m] for r in runs])
            out[m], stds[m] = round(mean, 2), round(std, 2)
        out["std"], out["per_run"] = stds[metrics[0]], [round(r[metrics[0]], 2) for r in runs]
        if len(metrics) > 1:
            out["metric_std"] = stds
        return out

    results: dict[str, Any] = {}
    for lang, by_split in per_run.items():
        results[lang] = {split: {**entry([scores(v) for v in by_split[split]]), "n": counts[lang][split]}
                         for split in splits}  # fmt: skip
    average: dict[str, Any] = {}
    for split in splits:
        runs = len(next(iter(per_run.values()))[split])
        per_run_avg = [
            {m: statistics.fmean(scores(per_run[lang][split][r])[m] for lang in per_run) for m in metrics}
            for r in range(runs)
        ]
        average[split] = entry(per_run_avg)
    return results, average


def write_predictions(
    folder: Path, lang: str, split: str, examples: list[Example], predictions: list[list[int]], labels: tuple[str, ...]
) -> None:
    """predictions/{lang}.{split}.jsonl: one row per example, gold `label` and `predictions` (one id per run)."""
    folder.mkdir(exist_ok=True)
    with open(folder / f"{lang}.{split}.jsonl", "w", encoding="utf-8") as f:
        for i, example in enumerate(examples):
            row = {"index": i, "text_a": example.text_a, "text_b": example.text_b, "label": example.label}
            row["predictions"] = [run[i] for run in predictions]
            row["predicted_label"] = labels[predictions[0][i]]  # first run, for reading by eye
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_task_predictions(folder: Path, lang: str, split: str, examples: list, runs: list[list], task) -> None:
    """predictions/{lang}.{split}.jsonl for any task type: classification as `write_predictions`; otherwise
    {"index", "id", "gold", "prediction" (run 1, as a reader wants it: a score, the tags, the answer text),
    "predictions" (every run)}, and for QA the no-answer score of run 1."""
    if task.name == "classification":
        return write_predictions(folder, lang, split, examples, runs, task.labels)
    folder.mkdir(exist_ok=True)
    with open(folder / f"{lang}.{split}.jsonl", "w", encoding="utf-8") as f:
        for i, example in enumerate(examples):
            row = {"index": i, "id": getattr(example, "id", "") or str(i), "gold": task.gold(example)}
            row["prediction"] = task.shown(runs[0][i])
            row["predictions"] = [task.shown(run[i]) for run in runs]
            if task.name == "qa":
                row["no_answer_score"] = round(runs[0][i].null_score_diff, 4)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _cell(entry: dict[str, Any] | None, runs: int, metric: str = "accuracy") -> str:
    if entry is None or metric not in entry:
        return "-"
    std = (entry.get("metric_std") or {}).get(metric, entry.get("std", 0.0))
    return f"{entry[metric]:.1f}" + (f" ± {std:.1f}" if runs > 1 else "")


def _main(report: dict[str, Any]) -> str:
    return report.get("main_metric", "accuracy")


def _splits(report: dict[str, Any]) -> list[str]:
    """The split columns: XNLI-style tables always show validation and test ("-" where not evaluated)."""
    splits = list(report["average"])
    return ["validation", "test"] if set(splits) <= {"validation", "test"} else splits


def _control_header(report: dict[str, Any]) -> list[str]:
    if "control" not in report:
        return []
    return [f"control {s}" for s in _splits(report)] + [f"gain {s}" for s in _splits(report)]


def _control_cells(report: dict[str, Any], lang: str, keys: tuple[str, ...], runs: int = 1) -> list[str]:
    """The control's main metric per key, then the gain (pre-trained - control, in points) per key."""
    if "control" not in report:
        return []
    entry = report["control_average"] if lang == "avg" else report["control"][lang]
    gain = report["gain"].get(lang, {})
    metric = _main(report)
    return [_cell(entry.get(k), runs, metric) for k in keys] + [f"{gain[k]:+.1f}" if k in gain else "-" for k in keys]


def _control_note(report: dict[str, Any]) -> list[str]:
    if "control" not in report:
        return []
    c = report["control_model"]
    return [
        "",
        f"Control: the same config and tokenizer, randomly initialised ({c['init']}, seed {c['seed']}, the same "
        "for every run) and evaluated with the same seeds and settings; gain = ours - control, in points.",
    ]


def _reference_cell(table: dict[str, float], lang: str, metrics: list[str]) -> str:
    """A reference for this row: its language's number, or (one-language tasks) one number per metric."""
    if lang in table:
        return f"{table[lang]:.1f}"
    values = [f"{table[m]:.1f}" for m in metrics if m in table]
    return "/".join(values) if values and lang != "avg" else "-"


def markdown(report: dict[str, Any]) -> str:
    """results.md: our scores per language (every metric, every split) beside the published references."""
    refs = report["references"]
    runs, langs, splits = report["runs"], report["languages"], _splits(report)
    metrics = report.get("metrics", ["accuracy"])
    if metrics == ["accuracy"]:
        ours = [f"ours {s}" for s in splits]
    else:
        ours = [f"{s} {m}" for s in splits for m in metrics]
    header = ["language", *ours, *_control_header(report), *refs]
    task = report.get("task", "classification")
    lines = [
        f"# {report['suite'].upper()}: fine-tuned on `{report['train_language']}`, tested on {len(langs)} "
        f"language(s)" + (" (zero-shot)" if len(langs) > 1 else ""),
        "",
        f"Model `{report['model']}`; task type {task}; {runs} run(s), seeds {report['seeds']}; "
        + ", ".join(metrics)
        + " in %"
        + (" (mean ± std over runs)." if runs > 1 else "."),
        "References are published numbers from the suite file (dev sets unless it says otherwise"
        + (f"; {', '.join(metrics)} where several" if len(metrics) > 1 else "")
        + ").",
        "",
    ]
    rows = []
    for lang, entry, name in _language_rows(report):
        cells = [_cell(entry.get(s), runs, m) for s in splits for m in (metrics if len(ours) > len(splits) else
                                                                          [metrics[0]])]  # fmt: skip
        row = [name, *cells, *_control_cells(report, lang, tuple(splits), runs)]
        row += [_reference_cell(table, lang, metrics) for table in refs.values()]
        rows.append(row)
    lines += markdown_table(header, rows)
    lines += _control_note(report)
    if refs and len(langs) > 1 and len(langs) != len(next(iter(refs.values()))) - 1:
        lines += ["", "Our average covers only the languages above; the references' average covers all of theirs."]
    s = report["settings"]
    lines += [
        "",
        f"Settings: lr {s['learning_rate']}, {s['epochs']} epochs, batch {s['batch_size']}, max length "
        f"{s['max_length']}, warm-up {s['warmup']} of {s['total_steps']} steps, linear schedule, "
        f"AdamW eps {s['adam_epsilon']}, weight decay {s['weight_decay']}, {s['processes']} process(es), "
        f"precision {s['mixed_precision']}" + (f", SiFT (lambda {s['sift_lambda']})" if s.get("sift") else "") + ".",
        "",
    ]
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path, num_labels: int) -> None:
    """A bar per language: ours (main metric on validation, else the first split, with the std over runs) beside
    the control and each reference; the chance line for classification."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = _main(report)
    langs = [*report["languages"], "avg"]
    split = headline_split(report)
    ours = [report["average"][split] if l == "avg" else report["results"][l][split] for l in langs]
    errors = [e["std"] for e in ours] if report["runs"] > 1 else None
    series = [(f"ours ({Path(report['model']).name})", [e[metric] for e in ours], errors)]
    if "control" in report:
        control = [report["control_average"][split] if l == "avg" else report["control"][l][split] for l in langs]
        series.append(("random-init control", [e[metric] for e in control], errors and [e["std"] for e in control]))
    for name, table in report["references"].items():
        series.append((name, [table.get(l, table.get(metric, float("nan"))) for l in langs], None))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(langs) * len(series) / 1.5), 4.0))
    for k, (name, values, errors) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(langs))]
        ax.bar(xs, [max(0.0, v) for v in values], width, yerr=errors, label=name, capsize=2)
    if "control" in report:
        _annotate_gain(ax, series[0][1], series[1][1], len(series))
    if report.get("task", "classification") == "classification" and num_labels:
        chance = 100.0 / num_labels
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.0f}%)")
    ax.set_xticks(range(len(langs)), langs)
    _axes(ax, f"{split} {metric} (%)", "control" in report)
    ax.set_title(f"{report['suite'].upper()}, fine-tuned on {report['train_language']}"
                 + (" (numbers: gain over the control)" if "control" in report else ""), fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _axes(ax, ylabel: str, control: bool) -> None:
    """0-100 % (headroom for the gain labels), the legend under the plot where it hides no bar."""
    ax.set_ylim(0, 108 if control else 100)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)


def _annotate_gain(ax, ours: list[float], control: list[float], n_series: int) -> None:
    """The gain (ours - control, points) above each pair of bars: the chart's reason to have a control."""
    width = 0.8 / n_series
    for i, (a, b) in enumerate(zip(ours, control, strict=True)):
        x = i + (0.5 - (n_series - 1) / 2) * width
        ax.text(x, max(a, b) + 1.5, f"{a - b:+.1f}", ha="center", fontsize=7)


# ---- retrieval -----------------------------------------------------------------------------------
def retrieval_markdown(report: dict[str, Any]) -> str:
    """results.md of `factory eval retrieval`: accuracy@1 per language and direction (and the control's)."""
    p, pivot, langs = report["protocol"], report["pivot"], report["languages"]
    to, back = f"x → {pivot}", f"{pivot} → x"
    header = ["language", "n", to, back]
    if "control" in report:
        header += [f"control {to}", f"control {back}", f"gain {to}", f"gain {back}"]
    lines = [
        f"# Parallel-sentence retrieval against `{pivot}`: {len(langs)} language(s)",
        "",
        f"Model `{report['model']}`, data `{report['data']}`. Accuracy@1 in %: each item's nearest neighbour "
        f"(cosine) among all `{pivot}` items paired with its language (n candidates; chance is 1/n).",
        f"Hidden state {p['layer_index']} of {p['depth']} (layer fraction {p['layer']}; 0 = embeddings), "
        f"{p['pooling_note']}, {'each language centred' if p['centre'] else 'not centred'}, "
        f"max length {p['max_length']}. No fine-tuning.",
        "",
    ]
    rows = []
    for lang, entry, name in _language_rows(report):
        n = "-" if lang == "avg" else str(entry["to_pivot"]["n"])
        row = [name, n, *(f"{entry[d]['accuracy']:.1f}" for d in ("to_pivot", "from_pivot"))]
        row += _control_cells(report, lang, ("to_pivot", "from_pivot"))
        rows.append(row)
    lines += markdown_table(header, rows)
    return "\n".join([*lines, *_control_note(report), ""])


def retrieval_chart(report: dict[str, Any], path: Path) -> None:
    """Bars per language: both directions, the control's beside them (with the gain), chance as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs, pivot = [*report["languages"], "avg"], report["pivot"]
    arms = [("ours", report["results"], report["average"])]
    if "control" in report:
        arms.append(("control", report["control"], report["control_average"]))
    series = [
        (f"{name} {lang_dir}", [(average if l == "avg" else table[l])[d]["accuracy"] for l in langs])
        for name, table, average in arms
        for d, lang_dir in (("to_pivot", f"x→{pivot}"), ("from_pivot", f"{pivot}→x"))
    ]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(langs) * len(series) / 1.5), 4.0))
    for k, (name, values) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(langs))]
        ax.bar(xs, values, width, label=name, hatch="//" if name.startswith("control") else None)
    if "control" in report:  # the gain of x -> pivot, between its two bars
        for i, lang in enumerate(langs):
            gain = report["gain"][lang].get("to_pivot")
            top = max(series[0][1][i], series[2][1][i])
            ax.text(i, top + 1.5, f"{gain:+.1f}", ha="center", fontsize=7)
    chance = statistics.fmean(report["results"][l]["to_pivot"]["chance"] for l in report["languages"])
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance (1/n, {chance:.1f}%)")
    ax.set_xticks(range(len(langs)), langs)
    _axes(ax, "accuracy@1 (%)", "control" in report)
    ax.set_title(f"Retrieval against {pivot}, hidden state {report['protocol']['layer_index']} of "
                 f"{report['protocol']['depth']}" + (f" (numbers: gain x→{pivot})" if "control" in report else ""),
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _language_rows(report: dict[str, Any]):
    """(language, its results, row name) for every language, then ("avg", the averages, "**avg** (N languages)")."""
    langs = report["languages"]
    for lang in [*langs, "avg"]:
        entry = report["average"] if lang == "avg" else report["results"][lang]
        yield lang, entry, (f"**avg** ({len(langs)} languages)" if lang == "avg" else lang)


# ---- a benchmark's summary -------------------------------------------------------------------------------
def headline_split(task: dict[str, Any]) -> str:
    """The split a summary shows: validation (the dev sets the references are) when the task has it."""
    splits = list(task["average"])
    return "validation" if "validation" in splits else splits[0]


def _reference_average(table: dict[str, float], metric: str) -> float | None:
    for key in ("avg", metric, "en"):
        if key in table:
            return table[key]
    return None


def benchmark_markdown(summary: dict[str, Any]) -> str:
    """One row per task: its main metric per language and averaged, the control, the gain and the references."""
    tasks = summary["tasks"]
    lines = [
        f"# {summary['suite'].upper()}: {len(tasks)} task(s), model `{summary['model']}`",
        "",
        "Each task's main metric in % (mean over runs), per language and averaged over the languages evaluated; "
        "details in <task>/results.md. References: published numbers from the suite file (their average covers "
        "all of their languages).",
        *_trained_on(tasks),
        "",
        *benchmark_table(tasks),
    ]
    if any("control" in t for t in tasks.values()):
        lines += ["", "Control: the same config and tokenizer, randomly initialised, fine-tuned with the same seeds "
                  "and settings; gain = ours - control, in points."]  # fmt: skip
    return "\n".join([*lines, ""])


def _trained_on(tasks: dict[str, dict[str, Any]]) -> list[str]:
    """The language each task fine-tuned on (--train-lang or the suite's), as each task's own results.md says it;
    retrieval fine-tunes nothing."""
    by_language: dict[str, list[str]] = {}
    for name, t in tasks.items():
        if t.get("train_language"):
            by_language.setdefault(t["train_language"], []).append(name)
    if not by_language:
        return []
    return ["Fine-tuned on " + "; on ".join(f"`{lang}`: {', '.join(names)}" for lang, names in by_language.items())
            + "."]  # fmt: skip


def benchmark_table(tasks: dict[str, dict[str, Any]]) -> list[str]:
    """The summary's Markdown table (also the model card's): one row per task."""
    languages = list(dict.fromkeys(lang for t in tasks.values() for lang in t["languages"]))
    references = list(dict.fromkeys(name for t in tasks.values() for name in t.get("references", {})))
    control = any("control" in t for t in tasks.values())
    header = ["task", "metric", "split", "avg", *(["control avg", "gain"] if control else []), *languages,
              *(f"{r} (published)" for r in references)]  # fmt: skip
    rows = []
    for name, t in tasks.items():
        split, metric = headline_split(t), t["main_metric"]
        row = [name, metric, split, f"{t['average'][split][metric]:.1f}"]
        if control:
            c = (t.get("control_average") or {}).get(split)
            gain = ((t.get("gain") or {}).get("avg") or {}).get(split)
            row += [f"{c[metric]:.1f}" if c else "-", f"{gain:+.1f}" if gain is not None else "-"]
        row += [f"{t['results'][lang][split][metric]:.1f}" if lang in t["results"] else "" for lang in languages]
        for r in references:
            value = _reference_average(t.get("references", {}).get(r, {}), metric)
            row.append(f"{value:.1f}" if value is not None else "-")
        rows.append(row)
    return markdown_table(header, rows)


def benchmark_chart(summary: dict[str, Any], path: Path) -> None:
    """Left: each task's average (ours, the control, the references); right: ours per task and language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = summary["tasks"]
    names = list(tasks)
    languages = list(dict.fromkeys(lang for t in tasks.values() for lang in t["languages"]))
    series = [("ours", [t["average"][headline_split(t)][t["main_metric"]] for t in tasks.values()])]
    if any("control" in t for t in tasks.values()):
        series.append(("random-init control", [
            ((t.get("control_average") or {}).get(headline_split(t)) or {}).get(t["main_metric"], float("nan"))
            for t in tasks.values()]))  # fmt: skip
    for r in dict.fromkeys(name for t in tasks.values() for name in t.get("references", {})):
        values = [_reference_average(t.get("references", {}).get(r, {}), t["main_metric"]) for t in tasks.values()]
        series.append((r, [float("nan") if v is None else v for v in values]))
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=(max(10.0, 1.2 * len(names) + 0.5 * len(languages) + 6), 4.5),
        gridspec_kw={"width_ratios": [max(1, len(names)), max(1, len(languages))]},
    )
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(names))]
        left.bar(xs, values, width, label=label, hatch="//" if label.startswith("random") else None)
    left.set_xticks(range(len(names)), [f"{n}\n{tasks[n]['main_metric']}" for n in names], fontsize=8)
    left.set_ylim(0, 100)
    left.set_ylabel("average over languages (%)")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    grid = [[(tasks[n]["results"].get(lang) or {}).get(headline_split(tasks[n]), {}).get(tasks[n]["main_metric"],
              float("nan")) for lang in languages] for n in names]  # fmt: skip
    image = right.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    right.set_xticks(range(len(languages)), languages, fontsize=8)
    right.set_yticks(range(len(names)), names, fontsize=8)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == v:  # not nan
                right.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "k")
    fig.colorbar(image, ax=right, fraction=0.04)
    right.set_title("ours per task and language (main metric, %)", fontsize=9)
    left.set_title(f"{summary['suite'].upper()}: task averages", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
