"""One direction for imports: no module of factory/ imports, however indirectly, a module that imports it back.

Every import counts: at the top of a module, inside a function (the lazy ones that keep `--help` instant), and
under `if TYPE_CHECKING:` (a reader follows those too). `from package import name` counts as an import of
`package.name` when that is a module, else of the package. A package's `__init__` is not counted as imported
by its submodules (Python runs it first, but that is how packages are made, not a dependency of the code).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted((ROOT / "factory").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The factory modules `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .y import z
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None (iterative depth-first search, modules in sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_walker_sees_lazy_and_type_checking_imports():
    graph = import_graph()
    assert "factory.pretrain.config" in graph and len(graph) > 50
    assert "factory.core.vocab_sizes" in graph["factory.core.step_options"]  # a lazy import inside size_problems()
    assert "factory.pretrain.state" in graph["factory.pretrain.probe"]  # under TYPE_CHECKING
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_factory():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


STEPS = ("corpus", "langid", "vocab", "shards", "pretrain", "evaluate", "publish", "derive", "recipe", "cli")


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_core_imports_no_step_and_no_model():
    """factory/core is the shared ground: it imports only itself (and the root package's version)."""
    graph = import_graph()
    core = {name for name in graph if _package(name) == "core"}
    assert len(core) >= 10
    outside = {f"{name} -> {dep}" for name in core for dep in graph[name] if _package(dep) not in ("core", "")}
    assert not outside, sorted(outside)


def test_model_imports_no_step():
    """factory/model (architecture, presets, model folders, `factory init`) reaches only factory/core."""
    graph = import_graph()
    model = {name for name in graph if _package(name) == "model"}
    outside = {f"{name} -> {dep}" for name in model for dep in graph[name] if _package(dep) not in ("model", "core")}
    assert not outside, sorted(outside)


def test_configs_import_no_step():
    """configs describe and validate; the steps import them, never the other way round: a step's config reaches
    only factory/core (the grammars, factory.core.step_options' shared help texts and size check, the language
    table), the configs it extends or takes a default from, and factory.model.presets' shape check (lazy; it
    imports no config)."""
    graph = import_graph()
    configs = {name for name in graph if name.endswith(".config") and _package(name) in STEPS}
    configs |= {"factory.model.init_config"}
    assert {"factory.vocab.config", "factory.pretrain.config", "factory.publish.config"} <= configs
    allowed = configs | {"factory.model.presets"}
    for name in configs:
        outside = {dep for dep in graph[name] if _package(dep) != "core" and dep not in allowed}
        assert not outside, (name, outside)
    assert not configs & graph["factory.model.presets"]


def test_layout_limits():
    """docs/layout.md: a dozen modules at most directly in factory/ (the rest live in their step's package), no
    module over 500 lines, no function over 60."""
    top = sorted(p.name for p in (ROOT / "factory").glob("*.py"))
    assert len(top) <= 12, top
    long_modules, long_functions = [], []
    for name, path in module_files().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 500:
            long_modules.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                if node.end_lineno - start + 1 > 60:
                    long_functions.append(f"{name}.{node.name}")
    assert not long_modules and not long_functions, (long_modules, long_functions)
