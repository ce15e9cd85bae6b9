"""Our model <-> a Hugging Face `deberta-v2` folder (config.json + model.safetensors).

Our module tree uses HF's parameter names, so saving is `state_dict()` as it is. Loading accepts what
exists in the wild: our folders, `save_pretrained` folders (legacy `cls.predictions.*` MLM head or
`lm_predictions.*`), bare-encoder or headed checkpoints, `pytorch_model.bin` and sharded safetensors, and the
published DeBERTa-v3 layout (docs/derive.md#published-layouts): fp16/fp32 `pytorch_model.bin` holding the RTD
head `mask_predictions.*` (kept: it is the discriminator's trained head) beside an `lm_predictions.*` one, the GDES
delta `word_embeddings._weight` beside the folded `weight` (which is what the discriminator reads), and the
generator in `generator_config.json` + `pytorch_model.generator.bin` (`load_model(folder, generator=True)`), whose
enhanced mask decoder is switched on when its weights carry the absolute positions it reads.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch
from torch import nn

from factory.core.errors import ModelFolderError
from factory.model.config import ModelConfig
from factory.model.heads import HEADS, HF_ARCHITECTURES, build_model, head_of

WEIGHTS = "model.safetensors"
PYTORCH_WEIGHTS = "pytorch_model.bin"
CONFIG = "config.json"
GENERATOR_CONFIG = "generator_config.json"  # the published layout's generator, beside the discriminator
GENERATOR_WEIGHTS = "pytorch_model.generator.bin"
GENERATOR_DIR = "generator"  # factory's generator: a folder of its own inside the model's, or beside a discriminator/
PREFIX = "deberta."
POSITIONS = "deberta.embeddings.position_embeddings.weight"  # absolute positions: v2 input, or the EMD's P
# The official trainer's GDES deltas (DeBERTa/apps/tasks/rtd_task.py registers them as `_weight`); the `weight`
# saved beside each is already E_G + delta, the table the discriminator reads, so loading drops the deltas.
GDES_DELTAS = ("deberta.embeddings.word_embeddings._weight", "deberta.embeddings.position_embeddings._weight")

# HF's legacy MLM head (config.legacy=true, the `save_pretrained` default) -> the official names we use.
_LEGACY_MLM = {
    "cls.predictions.transform.dense.": "lm_predictions.lm_head.dense.",
    "cls.predictions.transform.LayerNorm.": "lm_predictions.lm_head.LayerNorm.",
    "cls.predictions.bias": "lm_predictions.lm_head.bias",
}
_TIED = ("cls.predictions.decoder.",)  # tied to the word embeddings / the bias: nothing to load


def save_model(model: nn.Module, folder: Path | str, dtype: torch.dtype | None = None) -> None:
    """Write config.json and model.safetensors into `folder` (created if needed)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    head = head_of(model)
    config: ModelConfig = model.config
    (folder / "config.json").write_text(json.dumps(config.to_hf(HF_ARCHITECTURES[head]), indent=2) + "\n")
    state = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.cpu().contiguous()
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})


