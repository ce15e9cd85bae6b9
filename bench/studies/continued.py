"""Continued pre-training on real text (docs/derive.md): the generator rule and the enhanced mask decoder, measured.

    python -m bench.studies.continued --data DATA --out OUT     # bench/RESULTS.md's run 2 (the defaults)

A 4 x 128 model at 16 x 128 tokens a step: 2,000 parent steps and 5 x 300 continued ones (the parent took 53
minutes of wall time with one thread on the 2 shared cores of 2026-12-03, each arm 3-4 minutes).

1. A parent: factory pre-trains a small model (4 layers x 128, its generator 2 layers, with the EMD: `--emd on`)
   on en, es, fr and de (the Debian handbook text, its last paragraphs held out), the vocabulary built over those
   and pt. No published generator can be read here (no network), so this parent stands in for one: a generator
   trained with the EMD, in factory's folders, honestly labelled as factory's.
2. The EMD: the parent's generator on held-out text of its languages, with the decoder (as trained) and without
   it (the same weights through the plain MLM head, what `transformers` computes).
3. The generator rule: the parent's discriminator alone (exported without its generator) continued on pt for the
   same steps and tokens, its generator made by each rule (fresh, lower-half), with a generator-only warm-up of
   10% of the run or none (`-no-warmup`), beside continuing with the parent's real generator (the published
   case). Each arm's checkpoints are read back: held-out pt MLM loss of its generator, and the discriminator's
   held-out RTD loss and accuracy against replacements from one common generator (the parent's, frozen), so the
   discriminators are compared on the same task.

Writes OUT/results.json, OUT/results.md and OUT/continued.png; each run folder is kept and reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.cli import add_real_text, make_parser

log = logging.getLogger("bench.studies.continued")
PARENT_LANGS = ("en", "es", "fr", "de")
NEW_LANG = "pt"
HELD_OUT = 60  # last paragraphs of each language's text, never trained on
SEQ_LEN = 128
EVAL_SEED = 12345  # the masks and samples of the held-out evaluation: the same for every arm and checkpoint


def arguments(argv=None) -> argparse.Namespace:
    p = make_parser(__spec__, __doc__)
    add_real_text(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--parent-steps", type=int, default=2000)
    p.add_argument("--continue-steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--every", type=int, default=50, help="checkpoint (and evaluation) interval of the arms")
    p.add_argument("--arms", default="published,lower-half,fresh,lower-half-no-warmup,fresh-no-warmup")
    return p.parse_args(argv)


# ---- data ----------------------------------------------------------------------------------------
def split_text(data: Path, out: Path, langs: tuple[str, ...]) -> None:
    """OUT/text/<lang>.txt (training) and OUT/held-out/<lang>.txt (the last HELD_OUT paragraphs)."""
    for lang in langs:
        lines = [x for x in (data / f"{lang}.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
        for name, part in (("text", lines[:-HELD_OUT]), ("held-out", lines[-HELD_OUT:])):
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / f"{lang}.txt").write_text("\n".join(part) + "\n", encoding="utf-8")


def factory(*argv: str | Path) -> None:
    """`python -m factory ...` in a subprocess (its own torch, its own RNG), quiet; raises on failure."""
    command = [sys.executable, "-m", "factory", "-q", *map(str, argv)]
    log.info("%s", " ".join(command[2:]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}  # one thread: a shared 2-core machine
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")


def prepare(args) -> dict[str, Path]:
    out = args.out
    split_text(args.data, out, (*PARENT_LANGS, NEW_LANG))
    vocab, parent_shards, pt_shards = out / "vocab", out / "shards-parent", out / "shards-pt"
    if not (vocab / "spm.model").is_file():
        corpus = [f"{lang}={out / 'text' / f'{lang}.txt'}" for lang in (*PARENT_LANGS, NEW_LANG)]
        factory("vocab", *[x for c in corpus for x in ("--corpus", c)], "--langs", ",".join((*PARENT_LANGS, NEW_LANG)),
                "--size", "8000", "--no-langid", "--out", vocab, "--force")  # fmt: skip
    if not (parent_shards / "factory.json").is_file():
        corpus = [f"{lang}={out / 'text' / f'{lang}.txt'}" for lang in PARENT_LANGS]
        factory("shards", "--vocab", vocab, *[x for c in corpus for x in ("--corpus", c)], "--seq-len", SEQ_LEN,
                "--no-langid", "--out", parent_shards, "--force")  # fmt: skip
    if not (pt_shards / "factory.json").is_file():
        factory("shards", "--vocab", vocab, "--corpus", f"{NEW_LANG}={out / 'text' / f'{NEW_LANG}.txt'}",
                "--seq-len", SEQ_LEN, "--no-langid", "--out", pt_shards, "--force")  # fmt: skip
    return {"vocab": vocab, "parent_shards": parent_shards, "pt_shards": pt_shards}


def held_out_ids(vocab: Path, path: Path):
    """The held-out paragraphs as (N, SEQ_LEN) rows, [CLS] text [SEP], one paragraph per row (cut at SEQ_LEN)."""
    import torch

    from factory.model.tokenizer import Tokenizer

    tok = Tokenizer.from_folder(vocab)
    rows = [tok.single(tok.encode(line), SEQ_LEN) for line in path.read_text(encoding="utf-8").splitlines() if line]
    ids = torch.zeros(len(rows), SEQ_LEN, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids


# ---- runs ------------------------------------------------------------------------------------------
COMMON = ["--mixed-precision", "no", "--log-every", "10", "--seed", "0"]


def train_parent(args, paths) -> Path:
    out = args.out / "parent"
    if not (out / "factory.json").is_file():
        factory("pretrain", "--vocab", paths["vocab"], "--shards", paths["parent_shards"], "--preset", "debug",
                "--layers", "4", "--hidden", "128", "--heads", "2", "--emd", "on", "--max-steps", args.parent_steps,
                "--lr", "2e-3", "--warmup", str(args.parent_steps // 20), "--save-every", args.parent_steps,
                "--keep", "1", *COMMON, "--batch", args.batch, "--out", out, "--force")  # fmt: skip
    alone = args.out / "parent-discriminator-only"  # "a model exported without its generator"
    if not (alone / "config.json").is_file():
        shutil.copytree(out / "discriminator", alone)
    return out


def train_arm(args, paths, parent: Path, arm: str) -> Path:
    out = args.out / f"arm-{arm}"
    if (out / "factory.json").is_file():
        return out
    src = parent / "discriminator" if arm == "published" else args.out / "parent-discriminator-only"
    rule = arm.replace("-no-warmup", "")
    extra = [] if arm == "published" else ["--generator-rule", rule]
    if arm != "published":  # a generator-only warm-up of 10% of the run, or none
        extra += ["--generator-warmup", "0" if arm.endswith("no-warmup") else str(args.continue_steps // 10)]
    factory("pretrain", "--init-from", src, "--shards", paths["pt_shards"], "--max-steps", args.continue_steps,
            "--lr", "1e-3", "--warmup", str(args.continue_steps // 10), "--save-every", args.every, "--keep", "100",
            *COMMON, "--batch", args.batch, *extra, "--out", out, "--force")  # fmt: skip
    return out


# ---- evaluation ----------------------------------------------------------------------------------
def held_out_losses(model, ids, reference=None) -> dict[str, float]:
    """Held-out MLM loss / accuracy of `model`'s generator, and RTD loss / accuracy of its discriminator on the
    replacements of `reference`'s generator (its own when None), with fixed masks and samples."""
    import torch
    import torch.nn.functional as F

    from factory.pretrain.rtd import make_step_noise

    model.eval()
    ref = reference or model
    sums = dict(mlm=0.0, masked=0, mlm_right=0, rtd=0.0, tokens=0, rtd_right=0)
    with torch.no_grad():
        for start in range(0, len(ids), 32):
            batch = ids[start : start + 32]
            noise = make_step_noise(batch, model.mask_id, EVAL_SEED, 0, start)
            mask = batch != 0
            mlm, right, replaced = model.generate(batch, noise.masked, noise.uniforms, mask)
            sums["mlm"] += float(mlm)
            sums["mlm_right"] += int(right)
            sums["masked"] += int(noise.masked.sum())
            if reference is not None:
                replaced = ref.generate(batch, noise.masked, noise.uniforms, mask)[2]
            labels = (replaced != batch).float()
            logits = model.discriminator(replaced, mask, model.discriminator_embedding()).logits
            bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            sums["rtd"] += float((bce * mask).sum())
            sums["rtd_right"] += int((((logits > 0).float() == labels) & mask).sum())
            sums["tokens"] += int(mask.sum())
    return {
        "mlm_loss": sums["mlm"] / sums["masked"],
        "mlm_accuracy": sums["mlm_right"] / sums["masked"],
        "rtd_loss": sums["rtd"] / sums["tokens"],
        "rtd_accuracy": sums["rtd_right"] / sums["tokens"],
    }


