"""Corpus reading, cleaning, language id, sampling and flat memory."""

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from factory import corpus as C
from factory.core.errors import FactoryError, RunFailure

sys.path.insert(0, str(Path(__file__).parent))
import textgen  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo" / "corpus"


def test_demo_corpus_is_the_generators_output(tmp_path):
    textgen.write_all(tmp_path)
    for lang in textgen.LANGS:
        committed = (DEMO / f"{lang}.txt").read_bytes()
        assert committed == (tmp_path / f"{lang}.txt").read_bytes(), f"regenerate with python tests/textgen.py ({lang})"
        assert len(committed) < 60_000 and len(committed.splitlines()) == textgen.LINES
    assert {p.stem for p in DEMO.glob("*.txt")} == set(textgen.LANGS)


# ---- sources ---------------------------------------------------------------------------------------
def _docs(path, **kw):
    return list(C.read_source(C.Source(str(path)), **kw))


def test_text_lines_paragraphs_gzip_and_folders(tmp_path):
    (tmp_path / "d").mkdir()
    lines = tmp_path / "d" / "a.txt"
    lines.write_text("first doc\nsecond doc\n\n")  # a trailing blank line is not a paragraph separator
    paras = tmp_path / "d" / "b.txt"
    paras.write_text("one line\nsame paragraph\n\nsecond\nparagraph\n")
    with gzip.open(tmp_path / "d" / "c.txt.gz", "wt") as f:
        f.write("zipped one\nzipped two\n")
    assert _docs(lines) == ["first doc", "second doc"]
    assert _docs(paras) == ["one line same paragraph", "second paragraph"]
    assert _docs(tmp_path / "d") == ["first doc", "second doc", "one line same paragraph", "second paragraph",
                                     "zipped one", "zipped two"]  # fmt: skip


