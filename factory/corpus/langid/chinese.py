"""Simplified or Traditional Chinese, from the characters: CC100 splits Chinese into zh_hans and zh_hant, while
both identifiers say only "Chinese" (lid.176's `zh`; langdetect's zh-cn/zh-tw profiles are one language to us).

A Han character that GB2312 (the Simplified standard) encodes and Big5 (the Traditional one) does not is a
Simplified form (这 个 们 ...), and the other way round a Traditional one (這 個 們 ...); characters both encode
(的 是 人 ...) are written the same in both scripts. A text is Simplified when it has more Simplified-only than
Traditional-only characters, Traditional when fewer, and either when as many (often none: 套件快取代理 reads the
same in both). Python's own codecs, no table to ship: on the Debian handbook (real text, not in this repo)
every one of 2,233 zh_CN paragraphs reads as Simplified, and 1,268 of 1,310 zh_TW ones as Traditional, the
other 42 as either (bench/RESULTS.md).
"""

from __future__ import annotations

import re
from functools import cache

HANS, HANT = "zh_hans", "zh_hant"
_HAN_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))  # Extension A, Unified, Compatibility


@cache
def _patterns() -> tuple[re.Pattern, re.Pattern]:
    """Character classes of the Simplified-only and Traditional-only Han characters (~2.4k and ~8.7k). Each
    codec reads all the Han blocks in one call: what survives an encode that drops the rest is what it has."""
    han = "".join(chr(point) for low, high in _HAN_BLOCKS for point in range(low, high + 1))
    gb = set(han.encode("gb2312", "ignore").decode("gb2312"))
    big5 = set(han.encode("big5", "ignore").decode("big5"))
    simplified = "".join(c for c in han if c in gb and c not in big5)
    traditional = "".join(c for c in han if c in big5 and c not in gb)
    return re.compile(f"[{simplified}]"), re.compile(f"[{traditional}]")


def script_variants(text: str) -> tuple[str, ...]:
    """(zh_hans,), (zh_hant,), or both when the text's characters do not tell the scripts apart."""
    simplified, traditional = _patterns()
    hans, hant = len(simplified.findall(text)), len(traditional.findall(text))
    if hans > hant:
        return (HANS,)
    if hant > hans:
        return (HANT,)
    return (HANS, HANT)
