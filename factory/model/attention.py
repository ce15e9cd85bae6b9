"""Disentangled self-attention (DeBERTa), written as one fused attention call with an additive bias.

Scores are A = Q·Kᵀ/s + c2p + p2c (docs/architecture.md#attention), with
    c2p[i, j] = Q_i · Pk[idx(i - j)] / s        p2c[i, j] = K_j · Pq[idx(i - j)] / s
where Pk/Pq are the shared key/query projections of the (LayerNorm'd) relative embeddings and
idx(r) = clamp(bucket(r) + span, 0, 2·span - 1).

c2p/p2c are gathered out of the [L, 2·span] products of the queries/keys with the projected relative table
(measured on CPU: faster forward and backward than projecting onto the 2L offsets and skewing, or than
index_select). Unlike HF we do not `repeat` the table per batch row, and the content term, the mask and the
softmax run inside one `scaled_dot_product_attention` call with c2p + p2c as its float mask.
"""

from __future__ import annotations

import functools
import logging
import os

import torch
import torch.nn.functional as F
from torch import nn

from factory.core.errors import ConfigError
from factory.model.config import ModelConfig

log = logging.getLogger(__name__)


def log_bucket(rel: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """DeBERTa's log-bucketed relative position (exact for |r| <= bucket_size/2, log-spaced beyond).

    Computed with the same float32 operations in the same order as HF, because r = 511 sits exactly on
    a ceil() boundary and must land in the same bucket bit for bit.
    """
    sign = torch.sign(rel)
    mid = bucket_size // 2
    near = (rel < mid) & (rel > -mid)
    abs_pos = torch.where(near, torch.tensor(mid - 1).type_as(rel), torch.abs(rel))
    log_ratio = torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    log_pos = torch.ceil(log_ratio * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, rel.type_as(log_pos), log_pos * sign).long()


def relative_index(offsets: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Row of the relative-embedding table used for each query-minus-key offset."""
    rel = offsets
    if config.position_buckets > 0:
        rel = log_bucket(offsets, config.position_buckets, config.max_relative_span)
    span = config.att_span
    return torch.clamp(rel + span, 0, 2 * span - 1)


def relative_indices(length: int, config: ModelConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, L) rows of the relative table for c2p (idx(i - j)) and for p2c (its transpose, contiguous).

    Cached in eager mode (a training run sees one or two lengths); under torch.compile computed inside the
    graph instead, since the compiler traces through a Python cache rather than honouring it.
    """
    if torch.compiler.is_compiling():
        return _relative_indices(length, config, device)
    return _cached_relative_indices(length, config, device)


def _relative_indices(length: int, config: ModelConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    pos = torch.arange(length, device=device)
    c2p = relative_index(pos[:, None] - pos[None, :], config)
    return c2p, c2p.t().contiguous()


@functools.lru_cache(maxsize=64)
def _cached_relative_indices(length: int, config: ModelConfig, device: torch.device):
    with torch.inference_mode(False):  # cached tensors must be usable by autograd later
        return _relative_indices(length, config, device)


BACKENDS = ("auto", "sdpa", "flex")


def attention_backend() -> str:
    """`FACTORY_ATTENTION`: sdpa (gathered bias + one SDPA call, everywhere), flex (FlexAttention, no
    [B, nh, L, L] tensor; forward and backward parity-tested on CPU through torch's eager reference, the
    compiled CUDA kernel not yet run on a GPU), or auto."""
    backend = os.environ.get("FACTORY_ATTENTION", "auto")
    if backend not in BACKENDS:
        raise ConfigError(f"FACTORY_ATTENTION={backend!r} is not an attention path; use one of {', '.join(BACKENDS)}")
    return backend


_FLEX_FAILED: list[str] = []  # `auto` falls back to SDPA for good after flex fails once (no Triton, old GPU)


def use_flex(q: torch.Tensor, dropout: float) -> bool:
    """FlexAttention has no attention dropout, so training with dropout always takes the SDPA path; `auto`
    takes flex only for CUDA inference until its backward has been checked on a GPU."""
    backend = attention_backend()
    if backend == "sdpa" or dropout > 0 or not flex_available():
        return False
    return backend == "flex" or (q.is_cuda and not torch.is_grad_enabled() and not _FLEX_FAILED)


def flex_failed(error: Exception) -> None:
    """`auto` only: remember that flex cannot run here, and say so once, naming the way to silence it."""
    if attention_backend() == "flex":
        raise error
    message = f"{type(error).__name__}: {error}".splitlines()[0]  # a string: no traceback (and tensors) kept
    _FLEX_FAILED.append(message)
    log.warning(
        "FlexAttention failed (%s); using SDPA from now on (set FACTORY_ATTENTION=sdpa to skip the attempt)", message
    )


@functools.cache
def flex_available() -> bool:
    """Whether this torch has FlexAttention (imported here: until then the submodule is not an attribute)."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def flex_attention_fn(compiled: bool):
    """flex_attention, compiled for GPUs (where it becomes one fused kernel); eager (a reference) on CPU."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False) if compiled else flex_attention


class DisentangledSelfAttention(nn.Module):
    """Multi-head attention with c2p + p2c relative terms; parameter names are HF's."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.heads = config.num_attention_heads
        h = config.hidden_size
        self.query_proj = nn.Linear(h, h)
        self.key_proj = nn.Linear(h, h)
        self.value_proj = nn.Linear(h, h)
        self.c2p = config.relative_attention and "c2p" in config.pos_att_type
        self.p2c = config.relative_attention and "p2c" in config.pos_att_type
        if config.relative_attention and not config.share_att_key:
            if self.c2p:
                self.pos_key_proj = nn.Linear(h, h)
            if self.p2c:
                self.pos_query_proj = nn.Linear(h, h)
        self.pos_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.dropout_p = config.attention_probs_dropout_prob
        # s = sqrt(d * (1 + #relative terms)), docs/architecture.md#attention
        self.scale = (config.head_size * (1 + self.c2p + self.p2c)) ** -0.5

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, L, H) -> (B, nh, L, d)
        return x.unflatten(-1, (self.heads, -1)).transpose(-3, -2)

    def forward(
        self,
        hidden: torch.Tensor,  # (B, L, H)
        mask: torch.Tensor | None,  # (B, L) bool, True = real token; None = no padding
        rel_embeddings: torch.Tensor | None,  # (2·span, H), already LayerNorm'd
        query: torch.Tensor | None = None,  # (B, L, H) the queries' states when not `hidden` (the EMD)
    ) -> torch.Tensor:
        q = self._heads(self.query_proj(hidden if query is None else query))  # (B, nh, L, d)
        k = self._heads(self.key_proj(hidden))
        v = self._heads(self.value_proj(hidden))
        c2p, p2c = self.relative_scores(q, k, rel_embeddings)
        dropout = self.dropout_p if self.training else 0.0
        out = None
        if use_flex(q, dropout):
            try:
                out = self._flex(q, k, v, c2p, p2c, mask)
            except Exception as error:  # compile/kernel failures vary by torch, Triton and GPU
                flex_failed(error)
        if out is None:
            out = self._sdpa(q, k, v, c2p, p2c, mask, dropout)
        return out.transpose(1, 2).flatten(2)  # (B, nh, L, d) -> (B, L, H)

    def relative_scores(self, q: torch.Tensor, k: torch.Tensor, rel_embeddings: torch.Tensor | None):
        """Queries against the projected relative keys and keys against the projected relative queries,
        (B, nh, L, 2·span) each and already divided by s; None for a term the config leaves out."""
        rel = self.pos_dropout(rel_embeddings) if (self.c2p or self.p2c) else None
        c2p = p2c = None
        if self.c2p:
            proj = self.key_proj if self.config.share_att_key else self.pos_key_proj
            # s folded into the small (nh, 2·span, d) projection, not applied to the (B, nh, L, 2·span) product
            pos_key = self._heads(proj(rel)) * self.scale
            c2p = torch.matmul(q, pos_key.transpose(-1, -2))
        if self.p2c:
            proj = self.query_proj if self.config.share_att_key else self.pos_query_proj
            pos_query = self._heads(proj(rel)) * self.scale
            p2c = torch.matmul(k, pos_query.transpose(-1, -2))
        return c2p, p2c

    def _sdpa(self, q, k, v, c2p, p2c, mask, dropout: float) -> torch.Tensor:
        """Gather c2p + p2c into one (B, nh, L, L) float mask for a single fused attention call."""
        batch, heads, length, _ = q.shape
        c2p_idx, p2c_idx = relative_indices(length, self.config, q.device)
        shape = (batch, heads, length, length)
        bias = None
        if c2p is not None:
            bias = torch.gather(c2p, -1, c2p_idx.expand(shape))
        if p2c is not None:
            term = torch.gather(p2c, -1, p2c_idx.expand(shape)).transpose(-1, -2)
            bias = term if bias is None else bias.add_(term)  # in place: one (B, nh, L, L) tensor fewer
        if mask is not None:
            # HF semantics: masked scores become finfo.min, so a fully padded query row attends uniformly.
            pairs = mask[:, None, :, None] & mask[:, None, None, :]  # (B, 1, L, L)
            if bias is None:
                bias = torch.zeros(pairs.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill(~pairs, torch.finfo(q.dtype).min)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=self.scale)

    def _flex(self, q, k, v, c2p, p2c, mask) -> torch.Tensor:
        """The same scores with no (B, nh, L, L) tensor: FlexAttention gathers c2p/p2c inside each tile."""
        idx = relative_indices(q.shape[-2], self.config, q.device)[0]
        low = torch.finfo(q.dtype).min

        def score_mod(score, b, h, qi, ki):
            r = idx[qi, ki]
            if c2p is not None:
                score = score + c2p[b, h, qi, r]
            if p2c is not None:
                score = score + p2c[b, h, ki, r]
            if mask is not None:
                score = torch.where(mask[b, qi] & mask[b, ki], score, low)
            return score

        return flex_attention_fn(q.is_cuda)(q, k, v, score_mod=score_mod, scale=self.scale)
