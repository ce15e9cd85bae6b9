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
