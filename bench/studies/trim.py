"""`factory trim` on a multilingual model, measured on real text of the language it is cut to.

    python -m bench.studies.trim --model runs/demo/pretrain --lang pt --train pt-train.txt --held-out pt-held.txt \
        --out W
    python -m bench.studies.trim --build-published 100k --vocab V --model W/base-100k ...   # a base-size model to time

It runs `factory trim MODEL --langs LANG --corpus LANG=TRAIN` as a child process (wall and CPU seconds, under
`flock /tmp/factory-timing.lock` when the caller wraps it) and then, on the held-out text:

- the share of whitespace-separated words cut into the same pieces before and after, and of whole documents;
- fertility (pieces per word) before and after;
- for every held-out document cut exactly as before: the largest |difference| between the two models' last
  hidden states, RTD logits and the generator's MLM logits (over the kept ids), in fp32 (expected: 0);
- parameters before and after (the model's bare encoder, as `factory presets` counts them).

The anchor in the same run: loading and saving the source's weight files unchanged (`torch.load`/`safetensors` +
save, no slicing), i.e. how much of the trim's time is the files' I/O.

`--build-published SIZE` first writes a randomly initialised base-preset model in the published mdeberta layout
(pytorch_model.bin with the folded table, the `_weight` delta and both heads; generator_config.json +
pytorch_model.generator.bin, 6 layers) on the vocabulary `--vocab`, so that the time and the parameter counts are
those of a model of published size; its hidden states are random, but their equality is just as exact.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from bench.cli import make_parser
from bench.timing import run_timed, timed


def build_published(vocab: Path, out: Path, seed: int = 0) -> Path:
    """A random base-preset RTD pair on `vocab` in the microsoft/mdeberta-v3-base file layout."""
    import shutil

    from factory.model.presets import PRESETS, VocabSize
    from factory.model.tokenizer import Tokenizer
    from factory.pretrain.rtd import build_rtd_model, export_discriminator, export_generator

    pieces = Tokenizer.from_folder(vocab).num_pieces
    config = PRESETS["base"].config(VocabSize.from_pieces(pieces))
    model = build_rtd_model(config, PRESETS["base"].generator_layers, seed=seed)
    with torch.no_grad():
        model.embedding_delta.normal_(0, 0.01)
    out.mkdir(parents=True, exist_ok=True)
    disc = dict(export_discriminator(model).state_dict())
    disc["deberta.embeddings.word_embeddings._weight"] = model.embedding_delta.detach().clone()
    disc.update({f"lm_predictions.{k}": v.clone() for k, v in model.generator.lm_predictions.state_dict().items()})
    torch.save(disc, out / "pytorch_model.bin")
    torch.save(dict(export_generator(model).state_dict()), out / "pytorch_model.generator.bin")
    for name, cfg in (("config.json", config), ("generator_config.json", model.generator.config)):
        hf = cfg.to_hf()
        for key in ("architectures", "factory"):
            hf.pop(key, None)
        (out / name).write_text(json.dumps(hf, indent=2))
    shutil.copy(vocab / "spm.model", out / "spm.model")
    (out / "tokenizer_config.json").write_text('{"do_lower_case": false, "vocab_type": "spm"}')
    return out


def run_trim(model: Path, lang: str, train: Path, out: Path, extra: list[str]) -> dict:
    """`factory trim` as a child process: its wall and CPU seconds."""
    command = [sys.executable, "-m", "factory", "-q", "trim", str(model), "--langs", lang, "--corpus",
               f"{lang}={train}", "--out", str(out), "--force", *extra]  # fmt: skip
    done, t = run_timed(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"factory trim failed:\n{done.stdout}{done.stderr}")
    return {"command": " ".join(command[1:]), "wall_s": round(t.wall_s, 2), "cpu_s": round(t.children_cpu_s, 2),
            "stdout": done.stdout}  # fmt: skip


def io_anchor(model: Path) -> dict:
    """Read and write the source's weight files unchanged: the I/O a trim cannot avoid."""
    import tempfile

    from factory.derive.networks import read_model_files, save_weights

    with timed() as t:
        files = read_model_files(model)
        with tempfile.TemporaryDirectory(dir=model.parent) as tmp:
            for net in files.networks:
                save_weights(net.state, Path(tmp) / f"{net.role}-{net.weights_name}")
    return {"wall_s": round(t.wall_s, 2), "cpu_s": round(t.cpu_s, 2)}


