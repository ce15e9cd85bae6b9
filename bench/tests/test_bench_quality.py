"""bench.studies.quality's pieces that need no training: the cell spec, the held-out split, the table, the verdicts and
the plot, on constructed records whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.studies.quality import best_cell, parse_cells
from bench.studies.quality_arms import Cell, collect, write_done
from bench.studies.quality_data import eval_subsets, held_out_text
from bench.studies.quality_report import plot, smallest_winner, table, verdict_line


def record(arm: str, retrieval: float, zero_shot: float, seed: int = 0) -> dict:
    pretrain = None if arm == "control" else {"cpu_s": 300.0, "steps": 100, "tokens": 409_600}
    return {"arm": arm, "seed": seed, "retrieval": retrieval, "zero_shot": zero_shot, "pretrain": pretrain}


# 2x64: factory loses to the control on retrieval; 4x128: it wins on both; 6x256: it wins too (larger)
RESULTS = {
    "6x256": {"factory": [record("factory", 30, 60)], "anchor": [record("anchor", 20, 50)],
              "control": [record("control", 10, 45)]},
    "2x64": {"factory": [record("factory", 3, 50)], "anchor": [record("anchor", 2, 40)],
             "control": [record("control", 11, 45)]},
    "4x128": {"factory": [record("factory", 15, 50, 0), record("factory", 17, 52, 1)],
              "anchor": [record("anchor", 12, 49)], "control": [record("control", 14, 48)]},
}  # fmt: skip


def test_parse_cells_heads_and_seeds():
    cells = parse_cells("2x64, 4x128x8", seeds=2)
    assert [(c.layers, c.hidden, c.heads, c.seed) for c in cells] == [
        (2, 64, 2, 0), (2, 64, 2, 1), (4, 128, 8, 0), (4, 128, 8, 1)
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="not LAYERSxHIDDEN"):
        parse_cells("2by64", seeds=1)
    with pytest.raises(SystemExit, match="do not divide"):
        parse_cells("2x64x3", seeds=1)


def test_smallest_winner_is_the_smallest_cell_winning_on_both():
    assert smallest_winner(RESULTS) == "4x128"
    assert "4x128" in verdict_line(RESULTS, 300)
    losing = {"2x64": RESULTS["2x64"]}
    assert smallest_winner(losing) is None
    assert "No cell beats the control" in verdict_line(losing, 300)


def test_table_rows_sorted_with_means_and_verdicts():
    lines = table(RESULTS).splitlines()
    rows = [line.split(" | ") for line in lines[2:]]
    assert [r[0].strip("| ") for r in rows] == ["2x64", "4x128", "6x256"]
    small, mid = rows[0], rows[1]
    assert small[-2] == "no" and mid[-2] == "yes"
    assert "16.0 ± 1.4" in mid  # two seeds: mean and sample std
    assert small[-1].strip(" |") == "+1.0 / +10.0"  # factory - anchor, retrieval / zero-shot


def test_best_cell_falls_back_to_the_largest_gain():
    cells = parse_cells("2x64,4x128,6x256", seeds=1)
    assert best_cell(RESULTS, cells).name == "4x128"
    losing = {"2x64": RESULTS["2x64"], "6x256": {**RESULTS["6x256"], "control": [record("control", 31, 61)]}}
    assert best_cell(losing, cells).name == "6x256"  # summed gains: 2x64 -8 + 5 = -3, 6x256 -1 - 1 = -2


def test_plot_writes_a_png(tmp_path: Path):
    plot(RESULTS, tmp_path / "ladder.png")
    assert (tmp_path / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_reads_done_arms_only(tmp_path: Path):
    write_done(tmp_path / "2x64-s0" / "factory", record("factory", 1, 2))
    write_done(tmp_path / "2x64-s1" / "factory", record("factory", 3, 4, 1))
    (tmp_path / "2x64-s0" / "anchor").mkdir(parents=True)  # started, not finished
    found = collect(tmp_path, [Cell(2, 64, 2, 0), Cell(2, 64, 2, 1)])
    assert list(found["2x64"]) == ["factory"]
    assert [r["seed"] for r in found["2x64"]["factory"]] == [0, 1]


def test_held_out_paragraphs_leave_the_pretraining_text(tmp_path: Path):
    data, langs = tmp_path / "data", ("en", "de")
    (data / "aligned").mkdir(parents=True)
    (data / "topic").mkdir()
    for lang in langs:
        (data / f"{lang}.txt").write_text(f"{lang} keep 1\n{lang} aligned 1\n{lang} keep 2\n{lang} topic 1\n")
        (data / "aligned" / f"{lang}.txt").write_text(f"{lang} aligned 1\n{lang} topic 1\n")
        topic = [{"text": f"{lang} topic 1", "label": "a", "language": lang},
                 {"text": f"{lang} aligned 1", "label": "b", "language": lang}]  # fmt: skip
        (data / "topic" / f"{lang}.jsonl").write_text("".join(json.dumps(t) + "\n" for t in topic))
    assert held_out_text(data, tmp_path / "pretrain", langs) == 4
    assert (tmp_path / "pretrain" / "de.txt").read_text() == "de keep 1\nde keep 2\n"
    eval_subsets(data, tmp_path, langs, retrieval_items=1, topic_items=5)
    assert (tmp_path / "aligned" / "en.txt").read_text() == "en aligned 1\n"
    test = [json.loads(line) for line in (tmp_path / "topic-test.jsonl").read_text().splitlines()]
    assert {t["language"] for t in test} == {"de"} and len(test) == 2


def test_a_preset_cell_trains_the_presets_own_shape_and_sorts_by_its_size(tmp_path: Path):
    """bench/device/gpu_proof.py's cell is xsmall itself (not debug + overrides, which the card would call custom)."""
    from bench.studies.quality_arms import Settings, pretrain_config
    from bench.studies.quality_data import Prepared
    from bench.studies.quality_report import size_key

    cell = Cell(12, 384, 6, preset="xsmall")
    assert cell.name == "xsmall" and cell.folder == "xsmall-s0"
    prep = Prepared(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path, 0)
    settings = Settings(budget_cpu_s=1.0, batch=8, lr=None, langs=("en",), finetune=(), precision="bf16")
    config = pretrain_config(cell, prep, settings, tmp_path / "run", 10)
    assert (config.preset, config.layers, config.hidden, config.mixed_precision) == ("xsmall", None, None, "bf16")
    ladder = pretrain_config(Cell(2, 64, 2), prep, settings, tmp_path / "run", 10)
    assert (ladder.preset, ladder.layers, ladder.hidden, ladder.heads) == ("debug", 2, 64, 2)
    assert sorted(["xsmall", "6x256", "2x64"], key=size_key) == ["2x64", "6x256", "xsmall"]
