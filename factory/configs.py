"""The configuration of every step, one frozen dataclass each: the only place an option's default, type, bounds
and help text are written. The CLI options, the recipe keys and the manifests' `config` sections are all
derived from these fields (see factory/core/options.py for how). Paper defaults cite docs/.

`SCHEMA` is each config's version, written into the manifest with the values; a field added later gets a
default, so an older manifest's config still reads.

This module imports no torch: `factory --help` builds every command's options from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.options import option
from factory.core.vocab_sizes import DEFAULT_VOCAB_SIZE

PRESET_NAMES = ("debug", "xsmall", "small", "base", "large", "xlarge", "xxlarge")  # == factory.model.presets.PRESETS
LAYOUTS = ("official", "pad128")
HEADS = ("none", "mlm", "rtd", "cls", "tokens", "qa")  # == factory.model.heads.HEADS
MASKING = ("spread", "official")  # which mask windows are kept (factory.pretrain.rtd.choose_masked)
LANGID_FILTERS = ("fasttext", "langdetect")  # == factory.langid.FILTERS

# Pre-training defaults of the DeBERTaV3 paper (docs/pretraining.md#hyper-parameters)
PAPER_BATCH = 8192  # sequences per optimizer step
PAPER_STEPS = 500_000
WARMUP = 10_000
RTD_LAMBDA = 50.0  # the paper's lambda (the official scripts ran with 10; docs/pretraining.md#rtd-and-gdes)
SEQ_LEN = 512
# Peak learning rates: 5e-4 for base/small (xsmall takes small's), 3e-4 for large and the v2 sizes above it
PEAK_LR = {"large": 3e-4, "xlarge": 3e-4, "xxlarge": 3e-4}
DEFAULT_LR = 5e-4
# Continued pre-training (`--init-from`), the official continue recipes' (experiments/language_model/rtd.sh,
# deberta-v3-{xsmall,small}-continue: lr 5e-5, 10k warm-up steps; rtd_task.py's default lambda 10)
CONTINUE_LR = 5e-5
UPDATE_ORDERS = ("joint", "official")  # how a step updates the two networks (factory/pretrain/loop.py)
MAX_MICRO_BATCH = 32  # sequences per process per forward when --micro-batch is not given
MAX_LANGID_WORKERS = 8  # language-id processes when --workers is not given
MIX_ALPHA = 0.3  # pre-training's language sampling exponent, XLM-R's (docs/pretraining.md#language-sampling)
PIVOT = "en"  # the language retrieval matches every other one against (`eval retrieval --pivot`, `--probe-pivot`)
# --probe's interval when --probe-every is not given: every 10th logged record. A probe reads each text once,
# forward only (at 1,000 items x 7 languages about 0.3M tokens, a tenth of one step's 4M tokens fwd+bwd at the
# paper's 8192 x 512 batch), so at 10 x the default --log-every 10 it costs well under 1% of a real run, and
# it lands in a record that is logged anyway.
PROBE_LOGS = 10


def size_problems(flag: str, text: str | None) -> list[str]:
    """A vocabulary size (32k, 128k, 128000) checked with the others, not when its step starts."""
    if text is None:
        return []
    from factory.core.errors import ConfigError
    from factory.core.vocab_sizes import VocabSize

    try:
        VocabSize.parse(text)
    except ConfigError as e:
        return [f"{flag}: {e}"]
    return []


_LANGID_HELP = ("Language filter: fasttext (lid.176, 176 languages, as CC100) or langdetect (its 55 profiles); "
                "--no-langid: none (docs/data.md#language-filter).")
_THRESHOLD_HELP = ("Minimum probability of the language filter [default: 0.5 for fasttext (CCNet's), 0.9 for "
                   "langdetect].")
_SKIP_HELP = ("Languages whose LANG= sources the filter lets through unchecked (e.g. those lid.176 does not "
              "know: ha, zu, *_rom, ...).")
_LAYOUT_HELP = "Embedding rows: as published (128k -> 128100) or padded to a multiple of 128 (faster on GPU)."
_FORCE_HELP = "Replace --out if it is not empty."


# ---- vocab ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class VocabConfig:
    """`factory vocab`: defaults < a `vocab/*.yaml` spec < a recipe's `steps.vocab` < flags."""

    SCHEMA: ClassVar[int] = 1

    corpus: list[str] = option(
        [], "Text: FILE, FOLDER, hf:REPO:CONFIG, or LANG=any of those. Repeatable.", repeat=True, metavar="SOURCE"
    )
    langs: list[str] = option(
        [],
        "Language(s) to keep: pt, or several comma-separated (en,pt,ru,zh) sampled with --alpha.",
        flags=("--langs", "--lang"),
        aliases=("languages",),
    )
    spec: Path | None = option(None, "A vocab/*.yaml spec, or the name of a bundled one (e.g. cc100).")
    size: str = option("32k", "SentencePiece pieces, specials included: 32k, 128k, 250k or a number.")
    alpha: float = option(0.3, "Language sampling p_i ∝ n_i^alpha (XLM-R, mT5).", low=0, high=1)
    max_sentences: int = option(10_000_000, "Documents fed to SentencePiece (a count: 10M, 1e7).", low=1)
    model_type: str = option("unigram", "SentencePiece model.", choices=("unigram", "bpe"))
    character_coverage: float = option(
        0.9995, "Share of characters covered; 1.0 for small alphabets.", low=0.9, high=1.0
    )
    byte_fallback: bool = option(False, "Unknown characters as byte pieces (sentencepiece only; HF gives [UNK]).")
    text_field: str = option("text", "Field/column of .jsonl/.parquet/.arrow/hf: sources.")
    min_chars: int = option(20, "Drop shorter documents.", low=0)
    max_chars: int = option(20000, "Drop longer documents.", low=1)
    dedupe: bool = option(True, "Drop exact duplicates.")
    langid: str | None = option("fasttext", _LANGID_HELP, choices=LANGID_FILTERS, switch=True)
    langid_threshold: float | None = option(None, _THRESHOLD_HELP, low=0, high=1)
    langid_skip: list[str] = option([], _SKIP_HELP, metavar="LANG,...")
    workers: int | None = option(
        None, f"Language-id processes [default: the cores, at most {MAX_LANGID_WORKERS}].", low=1
    )
    report_docs: int = option(2000, "Documents per language for the report.", low=1, cli=False)
    seed: int = option(0, "Seed of the sampling.")
    out: Path = option(help="Folder to write.")
    force: bool = option(False, _FORCE_HELP, secondary=False)

    def problems(self) -> list[str]:
        problems = size_problems("--size", self.size)
        if self.min_chars > self.max_chars:
            problems.append(f"--min-chars {self.min_chars} is larger than --max-chars {self.max_chars}")
        return problems


@dataclass(frozen=True, kw_only=True)
class VocabReportConfig:
    """`factory vocab report FOLDER...`: vocabularies side by side on the same text."""

    SCHEMA: ClassVar[int] = 1

    folders: list[Path] = option(help="Vocabulary folders (spm.model) to compare.", cli=False)
    corpus: list[str] = option([], "Text to evaluate on: FILE or LANG=FILE. Repeatable.", repeat=True)
    text_field: str = option(VocabConfig.text_field, "Field/column of .jsonl/.parquet/.arrow.")
    max_docs: int = option(VocabConfig.report_docs, "Documents per language.", low=1)
    out: Path | None = option(None, "Write report.json and report.md into this folder.")
    json: bool = option(False, "Print JSON instead of tables.", secondary=False)

    def problems(self) -> list[str]:
        return [] if self.corpus else ["--corpus is required (FILE or LANG=FILE)"]


# ---- shards --------------------------------------------------------------------------------------
SHARD_ALPHA = 0.3  # XLM-R's p_i ∝ n_i^0.3 (docs/data.md#budgets)


@dataclass(frozen=True, kw_only=True)
class ShardsConfig:
    """`factory shards`: tokenised, packed Arrow shards for pre-training, one language per row
    (docs/data.md)."""

    SCHEMA: ClassVar[int] = 2

    vocab: Path | None = option(None, "Vocabulary folder (spm.model), or a model's folder or Hub id (e.g. "
                                "microsoft/deberta-v3-xsmall) to tokenise with its spm.model; required unless "
                                "--merge.")  # fmt: skip
    corpus: list[str] = option(
        [],
        "Text source, repeatable: .txt (a document per line), .jsonl/.json/.parquet (text column), .gz, a folder, "
        "or hf:NAME[:CONFIG][@SPLIT] (streamed; NAME may be a local folder of data files); LANG=any of those.",
        repeat=True,
        metavar="SOURCE",
    )
    langs: list[str] = option(
        [],
        "Languages to keep, comma-separated [default: the corpus' LANG= prefixes; none: one language, und].",
        flags=("--langs", "--lang"),
        aliases=("languages",),
    )
    seq_len: int = option(SEQ_LEN, "Tokens per sequence.", low=8)
    tokens: str | None = option(None, "Tokens to store in all, split across languages by --alpha (1e9, 500M, 2B).")
    tokens_per_language: str | None = option(None, "Tokens to store per language (1e9, 500M, 2B).")
    alpha: float = option(SHARD_ALPHA, "Budget split of --tokens: p_i ∝ corpus_tokens_i^alpha.", low=0,
                          low_open=True, high=1)  # fmt: skip
    text_field: str = option("text", "Column holding the text in jsonl/parquet/Hub.")
    clean: bool = option(True, "Clean documents as `factory vocab` does: NFKC, whitespace, --min-chars/--max-chars.")
    min_chars: int = option(VocabConfig.min_chars, "Drop shorter documents (with --clean).", low=0)
    max_chars: int = option(1_000_000, "Drop longer documents (with --clean; pre-training keeps long ones).", low=1)
    dedupe: bool = option(True, "Drop exact duplicates.")
    langid: str | None = option("fasttext", _LANGID_HELP, choices=LANGID_FILTERS, switch=True)
    langid_threshold: float | None = option(None, _THRESHOLD_HELP, low=0, high=1)
    langid_skip: list[str] = option([], _SKIP_HELP, metavar="LANG,...")
    num_proc: int | None = option(None, "Workers [default: all cores]: processes, or threads when only tokenising "
                                  "(the filters off).", low=1)  # fmt: skip
    rows_per_shard: int = option(16384, "Sequences per file (16384 x 512 tokens = 32 MiB).", low=1)
    task: str | None = option(None, "I/N: build only part I of N (over input files); join them with --merge.",
                              metavar="I/N")  # fmt: skip
    merge: list[Path] = option([], "Join the folders of --task I/N builds into --out (no tokenising).", repeat=True,
                               metavar="DIR")  # fmt: skip
    dry_run: bool = option(False, "Print the plan (per-language budget, expected rows, disk) and stop.",
                           secondary=False)  # fmt: skip
    out: Path = option(help="Folder to write.")
    force: bool = option(False, "Replace --out if it holds other files (shards of these very inputs and settings "
                         "are kept, as `factory run` relies on).", secondary=False)  # fmt: skip

    def problems(self) -> list[str]:
        from factory.budgets import config_problems  # the budgets' and tasks' grammar, below configs and the plan

        problems = config_problems(self)
        if self.seq_len > SEQ_LEN:
            problems.append(
                f"--seq-len {self.seq_len} is over {SEQ_LEN}, the longest sequence every v3 preset is built for "
                f"(its relative position buckets span {SEQ_LEN} tokens), so `factory pretrain` would refuse these "
                f"shards; use {SEQ_LEN} or less"
            )
        return problems


