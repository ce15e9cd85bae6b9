"""The DeBERTa-v3 encoder: embeddings, post-LN transformer layers, relative embeddings, optional v2 conv.

Module and parameter names follow HF's `DebertaV2Model` exactly, so a state dict maps one to one onto
`model.safetensors` (see export.py) with no renaming table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from factory.model.attention import DisentangledSelfAttention
from factory.model.config import ModelConfig

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "tanh": torch.tanh}


def activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation {name!r} not supported; use one of {sorted(ACTIVATIONS)}") from None


@dataclass
class ModelOutput:
    """What every model returns: the encoder output, and a head's logits where there is a head."""

    last_hidden_state: torch.Tensor  # (B, L, H)
    logits: torch.Tensor | None = None


class Embeddings(nn.Module):
    """Word embeddings -> LayerNorm -> zero the padding -> dropout. v3 has no absolute positions."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        if config.absolute_positions:  # v2-style absolute positions, or the EMD's P (read by the MLM head only)
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.add_positions = config.position_biased_input
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor | None, word_embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        # `word_embeddings` overrides the table (RTD pre-training's shared/GDES embedding, factory/pretrain/rtd.py)
        if word_embeddings is None:
            x = self.word_embeddings(input_ids)  # (B, L, H)
        else:
            x = F.embedding(input_ids, word_embeddings, self.word_embeddings.padding_idx)  # (B, L, H)
        if self.add_positions:
            x = x + self.position_embeddings.weight[: input_ids.shape[1]]
        x = self.LayerNorm(x)
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        return self.dropout(x)


class ResidualNorm(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): HF's SelfOutput and Output (post-LN)."""

    def __init__(self, d_in: int, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(d_in, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self = DisentangledSelfAttention(config)
        self.output = ResidualNorm(config.hidden_size, config)

    def forward(self, x, mask, rel_embeddings, query=None):
        """`query` (B, L, H): queries and residual from it, keys and values from `x` (the EMD's second pass)."""
        query = x if query is None else query
        return self.output(self.self(x, mask, rel_embeddings, query), query)


class Intermediate(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = ResidualNorm(config.intermediate_size, config)

    def forward(self, x, mask, rel_embeddings, query=None):
        x = self.attention(x, mask, rel_embeddings, query)
        return self.output(self.intermediate(x), x)


class ConvLayer(nn.Module):
    """v2's n-gram induced input encoding (nGiE): a conv over the embeddings, added after layer 0."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        k = config.conv_kernel_size
        h = config.hidden_size
        self.conv = nn.Conv1d(h, h, k, padding=(k - 1) // 2, groups=config.conv_groups)
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.act = activation(config.conv_act)

    def forward(self, embedded: torch.Tensor, layer_out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.conv(embedded.transpose(1, 2)).transpose(1, 2)  # (B, L, H)
        keep = mask.unsqueeze(-1).to(out.dtype)
        out = self.act(self.dropout(out * keep))
        return self.LayerNorm(layer_out + out) * keep


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        if config.relative_attention:
            self.rel_embeddings = nn.Embedding(2 * config.att_span, config.hidden_size)
        if "layer_norm" in config.norm_rel_ebd:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        if config.conv_kernel_size > 0:
            self.conv = ConvLayer(config)
        self.gradient_checkpointing = False

    def rel_table(self) -> torch.Tensor | None:
        if not self.config.relative_attention:
            return None
        rel = self.rel_embeddings.weight  # (2·span, H)
        return self.LayerNorm(rel) if hasattr(self, "LayerNorm") else rel

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, layers: int | None = None) -> list[torch.Tensor]:
        """Returns every layer's output; `layers`: run only the first n (the EMD runs the last one itself)."""
        rel = self.rel_table()
        embedded, outputs = x, []
        for i, layer in enumerate(self.layer[:layers]):
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, mask, rel, use_reentrant=False)
            else:
                x = layer(x, mask, rel)
            if i == 0 and hasattr(self, "conv"):
                x = self.conv(embedded, x, mask if mask is not None else torch.ones_like(x[..., 0]).bool())
            outputs.append(x)
        return outputs


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, L) bool, True = a real token; None when nothing is padded (the mask work is then skipped entirely)."""
    if attention_mask is None:
        return None
    mask = attention_mask.bool()
    return None if bool(mask.all()) else mask


def compile_layers(model: nn.Module, **options) -> nn.Module:
    """`torch.compile` every transformer layer in place (parameter names unchanged, so checkpoints and
    exports are unaffected). fullgraph: a graph break is an error here, not a silent slowdown. The layer is
    the unit because all layers share one shape, so one compiled graph serves every layer."""
    for module in model.modules():
        if isinstance(module, EncoderLayer):
            module.compile(fullgraph=True, dynamic=False, **options)
    return model


class DebertaModel(nn.Module):
    """The bare encoder (HF `DebertaV2Model`): input ids -> last hidden state."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        word_embeddings: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        mask = padding_mask(attention_mask)
        return self.encoder(self.embeddings(input_ids, mask, word_embeddings), mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        word_embeddings: torch.Tensor | None = None,  # (V, H) table to use instead of our own (RTD/GDES)
    ) -> ModelOutput:
        return ModelOutput(last_hidden_state=self.hidden_states(input_ids, attention_mask, word_embeddings)[-1])


def init_weights(module: nn.Module, std: float) -> None:
    """One initialisation for every model: N(0, std) weights, zero biases, unit LayerNorms (as HF/BERT)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                nn.init.zeros_(m.weight[m.padding_idx])
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
