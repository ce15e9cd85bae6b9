"""Token shards: packing, sources, manifest, and the errors pre-training relies on."""

import json

import pytest
from click.testing import CliRunner
from conftest import pseudo_text

from factory.cli.main import cli
from factory.core.errors import FactoryError, ShardError
from factory.model.tokenizer import Tokenizer
from factory.shards.config import ShardsConfig
from factory.shards.pack import Packer
from factory.shards.read import ShardSet, iter_rows
from factory.shards.run import build_shards


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    lines = pseudo_text(400, seed=3)
    (folder / "a.txt").write_text("\n".join(lines[:200]) + "\n\n\n")  # blank lines are skipped
    (folder / "b.jsonl").write_text("".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(lines[200:])))
    return folder, lines


def test_rows_are_cls_body_sep_and_reproduce_the_documents(tiny_vocab, corpus, tmp_path):
    """Rows are [CLS] body [SEP] cut from the documents joined by [SEP]; each unit (here each file) ends in its
    own padded row, so rows never span units (that is what lets --task split between them)."""
    folder, lines = corpus
    figures = build_shards(
        ShardsConfig(
            vocab=tiny_vocab,
            corpus=[str(folder / "a.txt"), str(folder / "b.jsonl")],
            seq_len=48,
            out=tmp_path / "s",
            rows_per_shard=50,
            clean=False,  # the packing as such: every document as read
            dedupe=False,
        )
    )
    rows = list(iter_rows(tmp_path / "s"))
    assert len(rows) == figures["sequences"] > 100 and len(figures["shards"]) == -(-len(rows) // 50)
    assert all(r[0] == 1 for r in rows) and all(r[-1] in (0, 2) for r in rows)
    tok = Tokenizer.from_folder(tiny_vocab)
    expected = []
    for unit in (lines[:200], lines[200:]):  # the bodies of each unit are its documents joined by [SEP]
        stream = [t for line in unit for t in [*tok.encode(line), 2]]
        bodies = [stream[i : i + 46] for i in range(0, len(stream), 46)]
        expected += [[1, *b, 2] + [0] * (46 - len(b)) for b in bodies]
    assert [list(map(int, r)) for r in rows] == expected
    assert figures["documents"] == len(lines)
    assert figures["tokens"] + figures["padding"] == len(rows) * 48
    manifest = json.loads((tmp_path / "s" / "factory.json").read_text())
    assert manifest["seq_len"] == 48 and manifest["vocab_pieces"] == 1000 and len(manifest["vocab_fingerprint"]) == 16
    assert manifest["per_language"]["und"]["rows"] == [0, len(rows)] and manifest["schema"] == 3


def test_folder_and_parquet_sources(tiny_vocab, corpus, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder, lines = corpus
    pq.write_table(pa.table({"body": lines[:50]}), tmp_path / "c.parquet")
    figures = build_shards(
        ShardsConfig(
            vocab=tiny_vocab,
            corpus=[str(tmp_path / "c.parquet")],
            seq_len=32,
            out=tmp_path / "p",
            text_field="body",
            clean=False,
        )  # fmt: skip
    )
    assert figures["documents"] == 50
    whole = build_shards(
        ShardsConfig(vocab=tiny_vocab, corpus=[str(folder)], seq_len=32, out=tmp_path / "f", clean=False)
    )
    assert whole["documents"] == len(lines)


def test_packer_holds_at_most_one_row():
    """Memory stays flat: whatever the input size, only the unfinished row is kept."""
    packer = Packer(seq_len=16)
    for _ in range(50):
        rows = packer.add([list(range(4, 40))] * 7)
        assert rows.shape[1] == 16 and len(packer.leftover) < 14


def test_shard_errors(tiny_vocab, corpus, tmp_path):
    with pytest.raises(ShardError, match="holds no shards"):
        ShardSet(tmp_path)
    with pytest.raises(FactoryError, match="no such file or folder"):
        build_shards(
            ShardsConfig(vocab=tiny_vocab, corpus=[str(tmp_path / "missing.txt")], seq_len=32, out=tmp_path / "x")
        )
    assert not (tmp_path / "x").exists()


def test_cli_shards_and_one_line_errors(tiny_vocab, corpus, tmp_path):
    folder, _ = corpus
    runner = CliRunner()
    out = tmp_path / "s"
    ok = runner.invoke(
        cli, ["shards", "--vocab", str(tiny_vocab), "--corpus", str(folder), "--seq-len", "64", "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    assert "sequences of 64" in ok.output and ShardSet(out).seq_len == 64
    again = runner.invoke(cli, ["shards", "--vocab", str(tiny_vocab), "--corpus", str(folder), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    bad = runner.invoke(
        cli, ["shards", "--vocab", str(tmp_path), "--corpus", str(folder), "--out", str(tmp_path / "y")]
    )
    assert bad.exit_code == 2 and "spm.model" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_quiet_hides_the_progress_bars(tiny_vocab, corpus, tmp_path):
    """`factory -q` silences the build's bar (and those `datasets` draws for streams); the setting of the
    datasets bars is restored afterwards. (Local files no longer go through `datasets` at all.)"""
    import datasets

    folder, _ = corpus
    args = ["shards", "--vocab", str(tiny_vocab), "--corpus", str(folder / "a.txt"), "--seq-len", "32"]
    loud = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "loud")])
    assert loud.exit_code == 0 and "shards (units)" in loud.output, loud.output
    quiet = CliRunner().invoke(cli, ["-q", *args, "--out", str(tmp_path / "quiet")])
    assert quiet.exit_code == 0 and quiet.output.strip().splitlines() == [quiet.output.strip()], quiet.output
    assert quiet.output.startswith("wrote ") and datasets.is_progress_bar_enabled()
