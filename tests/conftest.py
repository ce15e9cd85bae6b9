"""Shared fixtures and helpers. Tests run offline, on CPU, with micro configs.

Helpers (import them with `from conftest import ...`): `micro_config`, `padded_batch`, `pseudo_text`,
`one_error_line` (how a mistake must look on the command line) and `model_folder` (a random model on disk).
"""

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from factory.model.presets import PRESETS, VocabSize  # noqa: E402
from factory.model.tokenizer import TOKENIZER_FILES  # noqa: E402

SMALL_VOCAB = VocabSize.parse("1000")


def micro_config(preset: str = "debug", layers: int = 2, **overrides):
    """A preset's shape (same hidden, heads, head size, FFN ratio, conv) with few layers and a 1k vocab."""
    return PRESETS[preset].config(SMALL_VOCAB, num_hidden_layers=layers, **overrides)


def padded_batch(vocab: int, length: int, batch: int = 3, seed: int = 0):
    """ids + mask with a real padding pattern: row 0 full, row 1 half, row 2 missing its last 3 tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:
        mask[1, max(1, length // 2) :] = 0
    if batch > 2:
        mask[2, max(1, length - 3) :] = 0
    return ids * mask, mask


@pytest.fixture
def tmp_out(tmp_path):
    return tmp_path / "out"


def pseudo_text(n_lines: int, seed: int = 0) -> list[str]:
    """Deterministic sentences of pseudo-words (syllable soup): enough variety for a 1k vocabulary."""
    import random

    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfglmnprstvz" for v in "aeiou"] + ["ção", "ões", "nh", "lh", "qu"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 25))) + "." for _ in range(n_lines)]


@pytest.fixture(scope="session")
def tiny_vocab(tmp_path_factory):
    """A 1000-piece DeBERTa-v3-style vocabulary folder made by `factory.vocab.train` (what `factory vocab` writes):
    spm.model with [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, [MASK]=1000, and the Hugging Face tokenizer files."""
    from factory.vocab.train import SpmSettings, train_spm, write_hf_files

    folder = tmp_path_factory.mktemp("tiny_vocab")
    sample = folder / ".sample.txt"
    sample.write_text("\n".join(pseudo_text(3000)) + "\n", encoding="utf-8")
    train_spm(sample, 3000, folder, SpmSettings(pieces=1000, threads=2))
    write_hf_files(folder)
    sample.unlink()
    return folder


def one_error_line(result, *needles: str, out: Path | None = None, code: int = 2, alone: bool = True) -> str:
    """How a mistake must look on the command line; returns the `Error: ...` line.

    Exit `code` (2: a user mistake; 1: a runtime failure), exactly one line starting `Error: ` that holds
    every needle, and no traceback. `alone`: that line is the whole output (False for a run that failed
    part-way and printed progress first). `out`: no output folder left behind (absent or empty).
    `result` is a CliRunner result, or the arguments of a `factory` command to run in-process.
    """
    if isinstance(result, (list, tuple)):
        from click.testing import CliRunner

        from factory.cli.main import cli

        result = CliRunner().invoke(cli, [str(a) for a in result])
    output = result.output
    assert result.exit_code == code, output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    if alone:
        assert output.strip().splitlines() == [errors[0].strip()], output
    assert "Traceback" not in output, output
    for needle in needles:
        assert needle in errors[0], errors[0]
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), f"{out} was left behind"
    return errors[0]


def model_folder(
    folder: Path,
    pieces: int = 1000,
    *,
    head: str = "none",
    layers: int | None = None,
    seed: int | None = None,
    tokenizer: Path | None = None,
    files: tuple[str, ...] = TOKENIZER_FILES,
    **factory,
) -> Path:
    """A random debug-preset deberta-v2 folder sized for `pieces` SentencePiece pieces ([MASK] = pieces).

    `tokenizer`: a vocabulary folder whose `files` are copied beside the weights, as `factory pretrain`
    exports them; `factory` keys go into the config's `factory` section (e.g. preset, languages, emd).
    """
    from factory.model import build_model, save_model

    config = PRESETS["debug"].config(VocabSize.from_pieces(pieces), **({"num_hidden_layers": layers} if layers else {}))
    if factory:
        config = config.replace(factory={**config.factory, **factory})
    save_model(build_model(config, head, seed=seed), folder)
    for name in files if tokenizer is not None else ():
        shutil.copy(Path(tokenizer) / name, Path(folder) / name)
    return Path(folder)


@pytest.fixture(scope="module")
def one_thread():
    """Micro models gain nothing from threads, and on a shared CPU thread sync can cost 10x (use it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def word_shards(vocab: Path, folder: Path, lines: int, words: int) -> Path:
    """Shards (seq_len 32) of pseudo-words each repeated 8-16 times in its line: context a micro model can
    learn in a hundred steps. `lines` of pseudo text give the words; the first `words` of them are used."""
    import random

    from factory.shards.config import ShardsConfig
    from factory.shards.run import build_shards

    rng = random.Random(0)
    pool = [w.strip(".") for line in pseudo_text(lines, seed=1) for w in line.split()]
    text = [" ".join([w] * rng.randint(8, 16)) for w in pool[:words]]
    (folder / "corpus.txt").write_text("\n".join(text) + "\n")
    # dedupe off: the same word repeated the same number of times is a duplicate line, and these micro runs
    # were tuned on the shards as they were before the shard build de-duplicated
    config = ShardsConfig(
        vocab=vocab, corpus=[str(folder / "corpus.txt")], seq_len=32, out=folder / "shards", dedupe=False
    )
    build_shards(config)
    return folder / "shards"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache for this test (HF_HUB_OFFLINE is set above): huggingface_hub reads it in-process
    and in subprocesses (HF_HUB_CACHE); tests/published.py's `hub_cache` fills it."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache
