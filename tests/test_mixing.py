"""Language sampling at training time (factory/pretrain/mixing.py): the α mix per batch and per phase, each
language's own epochs, the batch of step s from (seed, s) only, one language = today's BatchOrder, bad input,
resume checks, what is logged and recorded; end to end, 2 processes = 1 and kill -9 -> resume = straight."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import one_error_line
from synthetic_shards import write_shards
from test_pretrain import LOSSES, assert_same_weights, env, launch, log

from factory.cli.main import cli
from factory.pretrain.config import PretrainConfig
from factory.pretrain.mixing import BatchOrder, LanguageOrder, apportion, build_mix, mix_lines, shard_languages
from factory.shards.read import ShardSet

ROOT = Path(__file__).resolve().parents[1]
FACTORY = [sys.executable, "-m", "factory"]  # the CLI of this tree (env() puts it first on PYTHONPATH)
CORPUS = {"en": 10**9, "pt": 10**8, "sw": 10**6, "yo": 10**5}  # tokens in the "corpus": p spans 60% .. 3%
pytestmark = pytest.mark.usefixtures("one_thread")


class FakeShards:
    """What mixing reads from a ShardSet: languages (contiguous rows), corpus_tokens, seq_len, len."""

    def __init__(self, rows: dict[str, int], corpus: dict[str, int] | None = None, seq_len: int = 32):
        self.languages, start = {}, 0
        for lang, n in rows.items():
            self.languages[lang], start = range(start, start + n), start + n
        self.corpus_tokens, self.seq_len = corpus if corpus is not None else dict(CORPUS), seq_len

    def __len__(self) -> int:
        return sum(len(r) for r in self.languages.values())


def config(**values) -> PretrainConfig:
    return PretrainConfig(out=Path("unused"), **values)


def target(alpha: float, langs=tuple(CORPUS)) -> dict[str, float]:
    """p_i ∝ n_i^α, computed here independently of the code under test."""
    raw = {lang: CORPUS[lang] ** alpha for lang in langs}
    return {lang: v / sum(raw.values()) for lang, v in raw.items()}


def language_of(shards: FakeShards, rows: torch.Tensor) -> list[str]:
    return [next(lang for lang, r in shards.languages.items() if int(i) in r) for i in rows]


def shares(shards, order, batch: int, steps: range) -> dict[str, float]:
    """The share of rows each language actually got over `steps` (from the rows the order returned)."""
    seen = dict.fromkeys(shards.languages, 0)
    for step in steps:
        for lang in language_of(shards, order.rows(step * batch, batch)):
            seen[lang] += 1
    return {lang: n / (len(steps) * batch) for lang, n in seen.items()}


def per_language(record: dict) -> dict[str, int]:
    return {k: v for k, v in record.items() if k.startswith("tokens_") and k != "tokens_per_s"}


ROWS = {"en": 300, "pt": 200, "sw": 40, "yo": 7}  # sw and yo hold fewer rows than they are drawn: they repeat


# ---- the mix -------------------------------------------------------------------------------------
def test_mix_over_1000_steps_is_the_alpha_target_within_a_point():
    shards, batch = FakeShards(ROWS), 16
    mix = build_mix(config(), shards, batch, 1000)  # default α 0.3 with several languages
    order = mix.order(seed=3)
    assert isinstance(order, LanguageOrder) and [p.alpha for p in mix.phases] == [0.3]
    got, want = shares(shards, order, batch, range(1000)), target(0.3)
    for lang in CORPUS:
        assert abs(got[lang] - want[lang]) < 0.01, (lang, got[lang], want[lang])
    assert abs(got["yo"] - want["yo"]) * 16000 < 2  # quotas, not i.i.d. rows: within a couple of rows
    counts = mix.counts(1000)
    assert sum(counts.values()) == 16000 and counts == {k: round(v * 16000) for k, v in got.items()}


def test_schedule_mix_per_phase_and_languages_entering_late():
    shards, batch, steps = FakeShards(ROWS), 16, 1000
    args = config(alpha_schedule=["0:0.7", "0.6:0.5", "0.9:0.3"], language_schedule=["sw:0.6", "yo:0.9"])
    mix = build_mix(args, shards, batch, steps)
    assert [(p.start, p.alpha, list(p.weights)) for p in mix.phases] == [
        (0, 0.7, ["en", "pt"]),
        (600, 0.5, ["en", "pt", "sw"]),
        (900, 0.3, ["en", "pt", "sw", "yo"]),
    ]
    order = mix.order(seed=0)
    for phase, alpha, langs in ((range(0, 600), 0.7, ("en", "pt")), (range(600, 900), 0.5, ("en", "pt", "sw")),
                                (range(900, 1000), 0.3, tuple(CORPUS))):  # fmt: skip
        got, want = shares(shards, order, batch, phase), target(alpha, langs)
        for lang in CORPUS:
            assert abs(got[lang] - want.get(lang, 0.0)) < 0.01, (phase, lang, got[lang])
    assert "sw from step 600" in mix.describe() and "0.7 from step 0" in mix.describe()
    assert sum(mix.counts(steps).values()) == steps * batch


def test_each_language_reads_its_rows_in_epochs():
    """A language drawn more often than it has rows repeats them: every one of its rows once per epoch."""
    shards, batch = FakeShards(ROWS), 16
    mix = build_mix(config(), shards, batch, 200)
    order = mix.order(seed=1)
    rows = torch.cat([order.rows(s * batch, batch) for s in range(200)])
    yo = shards.languages["yo"]
    read = [int(i) for i in rows if int(i) in yo]  # in the order drawn (a batch is shuffled, epochs are not)
    assert len(read) == mix.counts(200)["yo"] > 3 * len(yo)
    by_draw = [int(i) for i in torch.cat([order.streams["yo"].rows(0, len(read))]) + yo.start]
    assert sorted(read) == sorted(by_draw)
    for epoch in range(len(read) // len(yo)):
        assert sorted(by_draw[epoch * len(yo) : (epoch + 1) * len(yo)]) == list(yo)


def test_batch_of_step_s_depends_on_seed_and_step_only():
    """Read in any order, by a fresh object (a resume), or in per-process slices: the same rows."""
    shards, batch = FakeShards(ROWS), 16
    mix = build_mix(config(alpha_schedule=["0:0.7", "0.5:0.3"]), shards, batch, 100)
    straight = mix.order(seed=5)
    expected = {s: straight.rows(s * batch, batch) for s in range(100)}
    resumed = mix.order(seed=5)
    for s in [73, 12, 99, 50, 51, 0]:
        torch.testing.assert_close(resumed.rows(s * batch, batch), expected[s])
        halves = [mix.order(seed=5).rows(s * batch + r * 8, 8) for r in range(2)]  # 2 processes x 8 rows
        torch.testing.assert_close(torch.cat(halves), expected[s])
    torch.testing.assert_close(resumed.rows(10 * batch + 8, 16), torch.cat([expected[10][8:], expected[11][:8]]))
    other = mix.order(seed=6)
    assert not torch.equal(other.rows(0, batch), expected[0])
    batch_langs = set(language_of(shards, expected[0][:8]))
    assert len(batch_langs) > 1  # the batch is shuffled: a process's slice holds several languages


def test_one_language_is_todays_batch_order(tmp_path):
    und = ShardSet(write_shards(tmp_path / "und", 123, 32, 1000))  # real shards that declare no language: "und"
    for shards in (und, FakeShards({"pt": 123})):
        mix = build_mix(config(), shards, 16, 50)
        order = mix.order(seed=2)
        assert mix.single and isinstance(order, BatchOrder) and mix.state() is None
        for s in (0, 7, 8, 30):
            torch.testing.assert_close(order.rows(s * 16, 16), BatchOrder(123, 2).rows(s * 16, 16))
    assert shard_languages(und) == ({"und": range(123)}, {"und": 123 * 32})
    assert mix.counts(10) == {"pt": 160}


def test_apportion_is_exact_monotone_and_integer():
    weights = (7, 0, 3_000_000_001, 12, 999)
    previous = [0] * len(weights)
    for seats in range(0, 400, 3):
        got = apportion(weights, seats)
        assert sum(got) == seats and got[1] == 0
        assert all(a >= b for a, b in zip(got, previous, strict=True))  # never a row taken back: quotas >= 0
        assert all(abs(g - w * seats / sum(weights)) < 1.5 for g, w in zip(got, weights, strict=True))
        previous = got
    assert apportion((1, 1), 3) == (2, 1)  # ties go to the first language, whichever machine computes it


def test_dry_run_lines_show_p_per_phase():
    shards = FakeShards(ROWS)
    mix = build_mix(config(alpha_schedule=["0:0.7", "0.6:0.3"]), shards, 16, 1000)
    lines = mix_lines(mix, 1000, 32)
    assert "α 0.7 from step 0, 0.3 from step 600" in lines[0]
    en = next(line for line in lines if line.strip().startswith("en"))
    assert f"{100 * target(0.7)['en']:.2f}%" in en and f"{100 * target(0.3)['en']:.2f}%" in en


# ---- end to end on language shards -----------------------------------------------------------------
@pytest.fixture(scope="module")
def lang_shards(tiny_vocab, tmp_path_factory):
    """Per-language shards in the real format (factory.json's per_language): random ids below tiny_vocab's 1000
    pieces, its fingerprint (what `pretrain --vocab` checks), and CORPUS as the languages' corpus tokens."""
    folder = tmp_path_factory.mktemp("mixing-data") / "shards"
    rows = {"en": 200, "pt": 120, "sw": 60, "yo": 20}
    return write_shards(folder, rows, 32, 1000, corpus_tokens=CORPUS, vocab=tiny_vocab)


def args(vocab, shards, out, *extra):
    base = ["pretrain", "--vocab", str(vocab), "--shards", str(shards), "--preset", "debug", "--out", str(out)]
    base += ["--batch", "8", "--warmup", "2", "--lr", "3e-3", "--log-every", "1", "--mixed-precision", "no"]
    return base + list(extra)


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--alpha", "0"], ["--alpha", "> 0"]),
        (["--alpha", "-0.5"], ["--alpha", "> 0"]),
        (["--alpha", "nan"], ["--alpha", "finite"]),
        (["--alpha-schedule", "0.1:0.7,0.6:0.3"], ["start at 0"]),
        (["--alpha-schedule", "0:0.7,0.6:0.5,0.4:0.3"], ["increase", "0.6 then 0.4"]),
        (["--alpha-schedule", "0:0.7,0.5:nan"], ["finite"]),
        (["--alpha-schedule", "0:0.7,0.5:0"], ["alpha 0", "> 0"]),
        (["--alpha-schedule", "0:0.7,0.5"], ["FRACTION:ALPHA"]),
        (["--alpha", "0.3", "--alpha-schedule", "0:0.7"], ["not both"]),
        (["--language-schedule", "xx:0.5"], ["xx", "do not hold", "en, pt, sw, yo"]),
        (["--language-schedule", "en:0.1,pt:0.1,sw:0.2,yo:0.3"], ["no language to draw", "step 0"]),
        (["--language-schedule", "sw:1.5"], ["sw:1.5", "fraction"]),
    ],
)
def test_bad_mixing_input_is_one_line_and_writes_nothing(tiny_vocab, lang_shards, tmp_path, extra, needles):
    out = tmp_path / "r"
    one_error_line(CliRunner().invoke(cli, args(tiny_vocab, lang_shards, out, "--max-steps", "10", *extra)),
                   *needles, out=out)  # fmt: skip


