"""The model card (README.md of a published model): what the files say about the model, and the text.

Every number in the card is read from a file, never typed in: config.json (sizes, languages, the generator's
EMD), the manifests (each step's manifest.py: pre-training's in the model folder, the vocabulary's in the
tokenizer folder) and results.json (`factory.publish.card_results`). A figure no file holds is left out, not guessed;
a model without a pre-training manifest is not called pre-trained.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.core.languages import check_languages
from factory.core.manifest import MANIFEST, find_manifest, parse_manifest
from factory.core.markdown import markdown_table
from factory.core.sources import ResolvedModel
from factory.derive.manifest import DerivedManifest, TransplantManifest, TrimManifest
from factory.model.manifest import InitManifest
from factory.pretrain.manifest import PretrainManifest, SamplingPhase
from factory.publish.card_derived import base_pretraining, base_pretraining_note, derivation_phrase, derivation_section
from factory.publish.card_results import (
    find_results,
    model_index,
    read_results,
    results_section,
    retrieval_section,
    suite_section,
)
from factory.vocab.manifest import VocabManifest

GENERATOR_DIR = "generator"
# what a model folder's factory.json can be
MODEL_MANIFESTS = (PretrainManifest, InitManifest, TrimManifest, TransplantManifest)

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

SHARING = {
    "gdes": "gradient-disentangled embedding sharing (GDES)",
    "es": "embedding sharing between generator and discriminator (ES)",
    "nes": "no embedding sharing (NES)",
}


# ---- facts: what the files say ------------------------------------------------------------------
@dataclass
class GeneratorFacts:
    config: dict[str, Any]  # its config.json
    counts: dict[str, int]  # count_parameters of it


@dataclass
class Facts:
    """Everything the card reports, as read from the model folder, its manifests and the results files."""

    repo_id: str
    hf_config: dict[str, Any]
    counts: dict[str, int]
    pretrain: PretrainManifest | None = None  # the model folder's, when pre-training exported it
    vocab: VocabManifest | None = None  # the tokenizer folder's, when `factory vocab` wrote it
    retrieval: dict[str, Any] | None = None  # `factory eval retrieval`'s results.json
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)  # every suite's results.json but retrieval
    languages: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    license: str = "mit"
    revision: str | None = None
    generator: GeneratorFacts | None = None
    derived: DerivedManifest | None = None  # `factory trim` / `factory transplant`'s, when they wrote the folder

    @property
    def name(self) -> str:
        return self.repo_id.split("/", 1)[1]

    @property
    def preset(self) -> str | None:
        """The size as the card names it: a preset's name only when config.json has that preset's sizes; a shape
        between the presets is "custom (4 layers, hidden 128, 4 heads, FFN 512, from debug)"."""
        fac = self.hf_config.get("factory") or {}
        named = fac.get("preset") or (self.pretrain.preset if self.pretrain else None)
        if named is None:
            return None
        return size_label(
            self.hf_config, named, fac.get("base_preset") or (self.pretrain and self.pretrain.base_preset)
        )


def size_label(hf_config: dict[str, Any], named: str, base: str | None) -> str:
    """`named` if config.json's sizes are that preset's (its generator's, for an exported generator), else
    the custom label: the file's name for the preset is not trusted over its sizes."""
    from factory.model.presets import PRESETS, custom_label, generator_depth

    cfg, preset = hf_config, PRESETS.get(named)
    if preset is not None:
        generator = (cfg.get("factory") or {}).get("role") == "rtd-generator"
        layers = generator_depth(preset.layers) if generator else preset.layers
        if (cfg.get("num_hidden_layers"), cfg.get("hidden_size"), cfg.get("num_attention_heads"),
                cfg.get("intermediate_size")) == (layers, preset.hidden, preset.heads, preset.ffn):  # fmt: skip
            return named
    base = base or (named if preset is not None else None)
    return custom_label(cfg["num_hidden_layers"], cfg["hidden_size"], cfg.get("num_attention_heads"),
                        cfg.get("intermediate_size"), base)  # fmt: skip


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
    source: ResolvedModel | None = None,
) -> Facts:
    """Read config.json, the manifests (model folder, tokenizer folder) and the results files. `source`: the model
    as the user named it (publish's DIR, before a published layout is rewritten): every results file must be an
    evaluation of its weights (card_results.check_evaluated)."""
    from factory.model.folder import read_config
    from factory.model.presets import count_parameters

    hf_config = json.loads((model_dir / "config.json").read_text())
    suites = read_results(find_results(model_dir, list(results)), source)
    facts = Facts(
        repo_id=repo_id,
        hf_config=hf_config,
        counts=count_parameters(read_config(model_dir)),
        retrieval=suites.get("retrieval"),
        evaluations={suite: r for suite, r in suites.items() if suite != "retrieval"},
        license=license,
        revision=revision,
    )
    facts.pretrain, facts.vocab, facts.derived = _manifests(model_dir, tokenizer_dir or model_dir)
    facts.languages = list(languages) or _languages(facts, model_dir, tokenizer_dir or model_dir)
    facts.datasets = list(datasets) or _datasets(facts)
    if generator_dir is not None:
        facts.generator = GeneratorFacts(
            config=json.loads((generator_dir / "config.json").read_text()),
            counts=count_parameters(read_config(generator_dir)),
        )
    return facts


