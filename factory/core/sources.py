"""Where a model comes from: a local folder, or a published one on the Hugging Face Hub, `org/name[@revision]`.

Every option that takes a model (`--model` of `factory eval`, `factory publish DIR`, `pretrain --init-from` and
`--init-generator`, `shards --vocab`) calls `resolve_model`, so a Hub id works wherever a folder does:

    resolve_model("runs/demo/pretrain/discriminator")      # a folder: used as it is
    resolve_model("microsoft/deberta-v3-xsmall")           # the Hub, branch main
    resolve_model("microsoft/mdeberta-v3-base@v1.0")        # a tag, branch or commit hash

A Hub id goes through `huggingface_hub.snapshot_download`, so its cache, HF_HUB_OFFLINE (no network: the cache
only), HF_ENDPOINT and HF_TOKEN (or `hf auth login`, for private or gated repositories) behave as everywhere
else. Only the files a step reads are fetched (`allow_patterns`): config.json, the weights in one format
(safetensors when the repository has them, else pytorch_model.bin), the tokenizer files, and the generator's
weights (generator_config.json + pytorch_model.generator.bin, docs/derive.md#published-layouts, or a generator/
folder) only when asked for; a plan (`--dry-run`) reads the configs alone. The snapshot folder's name is the
commit the revision pointed at when it was fetched: that hash is `ResolvedModel.revision`, what manifests and
model cards record.

A text that names an existing path is always that folder; anything else that reads as `org/name` is a Hub id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import ModelFolderError, RunFailure

CONFIG = "config.json"
TOKENIZER = ("spm.model", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "added_tokens.json")
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors")
PYTORCH_BIN = "pytorch_model.bin"
GENERATOR_CONFIG = "generator_config.json"  # the published layout's generator, beside the discriminator ...
GENERATOR_BIN = "pytorch_model.generator.bin"
GENERATOR_DIR = "generator"  # ... or a folder of its own inside the repository (`factory publish` writes it)
PARTS = ("config", "model", "generator", "tokenizer")

_REPO = re.compile(r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?")
_REVISION = re.compile(r"[\w./-]{1,200}")


@dataclass(frozen=True)
class ResolvedModel:
    """A model on this machine: `path` holds its files; for a Hub id also the repository and the commit used."""

    path: Path
    given: str  # the text the user gave (a folder, or org/name[@revision])
    repo_id: str | None = None  # None: a local folder
    revision: str | None = None  # the commit hash of the files in `path` (Hub ids only)

    @property
    def is_hub(self) -> bool:
        return self.repo_id is not None

    def describe(self) -> dict[str, Any]:
        """What a manifest records (factory.core.manifest.ModelSource's fields)."""
        return {"given": self.given, "repo_id": self.repo_id, "revision": self.revision}

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision[:12]}" if self.is_hub and self.revision else self.given


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """('org/name', revision or None) when `text` reads as a Hub model id, else None."""
    repo, at, revision = text.partition("@")
    if not _REPO.fullmatch(repo) or "--" in repo or ".." in repo or repo.endswith(".git"):
        return None
    if at and not _REVISION.fullmatch(revision):
        return None
    return repo, (revision or None)


def resolve_model(text: str | Path, parts: tuple[str, ...] = ("model",)) -> ResolvedModel:
    """A folder, or a Hub id fetched (or found in the cache) with the files of `parts`.

    Args:
        text: a folder path, or `org/name[@revision]` (a branch, tag or commit; default main).
        parts: "config" (config.json, the generator's config and the tokenizer files: what a plan needs),
            "model" (+ the weights), "generator" (+ the generator's weights, when the repository has a generator:
            generator_config.json + pytorch_model.generator.bin, or a generator/ folder), "tokenizer" (spm.model and
            the tokenizer files, which must be there).
    Raises:
        ModelFolderError: neither a folder nor a usable Hub id (one line: exit 2).
        RunFailure: the Hub could not be reached for a model that is not in the cache (exit 1).
    """
    given = str(text)
    bad = set(parts) - set(PARTS)
    if bad:
        raise ValueError(f"parts {sorted(bad)} unknown; use {PARTS}")
    path = Path(given).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelFolderError(f"{given} is a file; give the model folder (with config.json) or a Hub id org/name")
        return ResolvedModel(path=path, given=given)
    parsed = parse_hub_id(given)
    if parsed is None:
        raise ModelFolderError(
            f"{given} is neither a folder nor a Hub model id; give a model folder or org/name[@revision] "
            "(e.g. microsoft/deberta-v3-xsmall)"
        )
    repo_id, revision = parsed
    return _fetch(repo_id, revision, parts, given)