# ---- the model's shape (init, pretrain) ----------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ShapeOptions:
    """The size of the model `factory init` and `factory pretrain` build (and a recipe's `steps.pretrain`): a
    preset, or a shape between the presets with some of its sizes replaced (factory/model/presets.py `get_shape`).
    A shape that differs from its preset is recorded as "custom", never under the preset's name."""

    SCHEMA: ClassVar[int] = 1  # the configs that include it have their own

    preset: str = option("base", "Size preset (with --layers/--hidden/--heads/--ffn: the shape to start from).",
                         choices=PRESET_NAMES)  # fmt: skip
    layers: int | None = option(None, "Layers instead of the preset's (the RTD generator gets half, at least 1).",
                                low=1)  # fmt: skip
    hidden: int | None = option(None, "Hidden size instead of the preset's.", low=1)
    heads: int | None = option(None, "Attention heads instead of the preset's; they must divide the hidden size.",
                               low=1)  # fmt: skip
    ffn: int | None = option(None, "Feed-forward size [default: the preset's, 4 x --hidden when it is given].",
                             low=1)  # fmt: skip

    def problems(self) -> list[str]:
        if self.hidden is None and self.heads is None and self.layers is None and self.ffn is None:
            return []
        from factory.model.presets import shape_problems  # torch: only when a shape is given, so --help stays instant

        return shape_problems(self.preset, self.hidden, self.heads, self.layers, self.ffn)


