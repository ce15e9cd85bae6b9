"""Published DeBERTa-v3 checkpoints as the tests build them: the Hub's own file layout
(docs/derive.md#published-layouts) and a Hugging Face cache that holds them, so every Hub-id path runs offline.

- `published_folder` writes what microsoft/deberta-v3-xsmall, -large and mdeberta-v3-base ship: config.json
  without `architectures`, pytorch_model.bin (the discriminator: `deberta.*` with the folded table in
  `word_embeddings.weight` and, optionally, the GDES delta in `word_embeddings._weight`, the unused absolute
  positions, an `lm_predictions.lm_head.*` and the RTD head `mask_predictions.*`), and beside it
  generator_config.json + pytorch_model.generator.bin (half the depth, `lm_predictions.lm_head.*`, the absolute
  positions its enhanced mask decoder reads), in fp16, fp32 or both mixed.
- `hub_cache` puts a folder into a cache in the layout huggingface_hub reads: models--org--name/refs/<branch> holds
  the commit hash, models--org--name/snapshots/<hash>/ the files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from factory.model import DebertaForMaskedLM, DebertaForRTD, ModelConfig, build_model
from factory.model.encoder import init_weights

# The keys of the official config.json (deberta-v3-xsmall's, sizes replaced): no architectures, no legacy, no
# pooler or label keys, pos_att_type as a string.
PUBLISHED_KEYS = (
    "model_type", "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
    "initializer_range", "intermediate_size", "max_position_embeddings", "relative_attention", "position_buckets",
    "norm_rel_ebd", "share_att_key", "pos_att_type", "layer_norm_eps", "max_relative_positions",
    "position_biased_input", "num_attention_heads", "attention_head_size", "num_hidden_layers", "type_vocab_size",
    "vocab_size",
)  # fmt: skip


def published_config(config: ModelConfig) -> dict:
    """config.json as the official repositories write it."""
    hf = config.to_hf()
    out = {key: hf[key] for key in PUBLISHED_KEYS if key in hf}
    out["pos_att_type"] = "p2c|c2p"
    return out


def _cast(state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """fp16, fp32, or "mixed": matrices in fp16, vectors in fp32 (the pickle imports of the xsmall generator and of
    mdeberta's discriminator show both storages)."""
    out = {}
    for name, t in state.items():
        half = dtype == "fp16" or (dtype == "mixed" and t.ndim > 1)
        out[name] = t.detach().clone().to(torch.float16 if half else torch.float32).contiguous()
    return out


def published_state(
    config: ModelConfig, generator_layers: int, seed: int = 0, delta: bool = True, trained_delta: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(discriminator state, generator state) with the official names, in fp32.

    The discriminator's `word_embeddings.weight` is E_G + delta, as the official GDES hook computes it
    (DeBERTa/apps/tasks/rtd_task.py); with `delta` the delta itself is stored as `_weight` beside it (xsmall,
    mdeberta), without it only the folded table (large)."""
    torch.manual_seed(seed)
    gen_config = config.replace(num_hidden_layers=generator_layers)
    generator = DebertaForMaskedLM(gen_config)
    disc = DebertaForRTD(config)
    init_weights(generator, 0.02)
    init_weights(disc, 0.02)
    positions = torch.randn(config.max_position_embeddings, config.hidden_size) * 0.02
    d_delta = torch.randn(config.vocab_size, config.hidden_size) * (0.01 if trained_delta else 0.0)
    g_state = dict(generator.state_dict())
    g_state["deberta.embeddings.position_embeddings.weight"] = positions
    d_state = dict(disc.state_dict())
    table = "deberta.embeddings.word_embeddings.weight"
    d_state[table] = g_state[table] + d_delta
    d_state["deberta.embeddings.position_embeddings.weight"] = positions + 0.001
    if delta:
        d_state["deberta.embeddings.word_embeddings._weight"] = d_delta
        d_state["deberta.embeddings.position_embeddings._weight"] = torch.full_like(positions, 0.001)
    mlm = build_model(config, "mlm", seed=seed + 1).lm_predictions.state_dict()  # the discriminator's own MLM head
    d_state.update({f"lm_predictions.{k}": v for k, v in mlm.items()})
    return d_state, g_state


def published_folder(
    folder: Path,
    config: ModelConfig,
    *,
    generator_layers: int = 1,
    dtype: str = "fp16",
    delta: bool = True,
    generator: bool = True,
    tokenizer: Path | None = None,
    seed: int = 0,
) -> Path:
    """A folder in the published layout (module docstring); `tokenizer`: a vocabulary folder whose spm.model is
    copied, with the official 52-byte tokenizer_config.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    d_state, g_state = published_state(config, generator_layers, seed, delta)
    (folder / "config.json").write_text(json.dumps(published_config(config), indent=2) + "\n")
    torch.save(_cast(d_state, dtype), folder / "pytorch_model.bin")
    if generator:
        gen = published_config(config.replace(num_hidden_layers=generator_layers))
        (folder / "generator_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        torch.save(_cast(g_state, dtype), folder / "pytorch_model.generator.bin")
    if tokenizer is not None:
        shutil.copy(Path(tokenizer) / "spm.model", folder / "spm.model")
        (folder / "tokenizer_config.json").write_text('{"do_lower_case": false, "vocab_type": "spm"}')
    return folder


def hub_cache(cache: Path, repo_id: str, folder: Path, branch: str = "main", commit: str | None = None) -> str:
    """Copy `folder`'s files into `cache` as the snapshot of `repo_id` at `commit` (default: a hash of the files),
    with refs/<branch> pointing at it; returns the commit hash."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    if commit is None:
        digest = hashlib.sha1()
        for p in files:
            digest.update(p.name.encode() + p.read_bytes())
        commit = digest.hexdigest()
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for p in files:
        shutil.copy(p, snapshot / p.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / branch).write_text(commit)
    return commit