def _manifests(
    model_dir: Path, tokenizer_dir: Path
) -> tuple[PretrainManifest | None, VocabManifest | None, DerivedManifest | None]:
    """Pre-training's manifest from the model folder (`factory init`'s says nothing for the card; a derived
    model's carries its base's), the vocabulary's from the tokenizer folder, and trim's or transplant's; a folder
    without factory.json has none."""
    model = find_manifest(model_dir, MODEL_MANIFESTS)
    tokenizer = find_manifest(tokenizer_dir, (VocabManifest, *MODEL_MANIFESTS)) if tokenizer_dir != model_dir else None
    derived = model if isinstance(model, DerivedManifest) else None
    if derived is not None and derived.base_manifest is not None:  # how the base's weights were pre-trained
        model = parse_manifest(derived.base_manifest, PretrainManifest)
    return (
        model if isinstance(model, PretrainManifest) else None,
        tokenizer if isinstance(tokenizer, VocabManifest) else None,
        derived,
    )


def _languages(facts: Facts, model_dir: Path, tokenizer_dir: Path) -> list[str]:
    """config.json's `factory.core.languages` (pre-training copies them from the vocabulary), else the vocabulary's;
    checked here, so that an unknown code is named with the file it came from."""
    value, where = (facts.hf_config.get("factory") or {}).get("languages"), f"{model_dir / 'config.json'} languages"
    if not value and facts.vocab is not None:
        value, where = facts.vocab.languages, f"{tokenizer_dir / MANIFEST} languages"
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    return check_languages([v for v in value or [] if v], f"{where} (give the card's with --language)")


def _datasets(facts: Facts) -> list[str]:
    """Hub datasets among the vocabulary's corpus sources (`hf:org/name:config` -> org/name); local files are
    not listed."""
    out = []
    for source in facts.vocab.corpus if facts.vocab is not None else []:
        text = source.split("=", 1)[-1]
        if text.startswith("hf:"):
            out.append(text[3:].split(":")[0])
    return list(dict.fromkeys(out))


# ---- the card -----------------------------------------------------------------------------------
def card_languages(languages: list[str]) -> list[str]:
    """Hub `language` metadata: `multilingual` first when there are several (as the mDeBERTa card). Every code is
    one factory knows (factory/core/languages.py, the table vocab checks `--langs` against), whichever way it came
    (--language, config.json, a manifest, a Facts built by hand): no card is written with an unknown one."""
    languages = list(dict.fromkeys(check_languages(languages, "the card's languages")))
    return ["multilingual", *languages] if len(languages) > 1 else languages


def build_card(facts: Facts):
    """The ModelCard: metadata (language, license, tags, datasets, model-index) and a body like the seed cards."""
    from huggingface_hub import ModelCard, ModelCardData

    base = base_model(facts)
    data = ModelCardData(
        language=card_languages(facts.languages) or None,
        license=facts.license,
        library_name="transformers",
        tags=["deberta", "deberta-v3", "fill-mask"],
        datasets=facts.datasets or None,
        model_name=facts.name,
        eval_results=model_index(facts.evaluations) or None,
        base_model=base["repo_id"] if base else None,  # the Hub's model tree: what this model was derived from
        **({"base_model_relation": "finetune"} if base else {}),
    )
    sections = [
        _intro(facts),
        derivation_section(facts.derived, LANGUAGE_NAMES),
        _architecture(facts),
        _training_data(facts),
        _pretraining(facts),
        results_section(facts.evaluations.get("xnli"), facts.name),
        *(suite_section(suite, r) for suite, r in facts.evaluations.items() if suite != "xnli"),
        retrieval_section(facts.retrieval),
        _generator(facts),
        _fine_tuning(facts),
        "## Citation\n\nIf you use this model, please cite the DeBERTa papers:\n\n" + CITATIONS,
    ]
    body = "\n\n".join(s for s in sections if s)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def base_model(facts: Facts) -> dict[str, Any] | None:
    """The Hub model this one descends from: pre-training's --init-from (its base_model), else what config.json's
    `factory.base_model` records (a trimmed or transplanted model); None for a model trained from scratch."""
    init = facts.pretrain.init_from if facts.pretrain else None
    if init is not None and init.base_model is not None:
        return {"repo_id": init.base_model.repo_id, "revision": init.base_model.revision}
    recorded = (facts.hf_config.get("factory") or {}).get("base_model")
    return recorded if isinstance(recorded, dict) and recorded.get("repo_id") else None