# ---- pretrain ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PretrainConfig(ShapeOptions):
    """`factory pretrain`; the resolved copy is written into every checkpoint and the run's manifest."""

    SCHEMA: ClassVar[int] = 1
    # Options that size the model from scratch, and their defaults there; with --init-from the model's config.json
    # decides them, so they stay None (not given) and any that is given is refused (problems)
    SCRATCH: ClassVar[dict[str, str]] = {"preset": "base", "layout": "official"}

    preset: str | None = option(None, "Size preset [default: base] (with --layers/--hidden/--heads/--ffn: the shape "
                                "to start from).", choices=PRESET_NAMES)  # fmt: skip
    vocab: Path | None = option(None, "Vocabulary folder (spm.model) of the shards [default with --init-from: the "
                                "model's own].")  # fmt: skip
    shards: Path | None = option(None, "Shards from `factory shards`.")
    init_from: str | None = option(None, "Continue from this discriminator (a folder or a Hub id org/name[@revision], "
                                   "e.g. microsoft/deberta-v3-xsmall): its config, weights and RTD head; the "
                                   "shape options (--preset, --layers, --layout, ...) are its own.",
                                   metavar="SRC")  # fmt: skip
    init_generator: str | None = option(None, "The generator to continue with (a folder or Hub id) [default: the one "
                                        "published beside --init-from, else derived by --generator-rule].",
                                        metavar="SRC")  # fmt: skip
    generator_rule: str = option("fresh", "How --init-from's generator is made when it has none: fresh (random "
                                 "layers and MLM head, the shared table the discriminator's) or lower-half (the "
                                 "discriminator's first half of its layers); measured in bench/RESULTS.md.",
                                 choices=("fresh", "lower-half"))  # fmt: skip
    generator_warmup: int = option(0, "Steps at the start that train the generator alone (the discriminator "
                                   "waits).", low=0)  # fmt: skip
    emd: str = option("auto", "The generator's enhanced mask decoder: auto (on when the starting generator's weights "
                      "carry absolute positions, as the published ones do), on, off.",
                      choices=("auto", "on", "off"))  # fmt: skip
    update_order: str = option("joint", "joint: one loss, one update of both networks; official: the generator "
                               "steps first and the discriminator reads its updated table (the official decoupled "
                               "training).", choices=UPDATE_ORDERS)  # fmt: skip
    warmup_from_zero: bool = option(False, "Start the warm-up at lr 0, as the official schedule does (else at "
                                    "peak/warm-up).")  # fmt: skip
    corpus: list[str] = option([], "Build shards from this text first (into OUT/shards); repeatable.", repeat=True)
    seq_len: int | None = option(None, "Sequence length [default: the shards'; 512 for --corpus].", low=8)
    batch: int = option(PAPER_BATCH, "Global batch (sequences per optimizer step).", low=1)
    micro_batch: int | None = option(None, f"Sequences per process per forward [default: <= {MAX_MICRO_BATCH}].", low=1)
    lr: float | None = option(
        None,
        f"Peak learning rate [default: {DEFAULT_LR:g} base/small/xsmall, {PEAK_LR['large']:g} large; a custom "
        f"shape: its preset's; --init-from: {CONTINUE_LR:g}].",
        low=0,
        low_open=True,
    )
    warmup: int | None = option(None, f"Warm-up steps [default: {WARMUP:,}, at most 10% of the run].", low=0)
    max_steps: int | None = option(None, f"Optimizer steps (a count: 500k, 1e5) [default: {PAPER_STEPS:,}, the "
                                   "paper's].", low=1)  # fmt: skip
    tokens: int | None = option(None, "Train for this many tokens instead (a count: 1e9, 500M, 2B).", low=0,
                                low_open=True)  # fmt: skip
    rtd_lambda: float = option(RTD_LAMBDA, "Weight of the RTD loss (the paper's).", low=0)
    alpha: float | None = option(None, "Language sampling of shards with several languages: each batch draws "
                                 "language i with p_i ∝ n_i^alpha, n_i its tokens in the corpus [default: "
                                 f"{MIX_ALPHA:g}, XLM-R's; one language: no effect].", low=0, low_open=True,
                                 high=1)  # fmt: skip
    alpha_schedule: list[str] = option([], "Alpha by phase instead: FRACTION:ALPHA,... where FRACTION is the share "
                                       "of the run the phase starts at (first 0, increasing), e.g. "
                                       "0:0.7,0.6:0.5,0.9:0.3 (mmBERT anneals 0.7 -> 0.5 -> 0.3).",
                                       metavar="F:ALPHA,...")  # fmt: skip
    language_schedule: list[str] = option([], "Languages that enter later: LANG:FRACTION,... (e.g. sw:0.6,yo:0.9 = "
                                          "sw is drawn from 60% of the run on, yo from 90%); the others from the "
                                          "start. A language is drawn from the step it enters, with p re-computed "
                                          "over the languages in by then.", metavar="LANG:F,...")  # fmt: skip
    sharing: str = option("gdes", "Embedding sharing: gdes (DeBERTaV3), es (ELECTRA), nes (none).",
                          choices=("gdes", "es", "nes"))  # fmt: skip
    masking: str = option("spread", "Which 1-in-6 windows keep a mask: spread (a random 77 of a 512-token row's 85, "
                          "every position 15%) or official (the first 77, left to right; the tail never masked).",
                          choices=MASKING)  # fmt: skip
    mixed_precision: str = option("auto", "auto: bf16 on GPUs that have it, else fp32.",
                                  choices=("auto", "bf16", "fp16", "no"))  # fmt: skip
    dropout: float | None = option(None, "Dropout [default: 0.1, the configs'].", low=0, high=1)
    seed: int = option(0, "Seed for weights, data order and masks.")
    layout: str | None = option(None, _LAYOUT_HELP + " [default: official]", choices=LAYOUTS)
    vocab_size: str | None = option(None, "Vocabulary size for --dry-run without --vocab (e.g. 128k).")
    save_every: int = option(1000, "Checkpoint every N steps.", low=1)
    keep: int = option(3, "Checkpoints to keep.", low=1)
    log_every: int = option(10, "Log every N steps.", low=1)
    log_with: list[str] = option([], "Accelerate tracker(s): tensorboard, wandb, ... (train.jsonl always).",
                                 repeat=True)  # fmt: skip
    resume: str | None = option(None, "auto (the latest checkpoint in --out, if any) or a checkpoint folder.")
    gradient_checkpointing: bool = option(False, "Recompute activations in backward (large presets).",
                                          secondary=False)  # fmt: skip
    compile: bool = option(False, "torch.compile each layer (GPU; the first steps pay the compile time).",
                           secondary=False)  # fmt: skip
    peak_tflops: float | None = option(None, "Peak TFLOP/s per device for MFU [default: from the GPU name].",
                                       low=0, low_open=True)  # fmt: skip
    dry_run: bool = option(False, "Print the plan (parameters, FLOPs, memory, time) and stop.", secondary=False)
    assume_tflops: float = option(100.0, "Dry run: achieved TFLOP/s.", low=0, low_open=True)
    assume_tokens_per_s: float | None = option(None, "Dry run: achieved tokens/s (instead of --assume-tflops).",
                                               low=0, low_open=True)  # fmt: skip
    probe: str | None = option(None, "Parallel text (the forms of `eval retrieval --data`): log the "
                               "discriminator's retrieval accuracy during training, and once the random-init "
                               "control's.", metavar="PARALLEL")  # fmt: skip
    probe_every: int | None = option(None, f"Probe every N steps, a multiple of --log-every [default: "
                                     f"{PROBE_LOGS} x --log-every] and at the last step.", low=1)  # fmt: skip
    probe_pivot: str = option(PIVOT, "The --probe language every other one is matched against.")
    out: Path = option(help="Run folder (checkpoints, logs, exports).")
    force: bool = option(False, "Start over in an --out that holds an earlier run.", secondary=False)

    def __post_init__(self) -> None:
        """A run from scratch that names no preset or layout gets SCRATCH's; a continued one keeps None."""
        for name, default in self.SCRATCH.items() if self.init_from is None else ():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)

    def problems(self) -> list[str]:
        problems = size_problems("--vocab-size", self.vocab_size)
        if self.init_from is None:  # the shape's own checks (with --init-from: none may be given, below)
            problems = super().problems() + problems
        if self.max_steps is not None and self.tokens is not None:
            problems.append("give --max-steps or --tokens, not both")
        if self.corpus and self.vocab is None and self.init_from is None:
            problems.append("--corpus needs --vocab to tokenise with")
        if self.init_from is not None:
            shape = [k for k in (*self.SCRATCH, "layers", "hidden", "heads", "ffn") if getattr(self, k) is not None]
            if shape:
                flags = ", ".join(f"--{k}" for k in shape)
                problems.append(f"{flags}: the shape comes from --init-from's config.json; remove {flags}")
            if self.vocab_size is not None:
                problems.append("--vocab-size: the vocabulary comes from --init-from")
        elif self.init_generator is not None:
            problems.append("--init-generator needs --init-from (the discriminator it is trained beside)")
        if self.update_order == "official" and self.sharing == "es":
            problems.append(
                "--update-order official steps the generator and the discriminator apart, but --sharing "
                "es trains one table with both losses; use --sharing gdes or --update-order joint"
            )
        if self.alpha_schedule or self.language_schedule or self.alpha is not None:
            from factory.schedules import mixing_problems  # the mixing flags' grammar, below configs and mixing

            problems += mixing_problems(self)
        if self.probe_every is not None and self.probe_every % self.log_every:
            problems.append(
                f"--probe-every {self.probe_every} is not a multiple of --log-every {self.log_every} (the probe's "
                "figures go into that step's record)"
            )
        return problems