def load_rtd(run: Path, checkpoint: Path | None):
    """The run's RTD model (built as its trainer built it) with the weights of `checkpoint` (None: step 0)."""
    from safetensors.torch import load_file

    from factory.core.options import Layer, resolve
    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.loop import build_model
    from factory.pretrain.plan import make_plan

    arguments = json.loads((run / "factory.json").read_text())["arguments"]
    arguments = {k: v for k, v in arguments.items() if k != "schema"}
    config = resolve(PretrainConfig, [Layer(arguments)])
    model = build_model(config, make_plan(config, SEQ_LEN))
    if checkpoint is not None:
        model.load_state_dict(load_file(str(checkpoint / "model.safetensors")))
    return model.eval()


def emd_comparison(parent: Path, ids_by_lang: dict) -> dict:
    """The parent's generator with and without its decoder, on held-out text of each of its languages."""
    import torch
    import torch.nn.functional as F

    from factory.model.folder import load_model
    from factory.pretrain.rtd import make_step_noise

    with_emd = load_model(parent / "generator")
    assert with_emd.config.emd, "the parent was trained with --emd on"
    plain = type(with_emd)(with_emd.config.replace(emd=False))
    plain.load_state_dict({k: v for k, v in with_emd.state_dict().items() if "position_embeddings" not in k})
    mask_id = with_emd.config.factory["mask_token_id"]
    out, pooled = {}, []
    for lang, ids in ids_by_lang.items():
        figures, per_token = {}, {}
        for name, net in (("with_emd", with_emd), ("without_emd", plain.eval())):
            losses, right = [], 0
            with torch.no_grad():
                for start in range(0, len(ids), 32):
                    batch = ids[start : start + 32]
                    noise = make_step_noise(batch, mask_id, EVAL_SEED, 0, start)
                    positions = noise.masked.flatten().nonzero().squeeze(-1)
                    logits = net(batch.masked_fill(noise.masked, mask_id), batch != 0, positions=positions).logits
                    gold = batch.flatten()[positions]
                    losses.append(F.cross_entropy(logits, gold, reduction="none"))
                    right += int((logits.argmax(-1) == gold).sum())
            per_token[name] = torch.cat(losses)
            n = len(per_token[name])
            figures[name] = {"mlm_loss": float(per_token[name].mean()), "mlm_accuracy": right / n, "masked": n}
        diff = per_token["without_emd"] - per_token["with_emd"]  # the same masked tokens: a paired difference
        figures["difference"] = paired(diff)
        pooled.append(diff)
        out[lang] = figures
    out["all"] = {"difference": paired(torch.cat(pooled))}
    return out


