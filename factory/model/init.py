"""`factory init`: a randomly initialised model of a size preset (or a shape between the presets), optionally
sized to a vocabulary folder."""

from __future__ import annotations

from typing import Any

from factory.core.options import to_json
from factory.model.init_config import InitConfig


def init_model(config: InitConfig) -> dict[str, Any]:
    """Write the model folder (weights, config.json, manifest and, with `--vocab`, the tokenizer files);
    returns the vocabulary size and the parameter counts."""
    from factory.core.manifest import write_manifest
    from factory.core.outputs import staged_output
    from factory.model import build_model, save_model
    from factory.model.manifest import InitManifest
    from factory.model.presets import VocabSize, check_memory, count_parameters, shape_of
    from factory.model.tokenizer import Tokenizer, copy_tokenizer_files

    if config.vocab is not None:
        vocab = VocabSize.from_pieces(Tokenizer.from_folder(config.vocab).num_pieces, config.layout)
    else:
        vocab = VocabSize.parse(config.vocab_size, config.layout)
    shape = shape_of(config)  # the preset, or a custom shape from it: config.json's `factory` section says which
    model_config = shape.config(vocab, labels=tuple(f"LABEL_{i}" for i in range(config.num_labels)))
    counts = count_parameters(model_config)
    check_memory(counts["total"], 4, f"a {shape.describe()} model in fp32")
    with staged_output(config.out, config.force) as tmp:
        save_model(build_model(model_config, config.head, seed=config.seed), tmp)
        if config.vocab is not None:
            copy_tokenizer_files(config.vocab, tmp)
        manifest = InitManifest(
            arguments=to_json(config), parameters=counts, preset=shape.name, base_preset=shape.base,
            shape=shape.sizes(),
        )  # fmt: skip
        write_manifest(tmp, manifest)
    return {"pieces": vocab.pieces, "rows": vocab.rows, "shape": shape.describe(), **counts}