def test_run_logs_and_records_tokens_per_language_and_refuses_another_alpha(tiny_vocab, lang_shards, tmp_path):
    from factory.publish.card import build_card, collect_facts

    out = tmp_path / "r"
    result = CliRunner().invoke(cli, args(tiny_vocab, lang_shards, out, "--max-steps", "3", "--save-every", "1"))
    assert result.exit_code == 0, result.output
    records = log(out)
    for r in records:
        assert set(per_language(r)) == {f"tokens_{lang}" for lang in CORPUS}
        assert sum(per_language(r).values()) == r["tokens"]
    manifest = json.loads((out / "factory.json").read_text())
    seen = manifest["tokens_seen_per_language"]
    assert sum(seen.values()) == manifest["tokens"] == 3 * 8 * 32 and seen["en"] == records[-1]["tokens_en"]
    assert manifest["language_sampling"][0]["alpha"] == 0.3
    assert math.isclose(manifest["language_sampling"][0]["p"]["en"], target(0.3)["en"], rel_tol=1e-6)
    state = json.loads((out / "checkpoints" / "step-00000003" / "trainer.json").read_text())
    assert sum(state["sequences_seen_per_language"].values()) == 24 and state["mixing"]["phases"][0]["alpha"] == 0.3
    card = str(build_card(collect_facts(out / "discriminator", "me/x")))
    assert "α 0.3" in card and f"| en | {seen['en']:,} |" in card
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    again = args(tiny_vocab, lang_shards, out, "--max-steps", "4", "--resume", "auto")
    one_error_line(CliRunner().invoke(cli, [*again, "--alpha", "0.5"]), "α 0.3", "α 0.5", "--alpha", alone=False)
    schedule = [*again, "--alpha-schedule", "0:0.7,0.5:0.3"]
    one_error_line(CliRunner().invoke(cli, schedule), "language sampling", "--alpha-schedule", alone=False)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    assert CliRunner().invoke(cli, [*again, "--alpha", "0.3"]).exit_code == 0  # the same α: resumes


