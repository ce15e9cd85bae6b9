"""The training paths on a lent GPU, in one command (bench/device/gpu_check.sh runs this; under 8 minutes).

    bash bench/device/gpu_check.sh --prepare  # here, once: .gpu-check/data (vocab + 512-token shards of the demo text)
    bash bench/device/gpu_check.sh            # on the GPU machine: carry .gpu-check (the device README's `carry`)
    bash bench/device/gpu_check.sh --cpu      # here: the same plumbing at tiny sizes on CPU

Each case is 20 steps of `factory pretrain` itself (preset base, L=512, batch 64 in one micro-batch, dropout 0
so that FlexAttention can run and HF compares like for like): bf16, fp16 (GradScaler: unscaled once, clipped
per network), bf16 + --compile, bf16 + FACTORY_ATTENTION=flex, and with 2 GPUs DDP and FSDP2 (2 processes,
the same global batch). Then bench.speed.step's rtd-step, ours and HF's, at the same sizes in bf16 and fp16. One
table: tokens/s and MFU of the last 10 steps, peak memory; a case that fails prints its last error line and the
rest go on. The device has no network, so nothing is fetched there: the data comes with .gpu-check, and the
factory children run with `datasets`, `langdetect` and `matplotlib` made unimportable (the device image lacks
the first two; `--cpu` proves here that pretraining needs none of them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.cli import make_parser

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".gpu-check" / "data"
MARK = "GPU_CHECK "  # the line a child prints its figures on
ABSENT = ("datasets", "langdetect", "matplotlib")  # not in the device image, or not needed to pretrain


@dataclass
class Case:
    name: str
    flags: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    processes: int = 1
    dtype: str = "bf16"  # the bench.speed.step row it is shown beside
    skip: str | None = None


@dataclass
class Sizes:
    preset: str
    batch: int
    steps: int
    log_every: int
    device: str


GPU = Sizes("base", 64, 20, 10, "cuda")
CPU = Sizes("debug", 4, 4, 2, "cpu")


def cases(sizes: Sizes, gpus: int) -> list[Case]:
    cpu = sizes.device == "cpu"
    two = None if cpu or gpus >= 2 else f"skipped: {gpus} GPU(s), 2 needed"
    return [
        Case("bf16", ["--mixed-precision", "bf16"]),
        Case("fp16", ["--mixed-precision", "fp16"], dtype="fp16", skip="skipped: fp16 needs a GPU" if cpu else None),
        Case("compile", ["--mixed-precision", "bf16", "--compile"]),
        Case("flex", ["--mixed-precision", "bf16"], env={"FACTORY_ATTENTION": "flex"},
             skip="skipped: torch's FlexAttention has no backward on CPU" if cpu else None),
        Case("ddp x2", ["--mixed-precision", "bf16"], processes=2, skip=two),
        Case("fsdp2 x2", ["--mixed-precision", "bf16"], processes=2, skip="skipped: FSDP needs GPUs" if cpu else two,
             env={"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}),
    ]  # fmt: skip


# ---- the data ------------------------------------------------------------------------------------
def prepare(seq_len: int = 512) -> None:
    """vocab (2000 pieces, the demo recipe's) and shards of recipes/demo/corpus, into .gpu-check/data."""
    corpus = ROOT / "recipes" / "demo" / "corpus"
    langs = sorted(p.stem for p in corpus.glob("*.txt"))
    vocab = ["vocab", *[f"--corpus={lang}={corpus / lang}.txt" for lang in langs], "--langs", ",".join(langs)]
    vocab += ["--size", "2000", "--out", str(DATA / "vocab"), "--force"]
    shards = ["shards", "--vocab", str(DATA / "vocab"), "--corpus", str(corpus), "--seq-len", str(seq_len)]
    shards += ["--out", str(DATA / "shards"), "--force"]
    for argv in (vocab, shards):
        subprocess.run([sys.executable, "-m", "factory", "-q", *argv], cwd=ROOT, check=True)
    print(f"wrote {DATA}: carry .gpu-check to the GPU machine")


# ---- one case (the child) ------------------------------------------------------------------------
def child(out: Path, argv: list[str]) -> None:
    """`factory pretrain ARGV` in this process; rank 0 prints the last record and the peak memory."""
    import torch

    for name in ABSENT:
        sys.modules[name] = None  # an import of any of them fails, as on the device
    from factory.cli.main import cli

    cli.main(args=argv, standalone_mode=False)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    last = json.loads((out / "train.jsonl").read_text().splitlines()[-1])
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        from bench.timing import peak_rss_mib

        peak = peak_rss_mib() / 1024  # GiB, the whole process
    print(MARK + json.dumps({"tokens_per_s": last["tokens_per_s"], "mfu": last["mfu"], "peak_gib": peak}))


def pretrain_argv(sizes: Sizes, case: Case, out: Path) -> list[str]:
    argv = ["pretrain", "--vocab", str(DATA / "vocab"), "--shards", str(DATA / "shards"), "--preset", sizes.preset]
    argv += ["--batch", str(sizes.batch), "--micro-batch", str(sizes.batch // case.processes)]
    argv += ["--max-steps", str(sizes.steps), "--log-every", str(sizes.log_every), "--warmup", "2"]
    argv += ["--dropout", "0", "--save-every", str(sizes.steps), "--keep", "1", "--out", str(out), "--force"]
    return argv + case.flags


def run_case(sizes: Sizes, case: Case, work: Path, timeout: float) -> dict:
    """One case in its own process(es); its figures, or {"error": the last line it printed}."""
    out = work / case.name.replace(" ", "-")
    launch = [sys.executable]
    if case.processes > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(case.processes)]
    env = {**os.environ, **case.env, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    if sizes.device == "cpu":
        env.update({"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"})
    cmd = [*launch, str(Path(__file__)), "--child", str(out), "--", *pretrain_argv(sizes, case, out)]
    try:
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line]
    return {"error": (errors or lines or [f"exit {done.returncode}"])[-1][-300:]}


# ---- HF beside it --------------------------------------------------------------------------------
def hf_step(sizes: Sizes, dtype: str, work: Path, timeout: float) -> dict:
    """bench.speed.step's rtd-step, ours and HF's, at the cases' sizes: {"ours": {...}, "hf": {...}} or an error."""
    from factory.model.tokenizer import Tokenizer

    pieces = Tokenizer.from_folder(DATA / "vocab").num_pieces
    path = work / f"step-{dtype}.json"
    cmd = [sys.executable, "-m", "bench.speed.step", "--preset", sizes.preset, "--seq-len", "512", "--batch"]
    cmd += [str(sizes.batch), "--device", sizes.device, "--dtype", dtype, "--vocab-size", str(pieces)]
    cmd += ["--modes", "rtd-step", "--iters", "10" if sizes.device == "cuda" else "2", "--warmup", "2"]
    cmd += ["--json", str(path)]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][-300:]}
    results = json.loads(path.read_text())["results"]
    return {r["impl"]: {"tokens_per_s": r["tokens_per_s"], "mfu": r.get("mfu"), "peak_gib": r["peak_mib"] / 1024}
            for r in results}  # fmt: skip


