"""Publishing: the exact folder a model repository on the Hugging Face Hub gets, its model card, the upload.

`factory publish` works in three steps, and each can be looked at on its own:

1. `stage_folder` copies what a `deberta-v2` repository needs (config.json, weights, tokenizer files, an
   optional generator in `generator/`) into a staging folder and writes README.md, the card;
2. `validate_staging` proves the folder works before anything leaves the machine: the config is deberta-v2
   and loads with our `load_model`, the tokenizer has DeBERTa-v3's special ids, the card parses back;
3. `upload` creates the repository (and the branch, for intermediate checkpoints) and commits the folder.

Every number in the card is read from a file (config.json, factory.json manifests, results.json), never
typed in: a figure no file holds is left out, not guessed. The token is only ever handed to
huggingface_hub; it is never printed, logged, or written anywhere, and error messages are scrubbed of it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.errors import FactoryError, HubAccessError, UploadFailed
from factory.outputs import read_manifest, staged_output
from factory.tokenizer import TOKENIZER_FILES

logger = logging.getLogger(__name__)

CARD = "README.md"
GENERATOR_DIR = "generator"
TOKENIZER_REQUIRED, TOKENIZER_OPTIONAL = TOKENIZER_FILES[:3], TOKENIZER_FILES[3:]  # transformers needs the first 3
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
RESULTS_SCHEMA = "factory.eval/v1"
LOGIN_HINT = "run `hf auth login` or set the HF_TOKEN environment variable to a token with write access"
REPO_ID = re.compile(r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?")

# Language names for the card's prose; codes not listed are printed as they are.
LANGUAGE_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "fr": "French", "hi": "Hindi", "pt": "Portuguese", "ru": "Russian", "sw": "Swahili", "th": "Thai",
    "tr": "Turkish", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip

CITATIONS = """```bibtex
@misc{he2021debertav3,
  title={DeBERTaV3: Improving DeBERTa using ELECTRA-Style Pre-Training with Gradient-Disentangled Embedding Sharing},
  author={Pengcheng He and Jianfeng Gao and Weizhu Chen},
  year={2021},
  eprint={2111.09543},
  archivePrefix={arXiv},
  primaryClass={cs.CL}
}
```

```bibtex
@inproceedings{he2021deberta,
  title={DEBERTA: DECODING-ENHANCED BERT WITH DISENTANGLED ATTENTION},
  author={Pengcheng He and Xiaodong Liu and Jianfeng Gao and Weizhu Chen},
  booktitle={International Conference on Learning Representations},
  year={2021},
  url={https://openreview.net/forum?id=XPZIaotutsD}
}
```"""


# ---- input checks -------------------------------------------------------------------------------
def parse_repo_id(text: str) -> str:
    """'org/name' as the Hub accepts it: letters, digits, '-', '_', '.'; no '--' or '..'; 96 chars a side."""
    if not REPO_ID.fullmatch(text) or "--" in text or ".." in text or text.endswith(".git"):
        raise FactoryError(
            f"--repo-id {text!r} is not a Hub repository id; write it as namespace/name, e.g. my-org/deberta-v3-xsmall "
            "(letters, digits, '-', '_', '.'; no '--' or '..')"
        )
    return text


def resolve_token() -> str:
    """The token huggingface_hub would use (HF_TOKEN, then the saved login); never printed or stored."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise FactoryError(f"no Hugging Face token found; {LOGIN_HINT} (or use --dry-run to only stage the folder)")
    return token


def check_model_folder(folder: Path) -> None:
    """A folder with a deberta-v2 config.json and weights; checked before any work is done."""
    from factory.export import read_config

    read_config(folder)  # raises a one-line ModelFolderError for a missing folder / config / wrong model_type
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise FactoryError(
            f"{folder} has no weights ({' or '.join(WEIGHT_FILES[::2])}); publish the folder that pre-training "
            "or `factory init` exported"
        )


# ---- facts: what the files say ------------------------------------------------------------------
@dataclass
class Facts:
    """Everything the card reports, as read from the model folder, its manifests and the results files."""

    repo_id: str
    hf_config: dict[str, Any]
    counts: dict[str, int]
    manifests: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] | None = None
    languages: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    license: str = "mit"
    revision: str | None = None
    generator: dict[str, Any] | None = None  # {"config": hf config, "counts": ..., "manifest": ...}

    @property
    def name(self) -> str:
        return self.repo_id.split("/", 1)[1]

    @property
    def preset(self) -> str | None:
        return (self.hf_config.get("factory") or {}).get("preset") or self.figure("preset", kind=str)

    def figure(self, *keys: str, kind: type | tuple[type, ...] = (int, float)) -> Any:
        """First value of one of `keys` in the manifests, of type `kind`; None when no manifest has it."""
        for manifest in self.manifests:
            value = find_key(manifest, keys, kind)
            if value is not None:
                return value
        return None