def network_folders(root: Path) -> tuple[Path, bool]:
    """The folder the model is loaded from, and whether its generator is the published one beside it."""
    base = root if (root / "config.json").is_file() else root / "discriminator"
    return base, (base / "generator_config.json").is_file()


def compare(model: Path, trimmed: Path, texts: list[str], max_docs: int, max_len: int) -> dict:
    """Held-out figures: words and documents cut as before, fertility, and the largest output differences."""
    from factory.derive.trim import fertility, words_unchanged
    from factory.model.folder import load_model
    from factory.model.tokenizer import Tokenizer

    old_dir, published = network_folders(model)
    new_dir, _ = network_folders(trimmed)
    old, new = Tokenizer.from_folder(old_dir), Tokenizer.from_folder(new_dir)
    same_words, words = words_unchanged(old.sp, new.sp, texts)
    exact = [t for t in texts if old.sp.encode(t, out_type=str) == new.sp.encode(t, out_type=str)]
    kept = [old.sp.piece_to_id(new.sp.id_to_piece(i)) for i in range(new.num_pieces)] + [old.mask_id]
    models = {
        "disc": (load_model(old_dir), load_model(new_dir)),
        "gen": (load_model(old_dir, generator=True), load_model(new_dir, generator=True)) if published else
               (load_model(old_dir.parent / "generator"), load_model(new_dir / "generator")),
    }  # fmt: skip
    worst = {"hidden": 0.0, "rtd_logits": 0.0, "mlm_logits": 0.0}
    with timed() as t, torch.no_grad():
        for text in exact[:max_docs]:
            a = torch.tensor([old.single(old.encode(text), max_len)])
            b = torch.tensor([new.single(new.encode(text), max_len)])
            d_old, d_new = models["disc"][0](a), models["disc"][1](b)
            g_old, g_new = models["gen"][0](a), models["gen"][1](b)
            hidden = (d_old.last_hidden_state - d_new.last_hidden_state).abs().max().item()
            worst["hidden"] = max(worst["hidden"], hidden)
            worst["rtd_logits"] = max(worst["rtd_logits"], (d_old.logits - d_new.logits).abs().max().item())
            mlm = (g_old.logits[..., kept] - g_new.logits[..., : len(kept)]).abs().max().item()
            worst["mlm_logits"] = max(worst["mlm_logits"], mlm)
    return {
        "documents": len(texts),
        "words": words,
        "words_unchanged": round(same_words / max(words, 1), 6),
        "documents_unchanged": round(len(exact) / max(len(texts), 1), 6),
        "documents_compared": min(len(exact), max_docs),
        "fertility_before": fertility(old.sp, texts),
        "fertility_after": fertility(new.sp, texts),
        "max_abs_diff": worst,
        "compare_cpu_s": round(t.cpu_s, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__spec__, __doc__)
    parser.add_argument("--model", type=Path, required=True, help="the model (written there: --build-published)")
    parser.add_argument("--lang", required=True)
    parser.add_argument("--train", type=Path, required=True, help="the language's text trim counts pieces on")
    parser.add_argument("--held-out", type=Path, required=True, help="other text of the language")
    parser.add_argument("--out", type=Path, required=True, help="work folder (the trimmed model, result.json)")
    parser.add_argument("--build-published", action="store_true", help="first build a base-size published model")
    parser.add_argument("--vocab", type=Path, help="the vocabulary of --build-published")
    parser.add_argument("--max-docs", type=int, default=300, help="held-out documents compared through the models")
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("trim_args", nargs="*", help="more `factory trim` flags after --, e.g. -- --size 64k")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.build_published:
        build_published(args.vocab, args.model)
    trimmed = args.out / "trimmed"
    timing = run_trim(args.model, args.lang, args.train, trimmed, args.trim_args)
    manifest = json.loads((trimmed / "factory.json").read_text())
    texts = [line.strip() for line in args.held_out.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = {
        "model": str(args.model),
        "trim": timing,
        "io_anchor": io_anchor(args.model),
        "manifest_seconds": manifest["seconds"],
        "pieces": [manifest["pieces_before"], manifest["pieces_after"]],
        "parameters": [manifest["parameters_before"], manifest["parameters_after"]],
        "corpus": manifest["per_language"][args.lang],
        "held_out": compare(args.model, trimmed, texts, args.max_docs, args.max_len),
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