# ---- init / presets ------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PresetsConfig:
    """`factory presets`."""

    SCHEMA: ClassVar[int] = 1

    vocab_size: str = option(DEFAULT_VOCAB_SIZE, "Vocabulary: 32k, 128k, 250k or a number.")
    json: bool = option(False, "Print JSON instead of a table.", secondary=False)

    def problems(self) -> list[str]:
        return size_problems("--vocab-size", self.vocab_size)


@dataclass(frozen=True, kw_only=True)
class InitConfig(ShapeOptions):
    """`factory init`: a randomly initialised model folder."""

    SCHEMA: ClassVar[int] = 1

    vocab_size: str = option(DEFAULT_VOCAB_SIZE, "Vocabulary: 32k, 128k, 250k or a number (ignored with --vocab).")
    vocab: Path | None = option(None, "Vocabulary folder: size the embedding to its spm.model and copy its tokenizer.")
    layout: str = option("official", _LAYOUT_HELP, choices=LAYOUTS)
    head: str = option("none", "none: bare encoder (AutoModel); mlm: generator head; rtd: discriminator head; "
                       "cls: sequence classification; tokens: token classification; qa: extractive QA.",
                       choices=HEADS)  # fmt: skip
    num_labels: int = option(2, "Labels of --head cls.", low=1)
    seed: int = option(0, "Seed for the random weights.")
    out: Path = option(help="Folder to write.")
    force: bool = option(False, _FORCE_HELP, secondary=False)

    def problems(self) -> list[str]:
        return super().problems() + ([] if self.vocab else size_problems("--vocab-size", self.vocab_size))