def _derived_from(facts: Facts) -> str:
    """The intro's sentence on what the model was derived from and how much it was continued."""
    base = base_model(facts)
    init = facts.pretrain.init_from if facts.pretrain else None
    if (base is None and init is None) or (facts.derived is not None and init is None):  # trim/transplant: said above
        return ""
    if base is not None:
        rev = f" (revision `{base['revision'][:12]}`)" if base.get("revision") else ""
        what = f"[{base['repo_id']}](https://huggingface.co/{base['repo_id']}){rev}"
    else:
        what = f"`{init.source.given}`"
    if init is None:
        return f" It is derived from {what}."
    run = facts.pretrain
    return f" It continues {what} with {run.tokens:,} tokens ({run.steps:,} steps) of RTD pre-training."


GENERATOR_STARTS = {
    "given": "given (--init-generator)",
    "published": "the published generator",
    "folder": "the generator saved with the model",
    "derived": "derived from the discriminator",
}


def _start_row(init) -> str | None:
    if init is None:
        return None
    rule = f" ({init.generator_rule} rule)" if init.generator_rule else ""
    emd = ", enhanced mask decoder" if init.emd else ""
    return f"`{init.source.given}`; generator: {GENERATOR_STARTS.get(init.generator, init.generator)}{rule}{emd}"


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e6:.3f}M"


def _language_phrase(languages: list[str]) -> str:
    names = [LANGUAGE_NAMES.get(code, code) for code in languages]
    if not names:
        return ""
    if len(names) > 3:
        return f"{len(names)} languages"
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _how_trained(facts: Facts) -> str:
    """What pre-training's manifest says; nothing is claimed for a model without one."""
    if facts.pretrain is None:
        return ""
    sharing = facts.pretrain.sharing
    how = f" with replaced token detection (RTD) and {SHARING.get(sharing.lower(), sharing)}"
    return f", pre-trained ELECTRA-style{how} as in [DeBERTaV3](https://arxiv.org/abs/2111.09543)"


