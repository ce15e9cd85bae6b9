"""The model: the DeBERTa-v3 architecture in plain PyTorch (config, attention, encoder, heads), its size presets
(presets.py), reading and writing model folders (folder.py, tokenizer.py) and `factory init` (init.py, with its
options in init_config.py and its manifest in manifest.py). It imports factory.core only, never a step package.
This `__init__` imports nothing: the names below load their module (and torch) when first used, so a step's
config can import factory.model.init_config without torch.

from factory.model import load_model
model = load_model("out/base")                 # any deberta-v2 folder
out = model(input_ids, attention_mask=mask)    # out.last_hidden_state, out.logits
"""

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


_HOMES = {
    "ModelConfig": "config", "DebertaModel": "encoder", "ModelOutput": "encoder", "load_model": "folder",
    "save_model": "folder", **dict.fromkeys(("HEADS", "DebertaForMaskedLM", "DebertaForQuestionAnswering",
                                             "DebertaForRTD", "DebertaForSequenceClassification",
                                             "DebertaForTokenClassification", "build_model"), "heads"),
}  # fmt: skip


def __getattr__(name: str):
    """The architecture's names, from their modules on first use (torch loads then, not on import)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'factory.model' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"factory.model.{_HOMES[name]}"), name)
