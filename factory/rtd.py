"""Replaced token detection (ELECTRA / DeBERTaV3): masking, the generator + discriminator module, GDES.

One `nn.Module`, `RTDModel`, holds both networks so DDP/FSDP wrap and synchronise a single model:

    generator     = DebertaForMaskedLM, same width, half the depth (Preset.generator_layers)
    discriminator = DebertaForRTD (the v3 encoder people fine-tune + the official `mask_predictions` head)

A step (docs/pretraining.md#rtd-and-gdes): mask 15% of the non-special tokens with [MASK] -> the generator
predicts them (MLM cross-entropy, head on masked positions only) -> replacements are sampled from
softmax(generator logits), no gradient through the sampling -> the discriminator labels every non-pad token
original/replaced (BCE). Loss = MLM + lambda * RTD (`rtd_loss`, the one place that formula is written).

Embedding sharing (`sharing`), the paper's three variants:
    gdes  discriminator table = generator table.detach() + delta, delta a zero-initialised Parameter: the RTD
          loss trains delta only, the MLM loss alone trains the shared table (no "tug of war").
    es    the discriminator uses the generator's Parameter itself: both losses train it.
    nes   two separate tables.
Under gdes/es the discriminator owns no table (its `word_embeddings.weight` is None); `discriminator_embedding`
gives the effective one, which `export_discriminator` folds into a plain deberta-v2 model.

Randomness comes from explicit `torch.Generator`s over the *global* batch (see `make_step_noise`), so a run on
N processes masks and samples exactly what a run on one process does, and a resumed run what a straight one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from factory.model.config import ModelConfig
from factory.model.encoder import init_weights
from factory.model.heads import DebertaForMaskedLM, DebertaForRTD

SHARING = ("gdes", "es", "nes")
MASK_PROB = 0.15  # [MS] mask_lm_prob
MAX_PREDICTIONS_PER_512 = 80  # [MS] max_predictions_per_seq at 512 tokens; scaled with the length


# ---- masking -------------------------------------------------------------------------------------
def max_predictions(seq_len: int) -> int:
    """At most 80 masked tokens per 512, scaled with the sequence length (at least 1)."""
    return max(1, round(MAX_PREDICTIONS_PER_512 * seq_len / 512))


def special_token_mask(ids: torch.Tensor, mask_id: int) -> torch.Tensor:
    """True where a token may not be masked: [PAD] [CLS] [SEP] [UNK] (ids 0-3) and [MASK] or above."""
    return (ids <= 3) | (ids >= mask_id)


def choose_masked(ids: torch.Tensor, mask_id: int, generator: torch.Generator) -> torch.Tensor:
    """The official scheme (NGramMaskGenerator, max_gram 1): one position per window of 1/0.15 ≈ 6 candidates.

    Candidates are the non-special tokens of a row, in order. Window w covers candidates [6w, 6w+6); one of
    them, uniformly at random, is masked. Left to right, at most min(max_predictions, round(0.15 * L)) are kept.
    This spreads the masks evenly, unlike i.i.d. Bernoulli(0.15). Returns a bool (B, L) mask.
    """
    window = int(1 / MASK_PROB)  # 6, as [MS] mask_window
    batch, length = ids.shape
    candidate = ~special_token_mask(ids, mask_id)  # (B, L)
    count = candidate.sum(1, keepdim=True)  # (B, 1)
    n_windows = -(-length // window)
    u = torch.rand(batch, n_windows, generator=generator)  # (B, W)
    starts = torch.arange(n_windows) * window  # (W,)
    sizes = (count - starts).clamp(min=0, max=window)  # (B, W): candidates in each window
    pick = starts + (u * sizes).long().clamp(max=window - 1)  # (B, W): chosen candidate rank per window
    budget = min(max_predictions(length), max(1, round(length * MASK_PROB)))
    keep = (sizes > 0) & (torch.arange(n_windows) < budget)  # (B, W): left to right, at most `budget`
    by_rank = torch.sort((~candidate).to(torch.uint8), dim=1, stable=True).indices  # (B, L): candidates first
    positions = by_rank.gather(1, pick.clamp(max=length - 1))  # (B, W): rank -> position in the row
    chosen = torch.zeros_like(candidate)
    return chosen.scatter_(1, positions, keep) & candidate  # (B, L)


@dataclass
class StepNoise:
    """The randomness of one micro-batch, drawn for the global batch and sliced per process."""

    masked: torch.Tensor  # (B, L) bool: positions replaced by [MASK]
    uniforms: torch.Tensor  # (B, L) float in [0, 1): inverse-CDF samples for the generator's replacements


def make_step_noise(ids: torch.Tensor, mask_id: int, seed: int, step: int, micro: int) -> StepNoise:
    """Masks and sampling uniforms for a (global) micro-batch, from a generator seeded by (seed, step, micro)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + step) * 1009 + micro)
    masked = choose_masked(ids.cpu(), mask_id, g)
    uniforms = torch.rand(ids.shape, generator=g)
    return StepNoise(masked=masked.to(ids.device), uniforms=uniforms.to(ids.device))