# ---- trim / transplant ---------------------------------------------------------------------------
_SOURCE_HELP = ("The model: a folder (factory's export, a published repository's files, a save_pretrained "
                "folder) or a Hub id org/name[@revision].")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrimConfig:
    """`factory trim SRC`: a multilingual model cut down to the pieces its languages use (factory/derive/trim.py)."""

    SCHEMA: ClassVar[int] = 1

    source: str = option(help=_SOURCE_HELP, cli=False)
    langs: list[str] = option([], "Languages to keep, comma-separated (pt, or en,pt).", flags=("--langs", "--lang"),
                              aliases=("languages",))  # fmt: skip
    corpus: list[str] = option([], "Text of each language: LANG=FILE, LANG=FOLDER or LANG=hf:NAME[:CONFIG] "
                               "(a bare source belongs to the only language); repeatable.", repeat=True,
                               metavar="LANG=SOURCE")  # fmt: skip
    size: int | None = option(None, "Pieces to keep, specials included (a count: 64k, 32000): the most used ones.",
                              low=1)  # fmt: skip
    min_count: int | None = option(None, "Keep every piece the corpus uses at least this often [default: 1, "
                                   "without --size].", low=1)  # fmt: skip
    max_docs: int = option(100_000, "Documents read per language.", low=1)
    text_field: str = option("text", "Field/column of .jsonl/.parquet/hf: sources.")
    langid: str | None = option("fasttext", "Language check of each --corpus source (its first documents): fasttext "
                                "(lid.176) or langdetect, the filters of vocab and shards; a source mostly not in "
                                "its language is refused; --no-langid: none.", choices=LANGID_FILTERS,
                                switch=True)  # fmt: skip
    langid_threshold: float | None = option(None, _THRESHOLD_HELP, low=0, high=1)
    langid_skip: list[str] = option([], "Languages whose sources are not checked (e.g. those lid.176 does not "
                                    "know: ha, zu, *_rom, ...).", metavar="LANG,...")  # fmt: skip
    out: Path = option(help="Folder to write (the same files as the source, with fewer pieces).")
    force: bool = option(False, _FORCE_HELP, secondary=False)

    def problems(self) -> list[str]:
        problems = [] if self.langs else ["--langs is required: the language(s) to keep, e.g. --langs pt"]
        if self.size is not None and self.min_count is not None:
            problems.append("give --size or --min-count, not both")
        return problems


TRANSPLANT_INITS = ("mean", "random")


@dataclass(frozen=True, kw_only=True)
class TransplantConfig:
    """`factory transplant SRC --vocab V`: a model moved onto another vocabulary (factory/derive/transplant.py)."""

    SCHEMA: ClassVar[int] = 1

    source: str = option(help=_SOURCE_HELP, cli=False)
    vocab: str = option(help="The new vocabulary: a folder with spm.model (e.g. one `factory vocab` wrote), or a "
                        "model (folder or Hub id) whose tokenizer to take.")  # fmt: skip
    init: str = option("mean", "Rows of the new pieces: mean (of the rows of the piece's pieces under the old "
                       "tokenizer: FVT) or random (the baseline).", choices=TRANSPLANT_INITS)  # fmt: skip
    seed: int = option(0, "Seed of --init random.")
    layout: str = option("official", _LAYOUT_HELP, choices=LAYOUTS)
    out: Path = option(help="Folder to write (the same files as the source, on the new vocabulary).")
    force: bool = option(False, _FORCE_HELP, secondary=False)


# ---- eval ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class FinetuneSettings:
    """Fine-tuning settings of an evaluation: defaults < the suite file's `settings` < `--set`. The defaults are
    the mDeBERTa card's XNLI recipe (docs/evaluation.md#xnli; eval/xnli.yaml says where each comes from)."""

    SCHEMA: ClassVar[int] = 1

    learning_rate: float = option(2e-5, "Peak learning rate.", low=0, low_open=True)
    epochs: float = option(6, "Epochs over the training language.", low=0, low_open=True)
    batch_size: int = option(32, "Pairs per optimizer step, whatever the number of processes.", low=1)
    micro_batch_size: int = option(16, "Pairs per forward pass; gradient accumulation fills batch_size.", low=1)
    max_length: int = option(256, "Tokens per pair.", low=8)
    warmup_steps: int = option(3000, "Warm-up steps.", low=0)
    max_warmup_fraction: float = option(0.1, "Warm-up never longer than this share of the steps.", low=0, high=1)
    adam_epsilon: float = option(1e-8, "AdamW epsilon.", low=0, low_open=True)
    weight_decay: float = option(0.0, "AdamW weight decay.", low=0)
    max_grad_norm: float = option(1.0, "Clip the gradient's norm to this before each step (0: no clipping); "
                                  "transformers' Trainer default, which the card's run_xnli.py trains with.",
                                  low=0)  # fmt: skip
    schedule: str = option("linear", "Learning-rate schedule.", choices=("linear",))
    dropout: float | None = option(None, "Dropout [default: the model's own].", low=0, high=1)
    eval_batch_size: int = option(64, "Examples per forward pass at test time.", low=1)
    seed: int = option(42, "Seed of run 0; run k uses seed + k.")
    precision: str = option("auto", "auto: bf16 where the accelerator supports it, else fp32.",
                            choices=("auto", "bf16", "fp32"))  # fmt: skip
    # extractive QA (factory/evaluate/qa.py): BERT's run_squad and transformers' utils_qa defaults
    doc_stride: int = option(128, "QA: pieces between the starts of a context's windows.", low=1)
    max_query_length: int = option(64, "QA: question pieces kept.", low=1)
    n_best: int = option(20, "QA: start and end candidates per window.", low=1)
    max_answer_length: int = option(30, "QA: longest answer, in pieces.", low=1)
    null_score_diff_threshold: float = option(0.0, "SQuAD 2.0: answer nothing when the no-answer score beats "
                                              "the best span by more than this.")  # fmt: skip
    # SiFT (factory/evaluate/sift.py): the DeBERTa repo's defaults (apps/run.py --vat_*; experiments/glue/mnli.sh)
    sift: bool = option(False, "Scale-invariant fine-tuning: an adversarial loss on perturbed normalised "
                        "embeddings (DeBERTa paper, section 3.3).")  # fmt: skip
    sift_lambda: float = option(5.0, "SiFT: weight of the adversarial loss (--vat_lambda of mnli.sh's -sift runs).",
                                low=0)  # fmt: skip
    sift_learning_rate: float = option(1e-4, "SiFT: step size of the perturbation's update.", low=0)
    sift_init: float = option(1e-2, "SiFT: std of the initial perturbation (clamped at twice it).", low=0)

    def problems(self) -> list[str]:
        if self.batch_size % self.micro_batch_size:
            return [f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}"]
        return []