def _fetch(repo_id: str, revision: str | None, parts: tuple[str, ...], given: str) -> ResolvedModel:
    """snapshot_download in up to three pinned calls: the small files (and safetensors weights), then a
    pytorch_model.bin only where there were none; each after the first at the same commit."""
    gen = f"{GENERATOR_DIR}/"
    patterns = [CONFIG, GENERATOR_CONFIG, gen + CONFIG, *TOKENIZER]
    patterns += list(SAFETENSORS) if "model" in parts else []
    patterns += [gen + name for name in SAFETENSORS] if "generator" in parts else []
    folder = _snapshot(repo_id, revision, patterns, given)
    commit = folder.name  # snapshots/<commit hash>
    bins = []
    if "model" in parts and not any((folder / name).is_file() for name in SAFETENSORS[:2]):
        bins.append(PYTORCH_BIN)
    if "generator" in parts:
        bins.append(GENERATOR_BIN)
        if not any((folder / gen / name).is_file() for name in SAFETENSORS[:2]):
            bins.append(gen + PYTORCH_BIN)
    if bins:
        folder = _snapshot(repo_id, commit, bins, given)
    resolved = ResolvedModel(path=folder, given=given, repo_id=repo_id, revision=commit)
    _check_files(resolved, parts)
    return resolved


def _snapshot(repo_id: str, revision: str | None, patterns: list[str], given: str) -> Path:
    """One `snapshot_download`; its errors as one line each (the user's: ModelFolderError; the network's:
    RunFailure)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except GatedRepoError:
        raise ModelFolderError(
            f"{given} is a gated repository: accept its terms on the Hub, then set HF_TOKEN (or `hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelFolderError(
            f"{given} is neither a folder nor a model on the Hub (or it is private: set HF_TOKEN or run "
            "`hf auth login`); check the spelling"
        ) from None
    except RevisionNotFoundError:
        raise ModelFolderError(
            f"{repo_id} has no revision {revision!r}; give a branch, tag or commit that exists (default: main)"
        ) from None
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise ModelFolderError(
                f"{given} is not a folder, and HF_HUB_OFFLINE is set but the Hugging Face cache holds no copy of "
                f"it; download it once with network access (`hf download {repo_id}`) or give a local folder"
            ) from None
        raise RunFailure(
            f"could not reach the Hub to fetch {given}, and the cache holds no copy; check the network and run "
            "the same command again"
        ) from None
    except (HfHubHTTPError, OSError) as e:
        kind = type(e).__name__
        raise RunFailure(f"fetching {given} from the Hub failed ({kind}); run the same command again") from None


def _check_files(model: ResolvedModel, parts: tuple[str, ...]) -> None:
    """The files each part needs, present in the snapshot (a repository that is not a DeBERTa model lacks them)."""
    folder = model.path
    if "tokenizer" in parts and not (folder / "spm.model").is_file():
        raise ModelFolderError(
            f"{model.given} has no spm.model, so it is not a DeBERTa-v3 (SentencePiece) model; give a deberta-v2 "
            "model or a folder made by `factory vocab`"
        )
    if ("model" in parts or "config" in parts) and not (folder / CONFIG).is_file():
        raise ModelFolderError(f"{model.given} has no config.json, so it is not a Hugging Face model repository")
