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


def markdown(report: dict[str, Any]) -> str:
    """results.md: our accuracy per language beside the published references."""
    refs = report["references"]
    runs, langs = report["runs"], report["languages"]
    lines = [
        f"# {report['suite'].upper()} zero-shot: fine-tuned on `{report['train_language']}`, tested on "
        f"{len(langs)} language(s)",
        "",
        f"Model `{report['model']}`; {runs} run(s), seeds {report['seeds']}; accuracy in %"
        + (" (mean ± std over runs)." if runs > 1 else "."),
        "References are published zero-shot **dev** (validation) accuracies, from the suite file.",
        "",
        "| language | ours validation | ours test | " + " | ".join(refs) + " |",
        "|---|---|---|" + "---|" * len(refs),
    ]
    for lang in [*langs, "avg"]:
        entry = report["average"] if lang == "avg" else report["results"][lang]
        name = f"**avg** ({len(langs)} languages)" if lang == "avg" else lang
        ref_cells = [f"{table[lang]:.1f}" if lang in table else "-" for table in refs.values()]
        row = [name, _cell(entry.get("validation"), runs), _cell(entry.get("test"), runs), *ref_cells]
        lines.append("| " + " | ".join(row) + " |")
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
    for name, table in report["references"].items():
        series.append((name, [table.get(l, float("nan")) for l in langs], None))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(langs) * len(series) / 1.5), 4.0))
    for k, (name, values, errors) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(langs))]
        ax.bar(xs, values, width, yerr=errors, label=name, capsize=2)
    chance = 100.0 / num_labels
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.0f}%)")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"{split} accuracy (%)")
    ax.set_title(f"{report['suite'].upper()} zero-shot, fine-tuned on {report['train_language']}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