def test_jsonl_parquet_arrow(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": f"doc {i}", "id": i} for i in range(5)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "a.parquet")
    with pa.OSFile(str(tmp_path / "stream.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    with pa.OSFile(str(tmp_path / "file.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    want = [f"doc {i}" for i in range(5)]
    for name in ("a.jsonl", "a.parquet", "stream.arrow", "file.arrow"):
        assert _docs(tmp_path / name) == want, name
    with pytest.raises(FactoryError, match="no column 'body'.*text, id"):
        _docs(tmp_path / "a.parquet", text_field="body")
    with pytest.raises(FactoryError, match="no field 'body'"):
        _docs(tmp_path / "a.jsonl", text_field="body")


def test_hub_source_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FactoryError) as err:
        _docs("hf:allenai/c4:pt")
    assert "offline" in str(err.value).lower() or "HF_HUB_OFFLINE" in str(err.value)
    assert "\n" not in str(err.value)


def test_source_parse(tmp_path, monkeypatch):
    from factory.core.errors import FactoryError

    assert C.Source.parse("pt=data/x.txt") == C.Source("data/x.txt", "pt")
    assert C.Source.parse("hf:wikimedia/wikipedia:20231101.pt") == C.Source("hf:wikimedia/wikipedia:20231101.pt")
    assert C.Source.parse("zh=hf:a/b:c").is_hub
    assert C.Source.parse("zh_hans=x.txt") == C.Source("x.txt", "zh_hans")
    # a word that is no language code before `=` is told so (it used to be read as a path: "no such file")
    with pytest.raises(FactoryError, match=r"--corpus portuguese=x.txt: unknown language code 'portuguese' \(did you "
                       r"mean pt\?\)"):  # fmt: skip
        C.Source.parse("portuguese=x.txt")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run=2.txt").write_text("a\n")
    assert C.Source.parse("run=2.txt") == C.Source("run=2.txt")  # a path of that whole name is that path


# ---- cleaning ----------------------------------------------------------------------------------------
def test_cleaning_nfkc_whitespace_bounds():
    cleaning = C.Cleaning(min_chars=5, max_chars=40)
    assert cleaning.clean("  ﬁne\u00a0\u00a0Ｆｕｌｌ\twidth  \n ") == ("fine Full width", "kept")
    assert cleaning.clean("e\u0301cole") == ("école", "kept")
    assert cleaning.clean("abc") == (None, "too_short")
    assert cleaning.clean("x" * 41) == (None, "too_long")
    assert cleaning.clean(" \t ") == (None, "empty")


def test_exact_duplicates_dropped_in_fixed_memory():
    seen = C.SeenFilter(1 << 20)
    texts = [f"document number {i}" for i in range(3000)]
    assert not any(seen.seen(t) for t in texts)
    assert all(seen.seen(t) for t in texts)
    assert seen.array.nbytes == (1 << 20) // 8


# ---- language id -------------------------------------------------------------------------------------
def test_fast_langid_on_the_demo_corpus():
    from factory.corpus.langid.profiles import LanguageId, identify_many

    lid = LanguageId()
    docs = [(lang, line) for lang in textgen.LANGS for line in (DEMO / f"{lang}.txt").read_text().splitlines()]
    guesses = [lid.identify(text) for _, text in docs]
    right = sum(g.lang == lang for g, (lang, _) in zip(guesses, docs, strict=True))
    assert right >= len(docs) - 2  # one zh line of 1600 reads as ko (CJK n-grams shared); see bench/speed/langid.py
    assert guesses == [lid.identify(text) for _, text in docs]  # deterministic
    pooled = list(identify_many((t for _, t in docs[:600]), workers=2, chunk=64))
    assert [g for _, g in pooled] == guesses[:600] and [t for t, _ in pooled] == [t for _, t in docs[:600]]
    assert lid.identify("1234 !!! ...").lang == ""


def test_unknown_language_code_lists_valid_ones():
    from factory.corpus.langid import check_codes

    assert check_codes(["pt", "zh"], "langdetect") == ["pt", "zh"]
    with pytest.raises(FactoryError, match=r"'klingon'.*\bar\b.*\bpt\b.*\bzh\b") as err:
        check_codes(["pt", "klingon"], "langdetect")
    assert "\n" not in str(err.value)


# ---- sampling ----------------------------------------------------------------------------------------
def test_sample_sizes_formula():
    counts = {"en": 10_000, "pt": 1000, "sw": 10}
    sizes = C.sample_sizes(counts, alpha=0.3, max_sentences=5000)
    assert sum(sizes.values()) == 5000
    weights = {k: v**0.3 for k, v in counts.items()}
    for lang, n in sizes.items():
        assert abs(n - 5000 * weights[lang] / sum(weights.values())) < 1
    assert C.sample_sizes(counts, alpha=1.0, max_sentences=10**9) == counts  # alpha 1: natural distribution


def test_write_sample_is_uniform_with_repeats(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "a.txt").write_text("".join(f"a{i}\n" for i in range(100)))
    (spool / "b.txt").write_text("".join(f"b{i}\n" for i in range(10)))
    out = tmp_path / "sample.txt"
    assert C.write_sample(spool, {"a": 100, "b": 10}, {"a": 30, "b": 25}, out, seed=3) == 55
    lines = Counter(out.read_text().splitlines())
    assert sum(v for k, v in lines.items() if k.startswith("a")) == 30 and max(lines[f"a{i}"] for i in range(100)) == 1
    assert sum(v for k, v in lines.items() if k.startswith("b")) == 25 and min(lines[f"b{i}"] for i in range(10)) == 2
    # sequential selection is uniform: over many seeds every 'a' document is picked ~30% of the time
    picks = Counter()
    for seed in range(200):
        C.write_sample(spool, {"a": 100}, {"a": 30}, out, seed=seed)
        picks.update(out.read_text().splitlines())
    assert 0.2 < min(picks.values()) / 200 and max(picks.values()) / 200 < 0.42


# ---- Must show 3: flat memory ------------------------------------------------------------------------
MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import textgen
    from factory import corpus as C
    n, langid = int(sys.argv[1]), sys.argv[2] == "1"
    work = Path(tempfile.mkdtemp())
    src = work / "in.txt"
    with open(src, "w") as f:
        for lang in ("en", "pt", "ru"):
            for line in textgen.generate(lang, n // 3, seed=5):
                f.write(line + "\\n")
    langs = ["en", "pt", "ru"]
    r = C.build_sample([C.Source(str(src))], langs, work, C.LanguageFilter(langs, enabled=langid),
                       C.Cleaning(dedupe_bits=1 << 24), alpha=0.3, max_sentences=500)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) pytest parent across exec
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
    print(sum(r.stats.kept.values()), r.sample_lines, hwm)
    """
)


def peak_rss_kib(docs: int, langid: bool) -> tuple[int, int, int]:
    script = MEMORY_SCRIPT.format(tests=str(Path(__file__).parent))
    cmd = [sys.executable, "-c", script, str(docs), str(int(langid))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    kept, lines, rss = map(int, out.stdout.split())
    return kept, lines, rss


@pytest.mark.slow
@pytest.mark.parametrize("docs,langid", [(600, True), (12000, False)])
def test_memory_is_flat_in_corpus_size(docs, langid):
    """Corpus -> clean -> (language id) -> spool -> sample, on N and 10N documents: peak RSS grows < 20%.

    Without language id the 10N run reads 120k documents (~25 MB of text): holding them would show."""
    small = peak_rss_kib(docs, langid)
    large = peak_rss_kib(10 * docs, langid)
    assert small[0] > 0.98 * docs and large[0] > 0.98 * 10 * docs and small[1] == large[1] == 500
    growth = large[2] / small[2] - 1
    print(
        f"peak RSS {small[2] / 1024:.1f} MiB for {docs} docs, {large[2] / 1024:.1f} MiB for {10 * docs}: {growth:+.1%}"
    )
    assert growth < 0.20


def test_sampling_draws_from_its_own_seeded_rng(tmp_path):
    """The sample depends on `seed` alone: the global RNG neither changes it nor is touched by it."""
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "a.txt").write_text("".join(f"a{i}\n" for i in range(100)))
    samples = []
    for global_seed, seed in ((1, 0), (2, 0), (1, 1)):
        random.seed(global_seed)
        state = random.getstate()
        out = tmp_path / f"sample-{global_seed}-{seed}.txt"
        C.write_sample(spool, {"a": 100}, {"a": 30}, out, seed=seed)  # 30 of 100: every line is a random pick
        assert random.getstate() == state
        samples.append(out.read_text())
    assert samples[0] == samples[1]  # another global state, the same sample
    assert samples[0] != samples[2]  # another seed, another sample


# ---- the worker processes (factory/corpus/pool.py) -------------------------------------------------
def _square_with_pid(x: int) -> tuple[int, int]:
    if x < 0:
        raise ValueError(f"no square for {x} here")
    if x == 99:
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
    return x * x, os.getpid()


def _start(fail: bool) -> None:
    if fail:
        raise FactoryError("the worker could not start: bad settings")


def _pool(fail: bool = False):
    import multiprocessing as mp

    from factory.corpus.pool import start_pool

    return start_pool(2, _square_with_pid, _start, (fail,), mp.get_context("fork"))


def test_the_pool_answers_in_order_from_its_workers():
    pool = _pool()
    try:
        workers = [pool.submit((x,)) for x in range(10)]
        answers = [pool.answer(w) for w in workers]
    finally:
        pool.close()
    assert [square for square, _ in answers] == [x * x for x in range(10)]
    # computed in the pool's processes, never here; which of the two takes a job is whichever is free (the
    # executor), so one fast worker may answer all ten
    assert 1 <= len({pid for _, pid in answers}) <= 2 and os.getpid() not in {pid for _, pid in answers}


def test_a_workers_exception_is_raised_here_and_the_pool_goes_on():
    pool = _pool()
    try:
        with pytest.raises(ValueError, match="no square for -3 here") as caught:
            pool.answer(pool.submit((-3,)))
        assert pool.answer(pool.submit((4,)))[0] == 16  # the worker is still there
    finally:
        pool.close()
    if sys.version_info >= (3, 11):
        assert "in a worker process" in caught.value.__notes__[0] and "_square_with_pid" in caught.value.__notes__[0]


def test_a_failed_start_is_raised_at_the_first_answer():
    pool = _pool(fail=True)
    try:
        with pytest.raises(FactoryError, match="could not start: bad settings"):
            pool.answer(pool.submit((2,)))
    finally:
        pool.close()


def test_a_killed_worker_is_one_line_not_a_hang():
    """multiprocessing.Pool waits forever for the answer of a worker the OOM killer took; this pool says so."""
    pool = _pool()
    try:
        first, dying = pool.submit((1,)), pool.submit((99,))
        assert pool.answer(first)[0] == 1
        started = time.monotonic()
        with pytest.raises(RunFailure, match=r"^a worker process was killed by SIGKILL \(out of memory\?\) before "
                                             r"answering$"):  # fmt: skip
            pool.answer(dying)
        assert time.monotonic() - started < 30
    finally:
        pool.close()