def sample_replacements(logits: torch.Tensor, uniforms: torch.Tensor, mask_id: int) -> torch.Tensor:
    """One token per row from softmax(logits), by inverse CDF with the given uniforms.

    The same distribution as `torch.multinomial(softmax(logits), 1)` (temperature 1, no top-k:
    docs/pretraining.md#rtd-and-gdes), but the uniforms come from the global-batch stream, so the draw does not
    depend on how the batch is split across processes. [MASK] and the spare rows after it are never sampled.
    No gradient flows through.
    """
    with torch.no_grad():
        # slice off [MASK] and the spare rows; softmax makes a new tensor, so the caller's logits stay intact
        cdf = logits[:, :mask_id].float().softmax(-1).cumsum_(-1)  # (N, mask_id): one (N, V) buffer at most
        target = uniforms.float().unsqueeze(-1) * cdf[:, -1:]  # (N, 1)
        sampled = torch.searchsorted(cdf, target).squeeze(-1)  # (N,)
        return sampled.clamp(max=mask_id - 1)


# ---- the model -----------------------------------------------------------------------------------
@dataclass
class RTDOutput:
    """Sums over this process's tokens; the trainer divides by global counts (exact across processes)."""

    mlm_loss_sum: torch.Tensor  # () cross-entropy summed over masked positions
    rtd_loss_sum: torch.Tensor  # () BCE summed over non-pad positions
    masked: torch.Tensor  # () number of masked positions
    tokens: torch.Tensor  # () number of non-pad positions
    replaced: torch.Tensor  # () positions whose sampled token differs from the original
    rtd_correct: torch.Tensor  # () positions the discriminator labels right (logit > 0 <=> replaced)
    mlm_correct: torch.Tensor  # () masked positions where the generator's argmax is the original


def generator_config(config: ModelConfig, layers: int) -> ModelConfig:
    """The generator: the discriminator's config at `layers` depth, marked as the RTD generator."""
    return config.replace(num_hidden_layers=layers, factory={**config.factory, "role": "rtd-generator"})


