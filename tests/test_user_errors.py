"""User mistakes found in review, across commands: each is one `Error:` line, exit code 2, no traceback,
and no output folder left behind."""

import shutil
from pathlib import Path

import conftest
import pytest
from conftest import model_folder

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo"


def one_error_line(args, out: Path | None = None) -> str:
    """`factory ARGS` fails as a user mistake must (conftest's check), leaving no `out` behind."""
    return conftest.one_error_line(args, out=out)


@pytest.fixture
def files(tmp_path):
    binary = tmp_path / "bin.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    listed = tmp_path / "list.yaml"
    listed.write_text("- en\n- pt\n")
    return {"binary": binary, "empty": empty, "list": listed}


def test_vocab_mistakes(files, tmp_path):
    out = tmp_path / "v"
    corpus = DEMO / "corpus" / "en.txt"
    assert "cannot read it as YAML" in one_error_line(["vocab", "--spec", files["binary"], "--out", out], out)
    assert "a spec is a mapping" in one_error_line(["vocab", "--spec", files["list"], "--out", out], out)
    for alpha in ("nan", "-1", "2"):
        line = one_error_line(["vocab", "--corpus", corpus, "--lang", "en", "--alpha", alpha, "--out", out], out)
        assert "--alpha" in line


def test_shards_mistakes(files, tiny_vocab, tmp_path):
    out = tmp_path / "s"
    line = one_error_line(["shards", "--vocab", tiny_vocab, "--corpus", files["empty"], "--out", out], out)
    assert "holds no text" in line
    broken = tmp_path / "broken"
    shutil.copytree(tiny_vocab, broken)
    (broken / "spm.model").write_bytes(b"not a model")
    line = one_error_line(["shards", "--vocab", broken, "--corpus", DEMO / "corpus" / "en.txt", "--out", out], out)
    assert "not a SentencePiece model" in line


def test_pretrain_mistakes(tiny_vocab, tmp_path):
    out = tmp_path / "p"
    line = one_error_line(["pretrain", "--vocab", tmp_path / "nowhere", "--shards", tmp_path, "--out", out], out)
    assert "spm.model" in line
    for flag, value in (("--lr", "-1"), ("--lr", "0"), ("--rtd-lambda", "nan"), ("--tokens", "inf")):
        line = one_error_line(["pretrain", "--vocab", tiny_vocab, "--shards", tmp_path, flag, value, "--out", out], out)
        assert flag in line


def test_run_mistakes(files, tmp_path):
    assert "not a text file" in one_error_line(["run", files["binary"]])
    assert "has no 'steps'" in one_error_line(["run", files["empty"]])
    assert not Path("runs/empty").exists()


def test_init_mistakes(tmp_path):
    assert "too large" in one_error_line(["init", "--vocab-size", "999999999999", "--out", tmp_path / "i"])
    assert "too large" in one_error_line(["presets", "--vocab-size", "100000000000"])
    assert "cannot write --out" in one_error_line(["init", "--preset", "debug", "--vocab-size", "1k",
                                                   "--out", "/proc/factory-test/x"])  # fmt: skip


def test_eval_refuses_a_vocabulary_the_model_was_not_built_for(tiny_vocab, tmp_path):
    model = tmp_path / "m"
    model_folder(model, 2000, tokenizer=tiny_vocab, files=("spm.model",))  # a 1000-piece spm.model
    out = tmp_path / "e"
    line = one_error_line(["eval", "xnli", "--model", model, "--data", DEMO / "nli", "--out", out], out)
    assert "[MASK]=1000" in line and "[MASK]=2000" in line


def test_eval_data_that_is_not_text(tiny_vocab, tmp_path, files):
    model = tmp_path / "m"
    model_folder(model, 1000, tokenizer=tiny_vocab, files=("spm.model",))
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):
        shutil.copy(files["binary"], data / f"{split}.jsonl")
    out = tmp_path / "e"
    line = one_error_line(["eval", "xnli", "--model", model, "--data", data, "--out", out], out)
    assert "not UTF-8" in line


def test_unknown_attention_path(tiny_vocab, tmp_path, monkeypatch):
    """A typo in FACTORY_ATTENTION is one line before any work starts, and no output."""
    model = tmp_path / "m"
    model_folder(model, 1000, tokenizer=tiny_vocab, files=("spm.model",))
    monkeypatch.setenv("FACTORY_ATTENTION", "fast")
    out = tmp_path / "e"
    line = one_error_line(["eval", "xnli", "--model", model, "--data", DEMO / "nli", "--out", out], out)
    assert "FACTORY_ATTENTION='fast'" in line and "sdpa" in line


def test_a_huge_value_is_named_in_a_short_line(tmp_path):
    """A 20 KB value (or key, or word Click quotes) is shown cut, with its length, in a line that still says which
    setting it was given for: the messages used to echo it whole (an unknown key's line also lists the known ones)."""
    huge = "x" * 20_000
    recipe = DEMO.parent / "demo.yaml"
    for args, key in (
        (["run", recipe, "--dry-run", "--set", f"steps.pretrain.max_steps={huge}"], "steps.pretrain.max_steps"),
        (["run", recipe, "--dry-run", "--set", f"steps.pretrain.preset={huge}"], "steps.pretrain.preset"),
        (["run", recipe, "--dry-run", "--set", f"steps.pretrain.{huge}=1"], "steps.pretrain: unknown key"),
        (["run", recipe, "--dry-run", "--set", f"steps.pretrain={huge}"], "steps.pretrain must be a mapping"),
        (["pretrain", "--preset", huge, "--dry-run", "--out", tmp_path / "p"], "'--preset'"),
        (["shards", "--tokens", huge, "--vocab", tmp_path, "--corpus", tmp_path, "--out", tmp_path / "s"], "--tokens"),
        (["presets", "--vocab-size", huge], "--vocab-size"),
        (["vocab", f"--{huge}", "1"], "No such option"),
    ):
        line = one_error_line(args)
        shown = line.split("; known: ")[0]
        assert len(shown) < 300 and "x" * 61 not in line and key in line and "...(20,0" in line, line[:400]


def test_a_number_with_thousands_of_digits_is_too_large(tmp_path):
    """Python converts at most 4300 digits to an int: YAML's parser (a recipe, `--set`) and the size and task
    grammars raised its ValueError as a traceback. Now each is one line that names the setting."""
    digits = "9" * 20_000
    recipe = tmp_path / "r.yaml"
    recipe.write_text((DEMO.parent / "demo.yaml").read_text().replace("max_steps:", f"max_steps: {digits} #"))
    for args, key in (
        (["run", DEMO.parent / "demo.yaml", "--dry-run", "--set", f"steps.pretrain.max_steps={digits}"], "max_steps"),
        (["run", DEMO.parent / "demo.yaml", "--dry-run", "--set", f"steps.pretrain.lr=0x{'f' * 5000}"], "lr"),
        (["run", recipe, "--dry-run", "--run-dir", tmp_path / "run"], "steps.pretrain.max_steps"),
        (["pretrain", "--max-steps", digits, "--dry-run", "--out", tmp_path / "p"], "'--max-steps'"),
        (["presets", "--vocab-size", digits], "--vocab-size"),
        (["shards", "--task", f"1/{digits}", "--vocab", tmp_path, "--corpus", tmp_path, "--out", tmp_path / "s"],
         "--task"),
    ):  # fmt: skip
        line = one_error_line(args)
        assert key in line and ("too large" in line or "not" in line), line
    assert "too large" in one_error_line(["vocab", "--size", digits, "--corpus", DEMO / "corpus", "--out", tmp_path])
