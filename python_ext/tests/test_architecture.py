"""The package's layering, read from the source with `ast` (no import, no Jupyter): fast.

- the import graph of kerasgpu (absolute and relative imports, function-level ones included)
  has no cycle;
- the server (kerasgpu.server, the server extension hook in kerasgpu/__init__.py, the CLI)
  never imports the kernel side (kerasgpu.kernel);
- the pure core imports neither the server, the kernel side, Jupyter, tornado, IPython,
  TensorFlow nor Keras (its snippet files are notebook code, read as text);
- telemetry imports nothing of kerasgpu outside itself;
- no function or method of the package is longer than `MAX_FUNCTION_LINES`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kerasgpu"
MAX_FUNCTION_LINES = 80
SKIP_DIRS = {"labextension", "__pycache__"}


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package under `root`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        if SKIP_DIRS & set(rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, str | None]]:
    """(imported module, line, enclosing function or None) for every import in the file.

    `from X import a` counts as importing X.a when that is a module, else X. Only names
    inside the package (`modules`) and third-party top-level names are kept.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int, str | None]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = func
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child.name
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in modules else base, child.lineno, inner))
            visit(child, inner)

    visit(tree, None)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, tuple[int, str | None]]]:
    """module -> {module of kerasgpu it imports: (line, function)}."""
    graph: dict[str, dict[str, tuple[int, str | None]]] = {}
    for name, path in modules.items():
        edges: dict[str, tuple[int, str | None]] = {}
        for target, line, func in imports_of(name, path, modules):
            if target in modules and target != name:
                edges.setdefault(target, (line, func))
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = walk(nxt)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = walk(start)
            if cycle:
                return cycle
    return None


def _describe(cycle: list[str], graph: dict[str, dict]) -> str:
    steps = []
    for a, b in zip(cycle, cycle[1:], strict=False):
        line, func = graph[a][b]
        steps.append(f"{a} -> {b} (line {line}{f', in {func}()' if func else ''})")
    return "import cycle:\n  " + "\n  ".join(steps)


def forbidden_imports(modules: dict[str, Path], sources: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """'module:line imports name' for each import in `sources` of a name under `forbidden`."""
    out = []
    for name in sources:
        for target, line, _ in imports_of(name, modules[name], modules):
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                out.append(f"{name}:{line} imports {target}")
    return out


def long_functions(modules: dict[str, Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'file:line name (N lines)' for every function or method longer than `limit` lines."""
    out = []
    for path in modules.values():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    rel = path.relative_to(PACKAGE.parent)
                    out.append(f"{rel}:{node.lineno} {node.name} ({length} lines)")
    return sorted(out)


def _under(modules: dict[str, Path], prefix: str) -> list[str]:
    return [m for m in modules if m == prefix or m.startswith(prefix + ".")]


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return module_files()


def test_the_package_is_read(modules):
    # The checks below are only as good as the files they read.
    for name in (
        "kerasgpu",
        "kerasgpu.server.app",
        "kerasgpu.kernel.magics",
        "kerasgpu.core",
        "kerasgpu.telemetry",
    ):
        assert name in modules, name


def test_no_import_cycle(modules):
    graph = import_graph(modules)
    cycle = find_cycle(graph)
    assert cycle is None, _describe(cycle, graph)


def test_the_server_never_imports_the_kernel_side(modules):
    server_side = _under(modules, "kerasgpu.server") + ["kerasgpu.cli"]
    bad = forbidden_imports(modules, server_side, ("kerasgpu.kernel",))
    # The package's own hooks: the server extension's may not reach the kernel side either.
    root = modules["kerasgpu"]
    for target, line, func in imports_of("kerasgpu", root, modules):
        if func == "_jupyter_server_extension_points" and target.startswith("kerasgpu.kernel"):
            bad.append(f"kerasgpu:{line} ({func}) imports {target}")
    assert not bad, "the server imports the kernel side:\n  " + "\n  ".join(bad)


CORE_FORBIDDEN = (
    "kerasgpu.server",
    "kerasgpu.kernel",
    "jupyter_server",
    "jupyter_client",
    "tornado",
    "IPython",
    "ipykernel",
    "tensorflow",
    "keras",
)


def test_the_core_is_pure(modules):
    # The snippet files are notebook code the catalog reads as text (never imported here).
    core = [m for m in _under(modules, "kerasgpu.core") if not m.startswith("kerasgpu.core.snippets.")]
    bad = forbidden_imports(modules, core, CORE_FORBIDDEN)
    assert not bad, "the core imports what it must not:\n  " + "\n  ".join(bad)


def test_telemetry_stands_alone(modules):
    telemetry = _under(modules, "kerasgpu.telemetry")
    bad = [
        f"{name}:{line} imports {target}"
        for name in telemetry
        for target, line, _ in imports_of(name, modules[name], modules)
        if (target == "kerasgpu" or target.startswith("kerasgpu.")) and target not in telemetry
    ]
    assert not bad, "telemetry imports the rest of kerasgpu:\n  " + "\n  ".join(bad)


def test_no_function_is_longer_than_the_limit(modules):
    offenders = long_functions(modules)
    assert not offenders, f"functions longer than {MAX_FUNCTION_LINES} lines:\n  " + "\n  ".join(offenders)