def paired(diff) -> dict[str, float]:
    """Mean of a per-token loss difference, its standard error, and the share of tokens where it is > 0."""
    n = len(diff)
    worse = float((diff > 0).float().mean())
    return {"mean": float(diff.mean()), "se": float(diff.std() / n**0.5), "worse_share": worse, "tokens": n}


def main(argv=None) -> None:
    args = arguments(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.FileHandler(args.out / "bench.log"), logging.StreamHandler()])  # fmt: skip
    import torch

    torch.set_num_threads(1)
    t0 = time.process_time()
    paths = prepare(args)
    parent = train_parent(args, paths)
    ids = {lang: held_out_ids(paths["vocab"], args.out / "held-out" / f"{lang}.txt") for lang in PARENT_LANGS}
    results: dict = {"emd": emd_comparison(parent, ids), "arms": {}}
    log.info("EMD: %s", json.dumps(results["emd"]))
    pt = held_out_ids(paths["vocab"], args.out / "held-out" / f"{NEW_LANG}.txt")
    reference = load_rtd(train_arm(args, paths, parent, "published"), None)  # the parent's generator, frozen
    for arm in args.arms.split(","):
        run = train_arm(args, paths, parent, arm)
        curve = [{"step": 0, **held_out_losses(load_rtd(run, None), pt, reference)}]
        for ckpt in sorted((run / "checkpoints").glob("step-*")):
            figures = held_out_losses(load_rtd(run, ckpt), pt, reference)
            own = held_out_losses(load_rtd(run, ckpt), pt)
            curve.append({"step": int(ckpt.name.split("-")[1]), **figures, "rtd_loss_own": own["rtd_loss"],
                          "rtd_accuracy_own": own["rtd_accuracy"]})  # fmt: skip
        log.info("%s: %s", arm, json.dumps(curve[-1]))
        results["arms"][arm] = curve
        results["cpu_seconds_this_process"] = time.process_time() - t0
        results["settings"] = {k: str(v) for k, v in vars(args).items()}
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")  # after each arm
        write_report(results, args.out)


