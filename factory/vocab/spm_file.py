"""A SentencePiece model file (`spm.model`) read and cut down at the protobuf wire level, without `protobuf`.

`factory trim` removes pieces from a published model's vocabulary. The file is a serialised `ModelProto`
(sentencepiece's sentencepiece_model.proto): field 1 repeats `SentencePiece {piece = 1; score = 2; type = 3}`,
then come `trainer_spec` (2), `normalizer_spec` (3), `self_test_data` (4) and `denormalizer_spec` (5). Cutting
means dropping some field-1 records and copying every other byte as it is, so what survives (the kept pieces'
order, raw float scores and types, the normaliser with its precompiled character map) is the original's to
the bit, and factory needs no `protobuf` at run time (sentencepiece's own `sentencepiece_model_pb2` does).

`self_test_data` is dropped: sentencepiece re-encodes those samples when it loads a model and refuses the file
if one comes out differently, which a sample that used a removed piece would.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from factory.core.errors import FactoryError

# ModelProto.SentencePiece.Type (sentencepiece_model.proto)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
PIECES, NORMALIZER_SPEC, SELF_TEST_DATA = 1, 3, 4  # ModelProto field numbers
ADD_DUMMY_PREFIX = 3  # NormalizerSpec field number
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5  # wire types


@dataclass(frozen=True)
class Piece:
    """One vocabulary entry, as stored: the text (with "▁" for a space), the raw score and the type."""

    piece: str
    score: float
    type: int = NORMAL


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start of the record, start of its value) for each record of a message."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        value = pos
        if wire == VARINT:
            _, pos = _varint(data, pos)
        elif wire == FIXED64:
            pos += 8
        elif wire == LENGTH:
            size, value = _varint(data, pos)
            pos = value + size
        elif wire == FIXED32:
            pos += 4
        else:
            raise ValueError(f"wire type {wire} is not used by sentencepiece")
        if pos > len(data):
            raise ValueError("truncated record")
        yield field, wire, start, value


def _records(data: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(field, wire type, the whole record's bytes, its value's bytes) for each record, in file order; the
    value of a length-delimited record is its content, without the size."""
    found = list(_fields(data))
    out = []
    for i, (field, wire, start, value) in enumerate(found):
        end = found[i + 1][2] if i + 1 < len(found) else len(data)
        out.append((field, wire, data[start:end], data[value:end]))
    return out


def _piece(payload: bytes) -> Piece:
    text, score, kind = "", 0.0, NORMAL
    for field, wire, _, value in _records(payload):
        if field == 1 and wire == LENGTH:
            text = value.decode("utf-8")
        elif field == 2 and wire == FIXED32:
            score = struct.unpack("<f", value[:4])[0]
        elif field == 3 and wire == VARINT:
            kind = _varint(value, 0)[0]
    return Piece(text, score, kind)


class SpmModel:
    """The bytes of an spm.model, its pieces (id = position), and `keep` to cut it down."""

    def __init__(self, data: bytes, where: str = "spm.model"):
        self.where, self.data = where, data
        try:
            self._records = _records(data)
            self.pieces = [_piece(value) for field, wire, _, value in self._records
                           if field == PIECES and wire == LENGTH]  # fmt: skip
        except (ValueError, UnicodeDecodeError, struct.error) as e:
            raise FactoryError(f"{where} is not a SentencePiece model ({e}); give the model's spm.model") from None
        if not self.pieces:
            raise FactoryError(f"{where} holds no pieces; it is not a SentencePiece model")

    @classmethod
    def read(cls, path: Path | str) -> SpmModel:
        return cls(Path(path).read_bytes(), str(path))

    def keep(self, ids: Sequence[int]) -> bytes:
        """The model with only the pieces `ids` (ascending, unique), every other field as it was, and no
        self-test samples. The kept pieces' records are copied byte for byte."""
        if list(ids) != sorted(set(ids)) or (ids and not 0 <= ids[0] <= ids[-1] < len(self.pieces)):
            raise ValueError("ids must be ascending, unique and within the vocabulary")
        wanted, out, index = set(ids), bytearray(), 0
        for field, wire, record, _ in self._records:
            if field == PIECES and wire == LENGTH:
                if index in wanted:
                    out += record
                index += 1
            elif field != SELF_TEST_DATA:
                out += record
        return bytes(out)

    def without_dummy_prefix(self) -> bytes:
        """The model with `add_dummy_prefix` off, so a text is cut as it is, without the "▁" put before its start
        (how a word-inner piece's text is cut into the model's pieces). A scalar field given twice takes its
        last value in protobuf, so `add_dummy_prefix = false` is appended to the normaliser spec."""
        out = bytearray()
        for field, wire, record, value in self._records:
            if field == NORMALIZER_SPEC and wire == LENGTH:
                value += bytes([ADD_DUMMY_PREFIX << 3 | VARINT, 0])
                out += bytes([NORMALIZER_SPEC << 3 | LENGTH]) + _encode_varint(len(value)) + value
            else:
                out += record
        return bytes(out)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
