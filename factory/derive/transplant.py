"""`factory transplant`: a model moved onto another vocabulary.

Each row of the new vocabulary is made from rows of the old one (one plan, applied to every per-vocabulary
tensor of every network, factory/derive/networks.py):

- a piece both vocabularies have (the same string; the specials and [MASK] among them) keeps its row exactly;
- a new piece, with `--init mean`, gets the mean of the rows of the pieces the old tokenizer cuts its text
  into (FVT, Gee et al. 2022, "Fast Vocabulary Transfer"): "▁casa" is cut as the word "casa" at a word's start,
  "ção" as it stands inside a word (the old model with its dummy prefix off). The discriminator's folded table,
  the GDES delta, the generator's table and the MLM bias all take that mean, so the folded table still equals
  the generator's table plus the delta, row by row;
- with `--init random`, a new piece gets a fresh row N(0, initializer_range), the same draw in every table
  (the generator's and the folded one, so the delta's row is 0), and a 0 bias: the baseline FVT must beat;
- the spare rows after [MASK] are the old model's spare rows, as far as it has them, else zeros.

FOCUS and WECHSEL-style initialisation (a new piece from its nearest old pieces in an auxiliary embedding
space) are not offered: they need a fastText model of the user's corpus besides, and their gains over FVT
are reported for large models and long continued training, which this project cannot measure offline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from factory.derive.config import TransplantConfig
from factory.derive.manifest import TransplantManifest
from factory.derive.networks import DELTA
from factory.vocab.spm_file import BYTE, SpmModel

if TYPE_CHECKING:
    from factory.derive.common import Derived


@dataclass
class RowPlan:
    """Where each new row comes from: `groups[j]` the old rows whose mean it is (one row: a copy; none: zeros),
    `fresh[j]` True for a new piece (its rows are made by `--init`)."""

    groups: list[list[int]]
    fresh: list[bool]
    unk: int  # the old [UNK] id

    def new_pieces(self) -> list[list[int]]:
        return [g for g, f in zip(self.groups, self.fresh, strict=True) if f]

    def gather_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """(new rows, ...) from (old rows, ...): each row the mean of its group, in fp32, in the tensor's dtype."""
        lengths = torch.tensor([len(g) for g in self.groups])
        flat = torch.tensor([i for g in self.groups for i in g], dtype=torch.long)
        target = torch.repeat_interleave(torch.arange(len(self.groups)), lengths)
        out = torch.zeros((len(self.groups), *tensor.shape[1:]), dtype=torch.float32)
        out.index_add_(0, target, tensor.index_select(0, flat).float())
        scale = lengths.clamp(min=1).float().reshape(-1, *([1] * (tensor.dim() - 1)))
        return (out / scale).to(tensor.dtype)


def plan_rows(old: SpmModel, new: SpmModel, rows: int, old_rows: int) -> RowPlan:
    """The plan for a model of `old_rows` rows (old pieces, [MASK], spare) moved onto `new` with `rows` rows."""
    import sentencepiece as spm

    start = spm.SentencePieceProcessor(model_proto=old.data)  # a word's start
    inner = spm.SentencePieceProcessor(model_proto=old.without_dummy_prefix())  # inside a word
    old_ids = {p.piece: i for i, p in enumerate(old.pieces)}
    unk = start.unk_id()
    groups: list[list[int]] = []
    fresh: list[bool] = []
    for piece in new.pieces:
        if piece.piece in old_ids:
            groups.append([old_ids[piece.piece]])
            fresh.append(False)
            continue
        text = piece.piece.replace("▁", " ")
        if piece.type == BYTE:  # a byte the old vocabulary lacks: no text to cut
            ids = []
        elif piece.piece.startswith("▁"):
            ids = start.encode(text[1:])
        else:
            ids = inner.encode(text)
        groups.append(ids or [unk])
        fresh.append(True)
    old_mask, new_mask = len(old.pieces), len(new.pieces)
    groups.append([old_mask])
    fresh.append(False)
    for k in range(rows - new_mask - 1):  # the spare rows after [MASK]
        spare = old_mask + 1 + k
        groups.append([spare] if spare < old_rows else [])
        fresh.append(False)
    return RowPlan(groups, fresh, unk)


