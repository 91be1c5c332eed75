"""What each notebook tool does to a user's notebook: where a cell goes, how a cell is wrapped, and
what the tool must refuse or warn about. Pure functions over the notebook's cells.

The frontend asks the server for a plan (`POST /kerasgpu/api/v1/notebook-tools/plan`) and applies
its edits as one undo step; the corpus tests apply the same plans to real keras-io notebooks. So
there is one implementation of every tool, in this module.

A plan is ``{"tool", "ok", "edits", "messages", "select"}``:
- ``edits``: applied in order; ``{"op": "insert", "index", "source", "metadata"}`` adds a code
  cell before ``index``; ``{"op": "replace", "index", "source"}`` changes a cell's code;
- ``messages``: ``{"level": "info"|"warning"|"error", "text", "action"?}``; ``action`` names a
  command the frontend offers (``distribute-notebook``);
- ``ok``: False when the tool refused (no edits), with the reason in ``messages``;
- ``select``: the cell to select afterwards (after the edits), or None.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Any

from . import snippets

TOOLS = ("verify", "snippet", "wrap", "distribute", "mixed_precision")
VERIFY_TAG = "kerasgpu-verify"
VERIFY_SOURCE = "%load_ext kerasgpu\n%gpu_check"
DISTRIBUTE_ID = "distribute_notebook"
WRAP_COMMENT = "# kerasgpu: the notebook's one tf.distribute strategy"
WRAP_LINE = f"with kerasgpu.notebook_strategy().scope():  {WRAP_COMMENT}"
# The memory snippets TensorFlow refuses to combine (growth with a logical-device memory limit).
_MEMORY_CONFLICT = {"memory_growth": "memory_limit", "memory_limit": "memory_growth"}
_GROWTH_RE = re.compile(r"set_memory_growth\s*\(|%gpu_memory\s+growth|TF_FORCE_GPU_ALLOW_GROWTH")
_LIMIT_RE = re.compile(
    r"set_logical_device_configuration\s*\(|set_virtual_device_configuration|%gpu_memory\s+limit"
)
_DISTRIBUTE_RE = re.compile(r"^\s*%gpu_distribute\b|experimental_set_strategy\s*\(", re.M)
_MAGIC_LINE = re.compile(r"^(\s*)(%%?|!)")
_CELL_MAGIC = re.compile(r"^\s*%%\w")

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


def _cells(raw: list[dict[str, Any]]) -> list[Cell]:
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


# ---------------------------------------------------------------------- parsing


def mask_ipython(source: str) -> str:
    """The cell's code with IPython-only lines (magics, shell escapes) turned into comments of the
    same length, so `ast` and `tokenize` see valid Python with the same line numbers."""
    lines = source.split("\n")
    out = []
    in_cell_magic = False
    for n, line in enumerate(lines):
        if n == 0 and _CELL_MAGIC.match(line):
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


def _call_name(node: ast.AST) -> str | None:
    """`keras.layers.Dense(...)` -> 'Dense'; `build_model()` -> 'build_model'."""
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name):
            return f.id
        if isinstance(f, ast.Attribute):
            return f.attr
    return None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _module_level(tree: ast.Module):
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
        defs: dict[str, tuple[int, ast.AST]] = {}
        for c in cells:
            if c.tree is None:
                continue
            for node in ast.walk(c.tree):
                if isinstance(node, ast.ClassDef):
                    bases = {_dotted(b).split(".")[-1] for b in node.bases}
                    if bases & _BASES:
                        nb.classes[node.name] = c.index
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    defs[node.name] = (c.index, node)
                elif isinstance(node, ast.ImportFrom) and node.module and "applications" in node.module:
                    nb.imported_builders.update(a.asname or a.name for a in node.names)
        # A second pass for classes derived from user classes (class VAE(MyModel)).
        changed = True
        while changed:
            changed = False
            for c in cells:
                for node in ast.walk(c.tree) if c.tree else ():
                    if (
                        isinstance(node, ast.ClassDef)
                        and node.name not in nb.classes
                        and {_dotted(b).split(".")[-1] for b in node.bases} & set(nb.classes)
                    ):
                        nb.classes[node.name] = c.index
                        changed = True
        # Functions that build (directly or through another such function), to a fixed point.
        changed = True
        while changed:
            changed = False
            for name, (idx, fn) in defs.items():
                if name in nb.builder_funcs:
                    continue
                if any(nb.is_build_call(n) for n in ast.walk(fn) if isinstance(n, ast.Call)):
                    nb.builder_funcs[name] = idx
                    changed = True
        for name, (_idx, fn) in defs.items():
            if any(_is_compile(n) for n in ast.walk(fn)):
                nb.compile_funcs.add(name)
        return nb

    def is_build_call(self, call: ast.Call) -> bool:
        """Whether running this call creates a model or layer variables."""
        name = _call_name(call)
        if name is None:
            # layers.Dense(3)(x): calling a freshly made layer builds it
            return isinstance(call.func, ast.Call) and self._is_layer_ctor(call.func)
        if name in _BUILDERS or name in self.classes or name in self.builder_funcs:
            return True
        if name in self.imported_builders:
            return True
        dotted = _dotted(call.func)
        if ".applications." in f".{dotted}.":
            return True
        return isinstance(call.func, ast.Call) and self._is_layer_ctor(call.func)

    def _is_layer_ctor(self, call: ast.Call) -> bool:
        dotted = _dotted(call.func)
        name = _call_name(call) or ""
        return "layers" in dotted.split(".")[:-1] or name in self.classes

    def builds(self, cell: Cell) -> bool:
        """Whether running the cell builds a Keras model (creates variables)."""
        if cell.tree is None:
            return bool(re.search(r"\b(Sequential|Model|load_model)\s*\(", cell.source))
        return any(self.is_build_call(n) for n in _module_level(cell.tree) if isinstance(n, ast.Call))

    def compiles(self, cell: Cell) -> bool:
        """Whether running the cell compiles a model (directly or through a function it calls)."""
        if cell.tree is None:
            return ".compile(" in cell.source
        for n in _module_level(cell.tree):
            if _is_compile(n):
                return True
            if isinstance(n, ast.Call) and _call_name(n) in self.compile_funcs:
                return True
        return False

    def built_names(self, cell: Cell) -> set[str]:
        """Names the cell binds to a model or layer it builds (`model = keras.Sequential(...)`)."""
        out: set[str] = set()
        if cell.tree is None:
            return out
        for n in _module_level(cell.tree):
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and self.is_build_call(n.value):
                for t in n.targets:
                    out.update(x.id for x in ast.walk(t) if isinstance(x, ast.Name))
        return out

    def compiled_names(self, cell: Cell) -> set[str]:
        out: set[str] = set()
        if cell.tree is None:
            return out
        for n in _module_level(cell.tree):
            if _is_compile(n) and isinstance(n.func.value, ast.Name):
                out.add(n.func.value.id)
        return out

    def loads(self, cell: Cell) -> set[str]:
        if cell.tree is None:
            return set()
        return {n.id for n in ast.walk(cell.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}

    def first_build(self) -> int:
        return next((c.index for c in self.cells if c.code and self.builds(c)), -1)


def _is_compile(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compile"
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id in ("re", "regex"))
    )


# ---------------------------------------------------------------------- placement

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


def _is_ours(c: Cell, snippet_id: str | None = None) -> bool:
    if snippet_id is not None:
        return c.snippet == snippet_id
    return c.snippet is not None or VERIFY_TAG in c.tags


def top_index(cells: list[Cell]) -> int:
    """Where a cell that must run before TensorFlow starts goes: above the first TensorFlow cell,
    else at the top, below a leading verification cell either way."""
    first = first_tensorflow_cell(cells)
    if first >= 0:
        return first
    return 1 if cells and VERIFY_TAG in cells[0].tags else 0


def config_index(nb: Notebook) -> tuple[int, bool]:
    """Where the precision policy and the strategy go: before the first cell that builds a model,
    after the memory settings (which must come before TensorFlow starts). (index, found a model)."""
    first = nb.first_build()
    if first < 0:
        # After our own set-up cells at the top, else at the top.
        i = 0
        while i < len(nb.cells) and _is_ours(nb.cells[i]):
            i += 1
        return i, False
    i = first
    # Keep the notebook's order: memory, precision, distribution, the user's cells.
    while i > 0 and nb.cells[i - 1].snippet == DISTRIBUTE_ID:
        i -= 1
    return i, True


# ---------------------------------------------------------------------- batch size

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


# ---------------------------------------------------------------------- mixed precision


def mixed_precision_traps(nb: Notebook) -> list[dict[str, Any]]:
    """What breaks or degrades under a float16/bfloat16 policy in the notebook's own model code:
    a float `Input` feeding an `Embedding` (ids get rounded), custom layers that make float32
    tensors (random ops, zeros, constants without dtype) and combine them with their inputs, and
    an output layer without dtype="float32"."""
    traps: list[dict[str, Any]] = []
    for c in nb.cells:
        if c.tree is None or not c.code:
            continue
        src = c.source
        # 1. Input without an integer dtype in a cell (or model) that embeds tokens.
        inputs = [
            n
            for n in ast.walk(c.tree)
            if isinstance(n, ast.Call) and _call_name(n) in ("Input", "InputLayer")
        ]
        embeds = re.search(r"\bEmbedding\s*\(|TokenAndPositionEmbedding|PositionalEmbedding", src)
        if embeds:
            for n in inputs:
                dtype = next((k.value for k in n.keywords if k.arg == "dtype"), None)
                if dtype is None or (isinstance(dtype, ast.Constant) and "float" in str(dtype.value)):
                    traps.append(
                        {
                            "code": "float_input_embedding",
                            "cell": c.index,
                            "evidence": ast.unparse(n),
                            "text": "This Input has no integer dtype and feeds an Embedding: under mixed "
                            "precision the token ids become float16 and ids above 2048 are rounded "
                            "(20000 can become an id the Embedding does not have: 'indices[...] = 20000 "
                            "is not in [0, 20000)').",
                            "fix": 'Give the Input dtype="int32".',
                            "blocking": True,
                        }
                    )
        # 2. Custom layers whose call() makes float32 tensors and mixes them with the inputs.
        for n in ast.walk(c.tree):
            if not (isinstance(n, ast.ClassDef) and n.name in nb.classes):
                continue
            for fn in n.body:
                if not (isinstance(fn, ast.FunctionDef) and fn.name == "call"):
                    continue
                for call in ast.walk(fn):
                    if not isinstance(call, ast.Call):
                        continue
                    name = _call_name(call) or ""
                    dotted = _dotted(call.func)
                    makes = name in (
                        "normal",
                        "random_normal",
                        "uniform",
                        "random_uniform",
                        "truncated_normal",
                    )
                    makes = makes or (
                        name in ("zeros", "ones", "constant", "fill") and "random" not in dotted
                    )
                    if not makes:
                        continue
                    if any(k.arg == "dtype" for k in call.keywords):
                        continue
                    traps.append(
                        {
                            "code": "float32_in_custom_layer",
                            "cell": c.index,
                            "evidence": f"{n.name}.call: {ast.unparse(call)}",
                            "text": f"The custom layer {n.name} makes a float32 tensor ({dotted}(...) "
                            "without dtype) in call() and combines it with its float16 inputs: "
                            "TensorFlow refuses the mixed dtypes ('expected to be a half tensor but is "
                            "a float tensor').",
                            "fix": f"Pass dtype=self.compute_dtype (or the input's dtype) to {dotted}(...).",
                            "blocking": True,
                        }
                    )
    # 3. A custom train_step combines the model's 16-bit outputs with the batch's float32 data.
    for c in nb.cells:
        for n in ast.walk(c.tree) if c.tree else ():
            if not (isinstance(n, ast.ClassDef) and n.name in nb.classes):
                continue
            if any(isinstance(f, ast.FunctionDef) and f.name == "train_step" for f in n.body):
                traps.append(
                    {
                        "code": "custom_train_step",
                        "cell": c.index,
                        "evidence": f"{n.name}.train_step",
                        "text": f"{n.name} has its own train_step: under a 16-bit policy its models return "
                        "float16 while the batch stays float32, and ops there that combine the two "
                        "(concatenate, add, a loss written by hand) fail ('have types [float16, float32] "
                        "that don't all match').",
                        "fix": "Cast one side in train_step, e.g. ops.cast(real_images, generated.dtype), "
                        "or keep this model in float32.",
                        "blocking": True,
                    }
                )
    # 4. The output layer: the last Dense/Activation of the first model cell, without dtype float32.
    for c in nb.cells:
        if c.tree is None or not nb.builds(c):
            continue
        layer_calls = [
            n
            for n in ast.walk(c.tree)
            if isinstance(n, ast.Call) and _call_name(n) in ("Dense", "Activation", "Softmax")
        ]
        if not layer_calls:
            continue
        last = max(layer_calls, key=lambda n: (n.lineno, n.col_offset))
        dtype = next((k.value for k in last.keywords if k.arg == "dtype"), None)
        if dtype is None or "float32" not in ast.unparse(dtype):
            traps.append(
                {
                    "code": "output_not_float32",
                    "cell": c.index,
                    "evidence": ast.unparse(last)[:120],
                    "text": "The model's last layer computes in the mixed policy's float16/bfloat16: the "
                    "softmax and loss lose precision.",
                    "fix": 'Give the last layer dtype="float32" (or add keras.layers.Activation("linear", '
                    'dtype="float32") after it).',
                    "blocking": False,
                }
            )
        break
    return traps


# ---------------------------------------------------------------------- wrap


def string_continuation_lines(source: str) -> set[int]:
    """0-based numbers of the lines that start inside a multi-line string: indenting them would
    change the string's value."""
    inside: set[int] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(mask_ipython(source)).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return inside
    starts: list[tuple[int, int]] = []
    for tok in tokens:
        kind = tok.type
        if kind == tokenize.STRING:
            inside.update(range(tok.start[0], tok.end[0]))
        elif kind == getattr(tokenize, "FSTRING_START", -1):
            starts.append(tok.start)
        elif kind == getattr(tokenize, "FSTRING_END", -2) and starts:
            begin = starts.pop()
            inside.update(range(begin[0], tok.end[0]))
    # tokenize lines are 1-based; a string starting on line L makes lines L+1.. continuation lines.
    return {line for line in inside}


