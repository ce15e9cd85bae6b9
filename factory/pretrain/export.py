"""The end of a run: both networks as deberta-v2 folders, and the figures factory.json and the card read.

discriminator/ is the model people fine-tune (the GDES embedding folded into a plain table), generator/ the
MLM generator; each gets the tokenizer files and a manifest, so either folder works on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ManifestError
from factory.core.manifest import find_manifest, write_manifest
from factory.core.options import to_json
from factory.core.outputs import staged_output
from factory.model.tokenizer import copy_tokenizer_files
from factory.pretrain.loop import hardware
from factory.pretrain.manifest import PretrainManifest
from factory.pretrain.mixing import sampling_phases, tokens_seen
from factory.shards.manifest import ShardsManifest
from factory.vocab.manifest import VocabManifest

if TYPE_CHECKING:
    from factory.pretrain.loop import Run


def export_networks(run: Run, figures: dict[str, Any]) -> None:
    """discriminator/ (deberta-v2, folded GDES embedding, tokenizer files) and generator/ beside the checkpoints."""
    from factory.model.folder import save_model
    from factory.pretrain.rtd import build_rtd_model, export_discriminator, export_generator

    acc = run.accelerator
    state = acc.get_state_dict(run.model)  # gathered from every process under FSDP / DeepSpeed ZeRO-3
    if not acc.is_main_process:
        return
    wrapped = acc.unwrap_model(run.model)
    gen_config = wrapped.generator.config
    model = build_rtd_model(wrapped.config, gen_config.num_hidden_layers, wrapped.sharing, generator=gen_config)
    model.load_state_dict({k: v.float().cpu() for k, v in state.items()})
    out = Path(run.config.out)
    extra = {"pretraining": "rtd", "sharing": run.config.sharing, "rtd_lambda": run.config.rtd_lambda}
    extra.update(data_provenance(Path(run.config.vocab), Path(run.config.shards) if run.config.shards else None))
    if run.start is not None:  # --init-from: what it continued (the card's base_model)
        extra.update(init_from=run.start, base_model=run.start["base_model"])
    for name, net in (("discriminator", export_discriminator(model)), ("generator", export_generator(model))):
        emd = bool(net.config.emd) if name == "generator" else None  # config.json says whether the EMD is on
        net.config = net.config.replace(emd=emd, factory={**net.config.factory, **extra, "role": f"rtd-{name}"})
        with staged_output(out / name, force=True) as tmp:
            save_model(net, tmp)
            copy_tokenizer_files(run.config.vocab, tmp)
            write_manifest(tmp, PretrainManifest(arguments=to_json(run.config), role=name, **figures))


def data_provenance(vocab: Path, shards: Path | None) -> dict[str, Any]:
    """Languages (from the vocabulary's manifest) and corpus sources (from the shards'), for the model card. With
    --init-from the vocabulary is the model's folder, whose manifest (if any) is pre-training's: the languages are
    then the starting model's and the shards' (docs/derive.md#continued-pre-training)."""
    out: dict[str, Any] = {}
    try:
        vocab_manifest = find_manifest(vocab, VocabManifest)  # None: a vocabulary made without `factory vocab`
    except ManifestError:  # a model folder's manifest (--init-from): not a vocabulary's
        vocab_manifest = None
    shards_manifest = find_manifest(shards, ShardsManifest) if shards is not None else None
    if vocab_manifest is not None and vocab_manifest.languages:
        out["languages"] = list(vocab_manifest.languages)
    else:
        model = _model_languages(vocab)
        trained = [lang for lang in (shards_manifest.per_language if shards_manifest else {}) if lang != "und"]
        if model or trained:
            out["languages"] = list(dict.fromkeys([*model, *trained]))
    if shards_manifest is not None and shards_manifest.corpus:
        out["corpus"] = list(shards_manifest.corpus)
    return out


def _model_languages(folder: Path) -> list[str]:
    """The languages a model folder's config.json records (`factory.core.languages`), if any."""
    import json

    try:
        value = (json.loads((folder / "config.json").read_text()).get("factory") or {}).get("languages")
    except (OSError, ValueError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def run_figures(run: Run, result: dict[str, Any]) -> dict[str, Any]:
    """What the model card is built from (a later step reads these from factory.json)."""
    plan, last = run.plan, result["last"]
    return {
        "preset": plan.preset,
        "base_preset": plan.shape.base,
        "shape": plan.shape.sizes(),
        "vocab_size": plan.vocab.pieces,
        "embedding_rows": plan.vocab.rows,
        "seq_len": plan.seq_len,
        "batch": plan.batch,
        "micro_batch": plan.micro_batch,
        "accumulation": plan.accumulation,
        "processes": plan.processes,
        "lr": plan.lr,
        "warmup": plan.warmup,
        "sharing": run.config.sharing,
        "rtd_lambda": run.config.rtd_lambda,
        "mixed_precision": run.accelerator.mixed_precision,
        "steps": plan.steps,
        "tokens": plan.steps * plan.tokens_per_step,
        "parameters": plan.parameters,
        "flops_per_step": plan.flops_per_step,
        "final": {k: last.get(k) for k in ("mlm_loss", "rtd_loss", "rtd_accuracy", "rtd_baseline", "mlm_accuracy")},
        "tokens_per_s": result["session_tokens_per_s"],
        "mfu": last.get("mfu"),
        "wall_time_s": result["wall_time_s"],
        "hardware": hardware(),
        "shards": str(run.config.shards),
        "vocab_fingerprint": run.vocab_fingerprint,
        "probe": result.get("probe"),
        "language_sampling": sampling_phases(run.mix),
        "tokens_seen_per_language": tokens_seen(run.mix, plan.steps, plan.seq_len),
        "sessions": run.sessions,
        "init_from": run.start,
        "update_order": run.config.update_order,
    }
