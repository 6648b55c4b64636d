"""The import plan of docs/architecture.md ("Layers"), checked on the source: no import circles
(imports inside functions and blocks, `if TYPE_CHECKING:` included, count: a circle hidden
there is still one), no import from a layer above, and few imports of distnlp modules inside
functions or blocks, each with its reason on the line (`# lazy: ...`)."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "distnlp"

# Lowest first; a module may import from its own layer and the layers below. The longest
# matching prefix gives a module's layer.
LAYERS: list[tuple[str, ...]] = [
    # registrations names every built-in module as a string and imports it when the registry is
    # first asked (as entry points do): no import of it points up
    ("distnlp.version", "distnlp.errors", "distnlp.registry", "distnlp.registrations", "distnlp.schedules",
     "distnlp.progress", "distnlp.owned_paths", "distnlp.hashed_files", "distnlp.lemma", "distnlp.config"),
    ("distnlp.data", "distnlp.vectors", "distnlp.distributed"),
    ("distnlp.models", "distnlp.interop"),  # interop: distnlp Docs <-> spaCy's
    ("distnlp.data.convert", "distnlp.scoring"),  # raw files -> corpora (.spacy through interop); scores (CoNLL-U files)
    ("distnlp.pipeline",),
    ("distnlp.training",),
    ("distnlp.pretrain", "distnlp.annotate"),
    ("distnlp.ray_backend", "distnlp.interop.spacy_component"),  # spaCy's entry point loads a pipeline
    ("distnlp", "distnlp.cli", "distnlp.demo_data"),
]
MAX_LAZY = 10


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer_of(module: str) -> int:
    best, level = "", -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, i
    assert level >= 0, f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)"
    return level


def _imports(module: str) -> Iterator[tuple[str, int, bool]]:
    """(imported distnlp module, line, inside a function or block) for every import."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            # an import under `if TYPE_CHECKING:` is in a block too: it counts for circles and the budget
            block = isinstance(child, (ast.If, ast.Try)) and not isinstance(node, (ast.If, ast.Try))
            inside = in_function or block or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package[: len(package) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    name = f"{base}.{alias.name}"
                    target = name if name in MODULES else base
                    if target.startswith("distnlp"):
                        yield target, child.lineno, in_function
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("distnlp"):
                        yield alias.name, child.lineno, in_function
            yield from walk(child, inside)

    yield from walk(ast.parse(path.read_text()), False)


GRAPH = {m: sorted({(t, line, lazy) for t, line, lazy in _imports(m) if t != m and t in MODULES}) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    edges = {m: {t for t, _, _ in GRAPH[m]} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles() -> None:
    assert _cycles() == []


def test_no_module_imports_from_a_layer_above() -> None:
    climbs = [f"{m}:{line} imports {t}" for m in sorted(MODULES) for t, line, _ in GRAPH[m] if layer_of(t) > layer_of(m)]
    assert climbs == []


def test_imports_inside_functions_are_few_and_say_why() -> None:
    lazy = [(m, t, line) for m in sorted(MODULES) for t, line, is_lazy in GRAPH[m] if is_lazy]
    lines = {m: MODULES[m].read_text().splitlines() for m, _, _ in lazy}
    unexplained = [f"{m}:{line} imports {t}" for m, t, line in lazy if "# lazy:" not in lines[m][line - 1]]
    assert unexplained == []
    assert len(lazy) < MAX_LAZY, [f"{m}:{line} {t}" for m, t, line in lazy]


def test_the_checker_sees_a_circle_and_a_climb() -> None:
    """The test fails for what it names: a circle through a function-level import and an import
    from a layer above are both found."""
    saved = {m: GRAPH[m] for m in ("distnlp.errors", "distnlp.training.loop")}
    try:
        GRAPH["distnlp.errors"] = [*saved["distnlp.errors"], ("distnlp.training.loop", 1, True)]
        GRAPH["distnlp.training.loop"] = [*saved["distnlp.training.loop"], ("distnlp.errors", 1, False)]
        assert any("distnlp.errors" in c for c in _cycles())
        assert layer_of("distnlp.training.loop") > layer_of("distnlp.errors")
    finally:
        GRAPH.update(saved)
