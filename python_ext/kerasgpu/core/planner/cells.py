"""The notebook as the planner reads it: its cells (parsed with IPython's lines masked), which cells
import TensorFlow, define, build, compile and train what, and where a cell that must run before
TensorFlow starts goes."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

VERIFY_TAG = "kerasgpu-verify"
DISTRIBUTE_ID = "distribute_notebook"
_MAGIC_LINE = re.compile(r"^(\s*)(%%?|!)")
CELL_MAGIC = re.compile(r"^\s*%%\w")


# Calls that create a Keras model (and so its variables) when they run.
_BUILDERS = {"Sequential", "Model", "Functional", "load_model", "clone_model", "model_from_json"}


_BASES = {"Model", "Layer", "Sequential"}


class PlanError(ValueError):
    """A request the planner cannot answer (unknown tool, bad cell index)."""


@dataclass
class Cell:
    """What the planner knows of one notebook cell."""

    index: int
    source: str
    cell_type: str = "code"
    tags: list[str] = field(default_factory=list)
    snippet: str | None = None
    tree: ast.Module | None = None

    @property
    def code(self) -> bool:
        return self.cell_type == "code"


def parse_cells(raw: list[dict[str, Any]]) -> list[Cell]:
    out = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise PlanError(f"cell {i} is not an object")
        source = c.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if not isinstance(source, str):
            raise PlanError(f"cell {i}: source must be a string")
        tags = c.get("tags") or []
        cell = Cell(
            i,
            source,
            str(c.get("cell_type", "code")),
            [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
            c.get("snippet") if isinstance(c.get("snippet"), str) else None,
        )
        if cell.code:
            cell.tree = parse_python(source)
        out.append(cell)
    return out


def mask_ipython(source: str) -> str:
    """The cell's code with IPython-only lines (magics, shell escapes) turned into comments of the
    same length, so `ast` and `tokenize` see valid Python with the same line numbers."""
    lines = source.split("\n")
    out = []
    in_cell_magic = False
    for n, line in enumerate(lines):
        if n == 0 and CELL_MAGIC.match(line):
            name = line.strip().split()[0]
            # Cell magics whose body is not Python (%%bash, %%writefile ...) make the cell opaque.
            in_cell_magic = name not in ("%%time", "%%timeit", "%%capture", "%%distribute", "%%prun")
            out.append("#" + line[1:] if line.startswith("%") else re.sub(r"%", "#", line, count=1))
            continue
        if in_cell_magic:
            out.append("#" + line[1:] if line else line)
            continue
        m = _MAGIC_LINE.match(line)
        if m:
            out.append(m.group(1) + "#" + line[len(m.group(1)) + 1 :])
        elif re.match(r"^\s*[\w.]+\s*=\s*[%!]", line):  # x = !ls, x = %time ...
            eq = line.index("=")
            out.append(line[: eq + 1] + " None#" + line[eq + 2 :])
        else:
            out.append(line)
    return "\n".join(out)


def parse_python(source: str) -> ast.Module | None:
    """The cell's syntax tree (IPython lines masked), or None when it is not Python."""
    try:
        return ast.parse(mask_ipython(source))
    except (SyntaxError, ValueError):
        return None


def call_name(node: ast.AST) -> str | None:
    """`keras.layers.Dense(...)` -> 'Dense'; `build_model()` -> 'build_model'."""
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name):
            return f.id
        if isinstance(f, ast.Attribute):
            return f.attr
    return None