CONTROLS = ("none", "random")  # == factory.evaluate.control: `none` reads as None
_CONTROL_HELP = (
    "random: also evaluate a randomly initialised model of the same config and tokenizer (a fixed seed, the "
    "same for every run) with the same settings, to show what pre-training bought."
)


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """`factory eval xnli | pawsx`: what to evaluate and where; the fine-tuning settings come from `--set`."""

    SCHEMA: ClassVar[int] = 1

    model: Path = option(help="deberta-v2 model folder with spm.model, or a Hub id org/name[@revision] (e.g. "
                         "microsoft/mdeberta-v3-base).")  # fmt: skip
    data: str | None = option(None, "hf:NAME (the suite's dataset by default) or a local DIR.")
    train_lang: str | None = option(None, "Language to fine-tune on [default: the suite's, en].")
    langs: str = option("all", "Languages to test: all, or a list like en,fr,de.")
    runs: int = option(1, "Seeds to average over.", low=1)
    set: list[str] = option([], "Override a fine-tuning setting, e.g. --set epochs=3 --set learning_rate=3e-5.",
                            repeat=True, metavar="KEY=VALUE")  # fmt: skip
    control: str | None = option(None, _CONTROL_HELP, choices=CONTROLS)
    out: Path = option(help="Folder to write.")
    force: bool = option(False, _FORCE_HELP, secondary=False)


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig(EvalConfig):
    """`factory eval glue | xtreme | assin2 | squad | squad2`: one or several tasks of a suite file."""

    data: str | None = option(None, "A local DIR with one folder per task (DIR/stsb/train.jsonl, DIR/panx/"
                              "test.de.jsonl) [default: each task's Hub dataset].")  # fmt: skip
    train_lang: str | None = option(None, "Language every task fine-tunes on, where each has training data in it "
                                    "[default: each task's own, from the suite file].")  # fmt: skip
    langs: str = option("all", "Languages to test: all, or a list like en,fr,de (each task tests those it has; "
                        "every task must have one).")  # fmt: skip
    tasks: str = option("all", "Tasks to run: all, or a list like cola,stsb.")


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig(EvalConfig):
    """`factory eval classify`: any sentence or pair classification set given as files."""

    train: Path = option(help="Training file.")
    validation: Path | None = option(None, "Validation file (optional).")
    test: Path = option(help="Test file.")
    labels: list[str] = option([], "Label names in id order, e.g. negative,positive [default: from the data].")
    columns: list[str] = option(["text"], "Text column, or two for pairs: premise,hypothesis.")

    def problems(self) -> list[str]:
        problems = []
        if not 1 <= len(self.columns) <= 2:
            problems.append("--columns: give one or two text columns")
        if len(self.labels) == 1:
            problems.append("--labels: give at least two labels")
        if self.data is not None:
            problems.append("--data is for the xnli/pawsx suites; classify reads --train, --validation and --test")
        return problems


# Layer of `factory eval retrieval`, as a fraction of the depth (embeddings = 0, last layer = 1). XTREME's
# Tatoeba/BUCC baselines read hidden state 7 of mBERT's 12 layers and 13 of XLM-R large's 24 (hidden state 0
# being the embeddings), after Pires et al. (2019) found that nearest-neighbour translation retrieval peaks in
# the middle layers while the top ones specialise to the pre-training objective; round(0.55 x depth) gives
# exactly those two layers. docs/retrieval.md#layer.
RETRIEVAL_LAYER = 0.55
POOLINGS = ("mean", "mean_all", "cls")


