"""Language filters side by side: fastText's lid.176 (factory's default), factory's langdetect-profile filter
and plain langdetect, on labelled text: accuracy per language and documents per CPU-second, in one run.

    python -m bench.speed.langid [--corpus DIR]... [--docs 200] [--translated] [--json FILE]

A corpus is a folder of `<lang>.txt` files, one document per line; by default the project's demo corpus
(recipes/demo/corpus, 8 languages) and, if present, /work/real (the Debian handbook in 26 locales:
`python3 ../shared/data/real_text.py DIR`; human translations, not in this repo). File names are locales:
nb -> no, zh_TW -> zh_hant, zh_CN -> zh_hans; the handbook's `zh.txt` is zh_CN. `--translated` keeps only the
paragraphs that are translated (DIR/parallel/<lang>.tsv: less than half of the words shared with the English
source), since the handbook leaves many paragraphs (commands, titles) in English; labelled by file, those count
as errors for every filter alike.

A guess is right when the document's code is among the filter's codes for it (factory's `Guess.codes`: `zh`
takes either script, zh_hans/zh_hant need the script right); plain langdetect's zh-cn/zh-tw count as
zh_hans/zh_hant. Each filter runs in this one process on the same documents; documents/s is per CPU-second
(process time), so the ratio between filters survives a busy machine. `fasttext, 1000 chars` is lid.176 on
every document's first 1,000 characters (no cascade): what the cascade's first 64-character look costs.
factory runs lid.176 in NumPy with a cache of each distinct token's rows (factory/corpus/langid/ftz.py): its rows
start from an empty cache (every word of these few documents is new to it: the worst case), and once more
with the cache the same documents left (a long build's frequent words); `fastText's own predict` is
fasttext-predict's C++ predict with the same cascade, one call a document (the filter before), and the
share of documents on which factory's codes equal its own is printed.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

from bench.cli import make_parser
from bench.timing import timed

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo" / "corpus"
REAL = Path("/work/real")
LOCALES = {"nb": "no", "zh_TW": "zh_hant", "zh_CN": "zh_hans"}


def label_of(stem: str, corpus: Path) -> str:
    if stem == "zh" and (corpus / "zh_TW.txt").is_file():
        return "zh_hans"  # the handbook's zh.txt is zh_CN beside zh_TW
    return LOCALES.get(stem, stem)


def labelled(corpus: Path, per_lang: int, translated: bool) -> list[tuple[str, str]]:
    """(code, text): the first `per_lang` documents (>= 20 characters) of every <lang>.txt."""
    docs = []
    for path in sorted(corpus.glob("*.txt")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if len(line) >= 20]
        if translated and path.stem != "en":
            keep = _translated(corpus, path.stem)
            lines = [line for line in lines if line in keep]
        docs += [(label_of(path.stem, corpus), line) for line in lines[:per_lang]]
    return docs


def _translated(corpus: Path, stem: str) -> set[str]:
    """The paragraphs of parallel/<stem>.tsv that share less than half of their words with the English source."""
    pairs = corpus / "parallel" / f"{stem}.tsv"
    if not pairs.is_file():
        return set()
    keep = set()
    for row in pairs.read_text(encoding="utf-8").splitlines():
        english, _, text = row.partition("\t")
        ours, theirs = set(text.lower().split()), set(english.lower().split())
        if ours and len(ours & theirs) < 0.5 * len(ours):
            keep.add(text)
    return keep


# ---- the filters: each gives, per text, the codes it counts as -------------------------------------
def fasttext_codes(texts: list[str], first_chars: int | None = None) -> list[tuple[str, ...]]:
    """factory's lid.176 (factory/corpus/langid/ftz.py) with the token cache as the last call left it."""
    from factory.corpus.langid import lid176

    lid = lid176.Lid176() if first_chars is None else lid176.Lid176(first_chars=first_chars)
    return [g.codes for g in lid.identify_batch(texts)]


def cold(texts: list[str]) -> None:
    """Before a timing: factory's lid.176 read again, its token cache empty."""
    from factory.corpus.langid import lid176

    lid176._model.cache_clear()
    lid176._model()


@cache
def _own_model():
    """fasttext-predict's C++ model object on lid.176.ftz, loaded once (outside the timings)."""
    import fasttext

    from factory.corpus.langid.lid176 import model_path

    return fasttext.load_model(model_path()).f


