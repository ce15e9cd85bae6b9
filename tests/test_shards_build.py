"""Per-language shards: ranges, budgets, estimates, tasks + merge, streamed sources, resume after kill -9, and
the one-line errors of bad input. Text from tests/textgen.py (real words, so the language filter works)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import one_error_line

from factory.core.errors import ManifestError, ShardError
from factory.shards import plan as P
from factory.shards.build import ShardBuild
from factory.shards.config import ShardsConfig
from factory.shards.read import ShardSet, iter_rows
from factory.shards.run import build_shards

sys.path.insert(0, str(Path(__file__).parent))
import textgen  # noqa: E402

LANGS = ("en", "pt", "ru")


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    """A 1000-piece vocabulary of the textgen languages (the pseudo-text tiny_vocab would be all [UNK] here)."""
    from factory.vocab.train import SpmSettings, train_spm, write_hf_files

    folder = tmp_path_factory.mktemp("textgen_vocab")
    lines = [line for lang in textgen.LANGS for line in textgen.generate(lang, 300, seed=1)]
    (folder / ".sample.txt").write_text("\n".join(lines) + "\n")
    train_spm(folder / ".sample.txt", len(lines), folder, SpmSettings(pieces=1000, threads=2))
    write_hf_files(folder)
    return folder


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """LANG/part-K.txt: three files per language (en larger than pt, pt larger than ru)."""
    root = tmp_path_factory.mktemp("text")
    for lang, n in zip(LANGS, (900, 450, 150), strict=True):
        (root / lang).mkdir()
        lines = textgen.generate(lang, n, seed=7)
        for k in range(3):
            (root / lang / f"part-{k}.txt").write_text("\n".join(lines[k::3]) + "\n")
    return root


def config(vocab, text, out, **kw) -> ShardsConfig:
    """The text's languages as declared sources; the language filter off unless asked for (speed)."""
    corpus = [f"{lang}={text / lang}" for lang in kw.pop("langs", LANGS)]
    return ShardsConfig(vocab=vocab, corpus=corpus, out=out, **{"seq_len": 64, "langid": False, **kw})


def rows_of(folder) -> list[list[int]]:
    return [list(map(int, r)) for r in iter_rows(folder)]


def test_every_language_its_own_rows_and_range(vocab, text, tmp_path):
    """Languages sorted, contiguous; each range holds exactly the rows a build of that language alone makes."""
    figures = build_shards(config(vocab, text, tmp_path / "all", langid=True))
    shards = ShardSet(tmp_path / "all")
    assert list(shards.languages) == ["en", "pt", "ru"]
    ranges = list(shards.languages.values())
    assert ranges[0].start == 0 and ranges[-1].stop == len(shards)
    assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:], strict=False))
    rows = rows_of(tmp_path / "all")
    for lang in LANGS:
        alone = build_shards(config(vocab, text, tmp_path / lang, langs=[lang], langid=True))
        span = shards.languages[lang]
        assert rows[span.start : span.stop] == rows_of(tmp_path / lang)
        mine = figures["per_language"][lang]
        assert mine["tokens"] == alone["tokens"] and not mine["corpus_tokens_estimated"] and mine["budget"] is None
        # corpus tokens: the documents' ids and [SEP]s, i.e. what the rows hold less [CLS] and the rows' [SEP]
        assert mine["corpus_tokens"] == mine["tokens"] - 2 * len(span)
    assert shards.corpus_tokens["en"] > shards.corpus_tokens["pt"] > shards.corpus_tokens["ru"]
    manifest = json.loads((tmp_path / "all" / "factory.json").read_text())
    assert {s["language"] for s in manifest["shards"]} == set(LANGS) and manifest["counts"]["read"] == 1500