def dotted_name(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def assigned_values(tree: ast.AST) -> dict[str, ast.expr]:
    """The value each plain name is assigned anywhere in `tree` (`x = <value>`): a function's locals."""
    return {
        t.id: n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }


def module_level(tree: ast.Module):
    """Nodes that run when the cell runs: everything except function and class bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                continue
            stack.append(child)


@dataclass
class Notebook:
    """The notebook as the tools see it: which cells define, build, compile and train what."""

    cells: list[Cell]
    classes: dict[str, int] = field(default_factory=dict)  # user Model/Layer subclasses -> cell
    builder_funcs: dict[str, int] = field(default_factory=dict)  # functions that build a model -> cell
    compile_funcs: set[str] = field(default_factory=set)  # functions that call .compile(
    imported_builders: set[str] = field(default_factory=set)  # names from keras.applications etc.

    @classmethod
    def of(cls, cells: list[Cell]) -> Notebook:
        nb = cls(cells)
        defs = nb._scan(cells)
        nb._derived_classes(cells)
        nb._builders(defs)
        for name, (_idx, fn) in defs.items():
            if any(is_compile(n) for n in ast.walk(fn)):
                nb.compile_funcs.add(name)
        return nb

    def _scan(self, cells: list[Cell]) -> dict[str, tuple[int, ast.AST]]:
        """Records the user's Model/Layer subclasses and imported builders; returns every function."""
        defs: dict[str, tuple[int, ast.AST]] = {}
        for c in cells:
            if c.tree is None:
                continue
            for node in ast.walk(c.tree):
                if isinstance(node, ast.ClassDef):
                    bases = {dotted_name(b).split(".")[-1] for b in node.bases}
                    if bases & _BASES:
                        self.classes[node.name] = c.index
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    defs[node.name] = (c.index, node)
                elif isinstance(node, ast.ImportFrom) and node.module and "applications" in node.module:
                    self.imported_builders.update(a.asname or a.name for a in node.names)
        return defs

    def _derived_classes(self, cells: list[Cell]) -> None:
        """Classes derived from user classes (class VAE(MyModel)), to a fixed point."""
        changed = True
        while changed:
            changed = False
            for c in cells:
                for node in ast.walk(c.tree) if c.tree else ():
                    if (
                        isinstance(node, ast.ClassDef)
                        and node.name not in self.classes
                        and {dotted_name(b).split(".")[-1] for b in node.bases} & set(self.classes)
                    ):
                        self.classes[node.name] = c.index
                        changed = True

    def _builders(self, defs: dict[str, tuple[int, ast.AST]]) -> None:
        """Functions that build (directly or through another such function), to a fixed point."""
        changed = True
        while changed:
            changed = False
            for name, (idx, fn) in defs.items():
                if name in self.builder_funcs:
                    continue
                if any(self.is_build_call(n) for n in ast.walk(fn) if isinstance(n, ast.Call)):
                    self.builder_funcs[name] = idx
                    changed = True

    def is_build_call(self, call: ast.Call) -> bool:
        """Whether running this call creates a model or layer variables."""
        name = call_name(call)
        if name is None:
            # layers.Dense(3)(x): calling a freshly made layer builds it
            return isinstance(call.func, ast.Call) and self._is_layer_ctor(call.func)
        if name in _BUILDERS or name in self.classes or name in self.builder_funcs:
            return True
        if name in self.imported_builders:
            return True
        dotted = dotted_name(call.func)
        if ".applications." in f".{dotted}.":
            return True
        return isinstance(call.func, ast.Call) and self._is_layer_ctor(call.func)

    def _is_layer_ctor(self, call: ast.Call) -> bool:
        dotted = dotted_name(call.func)
        name = call_name(call) or ""
        return "layers" in dotted.split(".")[:-1] or name in self.classes

    def builds(self, cell: Cell) -> bool:
        """Whether running the cell builds a Keras model (creates variables)."""
        if cell.tree is None:
            return bool(re.search(r"\b(Sequential|Model|load_model)\s*\(", cell.source))
        return any(self.is_build_call(n) for n in module_level(cell.tree) if isinstance(n, ast.Call))

    def compiles(self, cell: Cell) -> bool:
        """Whether running the cell compiles a model (directly or through a function it calls)."""
        if cell.tree is None:
            return ".compile(" in cell.source
        for n in module_level(cell.tree):
            if is_compile(n):
                return True
            if isinstance(n, ast.Call) and call_name(n) in self.compile_funcs:
                return True
        return False

    def built_names(self, cell: Cell) -> set[str]:
        """Names the cell binds to a model or layer it builds (`model = keras.Sequential(...)`)."""
        out: set[str] = set()
        if cell.tree is None:
            return out
        for n in module_level(cell.tree):
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and self.is_build_call(n.value):
                for t in n.targets:
                    out.update(x.id for x in ast.walk(t) if isinstance(x, ast.Name))
        return out

    def compiled_names(self, cell: Cell) -> set[str]:
        out: set[str] = set()
        if cell.tree is None:
            return out
        for n in module_level(cell.tree):
            if is_compile(n) and isinstance(n.func.value, ast.Name):
                out.add(n.func.value.id)
        return out

    def loads(self, cell: Cell) -> set[str]:
        if cell.tree is None:
            return set()
        return {n.id for n in ast.walk(cell.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}

    def first_build(self) -> int:
        return next((c.index for c in self.cells if c.code and self.builds(c)), -1)


def is_compile(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compile"
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id in ("re", "regex"))
    )


_TF_IMPORT = re.compile(
    r"^\s*(?:import\s+(?:[\w.]+(?:\s+as\s+\w+)?\s*,\s*)*(?:tensorflow|tf_keras|keras)\b"
    r"|from\s+(?:tensorflow|tf_keras|keras)\b[\w.]*\s+import\b)",
    re.M,
)


_STARTS_RUNTIME = re.compile(r"^\s*%%?(?:gpu_distribute|distribute)\b", re.M)


def first_tensorflow_cell(cells: list[Cell]) -> int:
    """The first code cell that imports TensorFlow or Keras, or starts TensorFlow's runtime through
    our magics (`%gpu_distribute`, `%%distribute` make a strategy); -1 when none does."""
    for c in cells:
        if not c.code:
            continue
        if c.snippet == DISTRIBUTE_ID or _STARTS_RUNTIME.search(c.source):
            return c.index
        if _TF_IMPORT.search(mask_ipython(c.source)):
            return c.index
    return -1


def is_ours(c: Cell, snippet_id: str | None = None) -> bool:
    if snippet_id is not None:
        return c.snippet == snippet_id
    return c.snippet is not None or VERIFY_TAG in c.tags


def below_title(cells: list[Cell]) -> int:
    """Where a cell added at the top goes: below the notebook's leading markdown (its title and
    introduction), before its first code cell (at the end when it has none)."""
    return next((c.index for c in cells if c.code), len(cells))


def top_index(cells: list[Cell]) -> int:
    """Where a cell that must run before TensorFlow starts goes: above the first TensorFlow cell,
    else at the top (below the leading markdown), below a leading verification cell either way."""
    first = first_tensorflow_cell(cells)
    if first >= 0:
        return first
    i = below_title(cells)
    return i + 1 if i < len(cells) and VERIFY_TAG in cells[i].tags else i


def config_index(nb: Notebook) -> tuple[int, bool]:
    """Where the precision policy and the strategy go: before the first cell that builds a model,
    after the memory settings (which must come before TensorFlow starts). (index, found a model)."""
    first = nb.first_build()
    if first < 0:
        # After our own set-up cells at the top (below the leading markdown), else at the top.
        i = below_title(nb.cells)
        while i < len(nb.cells) and is_ours(nb.cells[i]):
            i += 1
        return i, False
    i = first
    # Keep the notebook's order: memory, precision, distribution, the user's cells.
    while i > 0 and nb.cells[i - 1].snippet == DISTRIBUTE_ID:
        i -= 1
    return i, True


_BATCH_VAR = re.compile(r"^(?:BATCH_SIZE|batch_size|BATCH|GLOBAL_BATCH_SIZE|batch)$")


def find_batch_sizes(nb: Notebook) -> list[dict[str, Any]]:
    """Batch sizes the notebook's own code uses: `fit(batch_size=N)`, a `BATCH_SIZE = N` variable,
    `.batch(N)`; each with the cell and the code that says so (first occurrence of each kind)."""
    found: list[dict[str, Any]] = []
    for c in nb.cells:
        if not c.code or c.tree is None or c.snippet:
            continue
        for n in ast.walk(c.tree):
            where, value = None, None
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
                if _BATCH_VAR.match(n.targets[0].id) and _int(n.value) is not None:
                    where, value = f"{n.targets[0].id} = {_int(n.value)}", _int(n.value)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                if n.func.attr in ("fit", "evaluate") or n.func.attr.endswith("_from_directory"):
                    for kw in n.keywords:
                        if kw.arg == "batch_size":
                            v = _int(kw.value)
                            where = f"{n.func.attr}(batch_size={ast.unparse(kw.value)})"
                            value = v if v is not None else _var_value(nb, kw.value)
                elif n.func.attr == "batch" and n.args:
                    v = _int(n.args[0])
                    where = f".batch({ast.unparse(n.args[0])})"
                    value = v if v is not None else _var_value(nb, n.args[0])
            if where and value:
                found.append({"cell": c.index, "code": where, "value": value})
    return found


def _int(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value if node.value > 0 else None
    return None


def _var_value(nb: Notebook, node: ast.AST) -> int | None:
    if not isinstance(node, ast.Name):
        return None
    for c in nb.cells:
        for n in ast.walk(c.tree) if c.tree else ():
            if (
                isinstance(n, ast.Assign)
                and len(n.targets) == 1
                and isinstance(n.targets[0], ast.Name)
                and n.targets[0].id == node.id
            ):
                return _int(n.value)
    return None


def assignments_of(nb: Notebook, name: str) -> list[tuple[int, ast.Assign]]:
    """Module-level `name = ...` statements of the notebook, in order."""
    out = []
    for c in nb.cells:
        for n in module_level(c.tree) if c.tree else ():
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets):
                out.append((c.index, n))
    return sorted(out, key=lambda a: (a[0], a[1].lineno))
