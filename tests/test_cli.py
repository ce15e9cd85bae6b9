"""CLI contract: every command teaches with --help; user mistakes are one line and exit code 2."""

import json
import logging
import subprocess
import sys

import pytest
import transformers
from click.testing import CliRunner
from conftest import one_error_line

from factory.cli.main import cli
from factory.model import load_model


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_help_for_every_command():
    top = run("--help")
    assert top.exit_code == 0 and "factory presets" in top.output
    for name in cli.list_commands(None):
        command = cli.get_command(None, name)
        assert command.help, f"{name} has no docstring"
        result = run(name, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output, name


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and "factory, version" in result.output


def test_presets_table_and_json():
    table = run("presets")
    assert table.exit_code == 0 and "xsmall" in table.output and "85.5M" in table.output
    rows = json.loads(run("presets", "--json", "--vocab-size", "32k").output)
    base = next(r for r in rows if r["preset"] == "base")
    assert base["embedding"] == 32_100 * 768 and base["total"] == base["backbone"] + base["embedding"]


def test_init_writes_a_folder_transformers_loads(tmp_out):
    result = run("init", "--preset", "debug", "--vocab-size", "2k", "--head", "mlm", "--out", tmp_out, "--seed", 7)
    assert result.exit_code == 0, result.output
    names = {p.name for p in tmp_out.iterdir()}
    assert {"config.json", "model.safetensors", "factory.json"} <= names
    hf, info = transformers.AutoModelForMaskedLM.from_pretrained(tmp_out, output_loading_info=True)
    assert not any(info.values())
    ours = load_model(tmp_out)
    assert ours.config.vocab_size == 2100 and ours.config.factory["preset"] == "debug"
    # same seed -> same weights
    again = run("init", "--preset", "debug", "--vocab-size", "2k", "--head", "mlm", "--out", tmp_out / "b", "--seed", 7)
    assert again.exit_code == 0
    assert (tmp_out / "model.safetensors").read_bytes() == (tmp_out / "b" / "model.safetensors").read_bytes()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--preset", "medium"], "Invalid value for '--preset'"),
        (["--vocab-size", "lots"], "not a size"),
        (["--vocab-size", "999"], "at least 1000"),
    ],
)
def test_init_bad_input(args, expected, tmp_out):
    line = one_error_line(run("init", *args, "--out", tmp_out))
    assert expected in line
    assert not tmp_out.exists()


def test_init_never_overwrites_without_force(tmp_out):
    tmp_out.mkdir()
    (tmp_out / "keep.txt").write_text("precious")
    line = one_error_line(run("init", "--preset", "debug", "--vocab-size", "1k", "--out", tmp_out))
    assert "--force" in line
    assert (tmp_out / "keep.txt").read_text() == "precious"
    assert run("init", "--preset", "debug", "--vocab-size", "1k", "--out", tmp_out, "--force").exit_code == 0
    assert not (tmp_out / "keep.txt").exists() and (tmp_out / "config.json").exists()


