"""The model card's results: the files `factory eval` wrote, as model-index entries and tables.

The XNLI suite goes into the model-index and a table beside the published references (dev-set accuracies per
language). Parallel retrieval gets a table of its own (no model-index entry: the Hub has no task for it). When
an evaluation ran with `--control random`, both tables show the random-init control and the gain beside the
model, so a reader sees what pre-training bought. Other suites are skipped, with a log line.
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


CARD_SUITES = ("xnli", "retrieval")


def read_results(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """{suite: the first results file (schema factory.eval/v1) of it} for the suites the card shows, each file
    read once; every file given must be a results file, and other suites are skipped with a log line."""
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = _read_one(path)
        suite = data.get("suite")
        if suite in CARD_SUITES:
            found.setdefault(suite, data)
        else:
            logger.info("skipping %s: suite %s is not shown in the card", path, suite)
    return found


def _read_one(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FactoryError(f"--results {path} does not exist; give the results.json that `factory eval` wrote")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FactoryError(f"{path} is not valid JSON ({e}); run `factory eval` again") from None
    if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA or not isinstance(data.get("results"), dict):
        raise FactoryError(f"{path} is not a {RESULTS_SCHEMA} results file; give the results.json `factory eval` wrote")
    return data


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

    ours = [(res["results"][lang].get(split) or {}) for lang in langs]
    avg = (res.get("average") or {}).get(split) or {}
    runs = res.get("runs")
    several = isinstance(runs, int) and runs > 1  # a standard deviation over one run says nothing
    std = avg.get("std")
    avg_text = _pct(avg.get("accuracy")) + (f" ± {std:.1f}" if several and isinstance(std, (int, float)) else "")
    rows = [f"| **{name}** | {avg_text} | " + " | ".join(_pct(r.get("accuracy")) for r in ours) + " |"]
    for model, ref in (res.get("references") or {}).items():
        rows.append(
            f"| {model} (published) | {_pct(ref.get('avg'))} | " + " | ".join(_pct(ref.get(x)) for x in langs) + " |"
        )
    if "control" in res:  # --control random: the same network untrained, then what pre-training added
        control = [((res["control"].get(lang) or {}).get(split) or {}) for lang in langs]
        control_avg = ((res.get("control_average") or {}).get(split) or {}).get("accuracy")
        rows.append("| random-init control | " + _pct(control_avg) + " | "
                    + " | ".join(_pct(c.get("accuracy")) for c in control) + " |")  # fmt: skip
        gain = res.get("gain") or {}
        rows.append("| gain over the control (points) | " + signed((gain.get("avg") or {}).get(split)) + " | "
                    + " | ".join(signed((gain.get(lang) or {}).get(split)) for lang in langs) + " |")  # fmt: skip
    seeds = res.get("seeds") or []
    how = (
        f"Zero-shot cross-lingual transfer: fine-tuned on {res.get('train_language', 'en')} only and evaluated on the "
        f"{'validation (dev)' if split == 'validation' else split} set of each language; accuracy in %"
        + (f", mean ± std over {runs} runs (seeds {', '.join(map(str, seeds))})" if several else "")
        + (f", one run (seed {seeds[0]})" if not several and len(seeds) == 1 else "")
        + ". Published rows are the numbers reported by their authors (the avg column is theirs, over all 15 "
        "languages)." + (control_note(fine_tuned=True) if "control" in res else "")
    )
    return "## Results: XNLI\n\n" + how + "\n\n" + header + "\n" + "\n".join(rows)


def control_note(fine_tuned: bool) -> str:
    """What the control rows are, for the sentence under a table."""
    how = "fine-tuned and evaluated" if fine_tuned else "evaluated"
    return (" The random-init control is the same network and tokenizer with freshly initialised weights (a fixed "
            f"control seed), {how} exactly as the model: the gain is what pre-training bought.")  # fmt: skip


def signed(value: Any) -> str:
    return f"{value:+.1f}" if isinstance(value, (int, float)) else "-"


def retrieval_section(res: dict[str, Any] | None) -> str:
    """ "## Results: parallel retrieval": accuracy@1 per language and direction, with the control when measured."""
    if not res:
        return ""
    pivot, langs = res.get("pivot", "en"), list(res["results"])
    has_control = "control" in res
    head = f"| Language | x → {pivot} | {pivot} → x |" + (" control → / ← | gain → / ← |" if has_control else "")
    rule = "|---|---|---|" + ("---|---|" if has_control else "")

    def acc(block: dict[str, Any] | None, direction: str) -> Any:
        return ((block or {}).get(direction) or {}).get("accuracy")

    def row(label: str, ours: dict | None, control: dict | None, gain: dict | None) -> str:
        text = f"| {label} | {_pct(acc(ours, 'to_pivot'))} | {_pct(acc(ours, 'from_pivot'))} |"
        if has_control:
            text += f" {_pct(acc(control, 'to_pivot'))} / {_pct(acc(control, 'from_pivot'))} |"
            text += f" {signed((gain or {}).get('to_pivot'))} / {signed((gain or {}).get('from_pivot'))} |"
        return text

    control, gain = res.get("control") or {}, res.get("gain") or {}
    rows = [row(lang, res["results"][lang], control.get(lang), gain.get(lang)) for lang in langs]
    rows.append(row("**avg**", res.get("average"), res.get("control_average"), gain.get("avg")))
    protocol = res.get("protocol") or {}
    pool = next((b.get("n") for b in (res["results"][langs[0]] or {}).values() if isinstance(b, dict)), None)
    how = (
        f"Parallel-sentence retrieval without fine-tuning: each text is encoded, {protocol.get('pooling', 'mean')}-"
        f"pooled at layer {protocol.get('layer_index', '?')} of {protocol.get('depth', '?')}"
        + (", each language's vectors centred" if protocol.get("centre") else "")
        + "; accuracy@1 (%) of finding the translation by cosine similarity"
        + (f" among {pool:,} candidates" if isinstance(pool, int) else "")
        + f", in both directions against {pivot}."
        + (control_note(fine_tuned=False) if has_control else "")
    )
    return "## Results: parallel retrieval\n\n" + how + "\n\n" + head + "\n" + rule + "\n" + "\n".join(rows)


def _pct(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"