def find_key(tree: Any, keys: tuple[str, ...], kind: type | tuple[type, ...]) -> Any:
    """Depth-first search of a manifest for the first of `keys` holding a `kind` value.

    Measured figures win over the arguments that asked for them, so "arguments" is searched last and
    "versions"/"inputs" (library versions, fingerprints) never.
    """
    if not isinstance(tree, dict):
        return None
    for key in keys:
        value = tree.get(key)
        if isinstance(value, kind) and not isinstance(value, bool) or (kind is bool and isinstance(value, bool)):
            return value
    nested = [k for k, v in tree.items() if isinstance(v, dict) and k not in ("versions", "inputs", "arguments")]
    for k in [*nested, "arguments"]:
        value = find_key(tree.get(k), keys, kind)
        if value is not None:
            return value
    return None


def find_results(model_dir: Path, given: list[Path]) -> list[Path]:
    """--results files first, then DIR/results.json and DIR/eval/*/results.json."""
    found = list(given)
    for path in [model_dir / "results.json", *sorted(model_dir.glob("eval/*/results.json"))]:
        if path.is_file() and path not in found:
            found.append(path)
    return found


def read_results(paths: list[Path]) -> dict[str, Any] | None:
    """The first XNLI results file (schema factory.eval/v1); other suites are not in the card yet."""
    for path in paths:
        if not path.is_file():
            raise FactoryError(f"--results {path} does not exist; give the results.json that `factory eval` wrote")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FactoryError(f"{path} is not valid JSON ({e}); run `factory eval` again") from None
        if (
            not isinstance(data, dict)
            or data.get("schema") != RESULTS_SCHEMA
            or not isinstance(data.get("results"), dict)
        ):
            raise FactoryError(
                f"{path} is not a {RESULTS_SCHEMA} results file; give the results.json `factory eval` wrote"
            )
        if data.get("suite") == "xnli":
            return data
        logger.info("skipping %s: suite %s is not shown in the card", path, data.get("suite"))
    return None


def collect_facts(
    model_dir: Path,
    repo_id: str,
    *,
    tokenizer_dir: Path | None = None,
    results: list[Path] = (),
    languages: list[str] = (),
    datasets: list[str] = (),
    license: str = "mit",
    revision: str | None = None,
    generator_dir: Path | None = None,
) -> Facts:
    """Read config.json, the manifests (model folder, then tokenizer folder) and the results files."""
    from factory.export import read_config
    from factory.presets import count_parameters

    config = read_config(model_dir)
    hf_config = json.loads((model_dir / "config.json").read_text())
    manifests = [m for d in dict.fromkeys([model_dir, tokenizer_dir or model_dir]) if (m := read_manifest(d))]
    facts = Facts(
        repo_id=repo_id,
        hf_config=hf_config,
        counts=count_parameters(config),
        manifests=manifests,
        results=read_results(find_results(model_dir, list(results))),
        license=license,
        revision=revision,
    )
    facts.languages = list(languages) or _manifest_languages(facts, hf_config)
    facts.datasets = list(datasets) or _manifest_datasets(facts)
    if generator_dir is not None:
        gen_config = read_config(generator_dir)
        facts.generator = {
            "config": json.loads((generator_dir / "config.json").read_text()),
            "counts": count_parameters(gen_config),
            "manifest": read_manifest(generator_dir) or {},
        }
    return facts


def _manifest_languages(facts: Facts, hf_config: dict[str, Any]) -> list[str]:
    value = find_key(hf_config.get("factory") or {}, ("languages", "langs", "lang"), (list, str))
    value = value or facts.figure("languages", "langs", "lang", kind=(list, str))
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    return [str(v) for v in value or [] if v]


