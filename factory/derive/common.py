"""What trim and transplant share: opening the source model, the sizes before and after, writing the result."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from factory.core.manifest import MANIFEST, ModelSource, write_manifest
from factory.core.sources import ResolvedModel
from factory.derive.manifest import DerivedManifest
from factory.derive.networks import ModelFiles, read_model_files, write_model_files


@dataclass
class SourceModel:
    """The model a derivation starts from: where it came from (a folder, or a Hub id at a commit) and its files."""

    resolved: ResolvedModel
    files: ModelFiles

    def provenance(self) -> dict[str, Any]:
        """The manifest's `base` and `base_manifest` (the source's own factory.json, as it was)."""
        base = read_json(self.files.root / self.files.model.folder / MANIFEST)
        return {"base": ModelSource(**self.resolved.describe()), "base_manifest": base}

    def config_keys(self) -> dict[str, Any]:
        """config.json's `factory.base_model` for a Hub base (the card's model tree and a later --init-from read
        it); a local base's own record, if it has one, stays in the config as it was."""
        if not self.resolved.is_hub:
            return {}
        return {"base_model": {"repo_id": self.resolved.repo_id, "revision": self.resolved.revision}}


def read_json(path: Path) -> dict | None:
    """A JSON file kept as provenance (a source's factory.json), or None when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def open_source(name: str) -> SourceModel:
    """A model folder (any layout factory/derive/networks.py reads) or a Hub id `org/name[@revision]` (its files,
    the published generator included, from the Hugging Face cache or the Hub: factory/core/sources.py)."""
    from factory.core.sources import resolve_model

    resolved = resolve_model(name, parts=("model", "generator"))
    return SourceModel(resolved, read_model_files(resolved.path))


def check_out_apart(out: Path, source: str, vocab: str | None = None) -> None:
    """--out is not a folder the step reads (SRC, the generator `pretrain --init-from` would take with it, --vocab),
    not inside one and does not hold one, whatever --force says: the output replaces --out whole
    (outputs.replace_folder), so `trim SRC --out SRC --force` would leave the trimmed model and no SRC. Checked
    before --out's own checks, so that no refusal advises --force there. Local folders only: a Hub id's files are
    in the Hugging Face cache."""
    from factory.core.errors import ModelFolderError, OutputExistsError
    from factory.core.outputs import overlap
    from factory.derive.networks import model_folders

    inputs: list[tuple[str, Path]] = []
    if Path(source).expanduser().is_dir():
        try:
            folders = model_folders(Path(source).expanduser())
        except ModelFolderError:  # not a model folder: said in one line when it is opened
            folders = [Path(source).expanduser()]
        inputs += [(f"SRC {source}", folders[0]), *((f"SRC's generator {f}", f) for f in folders[1:])]
    if vocab is not None and Path(vocab).expanduser().is_dir():
        inputs.append((f"--vocab {vocab}", Path(vocab).expanduser()))
    problems = {
        "same": "is {what} itself: writing --out would replace what this step reads",
        "inside": "is inside {what}, which this step reads",
        "holds": "holds {what}, which this step reads and --force would replace",
    }
    for what, folder in inputs:
        where = overlap(out, folder)
        if where is not None:
            raise OutputExistsError(f"--out {out} {problems[where].format(what=what)}; give --out a folder of its own")


def layout_keys(pieces: int, rows: int) -> dict[str, Any]:
    """config.json's `factory` keys for a model of `pieces` pieces ([MASK] = pieces) and `rows` embedding rows."""
    from factory.model.presets import VocabSize

    layout = "official" if VocabSize.from_pieces(pieces).rows == rows else "custom"
    return {"vocab_pieces": pieces, "mask_token_id": pieces, "embedding_layout": layout}


def sizes(files: ModelFiles, rows: int) -> dict[str, Any]:
    """The model's parameters (bare encoder, as `factory presets` counts them) and rows, before and after."""
    from factory.model.config import ModelConfig
    from factory.model.presets import count_parameters

    config = ModelConfig.from_hf(files.model.config)
    return {
        "rows_before": config.vocab_size,
        "rows_after": rows,
        "parameters_before": count_parameters(config),
        "parameters_after": count_parameters(config.replace(vocab_size=rows)),
    }


@dataclass
class Derived:
    """What trim and transplant return: the manifest written, and the lines the command prints."""

    manifest: DerivedManifest
    summary: list[str]


def write_derived(
    out: Path,
    force: bool,
    files: ModelFiles,
    spm_model: bytes,
    new_rows: Callable[[str, torch.Tensor], torch.Tensor],
    rows: int,
    keys: dict[str, Any],
    manifest: DerivedManifest,
    started: float,
    summary: Callable[[DerivedManifest], list[str]],
) -> Derived:
    """Write the derived model into `out`, whole or not at all: every network at its place (new rows, new
    config), the tokenizer (spm.model + the HF files) at the top and beside every network, and the manifest
    (with the seconds it took) at the top and in every network's folder. The `summary` lines are made before the
    folder is renamed into place, so that nothing can fail after `out` is there (a transplant whose printout
    formatted a missing figure used to leave a whole --out behind a traceback, and its rerun was refused)."""
    from factory.core.outputs import staged_output
    from factory.model.tokenizer import copy_tokenizer_files, write_hf_files

    with staged_output(out, force) as tmp:
        folders = write_model_files(files, tmp, new_rows, rows, keys)
        (tmp / "spm.model").write_bytes(spm_model)
        write_hf_files(tmp)  # built once (tokenizer.json of a 250k vocabulary is not free), copied beside each network
        for folder in dict.fromkeys(folders):
            if folder != tmp:
                copy_tokenizer_files(tmp, folder)
        manifest.seconds = round(time.perf_counter() - started, 3)
        for folder in dict.fromkeys([tmp, *folders]):
            write_manifest(folder, manifest)
        lines = summary(manifest)
    return Derived(manifest, lines)
