"""The GPU proof run: xsmall pre-trained on real text in bf16, beside the plain-MLM anchor and the random-init control.

    bash bench/device/gpu_proof.sh prepare          # here: wheels + real text into .gpu/ (see the script)
    bash bench/device/gpu_proof.sh device           # on a lent GPU (the `run` tool, carry [".gpu"]): this module

The same three-way comparison as the CPU ladder (bench/studies/quality.py, bench/studies/quality_arms.py) in one
cell: the published xsmall shape (12 layers, hidden 384), factory's RTD + GDES for as many steps as `--budget` wall
seconds buy (timed over a few steps first), the same shape as plain MLM by `transformers` on the same rows, batch, steps
and optimiser (bf16 autocast like factory's), and the control; each measured on parallel retrieval and zero-shot
topic classification. Writes OUT/proof.json and OUT/proof.md and prints the table.

`--smoke` runs the plumbing on a CPU with tiny sizes (a few steps, few evaluation items): it proves the script,
not the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bench.cli import add_real_text, make_parser
from bench.studies.quality_arms import Cell, Settings, collect, run_cell
from bench.studies.quality_data import ALIGNED_LANGS, prepare
from bench.studies.quality_report import summary

log = logging.getLogger("bench.device.gpu_proof")
# xsmall fine-tunes at a lower rate than the ladder's 2-layer cells (1e-3); 1e-4 is within the range the
# DeBERTa-v3 small models are fine-tuned at (docs/evaluation.md#xnli) while 3 epochs of ~1,000 items stay short.
FINETUNE = ("epochs=3", "learning_rate=1e-4", "max_length=128")
SMOKE_FINETUNE = ("epochs=1", "learning_rate=1e-4", "max_length=32", "batch_size=16", "micro_batch_size=16")


def arguments(argv: list[str]) -> argparse.Namespace:
    p = make_parser(__spec__, __doc__)
    add_real_text(p, help="The folder real_text.py wrote (or its copy in .gpu/).")
    p.add_argument("--out", type=Path, required=True, help="Where the cell, its data and proof.json go.")
    p.add_argument("--budget", type=float, default=150.0, help="Wall seconds of factory pre-training.")
    p.add_argument("--batch", type=int, default=128, help="Sequences per optimizer step (every arm).")
    p.add_argument("--seq-len", type=int, default=128, help="Tokens per pre-training sequence.")
    p.add_argument("--lr", type=float, default=None, help="Peak lr [default: xsmall's].")
    p.add_argument("--smoke", action="store_true", help="CPU plumbing check: tiny budget and evaluations.")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from factory.model.presets import PRESETS

    args = arguments(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        handlers=[logging.FileHandler(args.out / "proof.log"), logging.StreamHandler()])  # fmt: skip
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        raise SystemExit("no GPU here: this is the GPU proof run (use --smoke to check its plumbing on a CPU)")
    items = (40, 60) if args.smoke else (1000, 100_000)
    prep = prepare(args.data, args.out, ALIGNED_LANGS, "16k", args.seq_len, *items)
    settings = Settings(
        budget_cpu_s=2.0 if args.smoke else args.budget,
        batch=8 if args.smoke else args.batch,
        lr=args.lr,
        langs=ALIGNED_LANGS,
        finetune=SMOKE_FINETUNE if args.smoke else FINETUNE,
        calibration_steps=1 if args.smoke else 5,
        precision="bf16" if cuda and torch.cuda.is_bf16_supported() else "no",
        clock="wall",
    )
    xsmall = PRESETS["xsmall"]
    cell = Cell(xsmall.layers, xsmall.hidden, xsmall.heads, seed=0, preset="xsmall")
    run_cell(cell, prep, settings, args.out)
    results = collect(args.out, [cell])
    device = torch.cuda.get_device_name(0) if cuda else "CPU (smoke)"
    table = summary(results, settings.budget_cpu_s, clock="GPU wall")
    report = {"device": device, "precision": settings.precision, "budget_wall_s": settings.budget_cpu_s,
              "batch": settings.batch, "seq_len": args.seq_len, "finetune": list(settings.finetune),
              "results": results}  # fmt: skip
    (args.out / "proof.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "proof.md").write_text(f"GPU proof run on {device}, {settings.precision}\n\n{table}\n")
    print(f"GPU proof run on {device} ({settings.precision}):\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