def _manifest_datasets(facts: Facts) -> list[str]:
    """Hub datasets among the corpus sources (`hf:org/name:config` -> org/name); local files are not listed."""
    value = facts.figure("datasets", "corpus", "corpora", "sources", kind=(list, str)) or []
    out = []
    for source in [value] if isinstance(value, str) else value:
        text = source if isinstance(source, str) else str(source.get("path", "")) if isinstance(source, dict) else ""
        text = text.split("=", 1)[-1]
        if text.startswith("hf:"):
            out.append(text[3:].split(":")[0])
    return list(dict.fromkeys(out))


# ---- the card -----------------------------------------------------------------------------------
def card_languages(languages: list[str]) -> list[str]:
    """Hub `language` metadata: `multilingual` first when there are several (as the mDeBERTa card)."""
    languages = list(dict.fromkeys(languages))
    return ["multilingual", *languages] if len(languages) > 1 else languages


def results_split(results: dict[str, Any]) -> str:
    """Validation (dev) when every language has it, as the published references are dev accuracy; else test."""
    per_lang = results["results"].values()
    return "validation" if all("validation" in r for r in per_lang) else "test"


def eval_results(results: dict[str, Any] | None, name: str) -> list:
    """One model-index entry per language evaluated: XNLI accuracy (percent) on one split."""
    from huggingface_hub import EvalResult

    if not results:
        return []
    split = results_split(results)
    train = results.get("train_language", "en")
    suite = str(results.get("suite", "xnli"))
    data = str((results.get("settings") or {}).get("data") or "hf:facebook/xnli")
    # A Hub dataset id only when the data came from the Hub; local files are named as such, not as XNLI's.
    dataset_type = data[3:].split(":")[0] if data.startswith("hf:") else f"local:{Path(data).name}"
    out = []
    for lang, splits in results["results"].items():
        accuracy = (splits.get(split) or {}).get("accuracy")
        if accuracy is None:
            continue
        out.append(
            EvalResult(
                task_type="text-classification",
                task_name="Natural Language Inference",
                dataset_type=dataset_type,
                dataset_name=f"{suite.upper()} ({lang})"
                if data.startswith("hf:")
                else f"{suite}-format {data} ({lang})",
                dataset_config=lang,
                dataset_split=split,
                metric_type="accuracy",
                metric_value=round(float(accuracy), 2),
                metric_name=f"accuracy (zero-shot, fine-tuned on {train})" if lang != train else "accuracy",
            )
        )
    return out


