"""Ours vs Hugging Face `transformers` DebertaV2 on the same config, weights and inputs, in one run.

    python -m bench.speed.step --preset xsmall --seq-len 512 --batch 4            # CPU
    python -m bench.speed.step --preset base --seq-len 512 --batch 32 --device cuda --dtype bf16

Modes: the bare encoder's forward and forward+backward (same weights for both), and a full RTD training step
(generator + discriminator, GDES, AdamW): ours is `factory.pretrain.rtd_step`; HF's is the same recipe built
from `DebertaV2ForMaskedLM` + `DebertaV2ForTokenClassification` (1 label), fed the discriminator's embedding
as `inputs_embeds` (= stop_grad(E_G) + delta).

Each (implementation, mode) runs in its own process, so peak memory is that measurement's alone:
peak RSS on CPU (the whole process: libraries and weights included), `torch.cuda.max_memory_allocated`
on GPU. Prints a table with ratios
(ours / HF: < 1 is faster) and writes JSON next to it. On CPU it also prints the floor: the encoder's matrix
products alone at the best rate this machine reaches on their shapes, which no implementation of the same
fp32 maths can beat. `--compile` runs ours with every layer through torch.compile. Append notable runs to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cli import make_parser
from bench.timing import peak_rss_mib
from factory.pretrain.config import RTD_LAMBDA  # the default, not a copy (docs/pretraining.md#rtd-and-gdes)

MODES = ("forward", "forward+backward", "rtd-step")


def _load(impl: str, folder: str, device: str):
    if impl == "ours":
        from factory.model import load_model

        model = load_model(folder)
    else:
        import transformers

        model = transformers.AutoModel.from_pretrained(folder)
    return model.to(device)


def _encoder_step(args: argparse.Namespace):
    """forward / forward+backward of the bare encoder loaded from the shared folder."""
    import torch

    model = _load(args.impl, args.folder, args.device)
    if args.impl == "ours":
        _maybe_compile(model, args)
    model.train(args.mode != "forward")
    _no_dropout(model)
    ids = torch.randint(4, model.config.vocab_size - 100, (args.batch, args.seq_len), device=args.device)
    mask = torch.ones_like(ids)

    def step():
        if args.mode == "forward":
            with torch.no_grad():
                model(input_ids=ids, attention_mask=mask)
            return
        out = model(input_ids=ids, attention_mask=mask)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        hidden.float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    return step


def _maybe_compile(model, args: argparse.Namespace) -> None:
    """--compile: ours with every layer through torch.compile (HF stays eager)."""
    if args.compile:
        from factory.model.encoder import compile_layers

        compile_layers(model)


def _no_dropout(model) -> None:
    """Compare the maths, not RNG traffic."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if hasattr(m, "dropout_p"):
            m.dropout_p = 0.0


def _ours_rtd(args: argparse.Namespace):
    import torch

    from factory.model.presets import VocabSize
    from factory.pretrain.optim import build_rtd, make_optimizer, rtd_step

    pieces = VocabSize.parse(args.vocab_size).pieces
    model = build_rtd(args.preset, pieces, "gdes", seed=0).to(args.device).train()
    _maybe_compile(model, args)
    _no_dropout(model)
    optimizer = make_optimizer(model, 1e-4)
    ids = torch.randint(4, pieces, (args.batch, args.seq_len), device=args.device)
    ids[:, 0], ids[:, -1] = 1, 2
    return lambda: rtd_step(model, optimizer, ids, RTD_LAMBDA)