def test_undeclared_text_is_routed_by_the_language_filter(vocab, tmp_path):
    """A folder of eight languages with --langs en,pt: two ranges, and each row reads as its language."""
    from factory.corpus.langid.profiles import LanguageId
    from factory.model.tokenizer import Tokenizer

    demo = Path(__file__).resolve().parents[1] / "recipes" / "demo" / "corpus"
    figures = build_shards(ShardsConfig(vocab=vocab, corpus=[str(demo)], langs=["en", "pt"], seq_len=64,
                                        out=tmp_path / "s"))  # fmt: skip
    shards = ShardSet(tmp_path / "s")
    assert list(shards.languages) == ["en", "pt"] and figures["documents"] >= 390
    tok, lid = Tokenizer.from_folder(vocab), LanguageId()
    for lang, span in shards.languages.items():
        for i in range(span.start, span.stop, 7):
            row = [t for t in shards.rows([i])[0].tolist() if t > 3]
            assert lid.identify(tok.decode(row)).lang == lang


def test_budget_per_language_stops_each_language(vocab, text, tmp_path):
    figures = build_shards(config(vocab, text, tmp_path / "s", tokens_per_language="3k"))
    for lang in LANGS:
        stored = figures["per_language"][lang]
        assert 3000 <= stored["tokens"] < 3000 + 64 and stored["budget"] == 3000
    assert len(ShardSet(tmp_path / "s")) == sum(-(-f["tokens"] // 64) for f in figures["per_language"].values())


def test_total_budget_is_split_by_alpha(vocab, text, tmp_path):
    whole = build_shards(config(vocab, text, tmp_path / "whole"))["per_language"]
    counted = {lang: whole[lang]["corpus_tokens"] for lang in LANGS}
    figures = build_shards(config(vocab, text, tmp_path / "s", tokens="10000", alpha=0.5))["per_language"]
    norm = sum(n**0.5 for n in counted.values())
    for lang in LANGS:
        assert abs(figures[lang]["budget"] - 10000 * counted[lang] ** 0.5 / norm) <= 1
        assert figures[lang]["budget"] <= figures[lang]["tokens"] < figures[lang]["budget"] + 64
        assert figures[lang]["corpus_tokens"] == counted[lang]  # the probe read these small sources whole
    assert sum(f["budget"] for f in figures.values()) == 10000


def test_an_early_stop_estimates_corpus_tokens(vocab, tmp_path, monkeypatch):
    """Probe and build both stop before the end: corpus_tokens is bytes x tokens per byte, flagged."""
    monkeypatch.setattr(P, "PROBE_BYTES", 3000)
    (tmp_path / "en").mkdir()
    lines = textgen.generate("en", 4500, seed=5)
    for k in range(3):  # 4500 documents: more than two chunks
        (tmp_path / "en" / f"part-{k}.txt").write_text("\n".join(lines[k::3]) + "\n")
    truth = build_shards(config(vocab, tmp_path, tmp_path / "whole", langs=["en"]))["per_language"]["en"]
    figures = build_shards(config(vocab, tmp_path, tmp_path / "s", langs=["en"], tokens_per_language=4000))
    en = figures["per_language"]["en"]
    assert en["corpus_tokens_estimated"] and not truth["corpus_tokens_estimated"]
    assert abs(en["corpus_tokens"] / truth["corpus_tokens"] - 1) < 0.15, (en, truth)
    assert en["source_bytes"] == sum(f.stat().st_size for f in (tmp_path / "en").iterdir())


def test_task_parts_merge_into_the_one_process_build(vocab, text, tmp_path, monkeypatch):
    """Every file its own unit; 4 tasks, merged = one build, rows and per-language figures; budget included."""
    import factory.corpus.reading as reading

    monkeypatch.setattr(reading, "UNIT_BYTES", 1)
    for budget in (None, "2500"):
        one = build_shards(config(vocab, text, tmp_path / f"one-{budget}", tokens_per_language=budget))
        parts = [tmp_path / f"part-{budget}-{i}" for i in range(1, 5)]
        for i, part in enumerate(parts, 1):
            build_shards(config(vocab, text, part, task=f"{i}/4", tokens_per_language=budget))
        with pytest.raises(ShardError, match="task 2/4 of a shard build"):
            ShardSet(parts[1])
        merged = build_shards(ShardsConfig(merge=parts, out=tmp_path / f"merged-{budget}"))
        assert rows_of(tmp_path / f"merged-{budget}") == rows_of(tmp_path / f"one-{budget}")
        strip = ("source_bytes", "corpus_tokens", "corpus_tokens_estimated")
        assert {k: {f: v for f, v in d.items() if f not in strip} for k, d in merged["per_language"].items()} == {
            k: {f: v for f, v in d.items() if f not in strip} for k, d in one["per_language"].items()
        }
    missing = one_error_line(["shards", "--merge", parts[0], "--merge", parts[2], "--out", tmp_path / "x"],
                             "task(s) 2, 4 of 4 missing", out=tmp_path / "x")  # fmt: skip
    assert "--merge" in missing


def test_tokenising_alone_runs_on_threads_and_writes_the_same_bytes(vocab, text, tmp_path, monkeypatch):
    """With the filters off only SentencePiece works on a chunk: two threads of this process do it (no worker
    processes), and the shards are byte for byte those of one worker."""
    from factory.corpus import pipeline

    workers, mine = set(), set()
    consume = ShardBuild._consume

    def watch(self, chunk, *a):
        workers.add(chunk.worker)  # the OS thread that tokenised it; is it one of this process's?
        mine.add(str(chunk.worker) in os.listdir("/proc/self/task"))
        consume(self, chunk, *a)

    monkeypatch.setattr(ShardBuild, "_consume", watch)
    monkeypatch.setattr(pipeline.chunks, "__defaults__", (64, pipeline.CHUNK_CHARS))  # many chunks
    off = {"clean": False, "dedupe": False, "langid": False}
    build_shards(config(vocab, text, tmp_path / "two", num_proc=2, **off))
    assert len(workers) == 2 and mine == {True} and os.getpid() not in workers
    build_shards(config(vocab, text, tmp_path / "one", num_proc=1, **off))
    files = sorted(p.name for p in (tmp_path / "one").glob("shard-*"))
    assert files and files == sorted(p.name for p in (tmp_path / "two").glob("shard-*"))
    assert all((tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes() for f in files)


def test_worker_processes_write_the_same_bytes_as_one_worker(vocab, text, tmp_path, monkeypatch):
    """Two worker processes (factory/corpus/pool.py, on concurrent.futures) with every filter on, many chunks:
    every file of the folder is the same bytes as those of one worker (no pool). (Kept from the A/B of issue 29,
    which ran factory's own pool beside the executor and kept the executor.)"""
    from factory.corpus import pipeline

    monkeypatch.setattr(pipeline.chunks, "__defaults__", (64, pipeline.CHUNK_CHARS))  # many chunks
    build_shards(config(vocab, text, tmp_path / "executor", num_proc=2, langid=True, rows_per_shard=300))
    build_shards(config(vocab, text, tmp_path / "one", num_proc=1, langid=True, rows_per_shard=300))

    def manifest(folder):  # less what names the run: when, where, how many workers
        m = json.loads((folder / "factory.json").read_text())
        del m["created"], m["arguments"]["out"], m["arguments"]["num_proc"]
        return m

    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len([f for f in files if f.startswith("shard-")]) > 3
    assert files == sorted(p.name for p in (tmp_path / "executor").iterdir())
    assert manifest(tmp_path / "executor") == manifest(tmp_path / "one")
    for f in files:
        if f != "factory.json":
            assert (tmp_path / "executor" / f).read_bytes() == (tmp_path / "one" / f).read_bytes(), f


def test_ids_cross_the_pipes_narrow_for_a_small_vocabulary_and_pack_the_same():
    """A worker sends uint16 ids for a vocabulary of at most 65,536 pieces and uint32 above; the packer's rows
    (uint32) are the same either way, also when a narrow chunk follows a wide leftover."""
    import numpy as np

    from factory.corpus.pipeline import _tokenise
    from factory.shards.pack import Packer

    class Pieces:  # sentencepiece's encode(return_type="numpy"), ids from each word, below the vocabulary size
        def __init__(self, size):
            self.size = size

        def get_piece_size(self):
            return self.size

        def encode(self, docs, num_threads, return_type):
            return [np.array([hash(w) % (self.size - 4) + 4 for w in d.split()], dtype=np.int32) for d in docs]

    docs = [" ".join(f"w{i}x{j}" for j in range(i % 23 + 1)) for i in range(300)]
    lengths, narrow = _tokenise(Pieces(65536), docs, 2)
    big_lengths, big = _tokenise(Pieces(250_000), docs, 2)
    assert narrow.dtype == np.uint16 and big.dtype == np.uint32 and np.array_equal(lengths, big_lengths)
    assert big.max() >= 65536  # a large vocabulary's ids arrive whole
    wide = narrow.astype(np.uint32)
    rows = [Packer(16).add_flat(flat, len(docs)) for flat in (narrow, wide)]
    assert rows[0].dtype == rows[1].dtype == np.uint32 and np.array_equal(*rows)
    mixed = Packer(16)
    halves = np.concatenate([mixed.add_flat(wide[:1001], 1), mixed.add_flat(narrow[1001:], len(docs) - 1)])
    assert np.array_equal(halves, rows[0])


def test_a_streamed_source_uses_several_workers(vocab, tmp_path, monkeypatch):
    """`datasets` streaming of local parquet (the stand-in for the Hub, offline): chunks go to several worker
    processes, and the rows are those of the same files read locally (each stream shard is a unit)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "pq"
    folder.mkdir()
    lines = textgen.generate("pt", 5000, seed=3)
    for k in range(2):
        pq.write_table(pa.table({"text": lines[k::2]}), folder / f"part-{k}.parquet")
    workers = set()
    consume = ShardBuild._consume
    monkeypatch.setattr(ShardBuild, "_consume", lambda self, chunk, *a: (workers.add(chunk.worker),
                                                                         consume(self, chunk, *a)))  # fmt: skip
    streamed = ShardsConfig(vocab=vocab, corpus=[f"pt=hf:{folder}"], seq_len=64, out=tmp_path / "hf", num_proc=2)
    build_shards(streamed)
    assert len(workers) == 2 and os.getpid() not in workers
    local = [f"pt={folder / f'part-{k}.parquet'}" for k in range(2)]  # one unit per stream shard, as there
    build_shards(dataclasses.replace(streamed, corpus=local, out=tmp_path / "local"))
    assert rows_of(tmp_path / "hf") == rows_of(tmp_path / "local")


def test_a_finished_build_is_reused_not_rebuilt(vocab, text, tmp_path):
    """`factory run` re-runs its shards step with --force: the same inputs and settings keep the folder."""
    first = build_shards(config(vocab, text, tmp_path / "s", langs=["ru"]))
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "s").iterdir()}
    again = build_shards(config(vocab, text, tmp_path / "s", langs=["ru"], force=True))
    assert again == first and {p.name: p.stat().st_mtime_ns for p in (tmp_path / "s").iterdir()} == stamp
    changed = build_shards(config(vocab, text, tmp_path / "s", langs=["ru"], force=True, seq_len=32))
    assert changed["sequences"] > first["sequences"]


KILLED = """
import sys
sys.argv = ["factory", *sys.argv[1:]]
from factory.cli.main import main
main()
"""


@pytest.mark.slow
def test_kill_9_then_rerun_writes_the_same_bytes(vocab, tmp_path):
    """A build killed with SIGKILL after a checkpoint continues from it: every shard byte-identical."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for lang in ("en", "pt"):
        lines = textgen.generate(lang, 10000, seed=11)
        (corpus / f"{lang}.txt").write_text("\n".join(lines + lines[:500]) + "\n")  # duplicates after the kill
    args = ["shards", "--vocab", vocab, "--corpus", f"en={corpus / 'en.txt'}", "--corpus", f"pt={corpus / 'pt.txt'}",
            "--seq-len", "64", "--rows-per-shard", "300", "--num-proc", "2", "--no-langid"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "FACTORY_SHARDS_CHECKPOINT_S": "0.05"}
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-c", KILLED, *map(str, args), "--out", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = P.work_folder(killed) / "state.npz"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not killed.exists() and state.exists(), "the build finished before it could be killed"
    assert any(p.suffix == ".partial" for p in P.work_folder(killed).iterdir()) or list(
        P.work_folder(killed).glob("shard-*.arrow")
    )
    rerun = subprocess.run([sys.executable, "-c", KILLED, *map(str, args), "--out", str(killed)], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert rerun.returncode == 0 and "resuming" in rerun.stderr, rerun.stderr[-2000:]
    straight = tmp_path / "straight"
    build_shards(ShardsConfig(vocab=vocab, corpus=[f"en={corpus / 'en.txt'}", f"pt={corpus / 'pt.txt'}"], seq_len=64,
                              rows_per_shard=300, langid=False, out=straight))  # fmt: skip
    files = sorted(p.name for p in straight.glob("shard-*.arrow"))
    assert len(files) > 4 and files == sorted(p.name for p in killed.glob("shard-*.arrow"))
    for name in files:
        assert (killed / name).read_bytes() == (straight / name).read_bytes(), name
    ours, theirs = (json.loads((f / "factory.json").read_text()) for f in (killed, straight))
    assert ours["per_language"] == theirs["per_language"] and ours["counts"] == theirs["counts"]
    assert theirs["counts"]["dropped"]["duplicate"] >= 1000 and not P.work_folder(killed).exists()


def test_dry_run_prints_the_plan_and_writes_nothing(vocab, text, tmp_path):
    from click.testing import CliRunner

    from factory.cli.main import cli

    out = tmp_path / "s"
    args = ["shards", "--vocab", vocab, *[a for lang in LANGS for a in ("--corpus", f"{lang}={text / lang}")],
            "--tokens", "6k", "--seq-len", "64", "--out", out, "--dry-run"]  # fmt: skip
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    table = [line for line in lines if line.split()[0] in LANGS]
    assert len(table) == 3 and all(line.endswith("KiB") for line in table) and lines[0].split()[0] == "language"
    assert sum(int(line.split()[-4].replace(",", "")) for line in table) == 6000  # the budgets
    rows = [int(line.split()[-3]) for line in table]
    assert all(int(line.split()[-4].replace(",", "")) <= 64 * r < int(line.split()[-4].replace(",", "")) + 64
               for line, r in zip(table, rows, strict=True))  # fmt: skip
    assert not out.exists() and not P.work_folder(out).exists()


@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--langs", "en,pt,ru,xx"], ["unknown language code 'xx'"]),
        (["--langs", "en,pt,ruu"], ["'ruu'", "did you mean ru?"]),
        (["--tokens-per-language", "1e9"], ["--tokens-per-language 1e9: ", "would store 1,000,000,000", "(counted)"]),
        (["--tokens", "5e8"], ["--tokens 5e8 (alpha 0.3)", "its corpus holds", "at most"]),
        (["--alpha", "0", "--tokens", "1k"], ["--alpha", "must be > 0"]),
        (["--alpha", "-0.5", "--tokens", "1k"], ["--alpha", "must be > 0"]),
        (["--alpha", "nan", "--tokens", "1k"], ["--alpha", "not a finite number"]),
        (["--tokens", "1k", "--tokens-per-language", "1k"], ["not both"]),
        (["--tokens", "lots"], ["--tokens", "not a count"]),
        (["--task", "5/4"], ["--task", "1 <= I <= N"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(vocab, text, tmp_path, extra, needles):
    out = tmp_path / "s"
    corpus = [a for lang in LANGS for a in ("--corpus", f"{lang}={text / lang}")]
    one_error_line(["shards", "--vocab", vocab, *corpus, "--seq-len", "64", *extra, "--out", out], *needles, out=out)
    assert not P.work_folder(out).exists()


def test_a_version_2_shard_folder_is_refused_in_one_line(vocab, text, tmp_path):
    build_shards(config(vocab, text, tmp_path / "s", langs=["ru"]))
    manifest = tmp_path / "s" / "factory.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema": 2}))
    with pytest.raises(ManifestError, match="version-2 shards manifest.*reads version 3.*`factory shards` again"):
        ShardSet(tmp_path / "s")
