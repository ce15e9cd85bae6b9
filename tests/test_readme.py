"""The README runs as written: every `factory` command of its bash blocks, in order, in one folder, at test size
(the substitutions in SCALE, said in one place), or with --dry-run where it needs the network, or up to the one
line that says the Hub is off; and its demo table is what a fresh run of the demo prints.

Published models (`microsoft/deberta-v3-xsmall`, `microsoft/mdeberta-v3-base`) come from a Hugging Face cache this
test builds in the Hub's layout (tests/published.py): the Hub-id code runs for real, offline. Text is the
project's own syllable soup (conftest.pseudo_text), so the language filter is off where text is read.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import model_folder, pseudo_text
from published import hub_cache, published_folder

from factory.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# (what the README says, what the test runs instead): the same command at test size.
SCALE = [
    ("accelerate launch -m factory", "factory"),  # one process here; test_distributed covers the launch
    ("hf:allenai/c4:pt", "pt.txt"),
    ("--size 32k", "--size 1000"),
    ("--size 64k", "--size 180"),
    ("--tokens 2B", "--tokens 20k"),
    ("--tokens 13B", "--tokens 20k"),
    ("--seq-len 512", "--seq-len 64"),
    ("--preset base", "--preset debug"),
    ("--preset large", "--preset debug"),
    ("--preset xsmall", "--preset debug"),
    ("--batch 256", "--batch 8"),
    ("--max-steps 100000", "--max-steps 2"),
    ("--runs 3", "--runs 1"),
    ("pt-128k", "pt-32k"),
    ("--max-docs 1000000", "--max-docs 2000"),
    ("--vocab v/ --shards s/", "--vocab pt-32k --shards c4-pt-512"),  # the probe's example names folders made above
    ("--runs 1 --out eval-xnli", "--runs 1 --data recipes/demo/nli --out eval-xnli"),  # publish reads its results
]
TRAIN = ["--max-steps", "2", "--batch", "8", "--save-every", "1", "--log-every", "1"]  # a pre-training that runs
FAST = ["--set", "epochs=1", "--set", "max_length=32", "--set", "warmup_steps=0"]  # a fine-tuning that runs
OFFLINE = "HF_HUB_OFFLINE"

# How a command that does not simply run is run: the first needle found in the README's command decides.
#   dry: with --dry-run (what it prints needs no network); dry+run: also once for real at test size (a later
#   command reads its output); force: with --force (the README's journeys reuse a folder name, one folder here);
#   offline: up to the one line (exit 2) that the Hub is off, naming the needle.
HOW = [
    ("factory run recipes/debertina-base.yaml", "dry"),
    ("factory run deberta-v3-xsmall-continue", "dry"),
    ("factory run recipes/mdeberta-v3-base-pt-trim.yaml", "dry"),
    ("factory vocab --spec vocab/cc100.yaml", ("offline", "hf:statmt/cc100")),
    ("--init-from microsoft/deberta-v3-xsmall", "dry+run"),
    ("factory eval xnli --model microsoft", ("offline", "facebook/xnli")),
    ("factory eval xnli --model xsmall-domain", ("offline", "facebook/xnli")),
    ("factory eval glue --model debertina-base", ("offline", "nyu-mll/glue")),
    ("factory eval glue --model m/", ("offline", "nyu-mll/glue")),
    ("factory eval squad2", ("offline", "rajpurkar/squad_v2")),
    ("--tasks pawsx,xnli", ("offline", "paws-x")),
    ("factory eval assin2", ("offline", "assin2")),
    ("--corpus pt=hf:allenai/c4:pt --max-sentences 10M --out pt-32k", "force"),
    ("factory shards --vocab mdeberta-on-pt-32k", "force"),
    ("factory publish debertina-base/discriminator --repo-id", ("offline", "token")),
]


def readme_commands() -> list[str]:
    """The `factory` lines of the README's bash blocks (continuations joined, comments dropped), each once."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith(("factory ", "accelerate launch")):
                commands.append(re.sub(r"\s+", " ", line))
    return list(dict.fromkeys(commands))


def how(command: str) -> str | tuple:
    return next((way for needle, way in HOW if needle in command), "run")


def at_test_size(command: str, previous: list[str]) -> list[str]:
    """The README's command as the test runs it: SCALE, `...` as the pre-training just before it, the language
    filter off where text is read (the test's text is syllable soup, in no language a filter knows)."""
    for theirs, ours in SCALE:
        command = command.replace(theirs, ours)
    words = shlex.split(command)[1:]  # without `factory`
    if "..." in words:  # `factory pretrain ... --out X --resume auto`: the arguments of the run before, but --out
        at, out = words.index("..."), previous.index("--out")
        words = [*words[:at], *previous[1:out], *previous[out + 2 :], *words[at + 1 :]]
    if words[0] in ("vocab", "shards", "trim") and words[1] != "report" and "--spec" not in words:
        words.append("--no-langid")
    return words


def runnable(words: list[str], way: str | tuple) -> list[str]:
    """What a command needs to run here in seconds: a short pre-training, a short fine-tuning."""
    if words[0] == "pretrain" and "--dry-run" not in words:
        words = [*words, *TRAIN]
    if words[0] == "eval" and way == "run":
        words = [*words, *FAST]
    return [*words, "--force"] if way == "force" else words