def build_card(facts: Facts):
    """The ModelCard: metadata (language, license, tags, datasets, model-index) and a body like the seed cards."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        language=card_languages(facts.languages) or None,
        license=facts.license,
        library_name="transformers",
        tags=["deberta", "deberta-v3", "fill-mask"],
        datasets=facts.datasets or None,
        model_name=facts.name,
        eval_results=eval_results(facts.results, facts.name) or None,
    )
    sections = [
        _intro(facts),
        _architecture(facts),
        _training_data(facts),
        _pretraining(facts),
        _results(facts),
        _generator(facts),
        _fine_tuning(facts),
        "## Citation\n\nIf you use this model, please cite the DeBERTa papers:\n\n" + CITATIONS,
    ]
    body = "\n\n".join(s for s in sections if s)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e6:.3f}M"


def _language_phrase(languages: list[str]) -> str:
    names = [LANGUAGE_NAMES.get(code, code) for code in languages]
    if not names:
        return ""
    if len(names) > 3:
        return f"{len(names)} languages"
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


SHARING = {
    "gdes": "gradient-disentangled embedding sharing (GDES)",
    "es": "embedding sharing between generator and discriminator (ES)",
    "nes": "no embedding sharing (NES)",
}


def _how_trained(facts: Facts) -> str:
    """What the manifests say about pre-training; nothing is claimed for a model with no pre-training manifest."""
    sharing = facts.figure("sharing", "embedding_sharing", kind=str)
    if sharing is None and not any(m.get("step") == "pretrain" for m in facts.manifests):
        return ""
    how = " with replaced token detection (RTD)"
    if sharing:
        how += f" and {SHARING.get(sharing.lower(), sharing)}"
    return f", pre-trained ELECTRA-style{how} as in [DeBERTaV3](https://arxiv.org/abs/2111.09543)"


def _intro(facts: Facts) -> str:
    cfg = facts.hf_config
    size = f"{facts.preset} " if facts.preset else ""
    langs = _language_phrase(facts.languages)
    what = f"a {size}DeBERTa-v3 encoder" + (f" for {langs}" if langs else "")
    return (
        f"# {facts.name}\n\n"
        f"{facts.name} is {what}{_how_trained(facts)}. It has "
        f"{_plural(cfg['num_hidden_layers'], 'layer')} and a hidden size of {cfg['hidden_size']}: "
        f"{_millions(facts.counts['backbone'])} backbone parameters and {_millions(facts.counts['embedding'])} "
        "in the embedding layer.\n\n"
        "[DeBERTa](https://arxiv.org/abs/2006.03654) improves BERT and RoBERTa with disentangled attention "
        "(content and relative position attend to each other separately) and an enhanced mask decoder. "
        "[DeBERTaV3](https://arxiv.org/abs/2111.09543) replaces masked language modelling by replaced token "
        "detection: a small generator fills masked positions and the discriminator (this model) learns to tell "
        "original tokens from replaced ones; gradient-disentangled embedding sharing lets both use one embedding "
        "without their gradients pulling against each other.\n\n"
        "The folder is a standard `deberta-v2` repository: `transformers` loads it with `AutoModel`, "
        "`AutoTokenizer` and `AutoModelForSequenceClassification`."
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _architecture(facts: Facts) -> str:
    cfg, counts = facts.hf_config, facts.counts
    fac = cfg.get("factory") or {}
    pieces = fac.get("vocab_pieces")
    vocab = f"{pieces:,} SentencePiece pieces + [MASK]; " if isinstance(pieces, int) else ""
    rows = [
        ("Layers", cfg["num_hidden_layers"]),
        ("Hidden size", cfg["hidden_size"]),
        ("Attention heads", cfg["num_attention_heads"]),
        ("FFN size", cfg["intermediate_size"]),
        ("Backbone parameters", _millions(counts["backbone"])),
        ("Embedding parameters", f"{_millions(counts['embedding'])} ({cfg['vocab_size']:,} x {cfg['hidden_size']})"),
        ("Total parameters", _millions(counts["total"])),
        ("Vocabulary", f"{vocab}{cfg['vocab_size']:,} embedding rows"),
        ("Relative positions", f"{cfg.get('position_buckets')} log buckets, {cfg.get('max_position_embeddings')} max"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"## Architecture\n\n| | |\n|---|---|\n{table}\n\nParameter counts are computed from config.json."


def _training_data(facts: Facts) -> str:
    lines = []
    if facts.languages:
        lines.append(f"- Languages: {', '.join(facts.languages)}")
    if facts.datasets:
        lines.append(f"- Corpus: {', '.join(f'[{d}](https://huggingface.co/datasets/{d})' for d in facts.datasets)}")
    alpha = facts.figure("alpha", "sampling_alpha")
    if alpha is not None:
        lines.append(f"- Language sampling: p_i proportional to n_i^{alpha} (as XLM-R / mT5)")
    shares = facts.figure("language_proportions", "proportions", kind=dict)
    if shares and all(isinstance(v, (int, float)) for v in shares.values()):
        lines.append("- Sampled shares: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in shares.items()))
    for label, keys in (("Documents", ("documents", "docs", "documents_kept")), ("Corpus tokens", ("corpus_tokens",))):
        value = facts.figure(*keys, kind=int)
        if value is not None:
            lines.append(f"- {label}: {value:,}")
    if not lines:
        return ""
    return "## Training data\n\n" + "\n".join(lines)


# (label, manifest keys, kind, format)
PRETRAIN_FIGURES: list[tuple[str, tuple[str, ...], Any, str]] = [
    ("Objective", ("objective",), str, "{}"),
    ("Embedding sharing", ("sharing", "embedding_sharing"), str, "{}"),
    ("RTD loss weight (lambda)", ("rtd_lambda", "rtd_weight", "lambda_rtd", "disc_weight"), (int, float), "{}"),
    ("Sequence length", ("seq_len", "max_seq_length", "sequence_length"), int, "{:,}"),
    ("Batch (sequences)", ("global_batch", "batch", "batch_size", "global_batch_size"), int, "{:,}"),
    ("Peak learning rate", ("lr", "learning_rate"), (int, float), "{:g}"),
    ("Warm-up steps", ("warmup", "warmup_steps"), int, "{:,}"),
    ("Steps", ("steps", "global_step", "steps_done", "max_steps"), int, "{:,}"),
    ("Tokens seen", ("tokens", "tokens_seen", "train_tokens"), int, "{:,}"),
    ("Precision", ("mixed_precision", "precision"), str, "{}"),
    ("Hardware", ("hardware_summary", "hardware", "devices", "device"), str, "{}"),
    ("Wall time", ("wall_time_s", "wall_seconds", "elapsed_s", "train_time_s", "duration_s"), (int, float), "time"),
    ("Final generator (MLM) loss", ("generator_loss", "gen_loss", "mlm_loss"), (int, float), "{:.4f}"),
    ("Final discriminator (RTD) loss", ("rtd_loss", "discriminator_loss", "disc_loss"), (int, float), "{:.4f}"),
    ("RTD accuracy", ("rtd_accuracy", "rtd_acc"), (int, float), "{:.4f}"),
]


def _pretraining(facts: Facts) -> str:
    rows = []
    for label, keys, kind, fmt in PRETRAIN_FIGURES:
        value = facts.figure(*keys, kind=kind)
        if value is None:
            continue
        text = _duration(value) if fmt == "time" else fmt.format(value)
        rows.append(f"| {label} | {text} |")
    if not rows:
        return (
            "## Pre-training\n\nNo pre-training manifest (factory.json) was found beside the weights, so the "
            "pre-training settings are not reported."
        )
    return "## Pre-training\n\n| Setting | Value |\n|---|---|\n" + "\n".join(rows)


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def _results(facts: Facts) -> str:
    res = facts.results
    if not res:
        return ""
    split = results_split(res)
    langs = list(res["results"])
    header = "| Model | avg | " + " | ".join(langs) + " |\n|---|---|" + "---|" * len(langs)

    def cell(value: Any) -> str:
        return f"{value:.1f}" if isinstance(value, (int, float)) else "-"

    ours = [(res["results"][lang].get(split) or {}) for lang in langs]
    avg = (res.get("average") or {}).get(split) or {}
    runs = res.get("runs")
    several = isinstance(runs, int) and runs > 1  # a standard deviation over one run says nothing
    std = avg.get("std")
    avg_text = cell(avg.get("accuracy")) + (f" ± {std:.1f}" if several and isinstance(std, (int, float)) else "")
    rows = [f"| **{facts.name}** | {avg_text} | " + " | ".join(cell(r.get("accuracy")) for r in ours) + " |"]
    for model, ref in (res.get("references") or {}).items():
        rows.append(
            f"| {model} (published) | {cell(ref.get('avg'))} | " + " | ".join(cell(ref.get(x)) for x in langs) + " |"
        )
    seeds = res.get("seeds") or []
    how = (
        f"Zero-shot cross-lingual transfer: fine-tuned on {res.get('train_language', 'en')} only and evaluated on the "
        f"{'validation (dev)' if split == 'validation' else split} set of each language; accuracy in %"
        + (f", mean ± std over {runs} runs (seeds {', '.join(map(str, seeds))})" if several else "")
        + (f", one run (seed {seeds[0]})" if not several and len(seeds) == 1 else "")
        + ". Published rows are the numbers reported by their authors (the avg column is theirs, over all 15 "
        "languages)."
    )
    return "## Results: XNLI\n\n" + how + "\n\n" + header + "\n" + "\n".join(rows)


def _generator(facts: Facts) -> str:
    gen = facts.generator
    if not gen:
        return ""
    cfg = gen["config"]
    text = (
        f"## Generator\n\nThe RTD generator is in `{GENERATOR_DIR}/` "
        f"({_plural(cfg['num_hidden_layers'], 'layer')}, hidden size "
        f"{cfg['hidden_size']}, {_millions(gen['counts']['backbone'])} backbone parameters). It is a masked language "
        "model:\n\n```python\nfrom transformers import AutoModelForMaskedLM\n\n"
        f'generator = AutoModelForMaskedLM.from_pretrained("{facts.repo_id}", subfolder="{GENERATOR_DIR}")\n```'
    )
    if _no_emd(gen):
        text += (
            "\n\nThe generator has no Enhanced Mask Decoder (EMD) in Hugging Face form: `transformers` implements "
            "the plain MLM head only, so its masked-token predictions differ from the original DeBERTa's EMD."
        )
    return text


def _no_emd(gen: dict[str, Any]) -> bool:
    """True when the generator's config or manifest says it carries no EMD (or that HF lacks it)."""
    keys = ("emd", "enhanced_mask_decoder", "has_emd", "emd_in_hf")
    for tree in (gen["config"].get("factory") or {}, gen["config"], gen["manifest"]):
        value = find_key(tree, keys, bool)
        if value is not None:
            return value is False
    return False


