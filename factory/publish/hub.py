"""Publishing: the exact folder a model repository on the Hugging Face Hub gets, and the upload.

`factory publish` works in three steps, and each can be looked at on its own:

1. `stage_folder` copies what a `deberta-v2` repository needs (config.json, weights, tokenizer files, an
   optional generator in `generator/`) into a staging folder and writes README.md, the card (`factory.publish.card`);
2. `validate_staging` proves the folder works before anything leaves the machine: the config is deberta-v2
   and loads with our `load_model`, the tokenizer has DeBERTa-v3's special ids, the card parses back;
3. `upload` creates the repository (and the branch, for intermediate checkpoints) and commits the folder.

The token is only ever handed to huggingface_hub; it is never printed, logged, or written anywhere, and error
messages are scrubbed of it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError, HubAccessError, RunFailure, UploadFailed
from factory.core.outputs import staged_output
from factory.core.sources import ResolvedModel
from factory.model.tokenizer import TOKENIZER_FILES
from factory.publish.card import GENERATOR_DIR, Facts, build_card, card_languages, collect_facts
from factory.publish.card_results import model_index
from factory.publish.config import REPO_ID, PublishConfig, parse_repo_id  # noqa: F401  (hub.parse_repo_id, as before)

CARD = "README.md"
TOKENIZER_REQUIRED, TOKENIZER_OPTIONAL = TOKENIZER_FILES[:3], TOKENIZER_FILES[3:]  # transformers needs the first 3
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
LOGIN_HINT = "run `hf auth login` or set the HF_TOKEN environment variable to a token with write access"


# ---- input checks -------------------------------------------------------------------------------
def resolve_token() -> str:
    """The token huggingface_hub would use (HF_TOKEN, then the saved login); never printed or stored."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise FactoryError(f"no Hugging Face token found; {LOGIN_HINT} (or use --dry-run to only stage the folder)")
    return token


def check_model_folder(folder: Path) -> None:
    """A folder with a deberta-v2 config.json and weights; checked before any work is done."""
    from factory.model.folder import check_weights, read_config

    read_config(folder)  # raises a one-line ModelFolderError for a missing folder / config / wrong model_type
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise FactoryError(
            f"{folder} has no weights ({' or '.join(WEIGHT_FILES[::2])}); publish the folder that pre-training "
            "or `factory init` exported"
        )
    check_weights(folder)  # and they are whole: an empty or truncated file is one line before staging


# ---- staging ------------------------------------------------------------------------------------
def _tokenizer_files(folder: Path) -> list[Path]:
    missing = [name for name in TOKENIZER_REQUIRED if not (folder / name).is_file()]
    if missing:
        raise FactoryError(
            f"{folder} lacks the tokenizer files {', '.join(missing)}; pass --tokenizer with the vocabulary folder "
            "that `factory vocab` wrote"
        )
    return [folder / n for n in TOKENIZER_REQUIRED + TOKENIZER_OPTIONAL if (folder / n).is_file()]


def _check_staging(path: Path) -> None:
    """The staging folder is rewritten on each run, so it may only hold what a previous run put there."""
    if path.exists() and not path.is_dir():
        raise FactoryError(f"--staging {path} is a file; give a folder path")
    if not path.is_dir():
        return
    ours = {"config.json", CARD, GENERATOR_DIR, *WEIGHT_FILES, *TOKENIZER_REQUIRED, *TOKENIZER_OPTIONAL}
    foreign = [p.name for p in path.iterdir() if p.name not in ours and not p.name.startswith("model-0")]
    if foreign:
        raise FactoryError(
            f"--staging {path} holds files publish did not write ({', '.join(sorted(foreign)[:3])}); "
            "give an empty or new folder"
        )