# ---- the table -----------------------------------------------------------------------------------
def figures(result: dict | None) -> str:
    if not result:
        return f"{'':>10} {'':>6} {'':>8}"
    mfu = f"{result['mfu']:.1%}" if result.get("mfu") is not None else "-"
    return f"{result['tokens_per_s']:>10,.0f} {mfu:>6} {result['peak_gib']:>8.2f}"


def report(rows: list[tuple[Case, dict]], hf: dict[str, dict]) -> None:
    cols = f"{'tok/s':>10} {'MFU':>6} {'peak GiB':>8}"
    step = "bench.speed.step rtd-step"
    print(f"{'':<10} | {'factory pretrain':<26} | {step + ', ours':<26} | {step + ', HF':<26}")
    print(f"{'case':<10} | {cols} | {cols} | {cols}")
    for case, result in rows:
        if "error" in result or "skip" in result:
            print(f"{case.name:<10} | {result.get('skip') or 'FAILED: ' + result['error']}")
            continue
        step = hf.get(case.dtype, {}) if case.name in ("bf16", "fp16") else {}
        if "error" in step:
            print(f"{case.name:<10} | {figures(result)} | bench.speed.step FAILED: {step['error']}")
        else:
            print(f"{case.name:<10} | {figures(result)} | {figures(step.get('ours'))} | {figures(step.get('hf'))}")


def main() -> None:
    p = make_parser(__spec__, __doc__)
    p.add_argument("--prepare", action="store_true", help="build .gpu-check/data here (needs `datasets`)")
    p.add_argument("--cpu", action="store_true", help="the plumbing at tiny sizes on CPU")
    p.add_argument("--budget", type=float, default=420.0, help="seconds for all cases; later ones are skipped")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / ".gpu-check")))
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args, rest = p.parse_known_args()
    if args.child:
        return child(args.child, rest[1:] if rest[:1] == ["--"] else rest)
    if args.prepare:
        return prepare()
    if not (DATA / "shards").is_dir():
        sys.exit(f"no {DATA}: run `bash bench/device/gpu_check.sh --prepare` where `datasets` is installed, "
                 "and carry it")
    import torch

    sizes = CPU if args.cpu else GPU
    if not args.cpu and not torch.cuda.is_available():
        sys.exit("no CUDA device: use --cpu for the plumbing")
    gpus = torch.cuda.device_count() if not args.cpu else 0
    work = args.out / "gpu-check-runs"
    work.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    for case in cases(sizes, gpus):
        left = args.budget - (time.perf_counter() - start)
        result = {"skip": case.skip} if case.skip else {"skip": "skipped: out of time"} if left < 30 else None
        rows.append((case, result or run_case(sizes, case, work, timeout=min(left, 200))))
        print(f"{case.name}: {rows[-1][1]}", flush=True)
    hf = {}
    for dtype in ("bf16", "fp16") if not args.cpu else ("fp32",):
        left = args.budget + 60 - (time.perf_counter() - start)
        hf[dtype] = hf_step(sizes, dtype, work, timeout=max(left, 30)) if left > 30 else {"error": "out of time"}
    if args.cpu:
        hf["bf16"] = hf["fp32"]  # CPU: bench.speed.step in fp32 beside the bf16 case
    print(f"\n{sizes.preset}, L=512, batch {sizes.batch}, {sizes.steps} steps, {gpu_name(args.cpu)}")
    report(rows, hf)
    (args.out / "gpu_check.json").write_text(json.dumps({"cases": [(c.name, r) for c, r in rows], "hf": hf}) + "\n")


def gpu_name(cpu: bool) -> str:
    import torch

    return "CPU" if cpu else f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}"


if __name__ == "__main__":
    main()
