"""The options of `factory pretrain` (the paper's defaults cite docs/) and the grammar of its language mixing
flags (`--alpha`, `--alpha-schedule`, `--language-schedule`), which mixing.py builds the mix from.

Every step's config is a frozen dataclass: the only place an option's default, type, bounds and help text
are written. The CLI options, the recipe keys and the manifests' `config` sections are all derived from these
fields (see factory/core/options.py for how). `SCHEMA` is each config's version, written into the manifest
with the values; a field added later gets a default, so an older manifest's config still reads.

This module imports no torch: `factory --help` builds every command's options from it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.options import option
from factory.core.step_options import (
    LAYOUT_HELP,
    LAYOUTS,
    PIVOT,
    size_problems,
)
from factory.model.init_config import PRESET_NAMES, ShapeOptions

MASKING = ("spread", "official")  # which mask windows are kept (factory.pretrain.rtd.choose_masked)


# Pre-training defaults of the DeBERTaV3 paper (docs/pretraining.md#hyper-parameters)
PAPER_BATCH = 8192  # sequences per optimizer step


PAPER_STEPS = 500_000

WARMUP = 10_000

RTD_LAMBDA = 50.0  # the paper's lambda (the official scripts ran with 10; docs/pretraining.md#rtd-and-gdes)


# Peak learning rates: 5e-4 for base/small (xsmall takes small's), 3e-4 for large and the v2 sizes above it
PEAK_LR = {"large": 3e-4, "xlarge": 3e-4, "xxlarge": 3e-4}


DEFAULT_LR = 5e-4


# Continued pre-training (`--init-from`), the official continue recipes' (experiments/language_model/rtd.sh,
# deberta-v3-{xsmall,small}-continue: lr 5e-5, 10k warm-up steps; rtd_task.py's default lambda 10)
CONTINUE_LR = 5e-5


UPDATE_ORDERS = ("joint", "official")  # how a step updates the two networks (factory/pretrain/loop.py)

MAX_MICRO_BATCH = 32  # sequences per process per forward when --micro-batch is not given

MIX_ALPHA = 0.3  # pre-training's language sampling exponent, XLM-R's (docs/pretraining.md#language-sampling)


# --probe's interval when --probe-every is not given: every 10th logged record. A probe reads each text once,
# forward only (at 1,000 items x 7 languages about 0.3M tokens, a tenth of one step's 4M tokens fwd+bwd at the
# paper's 8192 x 512 batch), so at 10 x the default --log-every 10 it costs well under 1% of a real run, and
# it lands in a record that is logged anyway.
PROBE_LOGS = 10


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
    layout: str | None = option(None, LAYOUT_HELP + " [default: official]", choices=LAYOUTS)
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
            problems += mixing_problems(self)
        if self.probe_every is not None and self.probe_every % self.log_every:
            problems.append(
                f"--probe-every {self.probe_every} is not a multiple of --log-every {self.log_every} (the probe's "
                "figures go into that step's record)"
            )
        return problems


def parse_alpha_schedule(items: list[str]) -> list[tuple[float, float]]:
    """`0:0.7,0.6:0.5,0.9:0.3` -> [(0.0, 0.7), (0.6, 0.5), (0.9, 0.3)]: (fraction of the run, α) from there on."""
    phases = []
    for item in items:
        start, sep, alpha = item.partition(":")
        if not sep:
            raise ValueError(
                f"--alpha-schedule {item!r} is not FRACTION:ALPHA (e.g. 0:0.7,0.6:0.5,0.9:0.3; in YAML quote it, "
                "or 0:0.7 reads as a base-60 number)"
            )
        phases.append((_number(start, "a fraction of the run", f"--alpha-schedule {item!r}"),
                       _number(alpha, "an alpha", f"--alpha-schedule {item!r}")))  # fmt: skip
    if not phases or phases[0][0] != 0:
        raise ValueError("--alpha-schedule must start at 0 (the first phase begins with the run)")
    for (a, _), (b, _) in zip(phases, phases[1:], strict=False):
        if b <= a:
            raise ValueError(f"--alpha-schedule: the fractions must increase ({a:g} then {b:g})")
    for start, alpha in phases:
        if not 0 <= start < 1:
            raise ValueError(f"--alpha-schedule: {start:g} is not a fraction of the run in [0, 1)")
        _check_alpha(alpha, "--alpha-schedule")
    return phases


def parse_language_schedule(items: list[str]) -> dict[str, float]:
    """`sw:0.6,yo:0.9` -> {"sw": 0.6, "yo": 0.9}: the fraction of the run from which each language is drawn."""
    entries: dict[str, float] = {}
    for item in items:
        lang, sep, start = item.rpartition(":")
        if not sep or not lang:
            raise ValueError(f"--language-schedule {item!r} is not LANG:FRACTION (e.g. sw:0.6)")
        if lang in entries:
            raise ValueError(f"--language-schedule names {lang} twice")
        entries[lang] = _number(start, "a fraction of the run", f"--language-schedule {item!r}")
        if not 0 <= entries[lang] < 1:
            raise ValueError(f"--language-schedule {item!r}: {start} is not a fraction of the run in [0, 1)")
    return entries


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not {what}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} is not a finite number")
    return value


def _check_alpha(alpha: float, flag: str) -> None:
    if not 0 < alpha <= 1:
        raise ValueError(f"{flag}: alpha {alpha:g} must be > 0 and <= 1 (p_i ∝ n_i^alpha)")


def mixing_problems(config) -> list[str]:
    """The mixing flags' own problems, for PretrainConfig.problems() (the shards' languages are checked by
    factory.pretrain.mixing.build_mix)."""
    problems = []
    if config.alpha is not None and config.alpha_schedule:
        problems.append("give --alpha or --alpha-schedule, not both")
    for parse, value in ((parse_alpha_schedule, config.alpha_schedule),
                         (parse_language_schedule, config.language_schedule)):  # fmt: skip
        try:
            parse(value) if value else None
        except ValueError as e:
            problems.append(str(e))
    return problems