def wrap_source(source: str) -> str:
    """The cell's code run in the notebook's one strategy scope: leading cell magics stay first,
    string contents are untouched, and a last expression stays outside so Jupyter still shows it."""
    lines = source.strip("\n").split("\n") if source.strip() else []
    head: list[str] = []
    while lines and _CELL_MAGIC.match(lines[0]):
        head.append(lines.pop(0))
    body = "\n".join(lines)
    keep = string_continuation_lines(body)
    tail_from = len(lines)
    tree = parse_python(body)
    if tree is not None and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        nb = Notebook.of([Cell(0, body, tree=tree)])
        if not any(nb.is_build_call(n) for n in ast.walk(last) if isinstance(n, ast.Call)) and not any(
            _is_compile(n) for n in ast.walk(last)
        ):
            tail_from = last.lineno - 1
    inner = [
        line if (not line.strip() or n in keep) else "    " + line for n, line in enumerate(lines[:tail_from])
    ]
    while inner and not inner[-1].strip():
        inner.pop()
    if not any(line.strip() and not line.strip().startswith("#") for line in inner):
        inner.append("    pass")
    out = [*head, "import kerasgpu", "", WRAP_LINE, *inner]
    tail = lines[tail_from:]
    if tail:
        out += tail
    return "\n".join(out)


