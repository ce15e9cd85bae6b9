"""Language-filter throughput and agreement: factory.langid vs plain single-process langdetect.

    python -m bench.langid [--docs 200] [--workers 2] [--chars 0] [--join 1] [--corpus DIR]

Labelled sample: a folder of `<lang>.txt` files, one document per line — by default the project's demo
corpus (recipes/demo/corpus, 8 languages, 4 scripts); for human-written text, the Debian handbook in 24
languages (`python3 ../shared/data/real_text.py /tmp/real` then `--corpus /tmp/real`). Documents can be cut
to `--chars` characters to make the task harder. Plain langdetect runs seeded
(DetectorFactory.seed = 0) in one process, as a user would call it; the fast filter runs in one process and
with `--workers` processes. Prints docs/s, the speed-up, accuracy against the labels and agreement with plain
langdetect. Goal (issue 3): >= 10x faster, accuracy no worse.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "recipes" / "demo" / "corpus"


def labelled(corpus: Path, per_lang: int, chars: int, join: int) -> list[tuple[str, str]]:
    """(language, text); `join` lines make one document (web pages are longer than one line). Languages
    the filter has no profile for are left out (both filters are scored on the same documents)."""
    from factory.langid import profile_codes

    docs = []
    for path in sorted(corpus.glob("*.txt")):
        if path.stem not in profile_codes():
            continue
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if len(line) >= 20]
        for i in range(per_lang):
            text = " ".join(lines[(i + k) % len(lines)] for k in range(join))
            docs.append((path.stem, text[:chars] if chars else text))
    return docs


def plain(texts: list[str]) -> list[str]:
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    from factory.langid import canonical

    DetectorFactory.seed = 0
    out = []
    for text in texts:
        try:
            out.append(canonical(detect(text)))
        except LangDetectException:
            out.append("")
    return out


def fast(texts: list[str], workers: int) -> list[str]:
    from factory.langid import identify_many

    return [guess.lang for _, guess in identify_many(texts, workers=workers)]


def timed(fn, *args) -> tuple[list[str], float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="documents per language")
    parser.add_argument("--workers", type=int, default=2, help="processes for the pooled fast run")
    parser.add_argument("--chars", type=int, default=0, help="cut documents to this many characters (0: whole)")
    parser.add_argument("--join", type=int, default=1, help="lines per document (5: ~1000-character documents)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of <lang>.txt files [the demo corpus]")
    args = parser.parse_args()

    from factory.langid import LanguageId

    docs = labelled(args.corpus, args.docs, args.chars, args.join)
    labels, texts = [d[0] for d in docs], [d[1] for d in docs]
    plain(texts[:5]), LanguageId()  # load the profiles outside the timings (both sides)
    base, t_plain = timed(plain, texts)
    one, t_one = timed(fast, texts, 1)
    many, t_many = timed(fast, texts, args.workers)
    assert one == many, "worker processes changed the answers"

    def acc(guess: list[str]) -> float:
        return sum(g == y for g, y in zip(guess, labels, strict=True)) / len(labels)

    agree = sum(a == b for a, b in zip(one, base, strict=True)) / len(base)
    n = len(texts)
    mean = sum(map(len, texts)) / n
    print(f"{n} labelled documents, {len(set(labels))} languages, {mean:.0f} characters on average")
    print(f"{'filter':<34} {'docs/s':>9} {'speed-up':>9} {'accuracy':>9} {'agree w/ plain':>15}")
    print(f"{'langdetect, plain, 1 process':<34} {n / t_plain:>9.0f} {1:>8.1f}x {acc(base):>9.4f} {1:>15.4f}")
    print(
        f"{'factory.langid, 1 process':<34} {n / t_one:>9.0f} {t_plain / t_one:>8.1f}x {acc(one):>9.4f} {agree:>15.4f}"
    )
    label = f"factory.langid, {args.workers} processes"
    print(f"{label:<34} {n / t_many:>9.0f} {t_plain / t_many:>8.1f}x {acc(many):>9.4f} {agree:>15.4f}")


if __name__ == "__main__":
    main()