def _fine_tuning(facts: Facts) -> str:
    rev = f', revision="{facts.revision}"' if facts.revision and facts.revision != "main" else ""
    return (
        "## How to fine-tune\n\nFine-tune the discriminator (this model) for classification, e.g. natural language "
        "inference with three labels:\n\n```python\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{facts.repo_id}"{rev})\n'
        f'model = AutoModelForSequenceClassification.from_pretrained("{facts.repo_id}", num_labels=3{rev})\n'
        'inputs = tokenizer("A premise.", "A hypothesis.", return_tensors="pt")\n'
        "logits = model(**inputs).logits  # (1, 3)\n```\n\n"
        "DeBERTa-v3 usually wants a small learning rate (1e-5 to 3e-5 for base size), warm-up, and fp32 or bf16 "
        "(fp16 can overflow)."
    )


# ---- staging ------------------------------------------------------------------------------------
def _weight_files(folder: Path) -> list[Path]:
    """The weight files to copy: safetensors (single or sharded) or, only if there is none, pytorch_model.bin."""
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [index, *(folder / s for s in shards)]
    return [folder / "pytorch_model.bin"]


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
    _check_staging(staging)
    files = [model_dir / "config.json", *_weight_files(model_dir), *_tokenizer_files(tokenizer_dir)]
    card = build_card(facts)
    with staged_output(staging, force=True) as tmp:
        for src in files:
            shutil.copy2(src, tmp / src.name)
        if generator_dir is not None:
            (tmp / GENERATOR_DIR).mkdir()
            gen_files = [generator_dir / "config.json", *_weight_files(generator_dir), *_tokenizer_files(tokenizer_dir)]
            for src in gen_files:
                shutil.copy2(src, tmp / GENERATOR_DIR / src.name)
        card.save(tmp / CARD)
        validate_staging(
            tmp, facts, model_dir, generator_dir
        )  # inside: a folder that fails is removed, never left looking complete
    return card


