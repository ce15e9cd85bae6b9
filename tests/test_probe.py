"""`factory pretrain --probe PARALLEL`: retrieval accuracy in train.jsonl at the probed steps, the random-init
control once, the same losses and weights as a run without the probe, the same figures as `eval retrieval` on
the exported discriminator, and a bad PARALLEL refused in one line before anything is written.

Micro settings (debug preset, 2 + 1 layers, 32-token sequences, 5 steps), as tests/test_pretrain.py.
"""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import micro_config, pseudo_text, word_shards

from factory.cli.main import cli

LOSSES = ("mlm_loss", "rtd_loss", "rtd_accuracy", "mlm_accuracy", "grad_norm")
LANGS = ("de", "en", "fr")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shards(tiny_vocab, tmp_path_factory):
    return word_shards(tiny_vocab, tmp_path_factory.mktemp("probe-data"), lines=100, words=400)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory) -> Path:
    """Three languages, 12 items each, aligned line by line (pseudo-text: the figures are what they are)."""
    folder = tmp_path_factory.mktemp("parallel")
    for i, lang in enumerate(LANGS):
        (folder / f"{lang}.txt").write_text("\n".join(pseudo_text(12, seed=10 + i)) + "\n")
    return folder


def args(vocab, shards, out, *extra) -> list[str]:
    base = ["pretrain", "--vocab", str(vocab), "--shards", str(shards), "--preset", "debug", "--out", str(out)]
    base += ["--batch", "8", "--warmup", "2", "--lr", "3e-3", "--log-every", "1", "--mixed-precision", "no"]
    return base + ["--max-steps", "5", "--save-every", "5", *extra]  # dropout stays on (0.1): its stream is tested


def log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def one_line_error(result, *needles) -> None:
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in error[0], error[0]


@pytest.fixture(scope="module")
def runs(tiny_vocab, shards, parallel, tmp_path_factory):
    """The same 5 steps without and with --probe (every 2 steps, and the last)."""
    from accelerate import Accelerator

    root = tmp_path_factory.mktemp("runs")
    plain, probed = root / "plain", root / "probed"
    assert CliRunner().invoke(cli, args(tiny_vocab, shards, plain)).exit_code == 0
    tracked: list[tuple[int, dict]] = []  # what the Accelerate trackers are given
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Accelerator, "log", lambda self, values, step=None, **_: tracked.append((step, values)))
        result = CliRunner().invoke(
            cli, args(tiny_vocab, shards, probed, "--probe", str(parallel), "--probe-every", "2")
        )
    assert result.exit_code == 0, result.output
    return plain, probed, tracked


@pytest.mark.slow
def test_the_probe_changes_no_loss_and_no_weight(runs):
    """fork_rng + a copy in eval mode: dropout masks, batches and updates are those of the run without it."""
    from safetensors.torch import load_file

    plain, probed, _ = runs
    a, b = log(plain), log(probed)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4, 5]
    for ra, rb in zip(a, b, strict=True):
        for key in LOSSES:
            assert ra[key] == rb[key], (ra["step"], key)  # bit for bit: the same process, the same streams
    last = "checkpoints/step-00000005/model.safetensors"
    wa, wb = load_file(str(plain / last)), load_file(str(probed / last))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not any(k.startswith("probe") for r in a for k in r)


@pytest.mark.slow
def test_the_probe_lands_at_its_steps_and_the_control_once(runs):
    records = log(runs[1])
    probed = [r["step"] for r in records if "probe" in r]
    assert probed == [2, 4, 5]  # every 2 steps, and the last
    assert [r["step"] for r in records if "probe_control" in r] == [1]  # once, in the first record
    for r in records:
        for key in [k for k in r if k.startswith("probe")]:
            assert 0.0 <= r[key] <= 100.0, (r["step"], key, r[key])
    last = records[-1]
    assert {"probe_to_pivot", "probe_from_pivot", "probe/de", "probe/fr"} <= last.keys()
    assert "probe/en" not in last  # the pivot is matched against, not scored
    assert last["probe"] == pytest.approx((last["probe_to_pivot"] + last["probe_from_pivot"]) / 2, abs=0.01)
    figures = json.loads((runs[1] / "factory.json").read_text())["probe"]
    assert figures["step"] == 5 and figures["pivot"] == "en" and figures["every"] == 2
    assert figures["pretrained"]["to_pivot"] == last["probe_to_pivot"]
    assert figures["pretrained"]["languages"] == {"de": last["probe/de"], "fr": last["probe/fr"]}
    assert figures["control"]["average"] == records[0]["probe_control"]
    assert json.loads((runs[0] / "factory.json").read_text())["probe"] is None
    assert [(step, values.get("probe")) for step, values in runs[2]] == [(r["step"], r.get("probe")) for r in records]
    assert runs[2][0][1]["probe_control/de"] == records[0]["probe_control/de"]


