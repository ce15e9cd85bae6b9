"""The networks of a model on disk and their per-vocabulary tensors, in whichever layout they were saved.

`trim` and `transplant` change a model's vocabulary, so they must change every tensor with one row (or entry)
per vocabulary id, in every network the model has, and leave everything else value for value as it was. They
work on state dicts, not on modules, so that whatever layout came in goes out with the same files and names, in
fp32 (`write_model_files` says why; docs/architecture.md#parameter-names has the sources):

- factory's export: `discriminator/` and `generator/` folders (model.safetensors), or a published factory
  repository (the model at the top, the generator in `generator/`);
- the published microsoft layout: `pytorch_model.bin` (fp16 or fp32) holding the discriminator with
  `deberta.embeddings.word_embeddings.weight` (the folded table, generator + delta) and `..._weight` (the GDES
  delta), an MLM head `lm_predictions.lm_head.*` and the RTD head `mask_predictions.*`; beside it
  `generator_config.json` + `pytorch_model.generator.bin`;
- a `save_pretrained` folder (`cls.predictions.*` with the legacy head).

The per-vocabulary tensors are named in `ROW_TENSORS`; a tensor with any other name is copied unchanged.
What is written is a model folder in either case: the published layout stays one folder; factory's
`discriminator/` + `generator/` becomes the model at the top with its generator in `generator/` (the layout
`factory publish` uploads), so the result is a model folder for `--model`, `--init-from` and `publish` alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from factory.core.errors import ModelFolderError

# Tensors with one row (or one entry) per vocabulary id, by the end of their name (with or without `deberta.`).
ROW_TENSORS = (
    "embeddings.word_embeddings.weight",  # the table (a published discriminator's: generator + delta, folded)
    "embeddings.word_embeddings._weight",  # the published discriminator's GDES delta E_delta
    "lm_predictions.lm_head.bias",  # the MLM output bias (official names; HF with legacy=false; factory)
    "cls.predictions.bias",  # the same in HF's legacy head
    "cls.predictions.decoder.weight",  # tied to the table in HF's legacy head, but saved by some versions
    "cls.predictions.decoder.bias",
)
DELTA = "embeddings.word_embeddings._weight"
PUBLISHED_GENERATOR = ("generator_config.json", "pytorch_model.generator.bin")
SAFETENSORS, TORCH_BIN = "model.safetensors", "pytorch_model.bin"


def is_row_tensor(name: str) -> bool:
    return name.endswith(ROW_TENSORS)


@dataclass
class Network:
    """One network of a model: its config file and weights file, relative to the model's folder."""

    role: str  # "model" (the discriminator or the only network) or "generator"
    folder: Path  # where its files are, relative to the model's folder ("." or "generator", ...)
    config_name: str  # config.json or generator_config.json
    weights_name: str  # model.safetensors, pytorch_model.bin or pytorch_model.generator.bin
    config: dict = field(repr=False)  # config.json as read
    state: dict[str, torch.Tensor] = field(repr=False)

    @property
    def out_folder(self) -> Path:
        """Where it is written: the model at the top; a generator with its own config.json in `generator/`, a
        published one (generator_config.json) beside the model."""
        return Path("generator") if self.role == "generator" and self.config_name == "config.json" else Path(".")

    @property
    def vocab_rows(self) -> int:
        return int(self.config["vocab_size"])

    @property
    def hidden(self) -> int:
        return int(self.config["hidden_size"])

    def row_names(self) -> list[str]:
        return [n for n in self.state if is_row_tensor(n)]


@dataclass
class ModelFiles:
    """A model as found on disk: its networks (the discriminator first) and the folder with its tokenizer."""

    root: Path
    networks: list[Network]
    tokenizer: Path  # the folder holding spm.model

    @property
    def model(self) -> Network:
        return self.networks[0]


def read_model_files(root: Path) -> ModelFiles:
    """The networks of the model at `root`: a model folder (with a generator inside it or in `generator/`, if
    there is one), a `factory pretrain` run folder (`discriminator/` + `generator/`), or such a run's
    `discriminator/` (its generator beside it: read as the run folder, so the trained generator is not left
    behind). Checks that each is a deberta-v2 network whose per-vocabulary tensors have `vocab_size` rows, and
    that the networks share their vocabulary and width (GDES shares the table)."""
    root, base, generator = locate(Path(root))
    networks = [_network(root, "model", base, "config.json")]
    if generator == base:
        networks.append(_network(root, "generator", base, *PUBLISHED_GENERATOR))
    elif generator is not None:
        networks.append(_network(root, "generator", generator, "config.json"))
    _check_networks(root, networks)
    tokenizer = root / base
    if not (tokenizer / "spm.model").is_file():
        raise ModelFolderError(f"{tokenizer} has no spm.model; a DeBERTa-v3 model folder carries its tokenizer")
    return ModelFiles(root, networks, tokenizer)