def test_load_model_on_folders_that_are_not_deberta(tmp_path):
    from factory.core.errors import ModelFolderError

    with pytest.raises(ModelFolderError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match="no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    with pytest.raises(ModelFolderError, match="not 'deberta-v2'"):
        load_model(tmp_path)


def test_load_model_refuses_weights_of_another_preset(tmp_path):
    from factory.core.errors import ModelFolderError

    assert run("init", "--preset", "debug", "--vocab-size", "1k", "--out", tmp_path / "a").exit_code == 0
    assert run("init", "--preset", "xsmall", "--vocab-size", "1k", "--out", tmp_path / "b").exit_code == 0
    (tmp_path / "a" / "model.safetensors").replace(tmp_path / "b" / "model.safetensors")
    with pytest.raises(ModelFolderError, match="another preset|does not fit"):
        load_model(tmp_path / "b")
    with pytest.raises(ModelFolderError, match="no weights"):
        load_model(tmp_path / "a")


def test_the_console_script_prints_one_line(tmp_path):
    """The installed entry point, in a real process: one line on stderr, exit 2, no traceback."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "factory", "init", "--preset", "nope", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ") and proc.stdout == ""


def test_cli_preset_names_are_the_presets():
    """The configs' literal lists (kept out of factory.model.presets and factory.model so --help does not import
    torch) must not drift."""
    from factory.model.heads import HEADS as MODEL_HEADS
    from factory.model.init_config import HEADS, PRESET_NAMES
    from factory.model.presets import PRESETS

    assert list(PRESET_NAMES) == list(PRESETS) and list(HEADS) == list(MODEL_HEADS)


def test_init_with_a_vocabulary_folder(tiny_vocab, tmp_path):
    """--vocab sizes the embedding to the vocabulary and copies its tokenizer files: eval and publish can use
    the folder as it is."""
    from factory.evaluate.runner import check_model
    from factory.model.folder import read_config
    from factory.model.tokenizer import TOKENIZER_FILES

    out = tmp_path / "m"
    result = CliRunner().invoke(cli, ["init", "--preset", "debug", "--vocab", str(tiny_vocab), "--head", "cls",
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all((out / name).is_file() for name in TOKENIZER_FILES if (tiny_vocab / name).is_file())
    assert read_config(out).vocab_size == 1100  # 1000 pieces: [MASK] = 1000, rows as published (+100)
    check_model(out)  # the tokenizer fits the embedding
    assert "tokenizer from" in result.output


def test_a_quiet_bar_draws_nothing_and_needs_no_tqdm():
    """-q (or a rank but the main one): the bar takes every call a bar gets and iterates as its iterable, and
    the process never imports tqdm (its import reads importlib.metadata: ~30 ms of start-up)."""
    code = (
        "import logging, sys\n"
        "logging.getLogger('factory').setLevel(logging.WARNING)\n"
        "from factory.core.progress import progress\n"
        "with progress(total=3, desc='a') as bar:\n"
        "    bar.update(1); bar.set_postfix(loss='1.0'); bar.set_postfix_str('x')\n"
        "bar = progress(total=2, desc='b'); bar.update(2); bar.close()\n"
        "assert list(progress([1, 2, 3], desc='c')) == [1, 2, 3]\n"
        "assert 'tqdm' not in sys.modules, 'tqdm was imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok" and not done.stderr, done.stderr


@pytest.mark.parametrize("flags, level", [(["-q"], logging.WARNING), (["-v"], logging.DEBUG), ([], logging.INFO)])
def test_logging_is_configured_once_by_the_cli(flags, level, monkeypatch):
    """The library's one output channel: the `factory` logger, quieter with -q (no progress bars either)."""
    from factory.core.progress import progress_enabled

    monkeypatch.delenv("RANK", raising=False)
    assert CliRunner().invoke(cli, [*flags, "presets", "--json"]).exit_code == 0
    assert logging.getLogger("factory").level == level
    assert progress_enabled() is (level <= logging.INFO)
    monkeypatch.setenv("RANK", "1")  # another process of a torchrun/accelerate launch: errors only
    assert CliRunner().invoke(cli, [*flags, "presets", "--json"]).exit_code == 0
    assert logging.getLogger("factory").level == logging.ERROR and not progress_enabled()


# What each command's Ctrl-C line says its rerun keeps: only shards, pretrain and run continue anything
INTERRUPT_LINES = {
    "pretrain": ("`pretrain --resume auto` continues from the last checkpoint",),
    "shards": ("the same command run again resumes the build",),
    "run": ("skips the finished steps", "resumes the shard build and the pre-training"),
    "eval": ("outputs are whole or absent", "keeps the tasks of a suite that finished"),
    "publish": ("the Hub repository gets the whole commit or none",),
    **{name: ("nothing to resume", "start over") for name in ("vocab", "trim", "transplant", "init", "presets")},
}


@pytest.mark.parametrize("command", sorted(INTERRUPT_LINES))
def test_the_interrupt_line_says_what_the_command_keeps(command, monkeypatch):
    """Ctrl-C while a command runs: exit 130 and one line saying what running it again keeps. The line used to
    promise checkpoints of `shards` and `pretrain --resume auto` after any command."""
    from factory.cli.main import COMMANDS, FactoryGroup

    def interrupted(self, ctx):
        raise KeyboardInterrupt  # inside the command (the group invokes it): Click turns it into Abort

    monkeypatch.setattr(FactoryGroup, "invoke", interrupted)
    assert command in COMMANDS
    line = one_error_line(CliRunner().invoke(cli, ["-q", command, "ARG"]), *INTERRUPT_LINES[command], code=130)
    assert line.startswith("Error: interrupted; outputs are whole or absent" if command != "publish" else "Error: ")
    if command not in ("pretrain", "shards", "run"):
        assert "checkpoint" not in line and "resumes" not in line, line
