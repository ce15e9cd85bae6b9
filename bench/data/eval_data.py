"""Small local sets in the Hub schemas of the xtreme and glue suites, made from real text (the Debian handbook in
/work/real, made by /work/shared/data/real_text.py): a plumbing check of `factory eval xtreme|glue --data`, not
the benchmarks. Every label is derived by a stated rule from real sentences:

xtreme/pawsx   sentence1 = a line of aligned/<lang>.txt; sentence2 = the next line (paraphrase=1, "adjacent") or a
               line 50+ away (0). Train en, test de es fr ja zh.
xtreme/panx    tokens of a real sentence; a capitalised word that does not start the sentence is B-ORG, a
               capitalised word right after one I-ORG, everything else O (a rule, not named entities).
xtreme/udpos   the same tokens; punctuation PUNCT, digits NUM, everything else X.
xtreme/xquad   context = a real paragraph (a line of <lang>.txt, 20+ words); question = the 4 words before a
               span; answer = the next 2 words (zh: 4 characters before, the next 3), answer_start its offset.
xtreme/tatoeba parallel/<lang>.tsv (en<TAB>translation), the first 300 pairs.
glue/cola      a real English sentence (acceptable=1) or the same words shuffled (0).
glue/mrpc      as pawsx, English only (equivalent=1: adjacent lines).
glue/stsb      two lines; label = 5 x the Jaccard overlap of their lower-cased word sets.
glue/mnli      premise = a line; hypothesis = the same line (entailment), the next line (neutral) or a far line
               (contradiction); validation_matched / validation_mismatched from different halves.

    python -m bench.data.eval_data --out /work/eval-sets     # writes OUT/xtreme/... and OUT/glue/...
"""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path

from bench.cli import make_parser

REAL = Path("/work/real")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _eval(folder: Path, lang: str, rows: list[dict], splits=("validation", "test")) -> None:
    """Evaluation rows of one language, cut in halves when the task scores two splits."""
    half = len(rows) // len(splits)
    for k, split in enumerate(splits):
        _write(folder / f"{split}.{lang}.jsonl", rows[k * half : (k + 1) * half])


