"""Task heads on the encoder: MLM (the generator), RTD (the discriminator), sequence classification (and
regression), token classification, extractive QA.

Names are those of the checkpoints people already have: `lm_predictions.lm_head.*` (official generator,
HF with legacy=false), `mask_predictions.*` (official RTD head), `pooler.dense` + `classifier` (HF's sequence
classification; regression is the same head with one output and config problem_type "regression"),
`classifier` on every hidden state (HF's token classification), `qa_outputs` (HF's QA: start, end logits).
"""

from __future__ import annotations

import torch
from torch import nn

from factory.model.config import ModelConfig
from factory.model.encoder import DebertaModel, ModelOutput, activation, init_weights, padding_mask


class LMHead(nn.Module):
    """logits = LN(gelu(dense(h))) · E_wordᵀ + bias, the output matrix tied to the word embeddings.

    The projection runs in fp32 even under autocast: bf16 logits are spaced 0.06-0.12 apart at 8-32, coarse for
    the MLM loss and for sampling the RTD replacements (factory/pretrain/rtd.py). The price: during pre-training this
    GEMM (masked positions only) is ~9% of a base step's FLOPs at 128k pieces (plan.py), and on a GPU it runs at the
    fp32 rate (TF32 tensor cores only where torch's float32 matmul precision allows them)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        x = self.LayerNorm(self.act(self.dense(h)))
        with torch.autocast(x.device.type, enabled=False):
            return x.float() @ word_embeddings.float().t() + self.bias.float()


class LMPredictions(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.lm_head = LMHead(config)


class RTDHead(nn.Module):
    """Official `LMMaskPredictionHead`: logit_i = classifier(gelu(dense(LN(h_CLS + h_i)))), one unit."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.hidden_size, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.LayerNorm(h[:, :1] + h)  # (B, L, H)
        return self.classifier(self.act(self.dense(x))).squeeze(-1)  # (B, L)


class ContextPooler(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.pooler_dropout)
        self.act = activation(config.pooler_hidden_act)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(self.dropout(h[:, 0])))


class DebertaForMaskedLM(nn.Module):
    """The generator: encoder + tied MLM head. `positions` limits the head to the masked tokens.

    With `config.emd` the head reads the enhanced mask decoder's output (docs/architecture.md#emd), as the
    official generator does (DeBERTa/apps/models/masked_language_model.py, EnhancedMaskDecoder): H is the output
    of layer L-1 (the embeddings' output for a one-layer generator), and the last layer runs twice on it with
    queries I = H + P (P the absolute position table, raw: no LayerNorm, no dropout), then with queries = the
    first pass's output; keys and values stay H. The last layer's ordinary pass is not run: nothing reads it."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.deberta = DebertaModel(config)
        self.lm_predictions = LMPredictions(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,  # (N,) flat indices into B·L, or None for every token
    ) -> ModelOutput:
        if self.config.emd and not self.config.position_biased_input:
            h = self.enhanced_mask_decoder(input_ids, attention_mask)
        else:
            h = self.deberta(input_ids, attention_mask).last_hidden_state
        x = h if positions is None else h.flatten(0, 1)[positions]
        logits = self.lm_predictions.lm_head(x, self.deberta.embeddings.word_embeddings.weight)
        return ModelOutput(last_hidden_state=h, logits=logits)

    def enhanced_mask_decoder(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, L, H): the last layer run twice with the absolute positions in its queries (class docstring)."""
        mask = padding_mask(attention_mask)
        embeddings, encoder = self.deberta.embeddings, self.deberta.encoder
        embedded = embeddings(input_ids, mask)
        below = encoder(embedded, mask, layers=len(encoder.layer) - 1)  # layers 0 .. L-2
        hidden = below[-1] if below else embedded  # (B, L, H)
        query = hidden + embeddings.position_embeddings.weight[: input_ids.shape[1]]  # I = H + P
        rel, last = encoder.rel_table(), encoder.layer[-1]
        for _ in range(2):
            query = last(hidden, mask, rel, query)
        return query


class DebertaForRTD(nn.Module):
    """The discriminator: encoder + replaced-token-detection head (one logit per token)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.deberta = DebertaModel(config)
        self.mask_predictions = RTDHead(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        word_embeddings: torch.Tensor | None = None,  # (V, H) override: the GDES/ES table (factory/pretrain/rtd.py)
    ) -> ModelOutput:
        h = self.deberta(input_ids, attention_mask, word_embeddings).last_hidden_state
        return ModelOutput(last_hidden_state=h, logits=self.mask_predictions(h))


class DebertaForSequenceClassification(nn.Module):
    """HF's head: classifier(dropout(gelu(pooler.dense(dropout(h_CLS)))))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.deberta = DebertaModel(config)
        self.pooler = ContextPooler(config)
        drop = config.hidden_dropout_prob if config.cls_dropout is None else config.cls_dropout
        self.dropout = nn.Dropout(drop)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> ModelOutput:
        h = self.deberta(input_ids, attention_mask).last_hidden_state
        return ModelOutput(last_hidden_state=h, logits=self.classifier(self.dropout(self.pooler(h))))


class DebertaForTokenClassification(nn.Module):
    """HF's head: classifier(dropout(h)) at every position, one logit per label."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.deberta = DebertaModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> ModelOutput:
        h = self.deberta(input_ids, attention_mask).last_hidden_state
        return ModelOutput(last_hidden_state=h, logits=self.classifier(self.dropout(h)))  # (B, L, labels)


class DebertaForQuestionAnswering(nn.Module):
    """HF's head: qa_outputs(h) at every position, no dropout; logits[..., 0] start, logits[..., 1] end. HF sizes
    it by config.num_labels (2 by default), so a QA model's config keeps two labels."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.num_labels != 2:
            raise ValueError(f"a QA head has 2 outputs (start, end); the config has {config.num_labels} labels")
        self.config = config
        self.deberta = DebertaModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> ModelOutput:
        h = self.deberta(input_ids, attention_mask).last_hidden_state
        return ModelOutput(last_hidden_state=h, logits=self.qa_outputs(h))  # (B, L, 2)


HEADS: dict[str, type[nn.Module]] = {
    "none": DebertaModel,
    "mlm": DebertaForMaskedLM,
    "rtd": DebertaForRTD,
    "cls": DebertaForSequenceClassification,
    "tokens": DebertaForTokenClassification,
    "qa": DebertaForQuestionAnswering,
}

# The architecture name written to config.json, so `transformers` picks the matching class.
HF_ARCHITECTURES = {
    "none": "DebertaV2Model",
    "mlm": "DebertaV2ForMaskedLM",
    "rtd": "DebertaV2Model",  # HF has no RTD class; the head's weights travel as mask_predictions.*
    "cls": "DebertaV2ForSequenceClassification",
    "tokens": "DebertaV2ForTokenClassification",
    "qa": "DebertaV2ForQuestionAnswering",
}


def build_model(config: ModelConfig, head: str = "none", seed: int | None = None) -> nn.Module:
    """A freshly initialised model; `seed` makes the weights reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    model = HEADS[head](config)
    init_weights(model, config.initializer_range)
    return model


def head_of(model: nn.Module) -> str:
    for name, cls in HEADS.items():
        if type(model) is cls:
            return name
    raise TypeError(f"not a factory model: {type(model).__name__}")