def stage_folder(facts: Facts, model_dir: Path, staging: Path, tokenizer_dir: Path, generator_dir: Path | None):
    """Write the exact repository contents into `staging`, validate them, and only then put the folder in place."""
    from factory.model.folder import weight_files

    _check_staging(staging)
    files = [model_dir / "config.json", *weight_files(model_dir), *_tokenizer_files(tokenizer_dir)]
    card = build_card(facts)
    with staged_output(staging, force=True) as tmp:
        for src in files:
            shutil.copy2(src, tmp / src.name)
        if generator_dir is not None:
            (tmp / GENERATOR_DIR).mkdir()
            gen_files = [generator_dir / "config.json", *weight_files(generator_dir), *_tokenizer_files(tokenizer_dir)]
            for src in gen_files:
                shutil.copy2(src, tmp / GENERATOR_DIR / src.name)
        card.save(tmp / CARD)
        validate_staging(
            tmp, facts, model_dir, generator_dir
        )  # inside: a folder that fails is removed, never left looking complete
    return card


def validate_staging(staging: Path, facts: Facts, model_dir: Path, generator_dir: Path | None = None) -> None:
    """Prove the folder works before any network call: model, tokenizer, generator and card."""
    from factory.model.folder import load_model

    _validate_model(staging, load_model, model_dir)
    if facts.generator is not None:
        _validate_model(staging / GENERATOR_DIR, load_model, generator_dir or staging / GENERATOR_DIR)
    _validate_card(staging / CARD, facts)


