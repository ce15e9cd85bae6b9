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

Randomness is a counter-based hash of (seed, step, row of the *global* batch, position) (`make_step_noise`,
factory/pretrain/counter_rng.py), so a process draws noise for its own rows only, a run on N processes masks and samples
exactly what a run on one process does, and a resumed run what a straight one does.

Precision: under autocast the generator's output projection (LMHead, factory/model/heads.py), the MLM loss and
the sampling run in fp32; bf16 logits would be spaced 0.06-0.12 apart at 8-32, coarser than the differences
the loss and the sampler read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from factory.model.config import ModelConfig
from factory.model.encoder import init_weights
from factory.model.heads import DebertaForMaskedLM, DebertaForRTD
from factory.pretrain.config import MASKING

SHARING = ("gdes", "es", "nes")
MASK_PROB = 0.15  # [MS] mask_lm_prob
MAX_PREDICTIONS_PER_512 = 80  # [MS] max_predictions_per_seq at 512 tokens; scaled with the length


# ---- masking -------------------------------------------------------------------------------------
FIRST_PIECE = 4  # ids 0-3 are [PAD] [CLS] [SEP] [UNK]; the pieces run from 4 up to [MASK] (exclusive)
MASK_WINDOW = int(1 / MASK_PROB)  # 6 candidates per window, as [MS] mask_window


def max_predictions(seq_len: int) -> int:
    """At most 80 masked tokens per 512, scaled with the sequence length (at least 1)."""
    return max(1, round(MAX_PREDICTIONS_PER_512 * seq_len / 512))


def mask_budget(seq_len: int) -> int:
    """Masked positions per row: min(max_predictions, round(0.15 * L)), at least 1 (77 at 512)."""
    return min(max_predictions(seq_len), max(1, round(seq_len * MASK_PROB)))


def is_piece(ids: torch.Tensor, mask_id: int) -> torch.Tensor:
    """True for the pieces, ids 4 up to [MASK] (exclusive): what may be masked and what the sampler returns."""
    return (ids >= FIRST_PIECE) & (ids < mask_id)


