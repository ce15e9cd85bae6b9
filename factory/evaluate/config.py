"""The options of `factory eval` (every suite, `classify` and `retrieval`) and the fine-tuning settings a suite
file and `--set` give. No torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.options import option
from factory.core.step_options import (
    FORCE_HELP,
    PIVOT,
)


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
    force: bool = option(False, FORCE_HELP, secondary=False)


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
    force: bool = option(False, FORCE_HELP, secondary=False)