def is_wrapped(source: str) -> bool:
    return WRAP_COMMENT in source


# ---------------------------------------------------------------------- plans


def _msg(level: str, text: str, action: str | None = None, code: str | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"level": level, "text": text}
    if action:
        m["action"] = action
    if code:
        m["code"] = code
    return m


def _refuse(tool: str, *messages: dict[str, Any], select: int | None = None) -> dict[str, Any]:
    return {"tool": tool, "ok": False, "edits": [], "messages": list(messages), "select": select}


def _insert(tool: str, index: int, source: str, snippet_id: str, messages=(), tags=None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"kerasgpu": {"snippet": snippet_id}}
    if tags:
        metadata["tags"] = list(tags)
    return {
        "tool": tool,
        "ok": True,
        "edits": [{"op": "insert", "index": index, "source": source, "metadata": metadata}],
        "messages": list(messages),
        "select": index,
    }


def _cell_no(i: int) -> str:
    return f"cell {i + 1}"


def plan(
    tool: str, cells: list[dict[str, Any]], active: int | None = None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The edits that `tool` makes to a notebook with these cells (see the module's docstring)."""
    options = options or {}
    if tool not in TOOLS:
        raise PlanError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
    parsed = _cells(cells)
    if active is not None and not (isinstance(active, int) and 0 <= active < max(len(parsed), 1)):
        raise PlanError(f"active cell {active!r} is not a cell of this notebook (0-{len(parsed) - 1})")
    nb = Notebook.of(parsed)
    if tool == "verify":
        return _plan_verify(nb)
    if tool == "wrap":
        return _plan_wrap(nb, active)
    if tool == "distribute":
        return _plan_distribute(nb, options)
    if tool == "mixed_precision":
        return _plan_mixed_precision(nb, options)
    snippet_id = options.get("id")
    if not isinstance(snippet_id, str):
        raise PlanError("the snippet tool needs options.id")
    try:
        entry = snippets.get(snippet_id)
    except KeyError:
        raise PlanError(f"unknown snippet {snippet_id!r}") from None
    return _plan_snippet(nb, entry, active, options)


def _plan_verify(nb: Notebook) -> dict[str, Any]:
    for c in nb.cells:
        if VERIFY_TAG in c.tags:
            if c.source.strip() == VERIFY_SOURCE:
                return {"tool": "verify", "ok": True, "edits": [], "messages": [], "select": c.index}
            return {
                "tool": "verify",
                "ok": True,
                "edits": [{"op": "replace", "index": c.index, "source": VERIFY_SOURCE}],
                "messages": [_msg("info", "The GPU verification cell was updated.")],
                "select": c.index,
            }
    return _insert("verify", 0, VERIFY_SOURCE, "verify_gpu", tags=[VERIFY_TAG])


def _plan_snippet(nb: Notebook, entry: dict[str, Any], active: int | None, options) -> dict[str, Any]:
    sid, title = entry["id"], entry["title"]
    if sid == "verify_gpu":
        return _plan_verify(nb)
    if sid == "mixed_precision":
        return _plan_mixed_precision(nb, options)
    if entry["placement"] == "wrap":
        return _plan_wrap(nb, active)
    for c in nb.cells:
        if c.snippet == sid:
            return _refuse(
                "snippet",
                _msg("info", f'"{title}" is already in this notebook ({_cell_no(c.index)}).'),
                select=c.index,
            )
    code = snippets.cell_source(entry)
    messages = []
    other = _MEMORY_CONFLICT.get(sid)
    if other:
        pattern = _GROWTH_RE if sid == "memory_limit" else _LIMIT_RE
        clash = next(
            (c for c in nb.cells if c.code and (c.snippet == other or pattern.search(c.source))), None
        )
        if clash is not None:
            theirs = "memory growth" if sid == "memory_limit" else "a memory limit"
            return _refuse(
                "snippet",
                _msg(
                    "error",
                    f'"{title}" was not added: {_cell_no(clash.index)} already sets {theirs}, and TensorFlow '
                    "refuses both on one GPU ('Cannot set memory growth on device when virtual devices "
                    "configured'). Growth lets TensorFlow take memory as needed; a limit caps it. Keep one: "
                    f"delete {_cell_no(clash.index)} first to switch.",
                ),
                select=clash.index,
            )
    if sid == "memory_limit":
        mib = options.get("limit_mib")
        if not isinstance(mib, int) or isinstance(mib, bool) or not 256 <= mib <= 4 * 1024 * 1024:
            raise PlanError("memory_limit needs options.limit_mib: a whole number of MiB, 256 or more")
        code, n = re.subn(
            r"^MEMORY_LIMIT_MIB = .*$", f"MEMORY_LIMIT_MIB = {mib}  # per GPU", code, flags=re.M
        )
        assert n == 1
    if entry["placement"] == "top":
        index = top_index(nb.cells)
    else:
        index = (active + 1) if active is not None else len(nb.cells)
    return _insert("snippet", index, code, sid, messages)


def _plan_mixed_precision(nb: Notebook, options) -> dict[str, Any]:
    entry = snippets.get("mixed_precision")
    for c in nb.cells:
        if c.snippet == "mixed_precision":
            return _refuse(
                "mixed_precision",
                _msg("info", f"Mixed precision is already set in {_cell_no(c.index)}."),
                select=c.index,
            )
    policy = options.get("policy", "auto")
    if policy not in ("auto", "mixed_float16", "mixed_bfloat16"):
        raise PlanError("options.policy must be auto, mixed_float16 or mixed_bfloat16")
    code = snippets.cell_source(entry).replace(
        'set_mixed_precision("auto")', f'set_mixed_precision("{policy}")'
    )
    index, found = config_index(nb)
    messages = []
    if not found:
        messages.append(
            _msg("info", "No cell builds a Keras model yet: run this cell before the one that does.")
        )
    for t in mixed_precision_traps(nb):
        level = "warning" if t["blocking"] else "info"
        messages.append(_msg(level, f"Check {_cell_no(t['cell'])}: {t['fix']} {t['text']}", code=t["code"]))
    return _insert("mixed_precision", index, code, "mixed_precision", messages)


def _plan_distribute(nb: Notebook, options) -> dict[str, Any]:
    existing = next(
        (c for c in nb.cells if c.snippet == DISTRIBUTE_ID or (c.code and _DISTRIBUTE_RE.search(c.source))),
        None,
    )
    first = nb.first_build()
    if existing is not None:
        msgs = [_msg("info", f"This notebook is already distributed ({_cell_no(existing.index)}).")]
        if 0 <= first < existing.index:
            msgs.append(
                _msg(
                    "warning",
                    f"{_cell_no(first)} builds a model before the strategy is set, so its variables are not "
                    f"distributed: move {_cell_no(existing.index)} above {_cell_no(first)}, restart the "
                    "kernel "
                    "and run all.",
                )
            )
        return _refuse("distribute", *msgs, select=existing.index)
    kind = options.get("strategy", "")
    if kind not in ("", "auto", "mirrored", "multiworker", "onedevice"):
        raise PlanError("options.strategy must be auto, mirrored, multiworker or onedevice")
    index, found = config_index(nb)
    loaded = any(
        VERIFY_TAG in c.tags or re.search(r"^\s*%(?:re)?load_ext\s+kerasgpu\b", c.source, re.M)
        for c in nb.cells[:index]
    )
    lines = [] if loaded else ["%load_ext kerasgpu"]
    batches = find_batch_sizes(nb)
    if batches:
        b = batches[0]
        lines.append(f"# Your batch: {b['code']} ({_cell_no(b['cell'])}). It becomes the global batch, split")
        lines.append(
            f"# over the replicas. For {b['value']} per replica, use {b['value']} * "
            "tf.distribute.get_strategy().num_replicas_in_sync."
        )
    magic = "%gpu_distribute" + (f" {kind}" if kind and kind != "auto" else "")
    if batches:
        magic += f" --batch {batches[0]['value']}"
    lines.append(magic)
    messages = []
    if not found:
        messages.append(
            _msg("info", "No cell builds a Keras model yet: the strategy goes first; build models below it.")
        )
    messages += _evaluation_warnings(nb)
    for name, cell in models_without_call(nb):
        messages.append(
            _msg(
                "warning",
                f"Give {name} ({_cell_no(cell)}) a call(): it has its own train_step but no call(), and "
                "under a strategy Keras builds a model before fit by calling it, which fails ('Unable to "
                f"automatically build the model'). Or build it before fit by calling it on one batch.",
                code="model_without_call",
            )
        )
    return _insert("distribute", index, "\n".join(lines), DISTRIBUTE_ID, messages)


def _evaluation_warnings(nb: Notebook) -> list[dict[str, Any]]:
    """What a strategy does to the notebook's evaluate / validation / predict calls."""
    evaluates = evaluation_calls(nb)
    if not evaluates:
        return []
    cell, code = evaluates[0]
    return [
        _msg(
            "warning",
            f"Check {_cell_no(cell)}: it {code}, and batches must split evenly over the replicas. Keras 3 "
            "with TensorFlow 2.21 fails when a batch of evaluate, validation or predict does not ('Inputs "
            "to operation AddN ... must have the same size') or has fewer samples than replicas (predict "
            "on one image). Keep validation and test sets a multiple of the global batch size (or batch "
            "them with drop_remainder=True); run one sample with model(x, training=False).",
            code="uneven_eval",
        )
    ]


def models_without_call(nb: Notebook) -> list[tuple[str, int]]:
    """User Model subclasses with a train_step but no call() (in the class or a user base class)."""
    out = []
    defs: dict[str, ast.ClassDef] = {}
    where: dict[str, int] = {}
    for c in nb.cells:
        for n in ast.walk(c.tree) if c.tree else ():
            if isinstance(n, ast.ClassDef):
                defs[n.name] = n
                where[n.name] = c.index

    def methods(name: str, seen: set[str]) -> set[str]:
        node = defs.get(name)
        if node is None or name in seen:
            return set()
        seen.add(name)
        own = {f.name for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
        for b in node.bases:
            own |= methods(_dotted(b).split(".")[-1], seen)
        return own

    for name, node in defs.items():
        bases = {_dotted(b).split(".")[-1] for b in node.bases}
        if not (bases & {"Model"} or bases & {k for k in defs if k != name and k in nb.classes}):
            continue
        found = methods(name, set())
        if "train_step" in found and "call" not in found:
            out.append((name, where[name]))
    return out


def evaluation_calls(nb: Notebook) -> list[tuple[int, str]]:
    """Where the notebook evaluates a model: validation_split / validation_data in fit, evaluate()."""
    out = []
    for c in nb.cells:
        if c.tree is None or c.snippet:
            continue
        for n in ast.walk(c.tree):
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
                continue
            if n.func.attr == "fit":
                for kw in n.keywords:
                    if kw.arg in ("validation_split", "validation_data"):
                        out.append((c.index, f"validates in fit ({kw.arg}={ast.unparse(kw.value)})"))
            elif n.func.attr in ("evaluate", "predict"):
                out.append((c.index, f"calls {n.func.attr}()"))
    return out


def _plan_wrap(nb: Notebook, active: int | None) -> dict[str, Any]:
    if active is None:
        raise PlanError("the wrap needs the active cell's index")
    cell = nb.cells[active]
    if not cell.code:
        return _refuse(
            "wrap", _msg("warning", "Select a code cell to run in the strategy's scope."), select=active
        )
    if is_wrapped(cell.source):
        return _refuse(
            "wrap", _msg("info", "This cell already runs in the notebook's strategy scope."), select=active
        )
    distributed = next(
        (c for c in nb.cells if c.snippet == DISTRIBUTE_ID or (c.code and _DISTRIBUTE_RE.search(c.source))),
        None,
    )
    if distributed is not None:
        return _refuse(
            "wrap",
            _msg(
                "info",
                f"This notebook is already distributed ({_cell_no(distributed.index)}): every cell "
                "builds and "
                "trains in its strategy, no wrap needed.",
            ),
            select=active,
        )
    if cell.tree is None and not _CELL_MAGIC.match(cell.source):
        return _refuse(
            "wrap",
            _msg("error", "This cell is not valid Python, so it cannot be wrapped safely."),
            select=active,
        )
    if not nb.builds(cell):
        return _refuse(
            "wrap",
            _msg(
                "info",
                "This cell builds no Keras model, so a strategy scope would change nothing: select the cell "
                "that creates the model.",
            ),
            select=active,
        )
    built = nb.built_names(cell)
    # Models (or layers) built in other cells that this cell uses: their variables are outside the scope.
    used_elsewhere = []
    for name in sorted(nb.loads(cell) - built):
        for other in nb.cells:
            if other.index != cell.index and name in nb.built_names(other):
                used_elsewhere.append((name, other.index))
                break
    if used_elsewhere:
        names = ", ".join(f"`{n}` ({_cell_no(i)})" for n, i in used_elsewhere)
        return _refuse(
            "wrap",
            _msg(
                "warning",
                f"Not wrapped: this cell uses {names}, built outside the strategy. Distribute the whole "
                "notebook instead. (Keras would mix strategies and fail: 'Mixing different "
                "tf.distribute.Strategy objects'; one strategy for every cell needs no wrap.)",
                "distribute-notebook",
                code="built_elsewhere",
            ),
            select=active,
        )
    if not nb.compiles(cell):
        elsewhere = [
            o.index
            for o in nb.cells
            if o.index != cell.index and (nb.compiled_names(o) & built or (not built and nb.compiles(o)))
        ]
        if elsewhere:
            return _refuse(
                "wrap",
                _msg(
                    "warning",
                    f"Not wrapped: this model is compiled in {_cell_no(elsewhere[0])}. Distribute the whole "
                    "notebook instead. (Keras needs build and compile under one strategy, or fit fails: "
                    "'Mixing different tf.distribute.Strategy objects'; one strategy for every cell needs "
                    "no wrap.)",
                    "distribute-notebook",
                    code="compiled_elsewhere",
                ),
                select=active,
            )
    return {
        "tool": "wrap",
        "ok": True,
        "edits": [{"op": "replace", "index": active, "source": wrap_source(cell.source)}],
        "messages": _evaluation_warnings(nb),
        "select": active,
    }