def choose_masked(ids: torch.Tensor, mask_id: int, pick: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """The official scheme (NGramMaskGenerator, max_gram 1): one position per window of 1/0.15 = 6 candidates.

    Candidates are the non-special tokens of a row, in order; window w covers candidates [6w, 6w+6), and `pick`
    (B, W) uniforms choose one in each. Only `mask_budget(L)` windows keep their mask (77 of the 85 of a full
    512-token row): with `order` (B, W) random integer keys in [0, 2^32), the non-empty windows with the smallest
    keys ("spread": every position masked with probability 15%); with None, the first ones, left to right
    ("official": the official code's quirk, the last ~9% of a full row never masked). Either way the masks are
    spread along the row, unlike i.i.d. Bernoulli(0.15). Returns a bool (B, L) mask.
    """
    return place_masks(ids, mask_id, pick, order, torch.zeros_like(pick))[0]


def place_masks(ids, mask_id: int, pick, order, values) -> tuple[torch.Tensor, torch.Tensor]:
    """`choose_masked`'s mask, and `values` (B, W) (one per window, in [0, 1)) at the masked positions, 0 elsewhere.

    Vectorised without a sort or a nonzero: a candidate's rank is a cumulative sum, each window's pick is written
    into a rank-indexed row and read back at every position with one gather."""
    batch, length = ids.shape
    n_windows = pick.shape[1]
    candidate = is_piece(ids, mask_id)  # (B, L)
    rank = candidate.cumsum(1)  # (B, L): candidates up to each position, a candidate's rank + 1, in [0, L]
    count = rank[:, -1:]  # (B, 1)
    starts = torch.arange(n_windows) * MASK_WINDOW  # (W,)
    sizes = (count - starts).clamp(min=0, max=MASK_WINDOW)  # (B, W): candidates in each window
    picked = starts + (pick * sizes).long().clamp(max=MASK_WINDOW - 1)  # (B, W): chosen rank, distinct, < L
    keep = sizes > 0
    budget = mask_budget(length)
    if order is None:
        keep &= starts < budget * MASK_WINDOW
    elif n_windows > budget:  # drop all but `budget` windows: the empty ones first, then the largest keys
        keys = (order.long() * n_windows + torch.arange(n_windows)).masked_fill(~keep, 1 << 62)  # distinct keys
        keep = keep.scatter(1, keys.topk(n_windows - budget, dim=1).indices, False)
    by_rank = torch.full((batch, length + 1), -1.0).scatter_(1, picked + 1, values.float().where(keep, -1.0))
    placed = by_rank.gather(1, rank)  # (B, L): the value of the window whose pick has this candidate's rank
    masked = candidate & (placed >= 0)
    return masked, placed.mul_(masked)


@dataclass
class StepNoise:
    """The randomness of a block of rows of a step's global batch."""

    masked: torch.Tensor  # (B, L) bool: positions replaced by [MASK]
    uniforms: torch.Tensor  # (B, L) float in [0, 1) at masked positions (0 elsewhere): the sampling's inverse CDF


def make_step_noise(
    ids: torch.Tensor, mask_id: int, seed: int, step: int, rows: torch.Tensor | int = 0, masking: str = "spread"
) -> StepNoise:
    """Masks and sampling uniforms for rows of step `step`'s global batch, a pure function of
    (seed, step, row position in the global batch, window of the row) (factory/pretrain/counter_rng.py says why).

    `rows` (B,) are the global batch positions of `ids`' rows, or the first of B consecutive ones. So a process
    that prepares only its own rows draws what one process preparing the whole batch draws for them, however
    the batch is split into processes and accumulation steps, and a resumed run what a straight one draws.
    Each 6-candidate window w of a row gets two 64-bit words, columns w and W + w of one hash block: the first
    gives its pick (the top 24 bits) and its place in the "spread" order (the low 32), the second the sampling
    uniform of its masked position (the sampler reads nothing else).
    """
    from factory.pretrain.counter_rng import hash_block, stream_key, to_uniforms

    if masking not in MASKING:
        raise ValueError(f"masking {masking!r} unknown; use one of {MASKING}")
    device, ids = ids.device, ids.cpu()
    if isinstance(rows, int):
        rows = torch.arange(rows, rows + ids.shape[0])
    n_windows = -(-ids.shape[1] // MASK_WINDOW)
    words = hash_block(stream_key(seed, step), rows, 2 * n_windows)  # (B, 2W): one hash for both uses
    windows, sampling = words[:, :n_windows], to_uniforms(words[:, n_windows:])
    order = (windows & 0xFFFFFFFF) if masking == "spread" else None
    masked, draws = place_masks(ids, mask_id, to_uniforms(windows), order, sampling)
    return StepNoise(masked=masked.to(device), uniforms=draws.to(device))


def sample_replacements(logits: torch.Tensor, uniforms: torch.Tensor, mask_id: int) -> torch.Tensor:
    """One token per row from softmax over the pieces' logits, by inverse CDF with the given uniforms.

    The same distribution as `torch.multinomial(softmax(logits[:, 4:mask_id]), 1) + 4` (temperature 1, no
    top-k: docs/pretraining.md#rtd-and-gdes), but the uniforms come from the global-batch stream, so the draw
    does not depend on how the batch is split across processes. Only pieces are sampled: ids 0-3 ([PAD] [CLS]
    [SEP] [UNK]), [MASK] and the spare rows after it are sliced off before the softmax, so none of them can be
    returned whatever mass the generator gives them. No gradient flows through.
    """
    with torch.no_grad():
        # softmax makes a new tensor, so the caller's logits stay intact; one (N, pieces) buffer at most
        cdf = logits[:, FIRST_PIECE:mask_id].float().softmax(-1).cumsum_(-1)
        target = uniforms.float().unsqueeze(-1) * cdf[:, -1:]  # (N, 1)
        sampled = torch.searchsorted(cdf, target, right=True).squeeze(-1)  # first cdf > u: P(k) = p_k on [0, 1)
        return sampled.clamp_(max=mask_id - FIRST_PIECE - 1) + FIRST_PIECE


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
    replaced_ids: torch.Tensor | None = None  # (B, L) the discriminator's input (part="generator" only)


PARTS = ("both", "generator", "discriminator")  # what one RTDModel call runs (RTDModel.forward)


def generator_config(config: ModelConfig, layers: int, emd: bool = False) -> ModelConfig:
    """The generator: the discriminator's config at `layers` depth, marked as the RTD generator; `emd`: with the
    enhanced mask decoder (factory/model/heads.py)."""
    return config.replace(num_hidden_layers=layers, emd=emd, factory={**config.factory, "role": "rtd-generator"})


class RTDModel(nn.Module):
    """Generator + discriminator with shared embeddings (`sharing`: gdes, es or nes).

    `generator`: the generator's own config when it is not the discriminator's at half depth (a published
    generator continued with `pretrain --init-from`); its width and vocabulary must be the discriminator's."""

    def __init__(
        self,
        config: ModelConfig,
        generator_layers: int,
        sharing: str = "gdes",
        emd: bool = False,
        generator: ModelConfig | None = None,
    ):
        super().__init__()
        if sharing not in SHARING:
            raise ValueError(f"sharing {sharing!r} unknown; use one of {SHARING}")
        self.config = config
        self.sharing = sharing
        self.mask_id = int(config.factory.get("mask_token_id", config.vocab_size - 1))
        if generator is None:
            generator = generator_config(config, generator_layers, emd)
        self.generator = DebertaForMaskedLM(generator)
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

    def forward(
        self,
        input_ids: torch.Tensor,
        masked: torch.Tensor,
        uniforms: torch.Tensor | None,
        part: str = "both",
        replaced_ids: torch.Tensor | None = None,
    ) -> RTDOutput:
        """input_ids (B, L) with [PAD]=0 padding; masked (B, L) bool; uniforms (B, L) for the sampling.

        `part`: "both" runs the joint step (one loss, one backward); "generator" the MLM half only, returning the
        sampled discriminator input as `replaced_ids`; "discriminator" the RTD half on `replaced_ids` from the
        generator part of the same step. The official update order (loop.py) calls the two halves apart, so the
        discriminator reads the generator's table after its update; a part's other losses and counts are 0."""
        if part not in PARTS:
            raise ValueError(f"part {part!r} unknown; use one of {PARTS}")
        attention_mask = input_ids != self.config.pad_token_id  # (B, L)
        zero = torch.zeros((), device=input_ids.device)
        count = masked.sum()
        if part == "discriminator":
            mlm_loss_sum, mlm_correct, disc_input = zero, zero, replaced_ids
        else:
            mlm_loss_sum, mlm_correct, disc_input = self.generate(input_ids, masked, uniforms, attention_mask)
        labels = (disc_input != input_ids).float()  # (B, L): masked & sampled != original
        if part == "generator":
            return RTDOutput(mlm_loss_sum, zero, count, attention_mask.sum(), labels.sum(), zero, mlm_correct,
                             replaced_ids=disc_input)  # fmt: skip
        logits = self.discriminator(disc_input, attention_mask, self.discriminator_embedding()).logits  # (B, L)
        keep = attention_mask.float()
        bce = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")  # (B, L)
        with torch.no_grad():
            rtd_correct = (((logits > 0).float() == labels).float() * keep).sum()
        return RTDOutput(
            mlm_loss_sum=mlm_loss_sum,
            rtd_loss_sum=(bce * keep).sum(),
            masked=count,
            tokens=attention_mask.sum(),
            replaced=labels.sum(),
            rtd_correct=rtd_correct,
            mlm_correct=mlm_correct,
        )

    def generate(self, input_ids, masked, uniforms, attention_mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The generator's half: (MLM loss summed over the masked positions, how many it predicts right, the
        discriminator's input with the sampled replacements)."""
        positions = masked.flatten().nonzero().squeeze(-1)  # (N,) flat indices into B·L
        originals = input_ids.flatten()[positions]  # (N,)
        gen_input = input_ids.masked_fill(masked, self.mask_id)
        gen_logits = self.generator(gen_input, attention_mask, positions=positions).logits  # (N, V) fp32
        with torch.autocast(gen_logits.device.type, enabled=False):  # the loss in fp32 too, whatever the autocast
            mlm_loss_sum = F.cross_entropy(gen_logits.float(), originals, reduction="sum")
        sampled = sample_replacements(gen_logits.detach(), uniforms.flatten()[positions], self.mask_id)  # (N,)
        disc_input = input_ids.flatten().index_put((positions,), sampled).view_as(input_ids)  # (B, L)
        with torch.no_grad():
            mlm_correct = (gen_logits.argmax(-1) == originals).sum()
        return mlm_loss_sum, mlm_correct, disc_input


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


def build_rtd_model(
    config: ModelConfig,
    generator_layers: int,
    sharing: str = "gdes",
    seed: int = 0,
    emd: bool = False,
    generator: ModelConfig | None = None,
) -> RTDModel:
    """A freshly initialised RTD model; `seed` makes the weights reproducible."""
    torch.manual_seed(seed)
    return RTDModel(config, generator_layers, sharing, emd, generator)


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