def own_predict_codes(texts: list[str]) -> list[tuple[str, ...]]:
    """fastText's own C++ predict (fasttext-predict) on lid.176.ftz, one call a document, with factory's cascade
    (64 characters, then 1,000 under 80% sure): the anchor factory's NumPy reading must equal, and the filter
    factory ran before."""
    from factory.corpus.langid.chinese import script_variants
    from factory.corpus.langid.filters import Guess
    from factory.corpus.langid.lid176 import _LETTER, FIRST_CHARS, MAX_CHARS, SURE, VARIANTS

    predict, letter = _own_model().predict, _LETTER.search
    out = []
    for text in texts:
        text = text[:MAX_CHARS].replace("\n", " ")
        if not letter(text):
            out.append(())
            continue
        prob, label = predict(text[:FIRST_CHARS] + "\n", 1, 0.0, "strict")[0]
        if prob < SURE and len(text) > FIRST_CHARS:
            prob, label = predict(text + "\n", 1, 0.0, "strict")[0]
        lang = label.removeprefix("__label__")
        out.append(Guess(lang, prob, script_variants(text) if lang == "zh" else VARIANTS.get(lang, ())).codes)
    return out


def profiles_codes(texts: list[str]) -> list[tuple[str, ...]]:
    from factory.corpus.langid import identifier

    return [g.codes for g in identifier("langdetect").identify_batch(texts)]


def plain_codes(texts: list[str]) -> list[tuple[str, ...]]:
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    names = {"zh-cn": ("zh_hans", "zh"), "zh-tw": ("zh_hant", "zh")}
    out = []
    for text in texts:
        try:
            code = detect(text)
        except LangDetectException:
            code = ""
        out.append(names.get(code, (code,) if code else ()))
    return out


DEFAULT, OWN = "fasttext (lid.176, factory default)", "fasttext, fastText's own predict (fasttext-predict)"
FILTERS = {  # name: (what runs before the timing, the filter)
    DEFAULT: (cold, fasttext_codes),
    "fasttext, factory, warm token cache": (fasttext_codes, fasttext_codes),
    "fasttext, 1000 chars (no cascade)": (cold, lambda texts: fasttext_codes(texts, first_chars=1000)),
    OWN: (None, own_predict_codes),
    "langdetect profiles (factory)": (None, profiles_codes),
    "langdetect, plain": (None, plain_codes),
}


def measure(docs: list[tuple[str, str]]) -> dict:
    """Per filter: CPU seconds, documents/s, overall and per-language accuracy."""
    from factory.corpus.langid import preload

    texts = [text for _, text in docs]
    preload("fasttext"), preload("langdetect")  # models and the Chinese tables loaded outside the timings
    fasttext_codes(texts[:5]), own_predict_codes(texts[:5]), profiles_codes(texts[:5]), plain_codes(texts[:5])
    results, answers = {}, {}
    for name, (prepare, run) in FILTERS.items():
        if prepare is not None:
            prepare(texts)
        with timed() as t:
            codes = answers[name] = run(texts)
        cpu = t.cpu_s
        right, total = Counter(), Counter()
        for (lang, _), found in zip(docs, codes, strict=True):
            total[lang] += 1
            right[lang] += lang in found
        results[name] = {"cpu_s": cpu, "docs_per_s": len(texts) / cpu, "accuracy": sum(right.values()) / len(docs),
                         "per_language": {lang: right[lang] / total[lang] for lang in sorted(total)}}  # fmt: skip
    ours, own = answers[DEFAULT], answers[OWN]
    results[DEFAULT]["same_as_own"] = sum(a == b for a, b in zip(ours, own, strict=True)) / len(texts)
    return results


def report(name: str, docs: list[tuple[str, str]], results: dict) -> str:
    langs = sorted({lang for lang, _ in docs})
    mean = sum(len(t) for _, t in docs) / len(docs)
    lines = [f"### {name}: {len(docs)} documents, {len(langs)} languages, {mean:.0f} characters on average", "",
             "| filter | docs/CPU-s | accuracy | " + " | ".join(langs) + " |",
             "|---|---|---|" + "---|" * len(langs)]  # fmt: skip
    for filt, r in results.items():
        per = " | ".join(f"{100 * r['per_language'][lang]:.1f}" for lang in langs)
        lines.append(f"| {filt} | {r['docs_per_s']:,.0f} | **{100 * r['accuracy']:.2f}** | {per} |")
    lines.append(f"\nfactory's lid.176 gives fastText's own codes for {100 * results[DEFAULT]['same_as_own']:.2f}% of "
                 "the documents.")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__spec__, __doc__)
    parser.add_argument("--corpus", type=Path, action="append", help="folder of <lang>.txt (repeatable)")
    parser.add_argument("--docs", type=int, default=200, help="documents per language")
    parser.add_argument("--translated", action="store_true", help="translated paragraphs only (DIR/parallel)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    corpora = args.corpus or [DEMO] + ([REAL] if REAL.is_dir() else [])
    everything = {}
    for corpus in corpora:
        docs = labelled(corpus, args.docs, args.translated)
        if not docs:
            raise SystemExit(f"{corpus}: no <lang>.txt with documents")
        results = measure(docs)
        everything[str(corpus)] = results
        print(report(str(corpus), docs, results) + "\n")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
