"""Shared fixtures. Tests run offline, on CPU, with micro configs."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from factory.presets import PRESETS, VocabSize  # noqa: E402

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
    """A 1000-piece DeBERTa-v3-style vocabulary folder made by `factory.vocab` (what `factory vocab` writes):
    spm.model with [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, [MASK]=1000, and the Hugging Face tokenizer files."""
    from factory.vocab import SpmSettings, train_spm, write_hf_files

    folder = tmp_path_factory.mktemp("tiny_vocab")
    sample = folder / ".sample.txt"
    sample.write_text("\n".join(pseudo_text(3000)) + "\n", encoding="utf-8")
    train_spm(sample, 3000, folder, SpmSettings(pieces=1000, threads=2))
    write_hf_files(folder)
    sample.unlink()
    return folder
