"""The runtime tokenizer: a vocabulary folder's `spm.model` plus DeBERTa-v3's special tokens.

Special ids are DeBERTa-v3's (docs/tokenizer.md): [PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3, and [MASK] right after the
SentencePiece pieces (id = number of pieces). Sequences use the templates `[CLS] A [SEP]` and
`[CLS] A [SEP] B [SEP]`. This is what shards, pre-training and evaluation use; `transformers` is never
needed at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from factory.errors import FactoryError

SPM_FILE = "spm.model"
# What `factory vocab` writes beside spm.model for transformers; the first three are what it needs to load.
HF_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "added_tokens.json")
TOKENIZER_FILES = (SPM_FILE, *HF_TOKENIZER_FILES)
SPECIAL_TOKENS = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3}
MASK_TOKEN = "[MASK]"  # id = number of SentencePiece pieces


class Tokenizer:
    pad_id, cls_id, sep_id, unk_id = 0, 1, 2, 3

    def __init__(self, model_file: Path | str):
        import sentencepiece as spm

        self.path = Path(model_file)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        except (OSError, RuntimeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise FactoryError(
                f"{self.path} is not a SentencePiece model ({first[:120]}); rebuild it with `factory vocab`"
            ) from None
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
        from factory.vocab import write_hf_files

        write_hf_files(Path(target))
        copied = [name for name in TOKENIZER_FILES if (Path(target) / name).is_file()]
    return copied