def _hf_rtd(args: argparse.Namespace):
    """The same step from transformers' modules: MLM generator (logits at every position, as HF computes
    them), discriminator with a 1-label token head, GDES through inputs_embeds, one AdamW."""
    import torch
    import torch.nn.functional as F
    import transformers

    from factory.model.presets import VocabSize, get_preset
    from factory.pretrain.rtd import MASK_PROB, rtd_loss

    vocab = VocabSize.parse(args.vocab_size)
    preset = get_preset(args.preset)
    hf = preset.config(vocab).to_hf()
    torch.manual_seed(0)
    gen = transformers.DebertaV2ForMaskedLM(
        transformers.DebertaV2Config(**{**hf, "num_hidden_layers": preset.generator_layers})
    )
    disc = transformers.DebertaV2ForTokenClassification(transformers.DebertaV2Config(**{**hf, "num_labels": 1}))
    nets = torch.nn.ModuleDict({"gen": gen, "disc": disc}).to(args.device).train()
    _no_dropout(nets)
    delta = torch.nn.Parameter(torch.zeros_like(gen.deberta.embeddings.word_embeddings.weight))
    optimizer = torch.optim.AdamW([*nets.parameters(), delta], lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
    ids = torch.randint(4, vocab.pieces, (args.batch, args.seq_len), device=args.device)
    ids[:, 0], ids[:, -1] = 1, 2
    special = ids < 4

    def step():
        masked = (torch.rand(ids.shape, device=ids.device) < MASK_PROB) & ~special
        logits = gen(input_ids=ids.masked_fill(masked, vocab.pieces)).logits  # (B, L, V)
        picked = logits[masked]
        mlm_sum = F.cross_entropy(picked.float(), ids[masked], reduction="sum")
        with torch.no_grad():
            sampled = torch.multinomial(picked.float().softmax(-1), 1).squeeze(-1)
        replaced = ids.clone()
        replaced[masked] = sampled
        table = gen.deberta.embeddings.word_embeddings.weight.detach() + delta
        out = disc(inputs_embeds=F.embedding(replaced, table)).logits.squeeze(-1)
        rtd_sum = F.binary_cross_entropy_with_logits(out.float(), (replaced != ids).float(), reduction="sum")
        rtd_loss(mlm_sum, rtd_sum, picked.shape[0], ids.numel(), RTD_LAMBDA).backward()  # the same loss as ours
        torch.nn.utils.clip_grad_norm_([*nets.parameters(), delta], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _child(args: argparse.Namespace) -> dict:
    """One measurement: build, warm up, time `iters` steps, report median time and peak memory."""
    import torch

    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if args.mode == "rtd-step":
        body = _ours_rtd(args) if args.impl == "ours" else _hf_rtd(args)
    else:
        body = _encoder_step(args)
    cuda = args.device.startswith("cuda")

    def step():
        with torch.autocast(args.device.split(":")[0], dtype=dtype, enabled=args.dtype != "fp32"):
            body()
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # peak resident set of this process (KiB on Linux)
        peak = peak_rss_mib()
    result = {
        "impl": args.impl,
        "mode": args.mode,
        "seconds": median,
        "tokens_per_s": args.batch * args.seq_len / median,
        "peak_mib": peak,
    }
    if args.mode == "rtd-step" and cuda:
        result["mfu"] = _mfu(args, median)
    return result


def _mfu(args: argparse.Namespace, seconds: float) -> float:
    """Model FLOPs (generator + discriminator, factory.pretrain.flops_per_step) / time / the GPU's dense peak."""
    import torch

    from factory.model.presets import VocabSize
    from factory.pretrain.loop import peak_tflops
    from factory.pretrain.plan import count_rtd_parameters, flops_per_step

    vocab = VocabSize.parse(args.vocab_size)
    flops = flops_per_step(args.preset, vocab, args.seq_len, args.batch, count_rtd_parameters(args.preset, vocab))
    peak = peak_tflops(torch.cuda.get_device_name(), None)
    return flops / seconds / (peak * 1e12) if peak else float("nan")


def _encoder_matmul_flops(config, batch: int, seq_len: int) -> float:
    """Forward FLOPs of the encoder's matrix products: Q/K/V/O and the FFN (their weights exactly), plus the
    attention's score products (backward is twice this)."""
    from factory.pretrain.plan import attention_flops

    tokens, h = batch * seq_len, config.hidden_size
    dense = 2 * tokens * (4 * h * h + 2 * h * config.intermediate_size)
    return float(config.num_hidden_layers * (dense + attention_flops(config, tokens, seq_len)))


def _gemm_rate(config, batch: int, seq_len: int) -> float:
    """The best fp32 FLOP/s this machine reaches on the model's own product shapes (an optimistic peak)."""
    import torch

    tokens, h, ffn = batch * seq_len, config.hidden_size, config.intermediate_size
    heads, d = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    shapes = [((tokens, h), (h, h)), ((tokens, h), (h, ffn)), ((tokens, ffn), (ffn, h))]
    shapes += [((batch * heads, seq_len, d), (batch * heads, d, seq_len))]
    shapes += [((batch * heads, seq_len, seq_len), (batch * heads, seq_len, d))]
    best = 0.0
    for a_shape, b_shape in shapes:
        a, b = torch.randn(a_shape), torch.randn(b_shape)
        flops = 2 * a.numel() * b_shape[-1]
        for _ in range(2):
            torch.matmul(a, b)
        t0 = time.perf_counter()
        for _ in range(5):
            torch.matmul(a, b)
        best = max(best, 5 * flops / (time.perf_counter() - t0))
    return best


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _print_floor(config, args: argparse.Namespace, results: list[dict]) -> dict:
    """The encoder's matrix products alone, at the best rate this machine reaches on their shapes: no
    implementation of the same fp32 maths can run faster than this."""
    rate = _gemm_rate(config, args.batch, args.seq_len)
    forward = _encoder_matmul_flops(config, args.batch, args.seq_len)
    floor = {"gemm_gflops": rate / 1e9}
    for mode, flops in (("forward", forward), ("forward+backward", 3 * forward)):
        hf = next(r for r in results if r["mode"] == mode and r["impl"] == "hf")
        floor[mode] = {"gflop": flops / 1e9, "seconds": flops / rate, "of_hf": flops / rate / hf["seconds"]}
        print(
            f"floor {mode:<18} {flops / 1e9:.0f} GFLOP of matrix products at {rate / 1e9:.0f} GFLOP/s "
            f"(this machine's best on these shapes) = {flops / rate * 1e3:.0f} ms = {floor[mode]['of_hf']:.2f}x HF"
        )
    return floor


def main() -> None:
    p = make_parser(__spec__, __doc__)
    p.add_argument("--preset", default="xsmall")
    p.add_argument("--vocab-size", default="128k")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="ours: torch.compile each layer (HF stays eager)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    p.add_argument("--json", type=Path, default=None, help="where to write results (default bench/step-*.json)")
    p.add_argument("--child", nargs=3, metavar=("IMPL", "MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = p.parse_args()
    modes = [m for m in MODES if m in args.modes.split(",")]
    if not modes or len(modes) != len(args.modes.split(",")):
        p.error(f"--modes {args.modes}: use a comma-separated subset of {', '.join(MODES)}")

    if args.child:
        args.impl, args.mode, args.folder = args.child
        print(json.dumps(_child(args)))
        return

    from factory.model import build_model, save_model
    from factory.model.presets import VocabSize, get_preset

    config = get_preset(args.preset).config(VocabSize.parse(args.vocab_size))
    results = []
    with tempfile.TemporaryDirectory() as folder:
        save_model(build_model(config, "none", seed=0), folder)
        for mode in modes:
            for impl in ("hf", "ours"):
                cmd = [sys.executable, "-m", "bench.speed.step", "--child", impl, mode, folder]
                for flag in ("preset", "vocab_size", "seq_len", "batch", "device", "dtype", "iters", "warmup"):
                    cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
                cmd += ["--compile"] if args.compile else []
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
    report = {
        "machine": _machine(args.device),
        "setting": {
            k: getattr(args, k) for k in ("preset", "vocab_size", "seq_len", "batch", "device", "dtype", "compile")
        },
        "results": results,
    }
    print(f"{args.preset}, L={args.seq_len}, batch {args.batch}, {args.device} {args.dtype} — {report['machine']}")
    print(f"{'mode':<18} {'impl':<5} {'time ms':>9} {'tokens/s':>10} {'peak MiB':>9} {'ours/HF':>8} {'MFU':>6}")
    for mode in modes:
        hf, ours = (next(r for r in results if r["mode"] == mode and r["impl"] == i) for i in ("hf", "ours"))
        for r in (hf, ours):
            ratio = f"{ours['seconds'] / hf['seconds']:.2f}x" if r is ours else ""
            mfu = f"{r['mfu']:.1%}" if "mfu" in r else "-"
            print(
                f"{mode:<18} {r['impl']:<5} {r['seconds'] * 1e3:>9.1f} {r['tokens_per_s']:>10.0f} "
                f"{r['peak_mib']:>9.0f} {ratio:>8} {mfu:>6}"
            )
    print("ours/HF: time ratio (< 1 is faster). Peak MiB: process RSS on CPU, max allocated on GPU.")
    if args.device == "cpu" and {"forward", "forward+backward"} <= set(modes):
        report["floor"] = _print_floor(config, args, results)
    path = args.json or Path(__file__).parents[1] / f"step-{args.preset}-{args.seq_len}-{args.device}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
