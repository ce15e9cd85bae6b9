"""bench/ is a tool beside the library, not a part of the tests: nothing under tests/ imports it (what both need is
a helper here, e.g. synthetic_shards.py, readme_demo.py), and every benchmark the project names exists where it
is named (`python -m bench.<kind>.<name>`, `bench/<kind>/<name>.py|.sh`, the figures RESULTS.md shows)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
KINDS = ("speed", "studies", "device", "faults", "data")
# Where benchmarks are named (factory/ too: its comments cite the benchmark that measured a choice).
NAMING = ["README.md", "docs", "bench", "recipes", "tests", ".ci", "pyproject.toml", "factory"]
MODULE = re.compile(r"\bbench\.([a-z_]+(?:\.[a-z_]+)*)")
FILE = re.compile(r"\bbench/([\w./-]+\.(?:py|sh|png|md))")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module or "")
    return found


def naming_files() -> list[Path]:
    files = []
    for name in NAMING:
        path = ROOT / name
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file() and f.suffix in {".py", ".md", ".sh", ".yaml", ".toml", ""} and "__pycache__" not in f.parts:
                files.append(f)
    return files


def test_no_test_imports_bench():
    files = sorted((ROOT / "tests").rglob("*.py"))
    assert len(files) > 20 and Path(__file__) in files
    importing = {
        f"{f.relative_to(ROOT)}: {module}"
        for f in files
        for module in imported_modules(f)
        if module == "bench" or module.startswith("bench.")
    }
    assert not importing, "tests/ imports bench (move what both need into a helper under tests/):\n" + "\n".join(
        sorted(importing)
    )


def test_bench_is_folders_by_kind():
    """No script at bench/'s top level: each sits in the folder of its kind, importable as bench.<kind>.<name>."""
    loose = sorted(p.name for p in BENCH.glob("*.py") if p.name not in {"__init__.py", "timing.py", "cli.py"})
    assert not loose, f"put these in bench/<kind>/: {loose}"
    for kind in KINDS:
        assert (BENCH / kind / "__init__.py").is_file(), kind
        assert list((BENCH / kind).glob("[!_]*.py")), f"bench/{kind}/ is empty"


def test_every_named_benchmark_exists():
    files = naming_files()
    assert any(f.name == "RESULTS.md" for f in files)
    missing = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        for match in MODULE.finditer(text):
            parts = match.group(1).split(".")
            if parts[-1] in {"log", "json", "md", "txt"}:  # a file name (bench.log), not a module
                continue
            # a module or package, or one followed by an attribute (bench.studies.quality_arms.collect)
            if not any(
                (BENCH.joinpath(*parts[:n]).with_suffix(".py")).is_file()
                or (BENCH.joinpath(*parts[:n]) / "__init__.py").is_file()
                for n in range(len(parts), 0, -1)
            ):
                missing.append(f"{f.relative_to(ROOT)}: bench.{match.group(1)}")
        for match in FILE.finditer(text):
            if not (BENCH / match.group(1)).is_file():
                missing.append(f"{f.relative_to(ROOT)}: bench/{match.group(1)}")
        if f.name == "RESULTS.md":
            for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
                if not (f.parent / image).is_file():
                    missing.append(f"{f.relative_to(ROOT)}: {image}")
    assert not missing, "named but not there:\n" + "\n".join(missing)


def test_results_name_no_machine_folders():
    """RESULTS.md's commands name their inputs by role (DATA, OUT, RUN, ...), not by where they sat on a machine."""
    text = (BENCH / "RESULTS.md").read_text(encoding="utf-8")
    found = sorted({m.group(0) for m in re.finditer(r"(?<![\w.])(?:/tmp|/work|/home|/root|~|\.\.)/[\w./-]*", text)})
    assert not found, f"bench/RESULTS.md names machine folders: {found}"