def validate_staging(staging: Path, facts: Facts, model_dir: Path, generator_dir: Path | None = None) -> None:
    """Prove the folder works before any network call: model, tokenizer, generator and card."""
    from factory.export import load_model

    _validate_model(staging, load_model, model_dir)
    if facts.generator is not None:
        _validate_model(staging / GENERATOR_DIR, load_model, generator_dir or staging / GENERATOR_DIR)
    _validate_card(staging / CARD, facts)


def _validate_model(folder: Path, load_model, shown: Path) -> None:
    """`folder` is the staging copy; errors name `shown`, the folder the user gave."""
    from factory.errors import ModelFolderError
    from factory.tokenizer import Tokenizer

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
    expected = eval_results(facts.results, facts.name)
    if len(data.eval_results or []) != len(expected):
        raise FactoryError(f"{path}: the model-index does not hold one result per language evaluated; a bug in factory")
    if (data.language or []) != card_languages(facts.languages) or data.license != facts.license:
        raise FactoryError(f"{path}: the card's metadata does not read back as written; a bug in factory")


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


def publish(
    model_dir: Path,
    repo_id: str,
    *,
    staging: Path | None = None,
    tokenizer_dir: Path | None = None,
    generator_dir: Path | None = None,
    results: list[Path] = (),
    languages: list[str] = (),
    datasets: list[str] = (),
    license: str = "mit",
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Check the inputs, stage and validate the folder, then (unless `dry_run`) upload it."""
    repo_id = parse_repo_id(repo_id)
    check_model_folder(model_dir)
    if generator_dir is not None:
        check_model_folder(generator_dir)
    token = None if dry_run else resolve_token()
    staging = staging or default_staging(model_dir)
    tokenizer_dir = tokenizer_dir or model_dir
    facts = collect_facts(
        model_dir,
        repo_id,
        tokenizer_dir=tokenizer_dir,
        results=list(results),
        languages=list(languages),
        datasets=list(datasets),
        license=license,
        revision=revision,
        generator_dir=generator_dir,
    )
    stage_folder(facts, model_dir, staging, tokenizer_dir, generator_dir)
    summary = {
        "staging": str(staging),
        "files": sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()),
        "languages_evaluated": len(eval_results(facts.results, facts.name)),
        "url": None,
    }
    if not dry_run:
        summary["url"] = upload(staging, repo_id, token, private=private, revision=revision)
    return summary