def locate(root: Path) -> tuple[Path, Path, Path | None]:
    """(the folder the networks are read from, the model's folder in it, the generator's folder in it or None):
    files are not read, only looked for. The generator is the published files beside the model (its folder is
    then the model's) or a `generator/` folder as `pretrain --init-from` finds it (export.generator_folder); one
    beside a `discriminator/` makes the run folder above it the root."""
    from factory.model.folder import generator_folder

    if not root.is_dir():
        raise ModelFolderError(f"{root} does not exist; give a model folder (or a Hub id)")
    base = Path(".") if (root / "config.json").is_file() else Path("discriminator")
    if not (root / base / "config.json").is_file():
        raise ModelFolderError(
            f"{root} has no config.json (nor discriminator/config.json), so it is not a deberta-v2 model folder; "
            "give the folder `factory pretrain` exported or one with the published files"
        )
    if all((root / base / name).is_file() for name in PUBLISHED_GENERATOR):
        return root, base, base
    generator = generator_folder(root / base)
    if generator is not None and base == Path(".") and generator.parent != root:  # OUT/discriminator was given
        root, base = root.parent, Path(root.name)
    return root, base, None if generator is None else generator.relative_to(root)


def model_folders(root: Path) -> list[Path]:
    """Every folder `read_model_files(root)` reads: `root` itself and the generator's, wherever it is."""
    top, _, generator = locate(root)
    return [root, *([top / generator] if generator is not None else [])]


def _weights_name(folder: Path) -> str:
    for name in (SAFETENSORS, f"{SAFETENSORS}.index.json", TORCH_BIN):
        if (folder / name).is_file():
            return name
    raise ModelFolderError(f"{folder} has no weights ({SAFETENSORS} or {TORCH_BIN}); give a complete model folder")


def _network(root: Path, role: str, folder: Path, config_name: str, weights_name: str | None = None) -> Network:
    """The network whose config is `folder/config_name` (checked first: a folder that is not deberta-v2 is told
    so, not that its weights are missing) and whose weights are `weights_name` (default: the folder's)."""
    from factory.model.config import ModelConfig
    from factory.model.folder import read_weights

    path = root / folder / config_name
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{path} is not valid JSON ({e}); give a deberta-v2 model folder") from None
    ModelConfig.from_hf(config, where=str(path))  # refuses a model that is not deberta-v2 in one line
    weights_name = weights_name or _weights_name(root / folder)
    # a .bin by its name (the generator's is pytorch_model.generator.bin); else model.safetensors or its shards
    state = read_weights(root / folder, weights_name if weights_name.endswith(".bin") else None)
    if weights_name.endswith(".index.json"):
        weights_name = SAFETENSORS  # written back as one file
    return Network(role, folder, config_name, weights_name, config, dict(state))


def _check_networks(root: Path, networks: list[Network]) -> None:
    for net in networks:
        where = root / net.folder / net.weights_name
        if not net.row_names():
            raise ModelFolderError(f"{where} has no word embedding table; it is not a deberta-v2 model")
        for name in net.row_names():
            if net.state[name].shape[0] != net.vocab_rows:
                raise ModelFolderError(
                    f"{where}: {name} has {net.state[name].shape[0]:,} rows but {net.config_name} says vocab_size "
                    f"{net.vocab_rows:,}; the files do not belong together"
                )
    model, others = networks[0], networks[1:]
    for net in others:
        if (net.vocab_rows, net.hidden) != (model.vocab_rows, model.hidden):
            raise ModelFolderError(
                f"{root / net.folder / net.config_name}: the generator has {net.vocab_rows:,} rows of width "
                f"{net.hidden} but the model {model.vocab_rows:,} of width {model.hidden}; they do not share an "
                "embedding, so they are not one model's two networks"
            )


# ---- new rows ------------------------------------------------------------------------------------
RowMaker = Callable[[str, torch.Tensor], torch.Tensor]  # (tensor name, old tensor) -> new tensor


def write_model_files(
    files: ModelFiles, out: Path, new_rows: RowMaker, vocab_rows: int, factory_keys: dict
) -> list[Path]:
    """Write every network of `files` into `out` at its `out_folder`, with the same file and tensor names:
    per-vocabulary tensors replaced by `new_rows(name, tensor)`, everything else as it was, every floating-point
    tensor in fp32 (see below), config `vocab_size` = `vocab_rows`, `dtype` float32 and `factory_keys` merged into
    its `factory` section. Returns the folders written.

    Why fp32, when the published files are fp16 (or both): factory computes in fp32, and transformers 5 loads a
    checkpoint in the dtype its config.json names, else its weights' (`dtype="auto"`), so fp16 files would run in
    fp16 there, 5e-3 off factory's numbers. fp16 -> fp32 is exact: the values are the source's, bit for bit."""
    folders = []
    for net in files.networks:
        folder = out / net.out_folder
        folder.mkdir(parents=True, exist_ok=True)
        state = {}
        for name, tensor in net.state.items():
            new = new_rows(name, tensor) if is_row_tensor(name) else tensor
            if new.shape[0] != (vocab_rows if is_row_tensor(name) else tensor.shape[0]) or new.dtype != tensor.dtype:
                raise AssertionError(f"{name}: new rows of the wrong shape or dtype")  # a bug, not user input
            state[name] = (new.float() if new.is_floating_point() else new).contiguous()
        config = {**net.config, "vocab_size": vocab_rows, "dtype": "float32"}
        if "torch_dtype" in config:  # transformers 4's name for it (5 reads `dtype` first)
            config["torch_dtype"] = "float32"
        config["factory"] = {**(net.config.get("factory") or {}), **factory_keys}
        (folder / net.config_name).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        save_weights(state, folder / net.weights_name)
        folders.append(folder)
    return list(dict.fromkeys(folders))


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """A state dict as safetensors or, for a `.bin` name, as torch.save writes it (as the published files are)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path), metadata={"format": "pt"})
    else:
        torch.save(state, path)