def write_report(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["| language | masked tokens | MLM loss with EMD | without EMD | paired difference (± SE) | tokens worse "
             "without | accuracy with | without |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for lang, f in results["emd"].items():
        d = f["difference"]
        if lang == "all":
            share = f"{100 * d['worse_share']:.1f}%"
            lines.append(f"| all | {d['tokens']} | | | {d['mean']:+.3f} ± {d['se']:.3f} | {share} | | |")
            continue
        a, b = f["with_emd"], f["without_emd"]
        lines.append(f"| {lang} | {a['masked']} | {a['mlm_loss']:.3f} | {b['mlm_loss']:.3f} | {d['mean']:+.3f} ± "
                     f"{d['se']:.3f} | {100 * d['worse_share']:.1f}% | {100 * a['mlm_accuracy']:.1f}% | "
                     f"{100 * b['mlm_accuracy']:.1f}% |")  # fmt: skip
    lines += ["", "| arm | step | generator MLM loss | RTD loss (common generator) | RTD accuracy | RTD loss (own) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for arm, curve in results["arms"].items():
        for r in curve:
            own = f"{r['rtd_loss_own']:.4f}" if "rtd_loss_own" in r else "-"
            lines.append(f"| {arm} | {r['step']} | {r['mlm_loss']:.3f} | {r['rtd_loss']:.4f} | "
                         f"{100 * r['rtd_accuracy']:.2f}% | {own} |")  # fmt: skip
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm, curve in results["arms"].items():
        steps = [r["step"] for r in curve]
        axes[0].plot(steps, [r["mlm_loss"] for r in curve], marker="o", label=arm)
        axes[1].plot(steps, [r["rtd_loss"] for r in curve], marker="o", label=arm)
    axes[0].set(title="held-out pt: generator MLM loss", xlabel="step", ylabel="loss")
    axes[1].set(title="held-out pt: RTD loss (one common generator)", xlabel="step", ylabel="loss")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "continued.png", dpi=120)


if __name__ == "__main__":
    main()