def test_dry_run_prints_the_mix(tiny_vocab, lang_shards, tmp_path):
    out = tmp_path / "r"
    dry = args(tiny_vocab, lang_shards, out, "--max-steps", "1000", "--dry-run", "--alpha-schedule", "0:0.7,0.6:0.3")
    result = CliRunner().invoke(cli, dry)
    assert result.exit_code == 0, result.output
    assert "language mix (α 0.7 from step 0, 0.3 from step 600)" in result.output
    assert "from step 600 α 0.3" in result.output and " yo " in result.output
    json.loads(result.output.strip().splitlines()[-1])  # the plan stays the last line
    assert not out.exists()


@pytest.mark.slow
def test_language_mix_two_processes_match_one(tiny_vocab, lang_shards, tmp_path):
    extra = ["--max-steps", "4", "--save-every", "4", "--dropout", "0", "--micro-batch", "4",
             "--alpha-schedule", "0:0.7,0.5:0.3"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    done = subprocess.run([*FACTORY, *args(tiny_vocab, lang_shards, one, *extra)], env=env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    launch(["-m", "factory", *args(tiny_vocab, lang_shards, two, *extra)], processes=2)
    assert json.loads((two / "factory.json").read_text())["processes"] == 2
    a, b = log(one), log(two)
    assert [r["tokens_yo"] for r in a] == [r["tokens_yo"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        for key in LOSSES:
            assert abs(ra[key] - rb[key]) <= 1e-5, (ra["step"], key)
    last = "checkpoints/step-00000004/model.safetensors"
    assert_same_weights(one / last, two / last, atol=1e-5)


@pytest.mark.slow
def test_language_mix_resume_after_sigkill_is_exact(tiny_vocab, lang_shards, tmp_path):
    steps = ["--max-steps", "10", "--save-every", "2", "--keep", "2", "--alpha-schedule", "0:0.7,0.5:0.3",
             "--language-schedule", "yo:0.5"]  # fmt: skip
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run([*FACTORY, *args(tiny_vocab, lang_shards, straight, *steps)], env=env(),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    cmd = [*FACTORY, *args(tiny_vocab, lang_shards, killed, *steps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=ROOT)
    first = killed / "checkpoints" / "step-00000002" / "trainer.json"
    while proc.poll() is None and not first.is_file():
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = subprocess.run([*FACTORY, *args(tiny_vocab, lang_shards, killed, *steps, "--resume", "auto")],
                          env=env(), cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = log(straight), log(killed)
    assert [r["step"] for r in b] == list(range(1, 11)) and a[4]["tokens_yo"] == 0 < a[-1]["tokens_yo"]
    for ra, rb in zip(a, b, strict=True):
        assert per_language(ra) == per_language(rb)
        for key in LOSSES:
            assert abs(ra[key] - rb[key]) <= 1e-6, (ra["step"], key)
    last = "checkpoints/step-00000010/model.safetensors"
    assert_same_weights(straight / last, killed / last, atol=1e-6)
