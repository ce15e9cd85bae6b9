"""The model config, and the one place where it is converted to and from Hugging Face's config.json.

HF's `DebertaV2Config` reads most DeBERTa-specific keys with `getattr(config, key, default)`, and its
defaults are v2's (relative_attention=False, position_biased_input=True). So every key that changes the
maths is written out explicitly here, and a config.json we read is checked key by key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from factory.core.errors import ModelFolderError


@dataclass(frozen=True)
class ModelConfig:
    """A DeBERTa-v2/v3 encoder. Field names and meanings are HF's, defaults v3-base's (docs/architecture.md#presets)."""

    vocab_size: int = 128100  # embedding rows: SentencePiece pieces + [MASK] + reserved/padding rows
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"  # the exact erf form
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-7
    relative_attention: bool = True
    max_relative_positions: int = -1  # < 1 means max_position_embeddings
    position_buckets: int = 256
    norm_rel_ebd: str = "layer_norm"
    share_att_key: bool = True
    pos_att_type: tuple[str, ...] = ("p2c", "c2p")
    position_biased_input: bool = False
    pad_token_id: int = 0
    conv_kernel_size: int = 0  # v2 xlarge/xxlarge: 3 (the nGiE conv after layer 0)
    conv_act: str = "tanh"  # HF's default; the v2 presets set "gelu"
    conv_groups: int = 1
    pooler_dropout: float = 0.0
    pooler_hidden_act: str = "gelu"
    cls_dropout: float | None = None  # None: hidden_dropout_prob, as HF
    labels: tuple[str, ...] = ("LABEL_0", "LABEL_1")  # sequence-classification label names
    problem_type: str | None = None  # HF's key: "regression" = one output trained with MSE (STS-B); None: labels
    # The generator's enhanced mask decoder (docs/architecture.md#emd): its MLM head reads the last layer run again
    # with the absolute positions added. None: not said (a published generator_config.json), decided on load.
    emd: bool | None = None
    factory: dict[str, Any] = field(default_factory=dict, compare=False)  # provenance: preset, pieces...

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ModelFolderError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}; pick a head count that divides it"
            )
        bad = set(self.pos_att_type) - {"c2p", "p2c"}
        if bad:
            raise ModelFolderError(f"pos_att_type {sorted(bad)} unknown; use 'c2p', 'p2c' or both")

    @property
    def absolute_positions(self) -> bool:
        """Whether the embeddings hold an absolute position table: added to the input (v2), or read by the EMD."""
        return self.position_biased_input or bool(self.emd)

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def att_span(self) -> int:
        """Half the number of relative-embedding rows a layer uses (256 for v3)."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative_span

    @property
    def max_relative_span(self) -> int:
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # ---- Hugging Face config.json ----------------------------------------------------------------
    def to_hf(self, architecture: str | None = None) -> dict[str, Any]:
        """config.json for `transformers`' deberta-v2, every maths-relevant key explicit."""
        out: dict[str, Any] = {"model_type": "deberta-v2"}
        if architecture:
            out["architectures"] = [architecture]
        for f in dataclasses.fields(self):
            unset = (f.name == "problem_type" and self.problem_type is None) or (f.name == "emd" and self.emd is None)
            if f.name in ("labels", "factory", "pos_att_type") or unset:  # unset: HF's default, not written
                continue
            out[f.name] = getattr(self, f.name)
        out["pos_att_type"] = list(self.pos_att_type)
        out["pooler_hidden_size"] = self.hidden_size
        out["attention_head_size"] = self.head_size
        out["legacy"] = False  # our MLM head uses the official `lm_predictions.lm_head` names
        out["tie_word_embeddings"] = True
        out["id2label"] = {str(i): name for i, name in enumerate(self.labels)}
        out["label2id"] = {name: i for i, name in enumerate(self.labels)}
        if self.factory:
            out["factory"] = dict(self.factory)
        return out

    @classmethod
    def from_hf(cls, cfg: dict[str, Any], where: str = "config.json") -> ModelConfig:
        """Read a deberta-v2 config.json; refuse what our model cannot reproduce exactly."""
        if cfg.get("model_type") != "deberta-v2":
            raise ModelFolderError(
                f"{where} has model_type {cfg.get('model_type')!r}, not 'deberta-v2'; "
                "point at a DeBERTa-v2/v3 model folder (one made by `factory init` or `save_pretrained`)"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in cfg.items():
            if key in names and key not in ("labels", "factory"):
                kwargs[key] = value
        # HF's own defaults where a key is absent differ from ours (v2 vs v3): apply HF's.
        kwargs.setdefault("relative_attention", False)
        kwargs.setdefault("position_biased_input", True)
        kwargs.setdefault("position_buckets", -1)
        kwargs.setdefault("norm_rel_ebd", "none")
        kwargs.setdefault("share_att_key", False)
        kwargs.setdefault("pos_att_type", None)
        kwargs.setdefault("conv_kernel_size", 0)
        pat = kwargs["pos_att_type"]
        if isinstance(pat, str):
            pat = [p.strip() for p in pat.lower().split("|")]
        kwargs["pos_att_type"] = tuple(p for p in (pat or []) if p and p != "none")
        embedding_size = cfg.get("embedding_size", cfg.get("hidden_size"))
        if embedding_size != cfg.get("hidden_size"):
            raise ModelFolderError(f"{where}: embedding_size != hidden_size is not supported by factory")
        head = cfg.get("attention_head_size")
        if head is not None and head * cfg.get("num_attention_heads", 0) != cfg.get("hidden_size"):
            raise ModelFolderError(f"{where}: attention_head_size * heads != hidden_size is not supported")
        if cfg.get("type_vocab_size", 0):
            raise ModelFolderError(f"{where}: token type embeddings (type_vocab_size > 0) are not supported")
        id2label = cfg.get("id2label")
        if id2label:
            kwargs["labels"] = tuple(id2label[k] for k in sorted(id2label, key=int))
        elif cfg.get("num_labels"):
            kwargs["labels"] = tuple(f"LABEL_{i}" for i in range(int(cfg["num_labels"])))
        kwargs["factory"] = dict(cfg.get("factory") or {})
        return cls(**kwargs)