def test_the_progress_line_shows_the_probe_and_the_control():
    from factory.pretrain.loop import status

    record = {"mlm_loss": 6.0, "rtd_loss": 0.5, "rtd_accuracy": 0.9, "tokens_per_s": 1e3, "mfu": None,
              "step_time_s": 0.1}  # fmt: skip
    assert "probe" not in status(record, 10)
    line = status({**record, "probe": 12.34, "probe_control": 5.0}, 10)
    assert "probe 12.3 (ctl 5.0)" in line
    assert "probe - (ctl 5.0)" in status({**record, "probe_control": 5.0}, 10)  # before the first probe


@pytest.mark.slow
def test_the_probe_is_eval_retrieval_of_the_export_and_its_control(runs, parallel):
    """The last probe = `eval retrieval` of OUT/discriminator; the probe's control = `--control random`'s."""
    from factory.evaluate.control import CONTROL, PRETRAINED, Arm
    from factory.evaluate.parallel import read_parallel
    from factory.evaluate.retrieval import Protocol, measure

    records, folder = log(runs[1]), runs[1] / "discriminator"
    data = read_parallel(str(parallel), "en")
    for arm, record, prefix in ((PRETRAINED, records[-1], "probe"), (CONTROL, records[0], "probe_control")):
        a = Arm(arm, folder)
        _, average = measure(a.model("none"), a.tokenizer(), data, Protocol())
        assert record[f"{prefix}_to_pivot"] == average["to_pivot"]["accuracy"], arm
        assert record[f"{prefix}_from_pivot"] == average["from_pivot"]["accuracy"], arm


def test_the_folded_table_is_the_exports(tmp_path):
    """discriminator_state gives the encoder the export gives, under each sharing."""
    from factory.pretrain.probe import discriminator_state
    from factory.pretrain.rtd import build_rtd_model, export_discriminator

    for sharing in ("gdes", "es", "nes"):
        model = build_rtd_model(micro_config(), 1, sharing)
        if sharing == "gdes":
            torch.nn.init.normal_(model.embedding_delta)  # a delta that is not zero
        state = discriminator_state(model.state_dict(), sharing)
        exported = export_discriminator(model).deberta.state_dict()
        assert state.keys() == exported.keys(), sharing
        assert all(torch.equal(state[k], exported[k]) for k in state), sharing


def test_a_bad_probe_is_one_line_before_anything_is_written(tiny_vocab, shards, parallel, tmp_path):
    bad = tmp_path / "misaligned"
    bad.mkdir()
    (bad / "en.txt").write_text("one\ntwo\nthree\n")
    (bad / "de.txt").write_text("eins\nzwei\n")
    out = tmp_path / "r"
    one_line_error(CliRunner().invoke(cli, args(tiny_vocab, shards, out, "--probe", str(bad))), "not aligned")
    one_line_error(
        CliRunner().invoke(cli, args(tiny_vocab, shards, out, "--probe", str(parallel), "--probe-pivot", "xx")),
        "--probe-pivot",
    )
    one_line_error(CliRunner().invoke(cli, args(tiny_vocab, shards, out, "--probe", str(tmp_path / "none"))), "--probe")
    one_line_error(
        CliRunner().invoke(
            cli, args(tiny_vocab, shards, out, "--probe", str(parallel), "--probe-every", "3", "--log-every", "2")
        ),  # fmt: skip
        "--probe-every 3",
    )
    assert not out.exists()


@pytest.mark.slow
def test_a_resumed_probed_run_repeats_the_straight_one(runs, tiny_vocab, shards, parallel, tmp_path):
    """Checkpoints taken between probes resume to the same losses and probe figures (the control kept once)."""
    import shutil

    out = tmp_path / "r"
    extra = ["--probe", str(parallel), "--probe-every", "2", "--save-every", "2"]
    assert CliRunner().invoke(cli, args(tiny_vocab, shards, out, *extra)).exit_code == 0
    shutil.rmtree(out / "checkpoints" / "step-00000005")
    resumed = CliRunner().invoke(cli, args(tiny_vocab, shards, out, *extra, "--resume", "auto"))
    assert resumed.exit_code == 0, resumed.output
    timing = {"tokens_per_s", "step_time_s", "mfu"}
    straight = [{k: v for k, v in r.items() if k not in timing} for r in log(runs[1])]
    again = [{k: v for k, v in r.items() if k not in timing} for r in log(out)]
    assert again == straight


@pytest.mark.slow
def test_two_processes_probe_what_one_does(runs, tiny_vocab, shards, parallel, tmp_path):
    """DDP on 2 CPU processes (gloo): both join the probe, neither hangs, and the figures are one process's."""
    from test_pretrain import launch

    out = tmp_path / "two"
    argv = args(tiny_vocab, shards, out, "--probe", str(parallel), "--probe-every", "2", "--micro-batch", "4")
    launch(["-m", "factory", *argv], processes=2)
    one, two = log(runs[1]), log(out)
    assert [r["step"] for r in two if "probe" in r] == [2, 4, 5]
    assert [r["step"] for r in two if "probe_control" in r] == [1]
    assert two[0]["probe_control"] == one[0]["probe_control"]  # the control does not depend on the run
