"""What `factory pretrain` takes (`TrainArgs`) and the paper's defaults it falls back to.

Defaults are the DeBERTaV3 paper's (docs/pretraining.md#hyper-parameters), so a run that names only its
data trains as the paper did; `make_plan` (plan.py) resolves the ones left as None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from factory.rtd import DEFAULT_RTD_LAMBDA

# Paper defaults (docs/pretraining.md#hyper-parameters): AdamW(0.9, 0.98), eps 1e-6, wd 0.01 (not
# bias/LayerNorm), clip 1.0, warm-up 10k.
PEAK_LR = {"large": 3e-4, "xlarge": 3e-4, "xxlarge": 3e-4}  # base/small 5e-4; xsmall (U): 5e-4 as small
DEFAULT_LR = 5e-4
BETAS = (0.9, 0.98)
EPS = 1e-6
WEIGHT_DECAY = 0.01
CLIP = 1.0
WARMUP = 10_000
PAPER_STEPS = 500_000
PAPER_BATCH = 8192


@dataclass
class TrainArgs:
    """Everything `factory pretrain` takes; the resolved copy is written into every checkpoint."""

    out: Path
    vocab: Path | None = None
    shards: Path | None = None
    preset: str = "base"
    seq_len: int | None = None  # None: the shards' length (512 for a dry run without shards)
    batch: int = PAPER_BATCH  # global batch, in sequences per optimizer step
    micro_batch: int | None = None  # sequences per process per forward; None: min(32, batch / processes)
    lr: float | None = None  # None: the paper's peak lr for the preset
    warmup: int | None = None  # None: 10k steps, at most 10% of the run
    max_steps: int | None = None
    tokens: int | None = None  # train for this many tokens instead of --max-steps
    rtd_lambda: float = DEFAULT_RTD_LAMBDA
    sharing: str = "gdes"
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that has it, else no
    dropout: float | None = None  # None: the config's 0.1
    seed: int = 0
    layout: str = "official"
    vocab_size: str | None = None  # dry run without --vocab
    save_every: int = 1000
    keep: int = 3
    log_every: int = 10
    log_with: tuple[str, ...] = ()
    resume: str | None = None  # "auto" or a checkpoint folder
    force: bool = False
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile each layer (fullgraph)
    peak_tflops: float | None = None  # for MFU; None: from the GPU name
    assume_tflops: float = 100.0  # dry run: time at this achieved throughput
    assume_tokens_per_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }
