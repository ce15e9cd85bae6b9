"""Ours vs Hugging Face `transformers` DebertaV2 on the same config, weights and inputs, in one run.

    python -m bench.step --preset xsmall --seq-len 512 --batch 4            # CPU
    python -m bench.step --preset base --seq-len 512 --batch 32 --device cuda --dtype bf16

Each (implementation, mode) runs in its own process, so peak memory is that measurement's alone:
peak RSS growth on CPU, `torch.cuda.max_memory_allocated` on GPU. Prints a table with ratios
(ours / HF: < 1 is faster) and writes JSON next to it. Append notable runs to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("forward", "forward+backward")


def _load(impl: str, folder: str, device: str):
    if impl == "ours":
        from factory.model import load_model

        model = load_model(folder)
    else:
        import transformers

        model = transformers.AutoModel.from_pretrained(folder)
    return model.to(device)


def _child(args: argparse.Namespace) -> dict:
    """One measurement: build, warm up, time `iters` steps, report median time and peak memory."""
    import torch

    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = _load(args.impl, args.folder, args.device)
    model.train(args.mode != "forward")
    if args.mode != "forward":  # no dropout: compare the maths, not RNG traffic
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        for m in model.modules():
            if hasattr(m, "dropout_p"):
                m.dropout_p = 0.0
    vocab = model.config.vocab_size
    ids = torch.randint(4, vocab, (args.batch, args.seq_len), device=args.device)
    mask = torch.ones_like(ids)
    cuda = args.device.startswith("cuda")

    def step():
        with torch.autocast(args.device.split(":")[0], dtype=dtype, enabled=args.dtype != "fp32"):
            if args.mode == "forward":
                with torch.no_grad():
                    model(input_ids=ids, attention_mask=mask)
            else:
                out = model(input_ids=ids, attention_mask=mask)
                hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
                hidden.float().square().mean().backward()
                model.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # KiB on Linux; growth over the warm state
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base_rss) / 1024
    return {
        "impl": args.impl,
        "mode": args.mode,
        "seconds": median,
        "tokens_per_s": args.batch * args.seq_len / median,
        "peak_mib": peak,
    }


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="xsmall")
    p.add_argument("--vocab-size", default="128k")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="where to write results (default bench/step-*.json)")
    p.add_argument("--child", nargs=3, metavar=("IMPL", "MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        args.impl, args.mode, args.folder = args.child
        print(json.dumps(_child(args)))
        return

    from factory.model import build_model, save_model
    from factory.presets import VocabSize, get_preset

    config = get_preset(args.preset).config(VocabSize.parse(args.vocab_size))
    results = []
    with tempfile.TemporaryDirectory() as folder:
        save_model(build_model(config, "none", seed=0), folder)
        for mode in MODES:
            for impl in ("hf", "ours"):
                cmd = [sys.executable, "-m", "bench.step", "--child", impl, mode, folder]
                for flag in ("preset", "vocab_size", "seq_len", "batch", "device", "dtype", "iters", "warmup"):
                    cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
    report = {
        "machine": _machine(args.device),
        "setting": {k: getattr(args, k) for k in ("preset", "vocab_size", "seq_len", "batch", "device", "dtype")},
        "results": results,
    }
    print(f"{args.preset}, L={args.seq_len}, batch {args.batch}, {args.device} {args.dtype} — {report['machine']}")
    print(f"{'mode':<18} {'impl':<5} {'time ms':>9} {'tokens/s':>10} {'peak MiB':>9} {'ours/HF':>8}")
    for mode in MODES:
        hf, ours = (next(r for r in results if r["mode"] == mode and r["impl"] == i) for i in ("hf", "ours"))
        for r in (hf, ours):
            ratio = f"{ours['seconds'] / hf['seconds']:.2f}x" if r is ours else ""
            print(
                f"{mode:<18} {r['impl']:<5} {r['seconds'] * 1e3:>9.1f} {r['tokens_per_s']:>10.0f} "
                f"{r['peak_mib']:>9.0f} {ratio:>8}"
            )
    path = args.json or Path(__file__).parent / f"step-{args.preset}-{args.seq_len}-{args.device}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
