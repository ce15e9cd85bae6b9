"""The runtime tokenizer: a vocabulary folder's `spm.model` plus DeBERTa-v3's special tokens.

Special ids are DeBERTa-v3's (docs/tokenizer.md): [PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3, and [MASK] right after the
SentencePiece pieces (id = number of pieces). Sequences use the templates `[CLS] A [SEP]` and
`[CLS] A [SEP] B [SEP]`. This is what shards, pre-training and evaluation use; `transformers` is never
needed at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from factory.core.errors import FactoryError

SPM_FILE = "spm.model"
# What `factory vocab` writes beside spm.model for transformers; the first three are what it needs to load.
HF_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "added_tokens.json")
TOKENIZER_FILES = (SPM_FILE, *HF_TOKENIZER_FILES)
SPECIAL_TOKENS = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3}
MASK_TOKEN = "[MASK]"  # id = number of SentencePiece pieces


def load_spm(path: Path | str):
    """A SentencePiece model file, or one FactoryError line: missing, empty (sentencepiece then says "unk is
    not defined"), truncated or another kind of file."""
    import sentencepiece as spm

    path = Path(path)
    if not path.is_file():
        raise FactoryError(f"{path} does not exist; point at a vocabulary made by `factory vocab`")
    if path.stat().st_size == 0:
        raise FactoryError(f"{path} is empty (0 bytes), not a SentencePiece model; rebuild it with `factory vocab`")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FactoryError(
            f"{path} is not a SentencePiece model ({first[:120]}); rebuild it with `factory vocab`"
        ) from None


class Tokenizer:
    pad_id, cls_id, sep_id, unk_id = 0, 1, 2, 3

    def __init__(self, model_file: Path | str):
        self.path = Path(model_file)
        self.sp = load_spm(self.path)
        for piece, idx in SPECIAL_TOKENS.items():
            if self.sp.id_to_piece(idx) != piece:
                raise FactoryError(
                    f"{self.path}: id {idx} is {self.sp.id_to_piece(idx)!r}, not {piece}; "
                    "this is not a DeBERTa-v3 vocabulary: build one with `factory vocab`"
                )
        self.mask_id = self.sp.get_piece_size()

    @classmethod
    def from_folder(cls, folder: Path | str) -> Tokenizer:
        path = Path(folder) / SPM_FILE
        if not path.is_file():
            raise FactoryError(f"{folder} has no {SPM_FILE}; point at a vocabulary made by `factory vocab`")
        return cls(path)

    def check_fits(
        self, config, where: Path | str, hint: str = "use the vocabulary the model was trained with"
    ) -> None:
        """Refuse a model whose embedding was not built for this vocabulary (e.g. spm.model of another run):
        [MASK] must sit where the model expects it (when the config records it) and inside the embedding."""
        expected = config.factory.get("mask_token_id")
        if (expected is not None and expected != self.mask_id) or config.vocab_size < len(self):
            built = f"[MASK]={expected}, " if expected is not None else ""
            raise FactoryError(
                f"{where}: the tokenizer has {self.num_pieces:,} pieces ([MASK]={self.mask_id}) but the model was "
                f"built for {built}{config.vocab_size:,} embedding rows; {hint}"
            )

    @property
    def num_pieces(self) -> int:
        return self.sp.get_piece_size()

    def __len__(self) -> int:
        """Pieces + [MASK]: the smallest embedding that fits (configs may add spare rows)."""
        return self.num_pieces + 1

    def encode(self, text: str) -> list[int]:
        """Ids of `text` without special tokens."""
        return self.sp.encode(text)

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return self.sp.encode(list(texts))

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids of `text` and, per piece, the characters of `text` it covers as (start, end), leading whitespace
        left out (a bare `▁` covers nothing: (k, k)). SentencePiece reports byte offsets into the original text,
        before normalisation, so the spans are exact for accents, full-width forms and CJK alike."""
        proto = self.sp.encode(text, return_type="proto")
        char_at = [0] * (len(text.encode("utf-8")) + 1)  # byte offset -> character offset
        byte = 0
        for i, ch in enumerate(text):
            for _ in range(len(ch.encode("utf-8"))):
                char_at[byte] = i
                byte += 1
        char_at[byte] = len(text)
        ids, spans = [], []
        for piece in proto.pieces:
            start, end = char_at[piece.begin], char_at[piece.end]
            while start < end and text[start].isspace():
                start += 1
            ids.append(piece.id)
            spans.append((start, end))
        return ids, spans

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i for i in ids if 3 < i < self.mask_id])

    def single(self, ids: list[int], max_length: int) -> list[int]:
        """[CLS] A [SEP], A truncated to fit."""
        return [self.cls_id, *ids[: max_length - 2], self.sep_id]

    def pair(self, a: list[int], b: list[int], max_length: int) -> list[int]:
        """[CLS] A [SEP] B [SEP], the longer side truncated first (as HF's longest_first)."""
        a, b = list(a), list(b)
        while len(a) + len(b) > max_length - 3:
            (a if len(a) >= len(b) else b).pop()
        return [self.cls_id, *a, self.sep_id, *b, self.sep_id]


def copy_tokenizer_files(source: Path | str, target: Path | str) -> list[str]:
    """Copy the vocabulary's tokenizer files (those present) into a model folder; returns the names copied.

    A published model's folder has spm.model and a two-key tokenizer_config.json only
    (docs/derive.md#published-layouts): the files transformers needs beside them are then written from spm.model,
    as `factory vocab` does."""
    import shutil

    copied = []
    for name in TOKENIZER_FILES:
        if (Path(source) / name).is_file():
            shutil.copy2(Path(source) / name, Path(target) / name)
            copied.append(name)
    if SPM_FILE in copied and "special_tokens_map.json" not in copied:
        write_hf_files(Path(target))
        copied = [name for name in TOKENIZER_FILES if (Path(target) / name).is_file()]
    return copied


# ---- Hugging Face files -------------------------------------------------------------------------
def write_hf_files(folder: Path, max_length: int = 512) -> dict[str, int]:
    """tokenizer.json (fast), tokenizer_config.json, special_tokens_map.json, added_tokens.json.

    tokenizer.json carries exactly the pipeline transformers 5.x builds for DebertaV2Tokenizer, so that a
    plain `tokenizers.Tokenizer.from_file` or `PreTrainedTokenizerFast` gives the same ids as well.
    """
    sp = load_spm(folder / "spm.model")
    pieces = sp.get_piece_size()
    for piece, idx in SPECIAL_TOKENS.items():
        if sp.id_to_piece(idx) != piece:
            raise FactoryError(f"{folder}/spm.model: id {idx} is not {piece}; retrain it with `factory vocab`")
    # Control and unknown pieces score 0.0: DebertaV2Tokenizer finds its unk id as vocab.index(("[UNK]", 0.0))
    vocab = [
        [sp.id_to_piece(i), 0.0 if sp.is_control(i) or sp.is_unknown(i) else float(sp.get_score(i))]
        for i in range(pieces)
    ]
    mask_id = pieces
    _write_json(folder / "tokenizer.json", tokenizer_json(vocab, mask_id))
    special_map = {
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": MASK_TOKEN,
    }
    added = {str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
                      "single_word": False} for t, i in {**SPECIAL_TOKENS, MASK_TOKEN: mask_id}.items()}  # fmt: skip
    config = {
        "tokenizer_class": "DebertaV2Tokenizer",
        "do_lower_case": False,
        "split_by_punct": False,
        "vocab_type": "spm",
        "add_prefix_space": True,
        "model_max_length": max_length,
        **special_map,
        "added_tokens_decoder": added,
    }
    _write_json(folder / "tokenizer_config.json", config)
    _write_json(folder / "special_tokens_map.json", special_map)
    _write_json(folder / "added_tokens.json", {MASK_TOKEN: mask_id})
    return {"pieces": pieces, "mask_id": mask_id}


def tokenizer_json(vocab: list[list], mask_id: int) -> dict:
    """The `tokenizers` serialisation (format 1.0) of DebertaV2Tokenizer's 5.x pipeline, written by hand so
    that `factory` needs no `tokenizers` at run time; tests load it with `tokenizers` and `transformers`."""
    special = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    added = [{"id": i, "content": t, **special} for t, i in {**SPECIAL_TOKENS, MASK_TOKEN: mask_id}.items()]
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}

    def template(*parts: tuple[str, str, int]) -> list[dict]:
        return [{kind: {"id": name, "type_id": type_id}} for kind, name, type_id in parts]

    cls, sep = ("SpecialToken", "[CLS]", 0), ("SpecialToken", "[SEP]", 0)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Replace", "pattern": {"Regex": r"\s{2,}|[\n\r\t]"}, "content": " "},
                {"type": "NFC"},
                {"type": "Strip", "strip_left": False, "strip_right": True},
            ],
        },
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [metaspace]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": template(cls, ("Sequence", "A", 0), sep),
            "pair": template(cls, ("Sequence", "A", 0), sep, ("Sequence", "B", 1), ("SpecialToken", "[SEP]", 1)),
            "special_tokens": {t: {"id": t, "ids": [SPECIAL_TOKENS[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": SPECIAL_TOKENS["[UNK]"], "vocab": vocab, "byte_fallback": False},
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