def _intro(facts: Facts) -> str:
    cfg = facts.hf_config
    label = facts.preset
    langs = _language_phrase(facts.languages)
    if label and label.startswith("custom"):  # a shape between the presets, never under a preset's name
        what = f"a DeBERTa-v3 encoder of size {label}"
    else:
        what = f"a {label} DeBERTa-v3 encoder" if label else "a DeBERTa-v3 encoder"
    what += f" for {langs}" if langs else ""
    return (
        f"# {facts.name}\n\n"
        f"{facts.name} is {what}{derivation_phrase(facts.derived)}{_how_trained(facts)}.{_derived_from(facts)} It has "
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
    rows = [("Size", facts.preset)] if facts.preset else []
    rows += [
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
    table = "\n".join(markdown_table(["", ""], rows))
    return f"## Architecture\n\n{table}\n\nParameter counts are computed from config.json."


def _training_data(facts: Facts) -> str:
    lines = []
    if facts.languages:
        lines.append(f"- Languages: {', '.join(facts.languages)}")
    if facts.datasets:
        lines.append(f"- Corpus: {', '.join(f'[{d}](https://huggingface.co/datasets/{d})' for d in facts.datasets)}")
    if facts.vocab is not None:
        lines.append(f"- Language sampling of the vocabulary's text: p_i proportional to n_i^{facts.vocab.alpha} "
                     "(as XLM-R / mT5)")  # fmt: skip
    sampling = facts.pretrain.language_sampling if facts.pretrain else None
    if sampling:
        lines.append(f"- Language sampling in pre-training: {_sampling_phrase(sampling)}")
    if not lines:
        return ""
    return "## Training data\n\n" + "\n".join(lines) + _tokens_per_language(facts.pretrain)


def _sampling_phrase(phases: list[SamplingPhase]) -> str:
    """ "each batch draws language i with p_i ∝ n_i^α ..., α 0.3 (as XLM-R)", or the schedule (as mmBERT)."""
    how = "each batch draws language i with p_i proportional to n_i^α, n_i its tokens in the corpus"
    if len(phases) == 1:
        return f"{how}, α {phases[0].alpha:g} (as XLM-R)"
    steps = ", ".join(f"α {p.alpha:g} from step {p.start_step:,} ({len(p.p)} languages)" for p in phases)
    return f"{how}, by phase: {steps} (annealed as in mmBERT)"


def _tokens_per_language(pretrain: PretrainManifest | None) -> str:
    """The table of tokens seen per language (several languages only: one has the "Tokens seen" row)."""
    seen = pretrain.tokens_seen_per_language if pretrain else None
    if not seen or len(seen) < 2:
        return ""
    total = sum(seen.values()) or 1
    rows = [[lang, f"{n:,}", f"{100 * n / total:.2f}%"] for lang, n in seen.items()]
    table = "\n".join(markdown_table(["Language", "Tokens", "Share"], rows))
    return f"\n\nTokens seen in pre-training, per language:\n\n{table}"


# (label, the figure in pre-training's manifest (None: not recorded, the row is left out), format)
PRETRAIN_ROWS: list[tuple[str, Callable[[PretrainManifest], Any], str]] = [
    ("Continued from", lambda m: _start_row(m.init_from), "{}"),
    ("Update order", lambda m: m.update_order if m.init_from or m.update_order == "official" else None, "{}"),
    ("Embedding sharing", lambda m: m.sharing, "{}"),
    ("RTD loss weight (lambda)", lambda m: m.rtd_lambda, "{}"),
    ("Sequence length", lambda m: m.seq_len, "{:,}"),
    ("Batch (sequences)", lambda m: m.batch, "{:,}"),
    ("Peak learning rate", lambda m: m.lr, "{:g}"),
    ("Warm-up steps", lambda m: m.warmup, "{:,}"),
    ("Steps", lambda m: m.steps, "{:,}"),
    ("Tokens seen", lambda m: m.tokens, "{:,}"),
    ("Precision", lambda m: m.mixed_precision, "{}"),
    ("Hardware", lambda m: m.hardware.hardware_summary if m.hardware else None, "{}"),
    ("Wall time", lambda m: m.wall_time_s, "time"),
    ("Final generator (MLM) loss", lambda m: m.final.mlm_loss, "{:.4f}"),
    ("Final discriminator (RTD) loss", lambda m: m.final.rtd_loss, "{:.4f}"),
    ("RTD accuracy", lambda m: m.final.rtd_accuracy, "{:.4f}"),
]


def _pretraining(facts: Facts) -> str:
    if facts.pretrain is None and facts.derived is not None:
        return base_pretraining(facts.derived)
    if facts.pretrain is None:
        return (
            "## Pre-training\n\nNo pre-training manifest (factory.json) was found beside the weights, so the "
            "pre-training settings are not reported."
        )
    rows = []
    for label, figure, fmt in PRETRAIN_ROWS:
        value = figure(facts.pretrain)
        if value is not None:
            rows.append([label, _duration(value) if fmt == "time" else fmt.format(value)])
    note = base_pretraining_note(facts.derived)  # a trimmed or transplanted model: the base's run
    return f"## Pre-training\n\n{note}" + "\n".join(markdown_table(["Setting", "Value"], rows))


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def _generator(facts: Facts) -> str:
    gen = facts.generator
    if not gen:
        return ""
    cfg = gen.config
    text = (
        f"## Generator\n\nThe RTD generator is in `{GENERATOR_DIR}/` "
        f"({_plural(cfg['num_hidden_layers'], 'layer')}, hidden size "
        f"{cfg['hidden_size']}, {_millions(gen.counts['backbone'])} backbone parameters). It is a masked language "
        "model:\n\n```python\nfrom transformers import AutoModelForMaskedLM\n\n"
        f'generator = AutoModelForMaskedLM.from_pretrained("{facts.repo_id}", subfolder="{GENERATOR_DIR}")\n```'
    )
    emd = cfg.get("emd", (cfg.get("factory") or {}).get("emd"))  # config.json's key; older exports: factory.emd
    if emd is False:  # pre-training's export says it carries no EMD
        text += (
            "\n\nThe generator has no Enhanced Mask Decoder (EMD) in Hugging Face form: `transformers` implements "
            "the plain MLM head only, so its masked-token predictions differ from the original DeBERTa's EMD."
        )
    elif emd:
        text += (
            '\n\nThe generator uses DeBERTa\'s Enhanced Mask Decoder (EMD, `"emd": true` in its config.json): its '
            "MLM head reads the last layer run again with absolute positions. `transformers` implements the plain MLM "
            "head only, so it loads the weights but gives other masked-token predictions; `factory.model.load_model` "
            "runs the EMD."
        )
    return text


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