class RTDModel(nn.Module):
    """Generator + discriminator with shared embeddings (`sharing`: gdes, es or nes)."""

    def __init__(self, config: ModelConfig, generator_layers: int, sharing: str = "gdes"):
        super().__init__()
        if sharing not in SHARING:
            raise ValueError(f"sharing {sharing!r} unknown; use one of {SHARING}")
        self.config = config
        self.sharing = sharing
        self.mask_id = int(config.factory.get("mask_token_id", config.vocab_size - 1))
        self.generator = DebertaForMaskedLM(generator_config(config, generator_layers))
        self.discriminator = DebertaForRTD(config.replace(factory={**config.factory, "role": "rtd-discriminator"}))
        init_weights(self.generator, config.initializer_range)
        init_weights(self.discriminator, config.initializer_range)
        if sharing != "nes":  # the table comes from the generator; the discriminator keeps none
            self.discriminator.deberta.embeddings.word_embeddings.weight = None
        if sharing == "gdes":
            self.embedding_delta = nn.Parameter(torch.zeros(config.vocab_size, config.hidden_size))  # E_delta

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """Parameter groups whose gradients are clipped separately. The official decoupled training steps the
        generator and the discriminator with their own optimizers (docs/pretraining.md#rtd-and-gdes), so
        lambda·RTD's large gradients never shrink the generator's update: generator | discriminator (+ delta).
        Under es one table takes both losses (the paper's joint loss), so there is one group."""
        if self.sharing == "es":
            return [list(self.parameters())]
        generator = list(self.generator.parameters())
        mine = {id(p) for p in generator}
        return [generator, [p for p in self.parameters() if id(p) not in mine]]

    def generator_embedding(self) -> torch.Tensor:
        return self.generator.deberta.embeddings.word_embeddings.weight  # (V, H)

    def discriminator_embedding(self) -> torch.Tensor | None:
        """The table the discriminator reads: E_G.detach() + delta (gdes), E_G (es), or None (its own, nes)."""
        if self.sharing == "gdes":
            return self.generator_embedding().detach() + self.embedding_delta  # stop-gradient into E_G
        if self.sharing == "es":
            return self.generator_embedding()
        return None

    def forward(self, input_ids: torch.Tensor, masked: torch.Tensor, uniforms: torch.Tensor) -> RTDOutput:
        """input_ids (B, L) with [PAD]=0 padding; masked (B, L) bool; uniforms (B, L) for the sampling."""
        attention_mask = input_ids != self.config.pad_token_id  # (B, L)
        positions = masked.flatten().nonzero().squeeze(-1)  # (N,) flat indices into B·L
        originals = input_ids.flatten()[positions]  # (N,)
        gen_input = input_ids.masked_fill(masked, self.mask_id)
        gen_logits = self.generator(gen_input, attention_mask, positions=positions).logits  # (N, V)
        mlm_loss_sum = F.cross_entropy(gen_logits.float(), originals, reduction="sum")
        sampled = sample_replacements(gen_logits.detach(), uniforms.flatten()[positions], self.mask_id)  # (N,)
        disc_input = input_ids.flatten().index_put((positions,), sampled).view_as(input_ids)  # (B, L)
        labels = (disc_input != input_ids).float()  # (B, L): masked & sampled != original
        logits = self.discriminator(disc_input, attention_mask, self.discriminator_embedding()).logits  # (B, L)
        keep = attention_mask.float()
        bce = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")  # (B, L)
        with torch.no_grad():
            rtd_correct = (((logits > 0).float() == labels).float() * keep).sum()
            mlm_correct = (gen_logits.argmax(-1) == originals).sum()
        return RTDOutput(
            mlm_loss_sum=mlm_loss_sum,
            rtd_loss_sum=(bce * keep).sum(),
            masked=positions.new_tensor(positions.numel()),
            tokens=attention_mask.sum(),
            replaced=labels.sum(),
            rtd_correct=rtd_correct,
            mlm_correct=mlm_correct,
        )


def rtd_loss(
    mlm_loss_sum: torch.Tensor | float,
    rtd_loss_sum: torch.Tensor | float,
    masked: torch.Tensor | int,
    tokens: torch.Tensor | int,
    rtd_lambda: float,
) -> torch.Tensor:
    """The pre-training loss, MLM + lambda * RTD: each part a sum over positions divided by its count.

    The counts are arguments rather than read from the same batch so that the trainer can pass the *global*
    batch's counts: then N processes x A accumulation steps add up to the gradient of one process holding the
    whole batch (this is why `RTDOutput` returns sums). Benchmarks and tests pass their own batch's counts.
    """
    return mlm_loss_sum / masked + rtd_lambda * rtd_loss_sum / tokens


def build_rtd_model(config: ModelConfig, generator_layers: int, sharing: str = "gdes", seed: int = 0) -> RTDModel:
    """A freshly initialised RTD model; `seed` makes the weights reproducible."""
    torch.manual_seed(seed)
    return RTDModel(config, generator_layers, sharing)


# ---- export --------------------------------------------------------------------------------------
def export_discriminator(model: RTDModel) -> DebertaForRTD:
    """A plain DebertaForRTD whose word embeddings are the folded table (E_G + delta under gdes)."""
    disc = DebertaForRTD(model.discriminator.config)
    state = {k: v.detach().clone() for k, v in model.discriminator.state_dict().items()}
    table = model.discriminator_embedding()
    if table is not None:
        state["deberta.embeddings.word_embeddings.weight"] = table.detach().clone()
    disc.load_state_dict(state)
    return disc.eval()


def export_generator(model: RTDModel) -> DebertaForMaskedLM:
    """A standalone copy of the generator (DebertaForMaskedLM; loads as HF DebertaV2ForMaskedLM)."""
    gen = DebertaForMaskedLM(model.generator.config)
    gen.load_state_dict({k: v.detach().clone() for k, v in model.generator.state_dict().items()})
    return gen.eval()


def rtd_baseline_accuracy(replaced: float, tokens: float) -> float:
    """Accuracy of always answering 'original': the bar a useful discriminator must clear."""
    return 1.0 - replaced / tokens if tokens else math.nan
