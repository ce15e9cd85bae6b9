"""The ladder's table (markdown), plot (PNG) and verdicts, from the cells' done.json records.

Input shape (bench.studies.quality_arms.collect): {cell: {arm: [record per seed]}}, a record holding `retrieval`
(acc@1, the mean of x->en and en->x over the languages) and `zero_shot` (classification accuracy averaged over
the non-English languages), both in percent, and for the pre-trained arms `pretrain` (steps, tokens, cpu_s).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

ARMS = ("factory", "anchor", "control")
METRICS = (("retrieval", "retrieval acc@1 (avg both directions)"), ("zero_shot", "zero-shot topic accuracy (avg)"))


def mean_std(records: list[dict], key: str) -> tuple[float, float] | None:
    values = [r[key] for r in records if r.get(key) is not None]
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(value: tuple[float, float] | None, seeds: int) -> str:
    if value is None:
        return "-"
    return f"{value[0]:.1f} ± {value[1]:.1f}" if seeds > 1 else f"{value[0]:.1f}"


def wins(arms: dict[str, list[dict]], arm: str = "factory") -> bool | None:
    """Does `arm` beat the control on both measures (means over seeds)? None until both are measured."""
    if arm not in arms or "control" not in arms:
        return None
    return all(mean_std(arms[arm], k)[0] > mean_std(arms["control"], k)[0] for k, _ in METRICS)


def size_key(cell: str) -> tuple[int, int]:
    """Cells from smallest to largest: hidden size first (it sets the parameters more than depth), then depth."""
    from factory.model.presets import PRESETS

    if cell in PRESETS:  # a preset's own shape (bench/device/gpu_proof.py's xsmall)
        layers, hidden = PRESETS[cell].layers, PRESETS[cell].hidden
    else:
        layers, hidden = (int(x) for x in cell.split("x"))
    return hidden * hidden * layers, layers


def table(results: dict[str, dict[str, list[dict]]], clock: str = "CPU") -> str:
    """One row per cell: its tokens and pre-training seconds on the budget's clock ("CPU", or "GPU wall" for
    bench/device/gpu_proof.py), then each measure for factory / anchor / control."""
    head = ["cell", "seeds", "steps", "tokens", f"{clock}-s factory / anchor"]
    head += [f"{label}: {arm}" for key, label in (("retrieval", "retrieval"), ("zero_shot", "zero-shot"))
             for arm in ARMS]  # fmt: skip
    head += ["factory beats control on both", "factory vs anchor (ret / zs)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in sorted(results, key=size_key):
        arms = results[cell]
        seeds = max(len(v) for v in arms.values())
        pre = (arms.get("factory") or [{}])[0].get("pretrain") or {}
        cpu = " / ".join(_cpu(arms.get(a)) for a in ("factory", "anchor"))
        row = [cell, str(seeds), str(pre.get("steps", "-")), f"{pre['tokens'] / 1e6:.2f}M" if pre else "-", cpu]
        row += [_fmt(mean_std(arms.get(arm, []), key), seeds) for key, _ in METRICS for arm in ARMS]
        verdict = wins(arms)
        row += ["-" if verdict is None else ("yes" if verdict else "no"), versus(arms)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _cpu(records: list[dict] | None) -> str:
    values = [r["pretrain"]["cpu_s"] for r in records or [] if r.get("pretrain")]
    return f"{statistics.fmean(values):.0f}" if values else "-"


def versus(arms: dict[str, list[dict]]) -> str:
    """factory - anchor in points, per measure ("-" until both are measured)."""
    if "factory" not in arms or "anchor" not in arms:
        return "-"
    gaps = [mean_std(arms["factory"], k)[0] - mean_std(arms["anchor"], k)[0] for k, _ in METRICS]
    return " / ".join(f"{g:+.1f}" for g in gaps)


def smallest_winner(results: dict[str, dict[str, list[dict]]]) -> str | None:
    """The smallest cell where factory beats the control on retrieval and zero-shot both."""
    for cell in sorted(results, key=size_key):
        if wins(results[cell]):
            return cell
    return None


def verdict_line(results: dict[str, dict[str, list[dict]]], budget_s: float, clock: str = "CPU") -> str:
    winner = smallest_winner(results)
    if winner:
        return f"Smallest cell where factory beats the control on both: {winner}."
    return (f"No cell beats the control on both retrieval and zero-shot classification at {budget_s:g} "
            f"{clock}-seconds ({budget_s / 60:.1f} {clock}-minutes) of pre-training.")  # fmt: skip


def plot(results: dict[str, dict[str, list[dict]]], path: Path) -> None:
    """Two panels (retrieval, zero-shot), the cells on x from small to large, one line per arm, seed std as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted(results, key=size_key)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (key, label) in zip(axes, METRICS, strict=True):
        for arm, style in zip(ARMS, ("o-", "s--", "^:"), strict=True):
            points = [(i, mean_std(results[c].get(arm, []), key)) for i, c in enumerate(cells)]
            points = [(i, v) for i, v in points if v is not None]
            if points:
                xs, vals = zip(*points, strict=True)
                ax.errorbar(xs, [v[0] for v in vals], yerr=[v[1] for v in vals], fmt=style, label=arm, capsize=3)
        ax.set_xticks(range(len(cells)), cells)
        ax.set_xlabel("cell (layers x hidden)")
        ax.set_ylabel(f"{label}, %")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("factory RTD vs transformers MLM anchor vs random-init control")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> str:
    import os
    import platform

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    threads = torch.get_num_threads()
    return f"{platform.machine()} {model}, nproc {os.cpu_count()}, torch {torch.__version__}, {threads} thread(s)"


def results_section(text: str, command: str, date: str, plot_path: Path) -> str:
    """The block appended to bench/RESULTS.md: the date, the command, the machine, the table and the plot."""
    return (f"\n## {date}, scale ladder (`bench.studies.quality`)\n{machine()}.\n\n```\n{command}\n```\n\n{text}\n"
            f"![ladder]({plot_path})\n")  # fmt: skip


def summary(results: dict[str, Any], budget_s: float, clock: str = "CPU") -> str:
    return table(results, clock) + "\n" + verdict_line(results, budget_s, clock) + "\n"
