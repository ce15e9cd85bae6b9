"""The model card's XNLI part: the results files `factory eval` wrote, as model-index entries and a table.

Only the results of the XNLI suite go into the card (other suites are skipped, with a log line): its
published references are dev-set accuracies per language, which the table puts beside ours.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from factory.errors import FactoryError

logger = logging.getLogger(__name__)

RESULTS_SCHEMA = "factory.eval/v1"


def find_results(model_dir: Path, given: list[Path]) -> list[Path]:
    """--results files first, then DIR/results.json and DIR/eval/*/results.json."""
    found = list(given)
    for path in [model_dir / "results.json", *sorted(model_dir.glob("eval/*/results.json"))]:
        if path.is_file() and path not in found:
            found.append(path)
    return found


def read_results(paths: list[Path]) -> dict[str, Any] | None:
    """The first XNLI results file (schema factory.eval/v1); other suites are not in the card yet."""
    for path in paths:
        if not path.is_file():
            raise FactoryError(f"--results {path} does not exist; give the results.json that `factory eval` wrote")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FactoryError(f"{path} is not valid JSON ({e}); run `factory eval` again") from None
        if (
            not isinstance(data, dict)
            or data.get("schema") != RESULTS_SCHEMA
            or not isinstance(data.get("results"), dict)
        ):
            raise FactoryError(
                f"{path} is not a {RESULTS_SCHEMA} results file; give the results.json `factory eval` wrote"
            )
        if data.get("suite") == "xnli":
            return data
        logger.info("skipping %s: suite %s is not shown in the card", path, data.get("suite"))
    return None


def results_split(results: dict[str, Any]) -> str:
    """Validation (dev) when every language has it, as the published references are dev accuracy; else test."""
    per_lang = results["results"].values()
    return "validation" if all("validation" in r for r in per_lang) else "test"


def eval_results(results: dict[str, Any] | None, name: str) -> list:
    """One model-index entry per language evaluated: XNLI accuracy (percent) on one split."""
    from huggingface_hub import EvalResult

    if not results:
        return []
    split = results_split(results)
    train = results.get("train_language", "en")
    suite = str(results.get("suite", "xnli"))
    data = str((results.get("settings") or {}).get("data") or "hf:facebook/xnli")
    # A Hub dataset id only when the data came from the Hub; local files are named as such, not as XNLI's.
    dataset_type = data[3:].split(":")[0] if data.startswith("hf:") else f"local:{Path(data).name}"
    out = []
    for lang, splits in results["results"].items():
        accuracy = (splits.get(split) or {}).get("accuracy")
        if accuracy is None:
            continue
        out.append(
            EvalResult(
                task_type="text-classification",
                task_name="Natural Language Inference",
                dataset_type=dataset_type,
                dataset_name=f"{suite.upper()} ({lang})"
                if data.startswith("hf:")
                else f"{suite}-format {data} ({lang})",
                dataset_config=lang,
                dataset_split=split,
                metric_type="accuracy",
                metric_value=round(float(accuracy), 2),
                metric_name=f"accuracy (zero-shot, fine-tuned on {train})" if lang != train else "accuracy",
            )
        )
    return out


def results_section(res: dict[str, Any] | None, name: str) -> str:
    """ "## Results: XNLI": ours beside the published references, on the split of the model-index."""
    if not res:
        return ""
    split = results_split(res)
    langs = list(res["results"])
    header = "| Model | avg | " + " | ".join(langs) + " |\n|---|---|" + "---|" * len(langs)

    def cell(value: Any) -> str:
        return f"{value:.1f}" if isinstance(value, (int, float)) else "-"

    ours = [(res["results"][lang].get(split) or {}) for lang in langs]
    avg = (res.get("average") or {}).get(split) or {}
    runs = res.get("runs")
    several = isinstance(runs, int) and runs > 1  # a standard deviation over one run says nothing
    std = avg.get("std")
    avg_text = cell(avg.get("accuracy")) + (f" ± {std:.1f}" if several and isinstance(std, (int, float)) else "")
    rows = [f"| **{name}** | {avg_text} | " + " | ".join(cell(r.get("accuracy")) for r in ours) + " |"]
    for model, ref in (res.get("references") or {}).items():
        rows.append(
            f"| {model} (published) | {cell(ref.get('avg'))} | " + " | ".join(cell(ref.get(x)) for x in langs) + " |"
        )
    seeds = res.get("seeds") or []
    how = (
        f"Zero-shot cross-lingual transfer: fine-tuned on {res.get('train_language', 'en')} only and evaluated on the "
        f"{'validation (dev)' if split == 'validation' else split} set of each language; accuracy in %"
        + (f", mean ± std over {runs} runs (seeds {', '.join(map(str, seeds))})" if several else "")
        + (f", one run (seed {seeds[0]})" if not several and len(seeds) == 1 else "")
        + ". Published rows are the numbers reported by their authors (the avg column is theirs, over all 15 "
        "languages)."
    )
    return "## Results: XNLI\n\n" + how + "\n\n" + header + "\n" + "\n".join(rows)
