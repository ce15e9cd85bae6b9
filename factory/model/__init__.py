"""The DeBERTa-v3 architecture in plain PyTorch.

from factory.model import load_model
model = load_model("out/base")                 # any deberta-v2 folder
out = model(input_ids, attention_mask=mask)    # out.last_hidden_state, out.logits
"""

from factory.model.config import ModelConfig
from factory.model.encoder import DebertaModel, ModelOutput
from factory.model.heads import (
    HEADS,
    DebertaForMaskedLM,
    DebertaForQuestionAnswering,
    DebertaForRTD,
    DebertaForSequenceClassification,
    DebertaForTokenClassification,
    build_model,
)

__all__ = [
    "HEADS",
    "DebertaForMaskedLM",
    "DebertaForRTD",
    "DebertaForQuestionAnswering",
    "DebertaForSequenceClassification",
    "DebertaForTokenClassification",
    "DebertaModel",
    "ModelConfig",
    "ModelOutput",
    "build_model",
    "load_model",
    "save_model",
]


def __getattr__(name: str):
    """`load_model`/`save_model` live in factory.export, which imports this package: resolve them lazily."""
    if name in ("load_model", "save_model"):
        from factory import export

        return getattr(export, name)
    raise AttributeError(f"module 'factory.model' has no attribute {name!r}")