@dataclass(frozen=True, kw_only=True)
class RetrievalConfig:
    """`factory eval retrieval`: parallel-sentence retrieval (XTREME's Tatoeba/BUCC protocol), no fine-tuning."""

    SCHEMA: ClassVar[int] = 1

    model: Path = option(help="deberta-v2 model folder with spm.model, or a Hub id org/name[@revision] (e.g. "
                         "microsoft/mdeberta-v3-base).")  # fmt: skip
    data: str = option(help="Parallel text: a folder of <lang>.txt (aligned line by line) or <lang>.tsv "
                       "(pivot<TAB>translation), a .jsonl/.parquet with one column per language, or "
                       "hf:NAME[:CONFIG][@SPLIT].")  # fmt: skip
    pivot: str = option(PIVOT, "The language every other one is matched against (both directions).")
    langs: str = option("all", "Languages to test against the pivot: all, or a list like de,fr.")
    layer: float = option(RETRIEVAL_LAYER, "Hidden layer as a fraction of the depth: 0 = embeddings, 1 = last "
                          "layer (the default is XTREME's middle layer).", low=0, high=1)  # fmt: skip
    pooling: str = option("mean", "mean: over the text's tokens ([CLS]/[SEP] left out); mean_all: over every "
                          "non-pad token; cls: the [CLS] vector.", choices=POOLINGS)  # fmt: skip
    centre: bool = option(True, "Subtract each language's mean vector before the cosine (removes the "
                          "language-specific offset).")  # fmt: skip
    max_length: int = option(128, "Tokens per text, [CLS] and [SEP] included.", low=3)
    batch_size: int = option(64, "Texts per forward pass.", low=1)
    control: str | None = option(None, _CONTROL_HELP, choices=CONTROLS)
    out: Path = option(help="Folder to write.")
    force: bool = option(False, _FORCE_HELP, secondary=False)


# ---- run / publish -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """`factory run RECIPE`: the recipe's own steps are resolved from its sections (see factory/recipe.py)."""

    SCHEMA: ClassVar[int] = 1

    recipe: str = option(help="A recipe name (demo, debertina-base, ...) or a .yaml file.", cli=False)
    set: list[str] = option([], "Override a recipe value, e.g. --set steps.pretrain.max_steps=100 (repeatable).",
                            repeat=True, metavar="KEY=VALUE")  # fmt: skip
    run_dir: Path | None = option(None, "Where the steps write [default: the recipe's run_dir, else runs/NAME].")
    dry_run: bool = option(False, "Print the plan (commands, parameters, tokens, FLOPs, time, disk).", secondary=False)
    resume: bool = option(False, "Continue the pre-training in the run folder although the recipe's settings or "
                          "its inputs changed since it started (pretrain refuses what a checkpoint cannot continue, "
                          "e.g. another batch). Without it such a run is refused; an interrupted one whose settings "
                          "did not change always continues, and none is deleted.", secondary=False)  # fmt: skip
    publish: bool = option(False, "Upload to the Hub at the end (otherwise the card and folder are only staged).",
                           secondary=False)  # fmt: skip


# ---- publish -------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PublishConfig:
    """`factory publish DIR`: a staged HF folder with its model card, uploaded to the Hub."""

    SCHEMA: ClassVar[int] = 1

    model_dir: Path = option(help="The model folder to publish (or a Hub id org/name[@revision]).", cli=False)
    repo_id: str = option(help="Hub repository, namespace/name (e.g. my-org/deberta-v3-xsmall-pt).")
    private: bool = option(False, "Create the repository private (ignored if it exists).", secondary=False)
    revision: str | None = option(None, "Branch to commit to, created if needed (e.g. step-100000).")
    generator: Path | None = option(None, "Generator folder (or Hub id), uploaded as generator/ [default: the "
                                    "published generator files beside DIR, if any].")  # fmt: skip
    tokenizer: Path | None = option(None, "Folder (or Hub id) with spm.model + tokenizer files [default: DIR].")
    results: list[Path] = option([], "results.json of `factory eval` (repeatable).", repeat=True)
    language: list[str] = option([], "Language code for the card (repeatable) [default: from the manifests].",
                                 repeat=True)  # fmt: skip
    dataset: list[str] = option([], "Hub dataset id trained on, for the card (repeatable).", repeat=True)
    license: str = option("mit", "License id for the card.")
    staging: Path | None = option(None, "Folder to assemble the upload in [default: DIR-hub].")
    dry_run: bool = option(False, "Write and validate the staging folder; upload nothing.", secondary=False)

    def problems(self) -> list[str]:
        from factory.core.errors import FactoryError
        from factory.core.languages import check_languages
        from factory.publish.repo_ids import parse_repo_id

        problems = []
        try:
            parse_repo_id(self.repo_id)
        except FactoryError as e:
            problems.append(str(e))
        try:
            check_languages(self.language, "--language")  # the card's `language:` metadata: codes vocab knows
        except FactoryError as e:
            problems.append(str(e))
        return problems