def new_rows_maker(plan: RowPlan, init: str, seed: int, std: float, hidden: int):
    """(name, old tensor) -> new tensor, for `write_derived`: the plan's means; with `random`, the new pieces'
    rows drawn once (the same rows in every table), 0 in the GDES delta and in the biases."""
    fresh = torch.tensor(plan.fresh)
    draw = torch.randn(int(fresh.sum()), hidden, generator=torch.Generator().manual_seed(seed)) * std

    def make(name: str, tensor: torch.Tensor) -> torch.Tensor:
        out = plan.gather_mean(tensor)
        if init == "random":
            if tensor.dim() == 2 and not name.endswith(DELTA):
                out[fresh] = draw.to(out.dtype)
            else:
                out[fresh] = 0
        return out

    return make


def transplant(config: TransplantConfig) -> Derived:
    """One transplant per --out at a time (its lock: a second process stops at once with one line)."""
    from factory.core.outputs import check_target, output_lock
    from factory.derive.common import check_out_apart

    check_out_apart(config.out, config.source, config.vocab)  # before --out's own checks: no advice to --force it
    check_target(config.out)
    with output_lock(config.out):
        return _transplant(config)


def _transplant(config: TransplantConfig) -> Derived:
    """Move `config.source` onto `config.vocab` into `config.out` (written whole or not at all); returns the
    manifest written there and the lines the command prints."""
    from factory.core.manifest import MANIFEST, ModelSource
    from factory.core.options import to_json
    from factory.core.outputs import check_output
    from factory.core.sources import resolve_model
    from factory.derive.common import layout_keys, open_source, read_json, sizes, write_derived
    from factory.model.config import ModelConfig
    from factory.model.presets import VocabSize
    from factory.model.tokenizer import Tokenizer

    started = time.perf_counter()
    check_output(config.out, config.force)
    vocab_source = resolve_model(config.vocab, parts=("tokenizer",))  # a folder, or a model's tokenizer on the Hub
    vocab = Tokenizer.from_folder(vocab_source.path)  # a DeBERTa-v3 vocabulary, checked before the model is read
    source = open_source(config.source)
    files = source.files
    model_config = ModelConfig.from_hf(files.model.config)
    Tokenizer.from_folder(files.tokenizer).check_fits(model_config, files.tokenizer, "the files do not belong together")
    old, new = SpmModel.read(files.tokenizer / "spm.model"), SpmModel.read(vocab_source.path / "spm.model")
    rows = VocabSize.from_pieces(vocab.num_pieces, config.layout).rows
    plan = plan_rows(old, new, rows, files.model.vocab_rows)
    fresh = plan.new_pieces()
    manifest = TransplantManifest(
        arguments=to_json(config),
        **source.provenance(),
        **sizes(files, rows),
        pieces_before=len(old.pieces),
        pieces_after=len(new.pieces),
        seconds=0.0,  # written at the end
        vocab=ModelSource(**vocab_source.describe()),
        vocab_manifest=read_json(vocab_source.path / MANIFEST),
        init=config.init,
        shared=len(new.pieces) - len(fresh),
        new=len(fresh),
        pieces_per_new=round(sum(map(len, fresh)) / len(fresh), 4) if fresh and config.init == "mean" else None,
        unknown_in_new=sum(plan.unk in g for g in fresh) if config.init == "mean" else None,
    )
    languages = (manifest.vocab_manifest or {}).get("languages")
    keys = layout_keys(len(new.pieces), rows) | ({"languages": languages} if languages else {}) | source.config_keys()
    make = new_rows_maker(plan, config.init, config.seed, model_config.initializer_range, model_config.hidden_size)
    return write_derived(config.out, config.force, files, new.data, make, rows, keys, manifest, started,
                         lambda m: summary(config.out, m))  # fmt: skip


def summary(out: Path, m: TransplantManifest) -> list[str]:
    """What `factory transplant` prints: the pieces shared and new, how the new ones were made (none: a vocabulary
    within the old one, every row copied), and the parameters before and after."""
    how = f"mean of {m.pieces_per_new:.2f} old pieces each" if m.pieces_per_new is not None else "random rows"
    new = f"{m.new:,} new ({how})" if m.new else "0 new"
    return [
        f"wrote {out}: {m.pieces_before:,} -> {m.pieces_after:,} pieces; {m.shared:,} shared (rows copied), {new}; "
        f"parameters {m.parameters_before['total']:,} -> {m.parameters_after['total']:,}"
    ]