def _lines(path: Path) -> list[str]:
    return [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def pairs(lines: list[str], n: int, rng: random.Random, far: int = 50) -> list[tuple[str, str, int]]:
    out = []
    for i in rng.sample(range(len(lines) - far - 1), n):
        if rng.random() < 0.5:
            out.append((lines[i], lines[i + 1], 1))
        else:
            out.append((lines[i], lines[(i + far + rng.randrange(len(lines) - far - 1)) % len(lines)], 0))
    return out


def tag_rows(lines: list[str], n: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    panx, udpos = [], []
    for line in rng.sample([x for x in lines if 5 <= len(x.split()) <= 30], n):
        words = re.findall(r"\w+|[^\w\s]", line)
        ner, pos = [], []
        for k, w in enumerate(words):
            cap = w[:1].isupper() and k > 0
            ner.append(("I-ORG" if ner and ner[-1] in ("B-ORG", "I-ORG") else "B-ORG") if cap else "O")
            pos.append("PUNCT" if all(c in string.punctuation for c in w) else "NUM" if w.isdigit() else "X")
        panx.append({"tokens": words, "ner_tags": ner})
        udpos.append({"tokens": words, "pos_tags": pos})
    return panx, udpos


def qa_rows(lines: list[str], lang: str, n: int, rng: random.Random) -> list[dict]:
    rows = []
    cjk = lang in ("zh", "ja")
    long = [x for x in lines if (len(x) >= 60 if cjk else len(x.split()) >= 20)]
    for k, context in enumerate(rng.sample(long, min(n, len(long)))):
        if cjk:
            start = rng.randrange(4, len(context) - 3)
            question, answer = context[start - 4 : start], context[start : start + 3]
        else:
            spans = [m.start() for m in re.finditer(r"\S+", context)]
            j = rng.randrange(4, len(spans) - 2)
            question = context[spans[j - 4] : spans[j]].strip()
            answer = context[spans[j] : spans[j + 2]].strip()
            start = spans[j]
        rows.append({"id": f"{lang}-{k}", "title": "", "context": context, "question": question,
                     "answers": {"text": [answer], "answer_start": [start]}})  # fmt: skip
    return rows


def build(out: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    aligned = {lang: _lines(REAL / "aligned" / f"{lang}.txt") for lang in ("en", "de", "es", "fr", "ja", "zh")}
    x = out / "xtreme"
    for lang, lines in aligned.items():
        rows = [{"sentence1": a, "sentence2": b, "label": y} for a, b, y in pairs(lines, 256 if lang == "en" else 64,
                                                                                     rng)]  # fmt: skip
        if lang == "en":
            _write(x / "pawsx" / "train.en.jsonl", rows[:192])
        _eval(x / "pawsx", lang, rows[192:] if lang == "en" else rows)
    for lang in ("en", "de", "es", "fr"):
        panx, udpos = tag_rows(_lines(REAL / f"{lang}.txt"), 256 if lang == "en" else 64, rng)
        for name, rows in (("panx", panx), ("udpos", udpos)):
            if lang == "en":
                _write(x / name / "train.en.jsonl", rows[:192])
            _eval(x / name, lang, rows[192:] if lang == "en" else rows)
    for lang in ("en", "de", "es", "zh"):
        rows = qa_rows(_lines(REAL / f"{lang}.txt"), lang, 256 if lang == "en" else 64, rng)
        if lang == "en":
            _write(x / "xquad" / "train.en.jsonl", rows[:192])
            _write(x / "xquad" / "test.en.jsonl", rows[192:])
        else:
            _write(x / "xquad" / f"test.{lang}.jsonl", rows)
    for lang in ("de", "es", "fr", "zh"):
        tsv = (REAL / "parallel" / f"{lang}.tsv").read_text(encoding="utf-8").splitlines()
        (x / "tatoeba").mkdir(parents=True, exist_ok=True)
        (x / "tatoeba" / f"{lang}.tsv").write_text("\n".join(tsv[:300]) + "\n", encoding="utf-8")
    g, en = out / "glue", aligned["en"]
    sentences = [s for s in _lines(REAL / "en.txt") if 6 <= len(s.split()) <= 40]
    cola = []
    for s in rng.sample(sentences, 320):
        words = s.split()
        ok = rng.random() < 0.5
        cola.append({"sentence": s if ok else " ".join(rng.sample(words, len(words))), "label": int(ok)})
    _write(g / "cola" / "train.jsonl", cola[:256])
    _write(g / "cola" / "validation.jsonl", cola[256:])
    mrpc = [{"sentence1": a, "sentence2": b, "label": y} for a, b, y in pairs(en, 320, rng)]
    _write(g / "mrpc" / "train.jsonl", mrpc[:256])
    _write(g / "mrpc" / "validation.jsonl", mrpc[256:])
    stsb = []
    for _ in range(320):
        a, b = rng.sample(sentences, 2) if rng.random() < 0.5 else (lambda i: (sentences[i], sentences[i + 1]))(
            rng.randrange(len(sentences) - 1))  # fmt: skip
        wa, wb = set(a.lower().split()), set(b.lower().split())
        stsb.append({"sentence1": a, "sentence2": b, "label": round(5 * len(wa & wb) / len(wa | wb), 3)})
    _write(g / "stsb" / "train.jsonl", stsb[:256])
    _write(g / "stsb" / "validation.jsonl", stsb[256:])
    mnli = []
    for i in rng.sample(range(len(en) - 60), 384):
        kind = rng.randrange(3)
        hyp = en[i] if kind == 0 else en[i + 1] if kind == 1 else en[(i + 50 + rng.randrange(len(en) - 60)) % len(en)]
        mnli.append({"premise": en[i], "hypothesis": hyp, "label": kind})
    _write(g / "mnli" / "train.jsonl", mnli[:256])
    _write(g / "mnli" / "validation_matched.jsonl", mnli[256:320])
    _write(g / "mnli" / "validation_mismatched.jsonl", mnli[320:])


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__spec__, __doc__)
    parser.add_argument("--out", type=Path, required=True)
    build(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
