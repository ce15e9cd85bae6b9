"""Results of an evaluation: accuracies (mean and std over runs), results.json, results.md, the chart, predictions.

Accuracies are percentages (0-100) as in the papers; `std` is the sample standard deviation over runs
(0 for one run). The average is taken per run over the evaluated languages, then over runs.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from factory.evaluate.data import Example

SCHEMA = "factory.eval/v1"


def accuracy(predictions: list[int], labels: list[int]) -> float:
    return 100.0 * sum(p == g for p, g in zip(predictions, labels, strict=True)) / max(1, len(labels))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(
    per_run: dict[str, dict[str, list[float]]], counts: dict[str, dict[str, int]], splits: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """{lang: {split: [acc per run]}} -> (results, average) in the results.json shape."""
    results: dict[str, Any] = {}
    for lang, by_split in per_run.items():
        results[lang] = {}
        for split in splits:
            mean, std = mean_std(by_split[split])
            results[lang][split] = {
                "accuracy": round(mean, 2),
                "std": round(std, 2),
                "per_run": [round(a, 2) for a in by_split[split]],
                "n": counts[lang][split],
            }
    average: dict[str, Any] = {}
    for split in splits:
        runs = len(next(iter(per_run.values()))[split])
        per_run_avg = [statistics.fmean(per_run[lang][split][r] for lang in per_run) for r in range(runs)]
        mean, std = mean_std(per_run_avg)
        average[split] = {
            "accuracy": round(mean, 2),
            "std": round(std, 2),
            "per_run": [round(a, 2) for a in per_run_avg],
        }
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


def _cell(entry: dict[str, Any] | None, runs: int) -> str:
    if entry is None:
        return "-"
    return f"{entry['accuracy']:.1f}" + (f" ± {entry['std']:.1f}" if runs > 1 else "")


def _control_header(report: dict[str, Any]) -> list[str]:
    return ["control validation", "control test", "gain validation", "gain test"] if "control" in report else []


def _control_cells(report: dict[str, Any], lang: str, keys: tuple[str, ...], runs: int = 1) -> list[str]:
    """The control's accuracy per key, then the gain (pre-trained - control, in points) per key."""
    if "control" not in report:
        return []
    entry = report["control_average"] if lang == "avg" else report["control"][lang]
    gain = report["gain"].get(lang, {})
    return [_cell(entry.get(k), runs) for k in keys] + [f"{gain[k]:+.1f}" if k in gain else "-" for k in keys]


def _control_note(report: dict[str, Any]) -> list[str]:
    if "control" not in report:
        return []
    c = report["control_model"]
    return [
        "",
        f"Control: the same config and tokenizer, randomly initialised ({c['init']}, seed {c['seed']}, the same "
        "for every run) and evaluated with the same seeds and settings; gain = ours - control, in points.",
    ]


def markdown(report: dict[str, Any]) -> str:
    """results.md: our accuracy per language beside the published references."""
    refs = report["references"]
    runs, langs = report["runs"], report["languages"]
    header = ["language", "ours validation", "ours test", *_control_header(report), *refs]
    lines = [
        f"# {report['suite'].upper()} zero-shot: fine-tuned on `{report['train_language']}`, tested on "
        f"{len(langs)} language(s)",
        "",
        f"Model `{report['model']}`; {runs} run(s), seeds {report['seeds']}; accuracy in %"
        + (" (mean ± std over runs)." if runs > 1 else "."),
        "References are published zero-shot **dev** (validation) accuracies, from the suite file.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for lang, entry, name in _language_rows(report):
        ref_cells = [f"{table[lang]:.1f}" if lang in table else "-" for table in refs.values()]
        row = [name, _cell(entry.get("validation"), runs), _cell(entry.get("test"), runs)]
        row += [*_control_cells(report, lang, ("validation", "test"), runs), *ref_cells]
        lines.append("| " + " | ".join(row) + " |")
    lines += _control_note(report)
    if refs and len(langs) != len(next(iter(refs.values()))) - 1:
        lines += ["", "Our average covers only the languages above; the references' average covers all of theirs."]
    s = report["settings"]
    lines += [
        "",
        f"Settings: lr {s['learning_rate']}, {s['epochs']} epochs, batch {s['batch_size']}, max length "
        f"{s['max_length']}, warm-up {s['warmup']} of {s['total_steps']} steps, linear schedule, "
        f"AdamW eps {s['adam_epsilon']}, weight decay {s['weight_decay']}, {s['processes']} process(es), "
        f"precision {s['mixed_precision']}.",
        "",
    ]
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path, num_labels: int) -> None:
    """A bar per language: ours (validation, with the std over runs) beside each reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = [*report["languages"], "avg"]
    split = "validation" if "validation" in report["average"] else "test"
    ours = [report["average"][split] if l == "avg" else report["results"][l][split] for l in langs]
    errors = [e["std"] for e in ours] if report["runs"] > 1 else None
    series = [(f"ours ({Path(report['model']).name})", [e["accuracy"] for e in ours], errors)]
    if "control" in report:
        control = [report["control_average"][split] if l == "avg" else report["control"][l][split] for l in langs]
        series.append(("random-init control", [e["accuracy"] for e in control], errors and [e["std"] for e in control]))
    for name, table in report["references"].items():
        series.append((name, [table.get(l, float("nan")) for l in langs], None))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(langs) * len(series) / 1.5), 4.0))
    for k, (name, values, errors) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(langs))]
        ax.bar(xs, values, width, yerr=errors, label=name, capsize=2)
    if "control" in report:
        _annotate_gain(ax, series[0][1], series[1][1], len(series))
    chance = 100.0 / num_labels
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.0f}%)")
    ax.set_xticks(range(len(langs)), langs)
    _axes(ax, f"{split} accuracy (%)", "control" in report)
    ax.set_title(f"{report['suite'].upper()} zero-shot, fine-tuned on {report['train_language']}"
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
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for lang, entry, name in _language_rows(report):
        n = "-" if lang == "avg" else str(entry["to_pivot"]["n"])
        row = [name, n, *(f"{entry[d]['accuracy']:.1f}" for d in ("to_pivot", "from_pivot"))]
        row += _control_cells(report, lang, ("to_pivot", "from_pivot"))
        lines.append("| " + " | ".join(row) + " |")
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