def _validate_model(folder: Path, load_model, shown: Path) -> None:
    """`folder` is the staging copy; errors name `shown`, the folder the user gave."""
    from factory.core.errors import ModelFolderError
    from factory.model.tokenizer import Tokenizer

    try:
        model = load_model(folder)  # config.json is deberta-v2 and the weights fit it
    except ModelFolderError as e:
        raise ModelFolderError(str(e).replace(str(folder), str(shown))) from None
    tokenizer = Tokenizer.from_folder(folder)  # special ids [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3
    tokenizer.check_fits(model.config, shown, "pass --tokenizer with the vocabulary the model was trained with")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        try:
            json.loads((folder / name).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FactoryError(f"{folder / name} is not valid JSON ({e}); write the vocabulary again") from None


def _validate_card(path: Path, facts: Facts) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(path)
    data = card.data
    expected = model_index(facts.evaluations)
    if len(data.eval_results or []) != len(expected):
        raise RunFailure(f"{path}: the model-index does not hold one entry per result evaluated; a bug in factory")
    if (data.language or []) != card_languages(facts.languages) or data.license != facts.license:
        raise RunFailure(f"{path}: the card's metadata does not read back as written; a bug in factory")


# ---- upload -------------------------------------------------------------------------------------
def upload(staging: Path, repo_id: str, token: str, *, private: bool, revision: str | None) -> str:
    """create_repo(exist_ok) -> create_branch (for a revision) -> upload_folder; returns the commit URL.

    A 401/403 becomes `HubAccessError` (the user's to fix); anything else `UploadFailed`, safe to retry: a
    commit is all-or-nothing on the Hub, so a failed run leaves nothing half-published.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.is_offline_mode():
        raise FactoryError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it, or use --dry-run")
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    step = "create the repository"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision and revision != "main":
            step = f"create the branch {revision}"
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        step = "upload the files"
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=staging,
            revision=revision,
            repo_type="model",
            commit_message=f"factory publish {staging.name}",
        )
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        raise _http_error(status, step, repo_id, _scrub(_server_message(e), token)) from None
    except Exception as e:  # connection refused, DNS, TLS, timeouts: OSError or httpx's own errors
        if not isinstance(e, OSError) and not type(e).__module__.startswith(("httpx", "httpcore")):
            raise
        raise UploadFailed(
            f"could not reach {api.endpoint} to {step} ({type(e).__name__}); check the network and run the same "
            "command again"
        ) from None
    return str(info.commit_url if hasattr(info, "commit_url") else info)


def _server_message(error: Exception) -> str:
    server = getattr(error, "server_message", None)
    text = server or str(error).splitlines()[0]
    return " ".join(text.split())[:200]


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _http_error(status: int | None, step: str, repo_id: str, message: str) -> Exception:
    if status == 401:
        return HubAccessError(
            f"the Hub rejected the token (401) when trying to {step}; it is invalid or expired: {LOGIN_HINT}"
        )
    if status == 403:
        return HubAccessError(
            f"no write access to {repo_id} (403) when trying to {step}: the repository belongs to another user or "
            "organisation, or the token is read-only; pick a repo id in your namespace or use a write token"
        )
    return UploadFailed(
        f"the Hub answered HTTP {status} when trying to {step} for {repo_id} ({message}); nothing was committed, "
        "run the same command again to retry"
    )


# ---- the whole step -----------------------------------------------------------------------------
def default_staging(model_dir: Path) -> Path:
    return model_dir.parent / f"{model_dir.name}-hub"


def published_layout(folder: Path) -> bool:
    """A folder whose weights are a pytorch_model.bin without safetensors beside it: the published DeBERTa-v3 layout
    (docs/derive.md#published-layouts), which publish rewrites as factory's folder before staging."""
    from factory.model.folder import PYTORCH_WEIGHTS

    return (folder / PYTORCH_WEIGHTS).is_file() and not any((folder / n).is_file() for n in WEIGHT_FILES[:2])


def as_factory_folder(model_dir: Path, work: Path, generator: bool = False) -> Path:
    """The model (or the published generator beside it) as factory writes a model: config.json with every key,
    model.safetensors (no GDES `_weight`, no untrained head), tokenizer files; in `work`, never in the source."""
    from factory.core.manifest import MANIFEST
    from factory.model.folder import load_model, save_model
    from factory.model.tokenizer import copy_tokenizer_files

    out = work / ("generator" if generator else "model")
    save_model(load_model(model_dir, generator=generator), out)
    copy_tokenizer_files(model_dir, out)
    if (model_dir / MANIFEST).is_file():  # e.g. `factory trim`'s, which the card reads
        shutil.copy2(model_dir / MANIFEST, out / MANIFEST)
    return out


def resolve_inputs(config: PublishConfig, work: Path) -> tuple[ResolvedModel, Path, Path | None, Path | None]:
    """DIR as found (its results must be of its weights), then DIR, --generator and --tokenizer as folders (each
    may be a Hub id, factory/core/sources.py); without --generator, DIR's `generator/` is the generator; a published
    layout is rewritten into `work` (its generator files become --generator when none is given)."""
    from factory.core.sources import resolve_model
    from factory.model.folder import has_published_generator

    source = resolve_model(config.model_dir, parts=("model", "generator"))
    model_dir = source.path
    check_model_folder(model_dir)
    generator_dir = resolve_model(config.generator, parts=("model", "generator")).path if config.generator else None
    tokenizer_dir = resolve_model(config.tokenizer, parts=("tokenizer",)).path if config.tokenizer else None
    if generator_dir is None and (model_dir / GENERATOR_DIR / "config.json").is_file():  # trim's, a published repo
        generator_dir = model_dir / GENERATOR_DIR
    elif generator_dir is None and published_layout(model_dir) and has_published_generator(model_dir):
        generator_dir = as_factory_folder(model_dir, work, generator=True)
    elif generator_dir is not None and has_published_generator(generator_dir) and published_layout(generator_dir):
        generator_dir = as_factory_folder(generator_dir, work, generator=True)
    elif generator_dir is not None:
        check_model_folder(generator_dir)
    if generator_dir is not None:
        check_generator_vocabulary(model_dir, generator_dir, str(config.generator or generator_dir))
    if published_layout(model_dir):
        model_dir = as_factory_folder(model_dir, work)
    return source, model_dir, generator_dir, tokenizer_dir


def check_generator_vocabulary(model_dir: Path, generator_dir: Path, shown: str) -> None:
    """The generator is of the model's vocabulary: one pre-training run trains both on one embedding, and
    generator/ is staged with the model's tokenizer files. A generator of another run would fail the tokenizer
    check with "pass --tokenizer", which cannot help: said here, before staging, naming both vocabularies."""
    from factory.core.outputs import fingerprint_file
    from factory.model.folder import read_config
    from factory.model.tokenizer import SPM_FILE

    model, generator = read_config(model_dir), read_config(generator_dir)
    mask, gen_mask = model.factory.get("mask_token_id"), generator.factory.get("mask_token_id")
    if model.vocab_size != generator.vocab_size or (None not in (mask, gen_mask) and mask != gen_mask):
        how = f"{_vocabulary(generator, generator_dir)} against the model's {_vocabulary(model, model_dir)}"
    else:  # the same sizes: the same SentencePiece model too, where both folders hold one
        spms = model_dir / SPM_FILE, generator_dir / SPM_FILE
        if not all(p.is_file() for p in spms) or fingerprint_file(spms[0]) == fingerprint_file(spms[1]):
            return
        how = f"its {spms[1]} is not the model's {spms[0]}"
    raise FactoryError(
        f"the generator {shown} has another vocabulary than the model: {how}; a generator must come from the same "
        "pre-training run (the same vocabulary) as the model: give the generator/ folder exported beside it"
    )


def _vocabulary(config, folder: Path) -> str:
    """ "1,100 embedding rows, [MASK]=1000 (DIR/config.json)": what a config.json says of its vocabulary."""
    mask = config.factory.get("mask_token_id")
    masked = f", [MASK]={mask}" if mask is not None else ""
    return f"{config.vocab_size:,} embedding rows{masked} ({folder / 'config.json'})"


def publish(config: PublishConfig) -> dict[str, Any]:
    """`factory publish` / `factory run`'s publish step: check the inputs, stage and validate the folder, then
    (unless `dry_run`) upload it."""
    import tempfile

    repo_id = parse_repo_id(config.repo_id)
    with tempfile.TemporaryDirectory(prefix="factory-publish-") as work:
        return _publish(config, repo_id, Path(work))


def _publish(config: PublishConfig, repo_id: str, work: Path) -> dict[str, Any]:
    """Under the staging folder's lock, as every step holds its output's (factory.core.outputs.output_lock): a second
    publish of the same folder stops at once instead of rewriting it under the first one's upload."""
    from factory.core.outputs import check_target, output_lock
    from factory.core.sources import parse_hub_id

    given = Path(config.model_dir)
    if not given.exists() and parse_hub_id(str(given)):  # a Hub id: stage beside the current folder
        given = Path(parse_hub_id(str(given))[0].split("/")[1])
    staging = config.staging or default_staging(given)
    check_target(staging, "--staging")
    with output_lock(staging, "--staging"):
        return _stage_and_upload(config, repo_id, work, staging)


def _stage_and_upload(config: PublishConfig, repo_id: str, work: Path, staging: Path) -> dict[str, Any]:
    source, model_dir, generator_dir, tokenizer_dir = resolve_inputs(config, work)
    token = None if config.dry_run else resolve_token()
    tokenizer_dir = tokenizer_dir or model_dir
    facts = collect_facts(
        model_dir,
        repo_id,
        tokenizer_dir=tokenizer_dir,
        results=list(config.results),
        languages=list(config.language),
        datasets=list(config.dataset),
        license=config.license,
        revision=config.revision,
        generator_dir=generator_dir,
        source=source,
    )
    stage_folder(facts, model_dir, staging, tokenizer_dir, generator_dir)
    summary = {
        "staging": str(staging),
        "files": sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()),
        "results_in_index": len(model_index(facts.evaluations)),
        "url": None,
    }
    if not config.dry_run:
        summary["url"] = upload(staging, repo_id, token, private=config.private, revision=config.revision)
    return summary