@pytest.fixture
def workdir(tmp_path, monkeypatch, hf_cache, tiny_vocab):
    """The folder the commands run in, with the files the README names and a Hub cache of the two models."""
    from factory.model.presets import PRESETS, VocabSize

    monkeypatch.chdir(tmp_path)
    for folder in ("recipes", "vocab", "eval"):  # the README's paths are the checkout's
        Path(folder).symlink_to(ROOT / folder)
    text = pseudo_text(3000, seed=5)
    Path("pt.txt").write_text("\n".join(text) + "\n")
    Path("my-sample.txt").write_text("\n".join(text[:300]) + "\n")
    Path("my-domain").mkdir()
    (Path("my-domain") / "notes.txt").write_text("\n".join(pseudo_text(1500, seed=6)) + "\n")
    shutil.copytree(tiny_vocab, "other-vocab")
    config = PRESETS["debug"].config(VocabSize.from_pieces(1000))
    for repo in ("microsoft/deberta-v3-xsmall", "microsoft/mdeberta-v3-base"):
        folder = published_folder(tmp_path / "published" / repo, config, tokenizer=tiny_vocab)
        hub_cache(hf_cache, repo, folder)
    model_folder(Path("m"), tokenizer=tiny_vocab, head="none")
    model_folder(Path("DIR"), tokenizer=tiny_vocab, head="none")
    rows = [{"text": line, "label": ["neg", "pos"][i % 2], "language": "en"} for i, line in enumerate(text[:64])]
    Path("train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:48]))
    Path("test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[48:]))
    aligned = Path("data/aligned")
    aligned.mkdir(parents=True)
    for lang in ("en", "pt"):  # the same lines twice: a plumbing check, not a translation
        (aligned / f"{lang}.txt").write_text("\n".join(text[:40]) + "\n")
    _local_sets(Path("my-sets"), text)
    return tmp_path


def _local_sets(root: Path, text: list[str]) -> None:
    """`--data my-sets/` of the README's local XTREME run: PAN-X, XQuAD (SQuAD's columns) and Tatoeba files."""
    def write(path: Path, rows: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    tags = [{"tokens": s.split(), "ner_tags": ["B-PER" if w[0] in "bcd" else "O" for w in s.split()]} for s in text]
    write(root / "panx" / "train.en.jsonl", tags[:24])
    for split in ("validation", "test"):
        write(root / "panx" / f"{split}.en.jsonl", tags[24:30])
        write(root / "panx" / f"{split}.de.jsonl", tags[30:36])
    qa = [{"id": f"q{k}", "title": "t", "context": s, "question": s.split()[1],
           "answers": {"text": [s.split()[2]], "answer_start": [s.index(" " + s.split()[2]) + 1]}}
          for k, s in enumerate(text[:40])]  # fmt: skip
    write(root / "xquad" / "train.en.jsonl", qa[:24])
    write(root / "xquad" / "test.en.jsonl", qa[24:32])
    write(root / "xquad" / "test.de.jsonl", qa[32:])
    (root / "tatoeba").mkdir(parents=True)
    (root / "tatoeba" / "de.tsv").write_text("".join(f"{s}\t{s}\n" for s in text[:30]))


@pytest.mark.slow
def test_every_readme_command_runs_as_written(workdir):
    commands = readme_commands()
    assert len(commands) > 20, commands
    used, previous = set(), []
    for command in commands:
        way = how(command)
        used |= {needle for needle, _ in HOW if needle in command}
        words = at_test_size(command, previous)
        if way in ("dry", "dry+run") and "--dry-run" not in words:
            words.append("--dry-run")
        runs = [runnable(words, way)]
        if way == "dry+run":
            runs.append(runnable([w for w in words if w != "--dry-run"], way))
        for argv in runs:
            result = CliRunner().invoke(cli, argv)
            if isinstance(way, tuple):
                error = [line for line in result.output.splitlines() if line.startswith("Error: ")]
                assert result.exit_code == 2 and len(error) == 1, (command, result.output[-2000:])
                assert way[1] in error[0] and "Traceback" not in result.output, (command, error)
            else:
                assert result.exit_code == 0, (command, argv, result.output[-3000:], result.exception)
        if words[0] == "pretrain" and "--dry-run" not in words:
            previous = words
    assert used == {needle for needle, _ in HOW}, f"HOW has needles no README command has: {set(HOW) - used}"
    assert Path("debertina-base/discriminator/model.safetensors").is_file()
    assert Path("mdeberta-v3-base-pt/spm.model").is_file() and Path("mdeberta-on-pt-32k/spm.model").is_file()


@pytest.mark.slow
def test_the_readme_demo_table_is_what_a_fresh_run_prints(tmp_path):
    """`factory run demo` as a user runs it (a fresh process, the machine's threads), then the table that
    `python -m bench.data.demo_table` prints for it (tests/readme_demo.py)."""
    from readme_demo import demo_table, readme_block

    run_dir = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "factory", "-q", "run", "demo", "--run-dir", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert demo_table(run_dir) == readme_block(README.read_text(encoding="utf-8"))
