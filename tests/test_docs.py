"""docs/: every `docs/<page>.md#<section>` pointer in the repository lands on a heading, and nothing points at
design notes that are not in the repository."""

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# What the project is made of (not venvs, build output or run folders that may sit in a checkout).
SCANNED = ["factory", "tests", "bench", "recipes", "eval", "vocab", "docs", ".ci", "README.md", "pyproject.toml",
           "setup.py", "MANIFEST.in"]  # fmt: skip
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".in", ""}
POINTER = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")
LINK = re.compile(r"\]\((?!https?:)([\w.-]+\.md)?(?:#([\w-]+))?\)")  # relative links inside docs/*.md


def project_files() -> list[Path]:
    found = []
    for name in SCANNED:
        path = ROOT / name
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file() and f.suffix in TEXT and "__pycache__" not in f.parts:
                found.append(f)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # no headings in code blocks
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", text, flags=re.M)}


def test_slug_matches_github():
    assert slug("RTD and GDES") == "rtd-and-gdes" and slug("Hyper-parameters") == "hyper-parameters"
    assert slug("Parameter names") == "parameter-names" and slug("XNLI") == "xnli"
    assert slug("The size table (v3)") == "the-size-table-v3"


def test_every_docs_pointer_lands_on_a_heading():
    files = project_files()
    assert len(files) > 50 and (ROOT / "factory" / "cli" / "main.py") in files
    pointers: list[tuple[Path, str, str | None]] = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        pointers += [(f, m.group(1), m.group(2)) for m in POINTER.finditer(text)]
        if f.parent == DOCS and f.suffix == ".md":
            pointers += [(f, m.group(1) or f.name, m.group(2)) for m in LINK.finditer(text)]
    assert len(pointers) > 50  # the code, the YAML files and the docs cite these pages
    broken = []
    for source, page, anchor in pointers:
        target = DOCS / page
        if not target.is_file() or (anchor and anchor not in anchors(target)):
            broken.append(f"{source.relative_to(ROOT)}: docs/{page}{'#' + anchor if anchor else ''}")
    assert not broken, "pointers to missing pages or headings:\n" + "\n".join(broken)


def test_the_mapped_sections_exist():
    """The sections code comments are written against (one per topic of the old design notes)."""
    expected = {
        "architecture.md": {"presets", "attention", "parameter-names", "emd"},
        "pretraining.md": {"rtd-and-gdes", "hyper-parameters"},
        "tokenizer.md": set(),
        "evaluation.md": {"xnli"},
    }
    for page, sections in expected.items():
        assert sections <= anchors(DOCS / page), page
        assert page in (DOCS / "README.md").read_text(encoding="utf-8"), f"docs/README.md does not index {page}"


def test_nothing_cites_notes_outside_the_repository():
    outside = re.compile(r"\b(?:SPEC|STYLE|DESIGN)\.md\b")
    cited = [
        f"{f.relative_to(ROOT)}:{n}"
        for f in project_files()
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if outside.search(line)
    ]
    assert not cited, "cite docs/ instead: " + ", ".join(cited)


def test_every_module_path_the_docs_name_exists():
    """A file of the package named in the README, docs/, bench/ or a comment of factory/ or tests/ exists where
    it is named (`factory/corpus/langid/ftz.py`): modules move (issue 29's layout) and the prose must follow."""
    named = re.compile(r"\bfactory/[A-Za-z_/]+\.py\b")
    places = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bench").rglob("*.md")]
    places += [p for folder in ("bench", "factory", "tests") for p in (ROOT / folder).rglob("*.py")]
    missing = sorted({f"{p.relative_to(ROOT)}: {m}" for p in places
                      for m in named.findall(p.read_text(encoding="utf-8")) if not (ROOT / m).is_file()})  # fmt: skip
    assert len(places) > 100 and not missing, missing
