"""The scale ladder: where, on this machine, does pre-training start to beat no pre-training?

    python3 ../shared/data/real_text.py /tmp/real           # the data (Debian handbook, real translations)
    python -m bench.studies.quality --data /tmp/real --background      # the default ladder, detached; log in
                                                                       # OUT/ladder.log
    python -m bench.studies.quality --data /tmp/real --write-results   # when it is done: table + plot into RESULTS.md

Each cell is a shape (LAYERSxHIDDEN[xHEADS], from the debug preset with --layers/--hidden/--heads) and a
CPU-time budget. In a cell three arms see the same tokens (bench/studies/quality_arms.py): factory's RTD + GDES for as
many steps as fit in the budget, the same shape trained as plain MLM by `transformers` (the anchor that tells a
scale effect from a factory bug), and the random-init control. Each is measured on parallel retrieval (acc@1,
both directions, against English) and on zero-shot topic classification (fine-tune on English, test on the
others), all on paragraphs removed from the pre-training text. One vocabulary and one set of shards serve the
whole ladder (bench/studies/quality_data.py).

CPU time is the process's (`time.process_time`, all threads). One torch thread is the default because on a
shared 2-core machine a second thread mostly spins: calibrating 2x64 under load gave 1.0 CPU-s per step with
one thread and 3.7 with two (19 s wall against 8), so a two-thread budget would buy a third of the steps and
vary with the neighbours' load. With one thread CPU time is close to the work done, and cells can run side by
side.

The ladder resumes by cell and arm: OUT/<cell>-s<seed>/<arm>/done.json marks a finished arm, and a killed
factory run continues from its last checkpoint. Rerunning the same command prints the table of what is done.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import shlex
import subprocess
import sys
from pathlib import Path

from bench.cli import add_real_text, add_threads, make_parser
from bench.studies.quality_arms import Cell, Settings, collect, run_cell
from bench.studies.quality_data import ALIGNED_LANGS, prepare
from bench.studies.quality_report import plot, results_section, smallest_winner, summary

log = logging.getLogger("bench.studies.quality")
DEFAULT_CELLS = "2x64,2x128,4x128,4x256,6x256"
# Fine-tuning of the zero-shot classification: the measurements (3 epochs, lr 1e-3, 128 tokens)
FINETUNE = ("epochs=3", "learning_rate=1e-3", "max_length=128")


def parse_cells(spec: str, seeds: int) -> list[Cell]:
    """Parse "2x64,4x128x4" into cells; heads default to hidden / 32 (the debug preset's head size)."""
    cells = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        parts = item.lower().split("x")
        if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(f"--cells: {item!r} is not LAYERSxHIDDEN or LAYERSxHIDDENxHEADS (e.g. 4x128)")
        layers, hidden = int(parts[0]), int(parts[1])
        heads = int(parts[2]) if len(parts) == 3 else max(1, hidden // 32)
        if hidden % heads:
            raise SystemExit(f"--cells: {item}: {heads} heads do not divide hidden {hidden}")
        cells += [Cell(layers, hidden, heads, seed) for seed in range(seeds)]
    return cells


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__spec__, __doc__)
    add_real_text(p, help="The folder real_text.py wrote (aligned/ and topic/ too).")
    p.add_argument("--out", type=Path, default=Path("bench/quality-runs"), help="Cells, data, log (resumable).")
    p.add_argument("--cells", default=DEFAULT_CELLS, help="Shapes: LAYERSxHIDDEN[xHEADS], comma-separated.")
    p.add_argument("--budget", type=float, default=300.0, help="Pre-training CPU-seconds per cell (factory's run).")
    p.add_argument("--seeds", type=int, default=1, help="Pre-training seeds per cell.")
    p.add_argument("--best-seeds", type=int, default=3, help="Seeds for the best cell once all are done (1: off).")
    p.add_argument("--batch", type=int, default=32, help="Sequences per optimizer step (every arm).")
    p.add_argument("--seq-len", type=int, default=128, help="Tokens per pre-training sequence.")
    p.add_argument("--lr", type=float, default=None, help="Peak lr [default: the debug preset's].")
    p.add_argument("--vocab-size", default="16k", help="The ladder's one vocabulary.")
    p.add_argument("--langs", default=",".join(ALIGNED_LANGS), help="Languages (en first: the pivot).")
    p.add_argument("--retrieval-items", type=int, default=1000, help="Aligned paragraphs per language (pool).")
    p.add_argument("--topic-items", type=int, default=100_000, help="Topic items per language (all by default).")
    p.add_argument("--finetune", action="append", default=None, metavar="KEY=VALUE",
                   help=f"Classification fine-tuning (`--set`) [default: {' '.join(FINETUNE)}].")  # fmt: skip
    add_threads(p)
    p.add_argument("--background", action="store_true", help="Detach; follow OUT/ladder.log.")
    p.add_argument("--write-results", action="store_true",
                   help="Append the table and plot to bench/RESULTS.md (then fold them into its ladder section).")
    return p.parse_args(argv)


def setup_logging(out: Path, echo: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(out / "ladder.log")]
    if echo:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers)


