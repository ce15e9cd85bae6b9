"""Counter-based random numbers: uniforms that are a pure function of (seed, step, stream, row, index).

Why a counter-based generator and not a `torch.Generator` per row: a process that prepares only its own rows of
the global batch must draw, for each of them, exactly what one process preparing the whole batch draws. With a
stateful generator that means seeding one per row (a Python call and a state set-up per row: 8192 per step on one
process, and the cost does not vectorise), or drawing the whole batch on every process (the cost that did not
shrink with more processes). A hash of the counter instead is a dozen elementwise int64 tensor ops over the whole
(rows, n) block at once: its cost is proportional to the elements a process needs, it does not depend on how the
rows are split, and it gives the same bits on any device (tests/test_batches.py checks them against the pure
Python reference below).

The hash is splitmix64's finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014; the seeding function of Java's SplittableRandom and xoshiro): a bijection of 64-bit words with full
avalanche, applied to key + counter x golden ratio, as splitmix64 itself does. int64 tensor products wrap modulo
2^64 on CPU and CUDA, which is the unsigned arithmetic the hash is written in; right shifts are made logical by
masking. A uniform is the top 24 bits scaled into [0, 1): float32 represents each of them exactly, as torch.rand
does.
"""

from __future__ import annotations

import torch

_U64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / phi, splitmix64's increment
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SHIFTS = (30, 27, 31)


def _signed(value: int) -> int:
    """A 64-bit word as the int64 torch stores."""
    value &= _U64
    return value - (1 << 64) if value >> 63 else value


def mix64(x: int) -> int:
    """splitmix64's finaliser on a Python int (the reference the tensor version must equal bit for bit)."""
    x &= _U64
    x = ((x ^ (x >> 30)) * _M1) & _U64
    x = ((x ^ (x >> 27)) * _M2) & _U64
    return x ^ (x >> 31)


def _mix_(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser in place on an int64 tensor (wrapping products, masked = logical shifts)."""
    for shift, mult in zip(_SHIFTS, (_M1, _M2, None), strict=True):
        x ^= (x >> shift) & ((1 << (64 - shift)) - 1)
        if mult is not None:
            x *= _signed(mult)
    return x


def stream_key(*parts: int) -> int:
    """One 64-bit key for a tuple of integers (seed, step, stream): each part goes through the bijection in turn."""
    key = 0
    for part in parts:
        key = mix64((key ^ (part & _U64)) + GOLDEN)
    return key


def hash_block(key: int, rows: torch.Tensor, n: int) -> torch.Tensor:
    """(len(rows), n) int64 words: element (i, j) = mix(mix(key + rows[i]·golden) + (j + 1)·golden)."""
    row_keys = _mix_(rows.to(torch.int64) * _signed(GOLDEN) + _signed(key))  # (R,)
    counters = torch.arange(1, n + 1, dtype=torch.int64, device=rows.device) * _signed(GOLDEN)  # (n,)
    return _mix_(row_keys.unsqueeze(1) + counters)  # (R, n)


def to_uniforms(words: torch.Tensor) -> torch.Tensor:
    """float32 uniforms in [0, 1) from the top 24 bits of each word (the low bits stay free for other uses)."""
    return ((words >> 40) & ((1 << 24) - 1)).to(torch.float32).mul_(2.0**-24)


def uniforms(key: int, rows: torch.Tensor, n: int) -> torch.Tensor:
    """(len(rows), n) float32 uniforms in [0, 1), a pure function of (key, row, column)."""
    return to_uniforms(hash_block(key, rows, n))


def reference_word(key: int, row: int, column: int) -> int:
    """`hash_block`'s element (row, column) in pure Python, as an unsigned word (tests)."""
    row_key = mix64(key + row * GOLDEN)
    return mix64(row_key + (column + 1) * GOLDEN)
