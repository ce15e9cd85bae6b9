"""Continued pre-training: `factory pretrain --init-from SRC` starts RTD + GDES from a published (or earlier)
discriminator instead of random weights (docs/derive.md#continued-pre-training).

Where each part comes from:
- the discriminator: SRC, a folder or a Hub id (factory/core/sources.py). Its config.json is the model's config (the
  shape and embedding rows; --preset, --layout and the shape flags are refused), its weights every encoder tensor
  and the trained RTD head `mask_predictions` (a fresh head when SRC has none, e.g. a classification model);
- the tokenizer: SRC's spm.model (or --vocab, which must be that same file: another vocabulary needs
  `factory transplant` first);
- the generator, the first that exists: --init-generator SRC2; the published generator beside SRC
  (generator_config.json + pytorch_model.generator.bin); a generator/ folder in SRC (what `factory publish`
  uploads) or beside it (SRC = OUT/discriminator of `factory pretrain`); else one derived from the discriminator
  by `--generator-rule` (GENERATOR_RULES; `--generator-warmup` steps can train it alone first);
- GDES: E_G is the generator's table and E_delta = W - E_G, W the discriminator's (folded) table, so the
  discriminator's effective table E_G + E_delta is W at step 0, exactly up to the file's dtype (`es`: one table,
  W; `nes`: each network keeps its own);
- the enhanced mask decoder (--emd auto): on when the generator's weights carry the absolute positions it reads
  (the published generators were trained with it), off for a derived or factory-exported generator.

`open_start` reads configs only (what a plan and `--dry-run` need, and every check of the user's input, one line
each); its `Start` is made once per run and passed down (run_pretrain -> setup -> make_plan, build_model);
`build_start_model` reads the weights and builds the RTD model for the run.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ConfigError, ModelFolderError
from factory.model.config import ModelConfig
from factory.model.presets import PRESETS, Shape, VocabSize, generator_depth

if TYPE_CHECKING:
    import torch

    from factory.core.sources import ResolvedModel
    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.rtd import RTDModel

log = logging.getLogger(__name__)

# How a generator is made when SRC has none (docs/derive.md#the-generator-rule; measured in bench/RESULTS.md, where
# fresh won):
#   fresh       random layers and head; only the shared table E_G is the discriminator's
#   lower-half  the discriminator's embeddings, relative-position table and first generator_depth(L) layers, a
#               fresh MLM head (no EMD: there is no trained position table for it)
GENERATOR_RULES = ("fresh", "lower-half")
EMD_CHOICES = ("auto", "on", "off")
# Keys a generator must share with the discriminator to be trained beside it (the GDES table is shared)
FIT_KEYS = ("vocab_size", "hidden_size")


@dataclass(frozen=True)
class GeneratorSource:
    """Where the generator comes from: `kind` "given" (--init-generator), "published" (beside SRC), "folder" (a
    generator/ folder in or beside SRC) or "derived" (`rule`)."""

    kind: str
    folder: Path | None = None  # the folder load_model reads (None: derived)
    published_files: bool = False  # generator_config.json + pytorch_model.generator.bin in `folder`
    model: ResolvedModel | None = None  # --init-generator as resolved (the commit of a Hub id)
    rule: str | None = None  # derived only


@dataclass(frozen=True)
class Start:
    """--init-from, resolved from the configs: the discriminator's config, the generator's, the vocabulary."""

    source: ResolvedModel
    config: ModelConfig  # the discriminator's: SRC's config.json, with the vocabulary's provenance
    generator_config: ModelConfig  # `emd` still None for a published one (decided from its weights)
    generator: GeneratorSource
    vocab: Path  # the folder whose spm.model the run uses (SRC's own, unless --vocab names the same file)
    pieces: int

    @property
    def vocab_size(self) -> VocabSize:
        return VocabSize(pieces=self.pieces, rows=self.config.vocab_size, layout="official")

    @property
    def shape(self) -> Shape:
        """SRC's sizes, named after the preset they are (deberta-v3-xsmall is `xsmall`), else a custom shape."""
        c = self.config
        sizes = (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
        base = next((n for n, p in PRESETS.items() if (p.layers, p.hidden, p.heads, p.ffn) == sizes), None)
        base = base or next((n for n, p in PRESETS.items() if p.hidden == c.hidden_size), "base")
        depth = self.generator_config.num_hidden_layers
        return Shape(base, *sizes, generator=None if depth == generator_depth(sizes[0]) else depth)

    def record(self, emd: bool | None = None) -> dict[str, Any]:
        """What the manifests and the card say about the start (factory.pretrain.manifest.InitFrom's fields)."""
        gen = self.generator
        return {
            "source": self.source.describe(),
            "generator": gen.kind,
            "generator_source": gen.model.describe() if gen.model is not None else None,
            "generator_rule": gen.rule,
            "emd": emd,
            "base_model": base_model(self.source),
        }


def base_model(source: ResolvedModel) -> dict[str, Any] | None:
    """The Hub model this one descends from: SRC itself for a Hub id; for a folder, what it records itself came
    from (config.json's `factory.base_model` of a continued model, factory.json's `base` of a trimmed or
    transplanted one), else None (a model trained from scratch)."""
    import json

    if source.is_hub:
        return {"repo_id": source.repo_id, "revision": source.revision}
    found = []
    for name, path in (("config.json", ("factory", "base_model")), ("factory.json", ("base",))):
        try:
            value = json.loads((source.path / name).read_text())
        except (OSError, ValueError):
            continue
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        found.append(value)
    recorded = next((v for v in found if isinstance(v, dict) and v.get("repo_id")), None)
    return {"repo_id": recorded["repo_id"], "revision": recorded.get("revision")} if recorded else None


# ---- the configs: every check before anything is written ------------------------------------------
def open_start(config: PretrainConfig) -> Start:
    """Resolve --init-from (and --init-generator, --vocab) and check that they fit; configs only. Called once per
    run: the caller passes the `Start` down to what plans and builds the run."""
    init_from, init_generator, rule = config.init_from, config.init_generator, config.generator_rule
    vocab = str(config.vocab) if config.vocab else None
    from factory.core.sources import resolve_model
    from factory.model.folder import GENERATOR_CONFIG, read_config

    source = resolve_model(init_from, parts=("config",))
    config = read_config(source.path)  # not a deberta-v2 model: one line
    vocab_folder, pieces = _vocabulary(source, config, vocab)
    vocab_record = {"vocab_pieces": pieces, "mask_token_id": pieces, "embedding_layout": "published"}
    config = config.replace(emd=None, factory={**config.factory, **vocab_record, "role": "rtd-discriminator"})
    if init_generator:
        model = resolve_model(init_generator, parts=("config",))
        published = has_config(model.path, GENERATOR_CONFIG)
        gen = GeneratorSource("given", model.path, published, model)
        gen_config = read_config(model.path, GENERATOR_CONFIG if published else "config.json")
    else:
        gen, gen_config = _beside(source, config, rule)
    _check_fits(gen_config, config, gen, init_generator or init_from)
    gen_config = gen_config.replace(factory={**config.factory, "role": "rtd-generator"})
    return Start(source, config, gen_config, gen, vocab_folder, pieces)


def has_config(folder: Path, name: str) -> bool:
    return (folder / name).is_file()


def _beside(source: ResolvedModel, config: ModelConfig, rule: str) -> tuple[GeneratorSource, ModelConfig]:
    """The generator that comes with SRC (published files, or a generator/ folder in or beside it), else the rule's."""
    from factory.model.folder import GENERATOR_CONFIG, generator_folder, read_config

    folder = source.path
    if has_config(folder, GENERATOR_CONFIG):
        return GeneratorSource("published", folder, True), read_config(folder, GENERATOR_CONFIG)
    candidate = generator_folder(folder)  # in SRC, or beside it (SRC = OUT/discriminator)
    if candidate is not None:
        return GeneratorSource("folder", candidate), read_config(candidate)
    derived = config.replace(num_hidden_layers=generator_depth(config.num_hidden_layers))
    return GeneratorSource("derived", rule=rule), derived


def _vocabulary(source: ResolvedModel, config: ModelConfig, vocab: str | None) -> tuple[Path, int]:
    """The vocabulary folder the run uses, and its pieces: SRC's spm.model, or --vocab when it is that same file."""
    from factory.core.outputs import fingerprint_file
    from factory.core.sources import resolve_model
    from factory.model.tokenizer import SPM_FILE, Tokenizer

    own = source.path / SPM_FILE
    if vocab is None:
        if not own.is_file():
            raise ConfigError(
                f"--init-from {source.given} has no {SPM_FILE}; give --vocab with the vocabulary it was trained with"
            )
        folder = source.path
    else:
        folder = resolve_model(vocab, parts=("tokenizer",)).path
        if own.is_file() and fingerprint_file(folder / SPM_FILE) != fingerprint_file(own):
            raise ConfigError(
                f"--vocab {vocab} is not the vocabulary of --init-from {source.given} (their spm.model differ); drop "
                "--vocab to continue on the model's own, or move the model onto this vocabulary first with "
                "`factory transplant`"
            )
    tokenizer = Tokenizer.from_folder(folder)
    tokenizer.check_fits(config, source.given, "give --vocab with the vocabulary the model was trained with")
    return folder, tokenizer.num_pieces


def _check_fits(gen: ModelConfig, disc: ModelConfig, source: GeneratorSource, given: str) -> None:
    """A generator trains beside the discriminator only with the same table: vocabulary rows and width."""
    for key in FIT_KEYS:
        if getattr(gen, key) != getattr(disc, key):
            what = "--init-generator" if source.kind == "given" else "the generator of --init-from"
            raise ConfigError(
                f"{what} {given} does not fit the discriminator: its {key} is {getattr(gen, key)}, the "
                f"discriminator's {getattr(disc, key)} (GDES shares one embedding table); give a generator of this "
                "model, or none to derive one (--generator-rule)"
            )


# ---- the weights ---------------------------------------------------------------------------------
@dataclass
class StartWeights:
    """The tensors of the start, in fp32 (a .bin may hold fp16), and the generator's config with `emd` decided."""

    discriminator: dict[str, torch.Tensor]
    generator: dict[str, torch.Tensor] | None  # None: derived by `rule`
    generator_config: ModelConfig
    rule: str | None = None


def read_start(start: Start, emd: str) -> StartWeights:
    """Read both networks' weights (a Hub id: the files are fetched now, at the commit the plan resolved)."""
    from factory.core.sources import resolve_model
    from factory.model.folder import GDES_DELTAS, GENERATOR_WEIGHTS, POSITIONS, _normalise, read_weights

    src = start.source
    folder = resolve_model(f"{src.repo_id}@{src.revision}", parts=("model",)).path if src.is_hub else src.path
    disc = {k: v.float() for k, v in _normalise(read_weights(folder)).items() if k not in GDES_DELTAS}
    gen_state, gen = None, start.generator
    if gen.kind != "derived":
        gen_folder = gen.folder
        model = gen.model if gen.kind == "given" else src
        if model is not None and model.is_hub:  # fetch the weights at the same commit
            fetched = resolve_model(f"{model.repo_id}@{model.revision}", parts=("model", "generator")).path
            gen_folder = fetched if gen.folder == model.path else fetched / gen.folder.name
        raw = read_weights(gen_folder, GENERATOR_WEIGHTS if gen.published_files else None)
        gen_state = {k: v.float() for k, v in _normalise(raw).items()}
        if not any(k.startswith("lm_predictions.") for k in gen_state):
            raise ModelFolderError(f"the generator in {gen_folder} has no MLM head (lm_predictions); give a generator")
    carries_positions = gen_state is not None and POSITIONS in gen_state
    on = {"on": True, "off": False, "auto": carries_positions}[emd]
    if on and gen_state is not None and not carries_positions:
        raise ConfigError("--emd on: the generator's weights hold no absolute positions for the decoder to read; "
                          "use --emd auto")  # fmt: skip
    return StartWeights(disc, gen_state, start.generator_config.replace(emd=on), gen.rule)


def build_start_model(config: PretrainConfig, start: Start, model_config: ModelConfig) -> RTDModel:
    """The RTD model of the run (weights from --seed first: the fresh parts), then the start's weights copied in."""
    from factory.pretrain.rtd import build_rtd_model

    weights = read_start(start, config.emd)
    gen_config = weights.generator_config.replace(
        hidden_dropout_prob=model_config.hidden_dropout_prob,
        attention_probs_dropout_prob=model_config.attention_probs_dropout_prob,
    )
    model = build_rtd_model(model_config, gen_config.num_hidden_layers, config.sharing, config.seed,
                            generator=gen_config)  # fmt: skip
    load_start(model, weights)
    return model


def load_start(model: RTDModel, weights: StartWeights) -> None:
    """Copy the start into the freshly built model: the discriminator's encoder and RTD head, the generator
    (given, or derived from the discriminator), and the embedding tables as the sharing needs them."""
    import torch

    disc = weights.discriminator
    table = disc["deberta.embeddings.word_embeddings.weight"]  # W: what the published discriminator reads
    encoder = {k: v for k, v in disc.items() if k.startswith("deberta.") and "word_embeddings" not in k}
    head = {k: v for k, v in disc.items() if k.startswith("mask_predictions.")}
    _load(model.discriminator, {**encoder, **head}, optional=("mask_predictions.",), what="--init-from")
    if not head:
        log.warning("--init-from has no RTD head (mask_predictions): the discriminator starts with a fresh one")
    gen = weights.generator if weights.generator is not None else derived_generator(model, disc, weights.rule)
    _load(model.generator, gen, what="the generator", optional=("deberta.embeddings.position_embeddings",))
    with torch.no_grad():
        if model.sharing == "nes":
            model.discriminator.deberta.embeddings.word_embeddings.weight.copy_(table)
        elif model.sharing == "es":  # one table, both networks: the discriminator's keeps step 0 exact
            model.generator_embedding().copy_(table)
        else:  # gdes: E_delta = W - E_G, so E_G + E_delta = W
            model.embedding_delta.copy_(table - model.generator_embedding())


def derived_generator(model: RTDModel, disc: dict[str, torch.Tensor], rule: str | None) -> dict:
    """The generator's start under the rule: its freshly built weights, with the discriminator's table and, for
    lower-half, its embeddings' LayerNorm, relative-position table and first layers (docs/derive.md)."""
    if rule not in GENERATOR_RULES:
        raise ValueError(f"generator rule {rule!r} unknown; use one of {GENERATOR_RULES}")
    state = dict(model.generator.state_dict())
    state["deberta.embeddings.word_embeddings.weight"] = disc["deberta.embeddings.word_embeddings.weight"]
    if rule == "fresh":
        return state
    depth = model.generator.config.num_hidden_layers
    for name, tensor in disc.items():
        inner = name.split(".")
        if name.startswith("deberta.encoder.layer."):
            if int(inner[3]) < depth:
                state[name] = tensor
        elif name.startswith(("deberta.embeddings.LayerNorm", "deberta.encoder.rel_embeddings",
                              "deberta.encoder.LayerNorm")):  # fmt: skip
            state[name] = tensor
    return state


def _load(module, state: dict, what: str, optional: tuple[str, ...] = ()) -> None:
    """load_state_dict with one-line errors: a tensor of another shape, or one the module needs and the file lacks."""
    expected = module.state_dict()
    needed = [n for n in expected if n not in state and not n.startswith(optional) and "word_embeddings" not in n]
    if needed:
        raise ModelFolderError(f"{what}: the weights lack {needed[:2]}{'...' if len(needed) > 2 else ''}; the "
                               "folder is incomplete or not a DeBERTa-v2 model")  # fmt: skip
    for name, tensor in state.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise ModelFolderError(f"{what}: {name} has shape {tuple(tensor.shape)}, the config says "
                                   f"{tuple(expected[name].shape)}")  # fmt: skip
    module.load_state_dict({n: t for n, t in state.items() if n in expected}, strict=False)


def start_config(start: Start, dropout: float | None) -> ModelConfig:
    """The discriminator's config for the run: SRC's, with --dropout and the shape record."""
    config = start.config
    if dropout is not None:
        config = config.replace(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return config.replace(factory={**config.factory, **start.shape.record()})


def replace_vocab(config: PretrainConfig, start: Start) -> PretrainConfig:
    """--vocab defaults to the start's vocabulary folder (SRC's spm.model)."""
    return config if config.vocab == start.vocab else dataclasses.replace(config, vocab=start.vocab)