def detach(argv: list[str], out: Path) -> None:
    """--background: the same command without the flag, in its own session, its output into OUT/ladder.out."""
    out.mkdir(parents=True, exist_ok=True)
    args = [a for a in argv if a != "--background"]
    with open(out / "ladder.out", "ab") as sink:
        child = subprocess.Popen([sys.executable, "-m", "bench.studies.quality", *args], stdout=sink, stderr=sink,
                                 stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    (out / "ladder.pid").write_text(f"{child.pid}\n")
    print(f"ladder running as pid {child.pid}; log: {out / 'ladder.log'}; rerun without --background to resume")


def best_cell(results: dict, cells: list[Cell]) -> Cell | None:
    """The smallest winning cell, else the one where factory's summed gain over the control is largest."""
    from bench.studies.quality_report import mean_std

    name = smallest_winner(results)
    if name is None:
        gains = {c: sum(mean_std(a["factory"], k)[0] - mean_std(a["control"], k)[0] for k in ("retrieval", "zero_shot"))
                 for c, a in results.items() if "factory" in a and "control" in a}  # fmt: skip
        name = max(gains, key=gains.get) if gains else None
    return next((c for c in cells if c.name == name), None)


def run_ladder(args: argparse.Namespace, cells: list[Cell]) -> dict:
    """Prepare the data, then every cell (done arms are skipped), then the extra seeds of the best cell."""
    langs = tuple(s.strip() for s in args.langs.split(",") if s.strip())
    prep = prepare(args.data, args.out, langs, args.vocab_size, args.seq_len, args.retrieval_items, args.topic_items)
    log.info("data ready: %d held-out paragraphs removed from the pre-training text", prep.held_out)
    settings = Settings(budget_cpu_s=args.budget, batch=args.batch, lr=args.lr, langs=langs,
                        finetune=tuple(args.finetune or FINETUNE))  # fmt: skip
    for cell in cells:
        log.info("cell %s", cell.folder)
        run_cell(cell, prep, settings, args.out)
    results = collect(args.out, cells)
    best = best_cell(results, cells) if args.best_seeds > 1 else None
    if best is not None:
        extra = [Cell(best.layers, best.hidden, best.heads, s) for s in range(args.seeds, args.best_seeds)]
        for cell in extra:
            log.info("best cell %s: seed %d", cell.name, cell.seed)
            run_cell(cell, prep, settings, args.out)
        cells = cells + extra
    return collect(args.out, cells)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = arguments(argv)
    cells = parse_cells(args.cells, args.seeds)
    if args.background:
        return detach(argv, args.out)
    setup_logging(args.out, echo=True)
    import torch

    torch.set_num_threads(args.threads)
    results = run_ladder(args, cells)
    text = summary(results, args.budget)
    plot_path = args.out / "ladder.png"
    plot(results, plot_path)
    print(text + f"\nplot: {plot_path}")
    (args.out / "ladder.md").write_text(text)
    if args.write_results:
        command = "python -m bench.studies.quality " + shlex.join(argv)
        saved = Path("bench") / "figures" / "quality-ladder.png"  # bench/quality-runs is not committed; the plot is
        saved.write_bytes(plot_path.read_bytes())
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        with open(Path("bench") / "RESULTS.md", "a") as f:
            f.write(results_section(text, command, date, Path("figures") / saved.name))


if __name__ == "__main__":
    main()