def read_config(folder: Path | str, name: str = CONFIG) -> ModelConfig:
    """The folder's config.json (or the published generator's generator_config.json), checked key by key."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist; give the folder that holds config.json")
    path = folder / name
    if name != CONFIG and not path.is_file():
        raise ModelFolderError(f"{folder} has no {name}: it holds no published generator")
    if not path.is_file():
        raise ModelFolderError(
            f"{folder} has no config.json, so it is not a Hugging Face model folder; "
            "make one with `factory init` or point at a `save_pretrained` folder"
        )
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{path} is not valid JSON ({e}); re-export the model") from None
    return ModelConfig.from_hf(raw, where=str(path))


def read_weights(folder: Path, name: str | None = None) -> dict[str, torch.Tensor]:
    """The folder's weights (safetensors, sharded or not, else pytorch_model.bin), or the file `name`. A .bin is
    read with `weights_only=True`: tensors and containers only, never arbitrary pickled objects."""
    if name is not None:
        return read_weight_file(folder / name)
    if (folder / WEIGHTS).is_file():
        return read_weight_file(folder / WEIGHTS)
    index = folder / f"{WEIGHTS}.index.json"
    if index.is_file():
        state: dict[str, torch.Tensor] = {}
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelFolderError(f"{index} is not a weight index ({type(e).__name__}: {e}); export again") from None
        for shard in shards:
            state.update(read_weight_file(folder / shard))
        return state
    if (folder / PYTORCH_WEIGHTS).is_file():
        return read_weight_file(folder / PYTORCH_WEIGHTS)
    raise ModelFolderError(
        f"{folder} has no weights (model.safetensors or pytorch_model.bin); "
        "export the model again or point at the folder that holds them"
    )


def weight_files(folder: Path) -> list[Path]:
    """The files that hold the folder's weights, as `read_weights` chooses them: model.safetensors, else the shard
    index and its shards, else pytorch_model.bin (listed even when absent: the caller checks or copies)."""
    folder = Path(folder)
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    index = folder / f"{WEIGHTS}.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [index, *(folder / s for s in shards)]
    return [folder / PYTORCH_WEIGHTS]


def weights_fingerprint(folder: Path) -> str | None:
    """The identity of a model's weights: sha256 prefix of its weight files' bytes (model.safetensors alone: that
    file's `fingerprint_file`, as eval manifests record it), None without weights. The same bytes give the same
    fingerprint however the folder is named, copied or fetched (a Hub id's snapshot), so `factory eval` records it
    in results.json and `factory publish` takes only results whose fingerprint is its model's."""
    from factory.core.outputs import fingerprint_file

    files = weight_files(folder)
    if not all(f.is_file() for f in files):
        return None
    if len(files) == 1:
        return fingerprint_file(files[0])
    return hashlib.sha256(" ".join(fingerprint_file(f) for f in files).encode()).hexdigest()[:16]


def check_weights(folder: Path) -> None:
    """The weights of `folder` are there and whole, checked before any work: a safetensors file's header and
    its coverage of the file (safe_open reads no tensor); a pickle is checked when it is loaded."""
    from safetensors import SafetensorError, safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files and not (Path(folder) / PYTORCH_WEIGHTS).is_file():
        raise ModelFolderError(
            f"{folder} has no weights (model.safetensors or pytorch_model.bin); "
            "export the model again or point at the folder that holds them"
        )
    for path in files:
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError) as e:
            raise _unreadable(path, e) from None


def _unreadable(path: Path, error: Exception) -> ModelFolderError:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    return ModelFolderError(
        f"{path} ({path.stat().st_size:,} bytes) cannot be read as weights ({first}): the file is empty, "
        "truncated or not a weights file; export or download it again"
    )


def read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """One weights file (safetensors, or a torch pickle read with weights_only: tensors only, never arbitrary
    objects): a missing, empty, truncated or foreign file is one ModelFolderError line naming it, not the
    loader's traceback."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelFolderError(f"{path.parent} has no {path.name}; give the folder that holds the model's weights")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as e:
        raise _unreadable(path, e) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFolderError(f"{path} holds no state dict of tensors; give the model's weights file")
    return state


def _normalise(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every known checkpoint layout to ours: `deberta.`-prefixed encoder + official head names; drop the
    GDES deltas (the folded table beside them is what the discriminator reads)."""
    out = {}
    for name, tensor in state.items():
        if name.startswith(_TIED) or name in GDES_DELTAS:
            continue
        for old, new in _LEGACY_MLM.items():
            if name.startswith(old):
                name = new + name[len(old) :]
        if name.startswith(("embeddings.", "encoder.")):
            name = PREFIX + name
        out[name] = tensor
    return out


def infer_head(state: dict[str, torch.Tensor]) -> str:
    """The head whose weights the checkpoint holds. RTD first: a published discriminator also carries an
    `lm_predictions` head, but the trained one is `mask_predictions` (a generator has no `mask_predictions`)."""
    names = list(state)
    if any(n.startswith("mask_predictions.") for n in names):
        return "rtd"
    if any(n.startswith("lm_predictions.") for n in names):
        return "mlm"
    if any(n.startswith("qa_outputs.") for n in names):
        return "qa"
    if any(n.startswith("classifier.") for n in names):  # sequence classification pools [CLS]; token does not
        return "cls" if any(n.startswith("pooler.") for n in names) else "tokens"
    return "none"


def has_published_generator(folder: Path | str) -> bool:
    """Whether `folder` holds a generator in the published layout (generator_config.json + its weights)."""
    return (Path(folder) / GENERATOR_CONFIG).is_file() and (Path(folder) / GENERATOR_WEIGHTS).is_file()


def generator_folder(folder: Path | str) -> Path | None:
    """The `generator/` folder that comes with the model folder `folder`: inside it (a repository `factory publish`
    wrote, a trimmed or transplanted model) or beside it (SRC = OUT/discriminator of `factory pretrain`, whose
    generator is OUT/generator); None when there is none. One rule, so that `pretrain --init-from`, `trim` and
    `transplant` find the same generator (a trim that missed it would leave the trained generator behind)."""
    folder = Path(folder)
    beside = folder.parent / GENERATOR_DIR if folder.name == "discriminator" else None
    return next((c for c in (folder / GENERATOR_DIR, beside) if c is not None and (c / CONFIG).is_file()), None)


def with_emd(config: ModelConfig, state: dict[str, torch.Tensor]) -> ModelConfig:
    """An MLM whose config does not say (`emd` None: a published generator_config.json) gets the enhanced mask
    decoder when its weights carry the absolute positions, which only the EMD reads (docs/architecture.md#emd)."""
    if config.emd is None and not config.position_biased_input and POSITIONS in state:
        return config.replace(emd=True)
    return config


def load_model(
    folder: Path | str,
    head: str | None = None,
    num_labels: int | None = None,
    labels: tuple[str, ...] | None = None,
    generator: bool = False,
) -> nn.Module:
    """Load a deberta-v2 folder as our module.

    Args:
        folder: a folder with config.json and model.safetensors (or pytorch_model.bin).
        head: "none" | "mlm" | "rtd" | "cls" | "tokens" | "qa"; default: the head whose weights the folder holds.
            A head the folder lacks is freshly initialised (e.g. "cls" on a pre-trained encoder for fine-tuning).
        num_labels / labels: the classification head's size or label names (default: the config's).
        generator: the published generator beside the model (generator_config.json + pytorch_model.generator.bin).
    """
    folder = Path(folder)
    config = read_config(folder, GENERATOR_CONFIG if generator else CONFIG)
    state = _normalise(read_weights(folder, GENERATOR_WEIGHTS if generator else None))
    head = head or infer_head(state)
    if head not in HEADS:
        raise ModelFolderError(f"head {head!r} unknown; use one of {', '.join(HEADS)}")
    if head == "mlm":
        config = with_emd(config, state)
    fresh_head = head not in ("none", infer_head(state))
    if labels is None and num_labels is not None and num_labels != config.num_labels:
        labels = tuple(f"LABEL_{i}" for i in range(num_labels))
    if labels is not None and tuple(labels) != config.labels:
        config = config.replace(labels=tuple(labels))
        if head in ("cls", "tokens"):  # another label set: the old classifier does not apply
            state = {n: t for n, t in state.items() if not n.startswith("classifier.")}
            fresh_head = True
    model = build_model(config, head)
    expected = model.state_dict()
    if head == "none":  # a bare encoder takes the encoder part of any checkpoint
        state = {n[len(PREFIX) :]: t for n, t in state.items() if n.startswith(PREFIX)}
    state = {n: t for n, t in state.items() if n in expected or not _ignorable(n, config)}
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if fresh_head:
        missing = [n for n in missing if n.startswith(PREFIX)]
    if unexpected or missing:
        raise ModelFolderError(
            f"{folder}: the weights do not fit config.json (missing {missing[:2]}{'...' if len(missing) > 2 else ''}"
            f", unexpected {unexpected[:2]}{'...' if len(unexpected) > 2 else ''}); they come from another "
            "preset or the folder is incomplete: re-export the model"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ModelFolderError(
                f"{folder}: weight {name} has shape {tuple(tensor.shape)} but config.json says "
                f"{tuple(expected[name].shape)}; the weights come from another preset or vocabulary"
            )
    model.load_state_dict(state, strict=not fresh_head)
    return model.eval()


def _ignorable(name: str, config: ModelConfig) -> bool:
    """Keys that checkpoints carry but the model does not use (docs/architecture.md#parameter-names)."""
    if "position_embeddings" in name and not config.position_biased_input:
        return True
    # heads other than the one asked for (e.g. an official discriminator's random MLM head)
    return name.startswith(("lm_predictions.", "mask_predictions.", "classifier.", "pooler.", "qa_outputs."))
