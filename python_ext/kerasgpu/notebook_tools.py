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

from .core import snippets

TOOLS = ("verify", "snippet", "wrap", "distribute", "mixed_precision", "input_pipeline")
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


def _kwarg_edit(call: ast.Call, name: str, value: str) -> dict[str, Any] | None:
    """Where to add `name=value` to a call of the user's code (None: it already has `name`)."""
    if any(k.arg == name for k in call.keywords) or call.end_lineno is None:
        return None
    return {"line": call.end_lineno, "col": call.end_col_offset - 1, "text": f"{name}={value}"}


def apply_kwarg_edits(source: str, edits: list[dict[str, Any]]) -> str:
    """The cell's code with each `name=value` added before its call's closing parenthesis (on a
    line of its own, as the other arguments are, when the parenthesis starts its line)."""
    lines = source.split("\n")
    for e in sorted(edits, key=lambda e: (e["line"], e["col"]), reverse=True):
        n = e["line"] - 1
        head, tail = lines[n][: e["col"]], lines[n][e["col"] :]
        if not head.strip() and n > 0:  # "    activation='relu',\n)"
            prev = lines[n - 1].rstrip()
            indent = prev[: len(prev) - len(prev.lstrip())]
            if not prev.endswith((",", "(")):
                lines[n - 1] = prev + ","
            lines.insert(n, f"{indent}{e['text']},")
            continue
        before = head.rstrip()
        lines[n] = before + _kwarg_sep(before) + e["text"] + tail
    return "\n".join(lines)


def _kwarg_sep(before: str) -> str:
    """What goes between a call's last argument (`before` ends with it) and one more keyword."""
    return "" if before.endswith("(") or not before else (" " if before.endswith(",") else ", ")


def _train_step_trap_text(cls: str, step: ast.FunctionDef) -> str:
    """Why a custom train_step breaks under mixed_float16 (Keras 3.15, trainers/trainer.py compile)."""
    if "self.optimizer" in ast.unparse(step):
        return (
            f"{cls} has its own train_step and does not scale its loss: under mixed_float16 Keras wraps "
            "the optimizer it compiles in a LossScaleOptimizer, which divides the gradients by the loss "
            "scale (32768 at first), so the updates of this train_step would be about 30 000 times too "
            "small, silently."
        )
    return (
        f"{cls} has its own train_step: under a 16-bit policy its models return float16 while the batch "
        "stays float32, and its ops that combine the two (concatenate, subtract, a loss written by hand) "
        "fail ('have types [float16, float32] that don't all match')."
    )


def _is_output_activation(call: ast.Call) -> bool:
    """A layer that ends a model by its activation (softmax / sigmoid): the one whose precision the
    loss reads. A relu or a plain Dense last in the cell is usually not the model's output."""
    if _call_name(call) == "Softmax":
        return True
    values = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "activation")]
    if _call_name(call) == "Activation":
        values = [*call.args[:1], *values]
    return any(isinstance(v, ast.Constant) and v.value in ("softmax", "sigmoid") for v in values)


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
                            "edit": _kwarg_edit(n, "dtype", '"int32"'),
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
                            "edit": _kwarg_edit(call, "dtype", "self.compute_dtype"),
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
            steps = [f for f in n.body if isinstance(f, ast.FunctionDef) and f.name == "train_step"]
            if steps and "scale_loss" not in ast.unparse(steps[0]):
                traps.append(
                    {
                        "code": "custom_train_step",
                        "cell": c.index,
                        "evidence": f"{n.name}.train_step",
                        "text": _train_step_trap_text(n.name, steps[0]),
                        "fix": f"Keep {n.name} in float32, or scale its loss in train_step "
                        "(self.optimizer.scale_loss(loss)) and cast the batch to the model's compute dtype.",
                        "editable": False,
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
        if _is_output_activation(last) and (dtype is None or "float32" not in ast.unparse(dtype)):
            traps.append(
                {
                    "code": "output_not_float32",
                    "cell": c.index,
                    "evidence": ast.unparse(last)[:120],
                    "edit": _kwarg_edit(last, "dtype", '"float32"'),
                    "text": "The model's last layer computes in the mixed policy's float16/bfloat16: the "
                    "softmax and loss lose precision.",
                    "fix": 'Give the last layer dtype="float32" (or add keras.layers.Activation("linear", '
                    'dtype="float32") after it).',
                    "blocking": False,
                }
            )
        break
    traps += _raw_float32_traps(nb)
    return traps


_RAW_VARIABLE = ("tf.Variable", "tensorflow.Variable")


def raw_variables(nb: Notebook) -> list[tuple[str, int, str]]:
    """(class, cell, code) of each `tf.Variable(...)` a user layer or model makes itself: Keras 3
    neither tracks it (it is never trained) nor casts it under a mixed policy, and under
    MirroredStrategy TensorFlow 2.21 crashed the kernel in validation ('free(): invalid pointer',
    keras-io timeseries_traffic_forecasting); `self.add_weight` has none of these problems."""
    out = []
    for c in nb.cells:
        for n in ast.walk(c.tree) if c.tree else ():
            if isinstance(n, ast.ClassDef) and n.name in nb.classes:
                for node in ast.walk(n):
                    value = node.value if isinstance(node, ast.Assign) else node
                    if isinstance(value, ast.Call) and _dotted(value.func) in _RAW_VARIABLE:
                        target = f"{ast.unparse(node.targets[0])} = " if isinstance(node, ast.Assign) else ""
                        out.append((n.name, c.index, f"{target}tf.Variable(...)"))
                        break
    return out


_FLOAT_MAKERS = {"eye", "zeros", "ones", "constant", "fill", "normal", "uniform", "random_normal"}


def _raw_float32_traps(nb: Notebook) -> list[dict[str, Any]]:
    """Float32 tensors the user's own classes keep outside Keras' casting: a raw tf.Variable in a
    layer, a float tensor made without dtype in a Regularizer (keras-io pointnet's tf.eye)."""
    traps = []
    for cls, cell, code in raw_variables(nb):
        traps.append(
            {
                "code": "raw_variable",
                "cell": cell,
                "evidence": f"{cls}: {code}",
                "text": f"{cls} keeps a weight in a raw tf.Variable (float32): mixed precision does not "
                "cast it, and its ops with the layer's 16-bit inputs fail ('BatchMatMulV2 ... float16 ... "
                "float32').",
                "fix": f"Create it with self.add_weight(...) in {cls} (Keras then casts it, and trains it).",
                "blocking": True,
            }
        )
    for c in nb.cells:
        for n in ast.walk(c.tree) if c.tree else ():
            if not (isinstance(n, ast.ClassDef) and any(_dotted(b).endswith("Regularizer") for b in n.bases)):
                continue
            made = next(
                (
                    call
                    for call in ast.walk(n)
                    if isinstance(call, ast.Call)
                    and _call_name(call) in _FLOAT_MAKERS
                    and not any(k.arg == "dtype" for k in call.keywords)
                ),
                None,
            )
            if made is not None:
                traps.append(
                    {
                        "code": "float32_in_regularizer",
                        "cell": c.index,
                        "evidence": f"{n.name}: {ast.unparse(made)}",
                        "text": f"The regularizer {n.name} makes {ast.unparse(made)} in float32 and combines "
                        "it with the layer's 16-bit weights or outputs: TensorFlow refuses the mixed dtypes "
                        "('Sub ... float16 ... float32').",
                        "fix": f"Cast it to the values' dtype where {n.name} uses it "
                        "(tf.cast(..., x.dtype)).",
                        "blocking": True,
                    }
                )
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


def _msg(
    level: str, text: str, action: str | None = None, code: str | None = None, cell: int | None = None
) -> dict[str, Any]:
    """A message of a plan; `cell` is the index (after the plan's edits) of the cell it is about."""
    m: dict[str, Any] = {"level": level, "text": text}
    if action:
        m["action"] = action
    if code:
        m["code"] = code
    if cell is not None:
        m["cell"] = cell
    return m


def _shifted(index: int):
    """Maps a cell's index before one insertion at `index` to its index after it."""
    return lambda i: i + 1 if i >= index else i


def _finish(plan: dict[str, Any], cells: list[Cell]) -> dict[str, Any]:
    """Adds each message's `cell_line`: the first non-empty line of the cell it points at, read
    from the notebook as it will be after the edits (so a user can find the cell)."""
    sources = [c.source for c in cells]
    for edit in plan["edits"]:
        if edit["op"] == "insert":
            sources.insert(edit["index"], edit["source"])
        else:
            sources[edit["index"]] = edit["source"]
    for m in plan["messages"]:
        i = m.get("cell")
        if isinstance(i, int) and 0 <= i < len(sources):
            m["cell_line"] = next((ln.strip() for ln in sources[i].split("\n") if ln.strip()), "")
    return plan


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
    return _finish(_plan(tool, Notebook.of(parsed), active, options), parsed)


def _plan(tool: str, nb: Notebook, active: int | None, options: dict[str, Any]) -> dict[str, Any]:
    if tool == "verify":
        return _plan_verify(nb)
    if tool == "wrap":
        return _plan_wrap(nb, active)
    if tool == "distribute":
        return _plan_distribute(nb, options)
    if tool == "mixed_precision":
        return _plan_mixed_precision(nb, options)
    if tool == "input_pipeline":
        return _plan_input_pipeline(nb, options)
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
    after = _shifted(index)
    traps = mixed_precision_traps(nb)
    stuck = next((t for t in traps if t["blocking"] and not t.get("edit")), None)
    if stuck is not None:
        return _refuse(
            "mixed_precision",
            _msg(
                "warning",
                f"Mixed precision was not added: {_cell_no(stuck['cell'])} ({stuck['evidence']}): "
                f"{stuck['text']} {stuck['fix']} The notebook is unchanged and trains in float32.",
                code=stuck["code"],
                cell=stuck["cell"],
            ),
            select=stuck["cell"],
        )
    by_cell: dict[int, list[dict[str, Any]]] = {}
    for t in traps:
        if t.get("edit"):
            by_cell.setdefault(t["cell"], []).append(t["edit"])
        messages.append(
            _msg(
                "info" if t.get("edit") else "warning",
                f"{_cell_no(after(t['cell']))}: {t['evidence']}: "
                + (f"{t['edit']['text']} added. " if t.get("edit") else f"{t['fix']} ")
                + t["text"],
                code=t["code"],
                cell=after(t["cell"]),
            )
        )
    plan = _insert("mixed_precision", index, code, "mixed_precision", messages)
    sources = {c.index: c.source for c in nb.cells}
    plan["edits"] += [
        {"op": "replace", "index": after(i), "source": apply_kwarg_edits(sources[i], edits)}
        for i, edits in sorted(by_cell.items())
    ]
    return plan


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
    after = _shifted(index)
    raw = raw_variables(nb)
    if raw:
        cls, cell, code = raw[0]
        return _refuse(
            "distribute",
            _msg(
                "warning",
                f"Not distributed: {cls} ({_cell_no(cell)}) keeps a weight in a raw tf.Variable ({code}), "
                "which Keras 3 neither tracks nor trains, and with it under MirroredStrategy TensorFlow 2.21 "
                "crashed the kernel in validation ('free(): invalid pointer'); create it with "
                f"self.add_weight(...) in {cls} to distribute it. The notebook is unchanged and trains on "
                "one device.",
                code="raw_variable",
                cell=cell,
            ),
            select=cell,
        )
    marks, refusal = built_marks(nb)
    if refusal is not None:
        cls, cell, why = refusal
        return _refuse(
            "distribute",
            _msg(
                "warning",
                f"Not distributed: {cls} ({_cell_no(cell)}) has its own train_step and no call(), and {why}, "
                "so Keras cannot build it under a strategy ('Unable to automatically build the model'); "
                f"give {cls} a call() that runs its sub-models to distribute it. The notebook is unchanged "
                "and trains on one device.",
                code="model_without_call",
                cell=cell,
            ),
            select=cell,
        )
    plan = _insert("distribute", index, "\n".join(lines), DISTRIBUTE_ID, messages)
    sources = {c.index: c.source for c in nb.cells}
    for cell, lineno, line, _cls, _target in sorted(marks, key=lambda m: (m[0], m[1]), reverse=True):
        src = sources[cell].split("\n")  # the last line first: earlier insertions keep their places
        src.insert(lineno, line)
        sources[cell] = "\n".join(src)
    for cell, _lineno, _line, cls, target in marks:
        plan["messages"].append(
            _msg(
                "info",
                f"{_cell_no(after(cell))}: `{target}.built = True` added after {target} is created. "
                f"{cls} has its own train_step and no call(), so Keras cannot build it under a strategy "
                "by calling it; its sub-models are built when it is created, so there is nothing left to "
                "build.",
                code="model_marked_built",
                cell=after(cell),
            )
        )
    plan["edits"] += [
        {"op": "replace", "index": after(cell), "source": sources[cell]}
        for cell in sorted({m[0] for m in marks})
    ]
    return plan


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


_KERAS_BUILT_BY_CALL = ("loss", "metrics", "weighted_metrics")  # compile() args Keras builds by calling
_INPUT_KWARGS = {"input_shape", "batch_input_shape", "input_dim"}


def _assignments(nb: Notebook, name: str) -> list[tuple[int, ast.Assign]]:
    """Module-level `name = ...` statements of the notebook, in order."""
    out = []
    for c in nb.cells:
        for n in _module_level(c.tree) if c.tree else ():
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets):
                out.append((c.index, n))
    return sorted(out, key=lambda a: (a[0], a[1].lineno))


def _defs(nb: Notebook, kind) -> dict[str, ast.AST]:
    return {n.name: n for c in nb.cells for n in (ast.walk(c.tree) if c.tree else ()) if isinstance(n, kind)}


def _unbuilt(nb: Notebook, expr: ast.AST, label: str, depth: int = 0) -> str | None:
    """Why the model or layer `expr` makes has no variables once it runs (None: it has them, or it
    is no layer). Keras models built from an Input (functional, or a Sequential that starts with
    one) have their variables when they are created; layers get theirs when first called."""
    if depth > 4:
        return None
    if isinstance(expr, ast.Name):
        found = _assignments(nb, expr.id)
        return _unbuilt(nb, found[-1][1].value, expr.id, depth + 1) if found else None
    if not isinstance(expr, ast.Call):
        return None
    name = _call_name(expr) or ""
    dotted = _dotted(expr.func)
    if name in ("Model", "Functional"):
        has_io = expr.args or any(k.arg in ("inputs", "outputs") for k in expr.keywords)
        return None if has_io else f"`{label}` is a Model made without inputs, built only when called"
    if name == "Sequential":
        elts = expr.args[0].elts if expr.args and isinstance(expr.args[0], ast.List | ast.Tuple) else []
        first = elts[0] if elts else None
        starts = isinstance(first, ast.Call) and _call_name(first) in ("Input", "InputLayer")
        shaped = any(isinstance(e, ast.Call) and {k.arg for k in e.keywords} & _INPUT_KWARGS for e in elts)
        return (
            None
            if starts or shaped
            else f"`{label}` is a Sequential without an Input, built only when called"
        )
    if name in ("load_model", "clone_model", "model_from_json") or ".applications." in f".{dotted}.":
        return None
    funcs = _defs(nb, ast.FunctionDef)
    if name in funcs:  # a function that makes the sub-model: what does it return?
        fn = funcs[name]
        local = {
            t.id: n.value
            for n in ast.walk(fn)
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for ret in (n for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None):
            value = local.get(ret.value.id, ret.value) if isinstance(ret.value, ast.Name) else ret.value
            why = _unbuilt(nb, value, label, depth + 1)
            if why:
                return why
        return None
    if name in nb.classes or "layers" in dotted.split(".")[:-1]:
        return f"`{label}` ({name}) is a layer, built only when first called"
    return None


def _compile_builds_by_call(nb: Notebook, cls: ast.ClassDef, target: str) -> bool:
    """Whether Keras' compile() gets a loss or metrics for this model (it builds those by calling it)."""

    def passes(call: ast.Call, first: int) -> bool:
        kws = [k for k in call.keywords if k.arg in _KERAS_BUILT_BY_CALL or k.arg is None]
        given = [k for k in kws if not (isinstance(k.value, ast.Constant) and k.value.value is None)]
        return bool(given) or len(call.args) > first

    own = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "compile"), None)
    if own is not None:  # compile() overridden: what it hands Keras' compile
        supers = [
            n
            for n in ast.walk(own)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "compile"
            and isinstance(n.func.value, ast.Call)
            and _call_name(n.func.value) == "super"
        ]
        return any(passes(n, 1) for n in supers)
    calls = [
        n
        for c in nb.cells
        for n in (ast.walk(c.tree) if c.tree else ())
        if _is_compile(n) and isinstance(n.func.value, ast.Name) and n.func.value.id == target
    ]
    return any(passes(n, 1) for n in calls)


def built_marks(nb: Notebook) -> tuple[list[tuple[int, int, str, str, str]], tuple[str, int, str] | None]:
    """For each user model with its own train_step and no call(): where to mark it built, or why
    that is not safe. Keras (trainers/trainer.py `_symbolic_build`) calls a model under a strategy
    before fit when any of its layers is unbuilt or compile() got a loss or metrics; a model without
    call() fails there. Marking it built is right exactly when neither holds: its sub-models have
    their variables when it is created, and compile() gives Keras no loss or metrics.

    Returns ([(cell, line to insert after, the line, class, name)], None) or ([], (class, cell, why))."""
    classes = _defs(nb, ast.ClassDef)
    marks = []
    for cls_name, cls_cell in models_without_call(nb):
        cls = classes[cls_name]
        made = [
            (cell, stmt)
            for c in nb.cells
            for cell, stmt in (
                (c.index, n)
                for n in (_module_level(c.tree) if c.tree else ())
                if isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Call)
                and _call_name(n.value) == cls_name
                and len(n.targets) == 1
                and isinstance(n.targets[0], ast.Name)
            )
        ]
        if not made:
            return [], (cls_name, cls_cell, "kerasgpu cannot find the cell that creates it")
        init = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        for cell, stmt in made:
            target = stmt.targets[0].id
            why = None
            for arg in [*stmt.value.args, *(k.value for k in stmt.value.keywords)]:
                why = why or _unbuilt(nb, arg, ast.unparse(arg))
            for n in ast.walk(init) if init else ():
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
                    label = ast.unparse(n.targets[0])
                    why = why or _unbuilt(nb, n.value, label)
            if why is None and _compile_builds_by_call(nb, cls, target):
                why = "its compile() hands Keras a loss or metrics, which Keras builds by calling the model"
            if why:
                return [], (cls_name, cell, why)
            line = (
                " " * stmt.col_offset
                + f"{target}.built = True  # kerasgpu: {cls_name} has no call() and its sub-models are built"
            )
            marks.append((cell, stmt.end_lineno or stmt.lineno, line, cls_name, target))
    return marks, None


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
    raw = raw_variables(nb)
    if raw and nb.builds(cell):
        cls, where, code = raw[0]
        return _refuse(
            "wrap",
            _msg(
                "warning",
                f"Not wrapped: {cls} ({_cell_no(where)}) keeps a weight in a raw tf.Variable ({code}), which "
                "Keras 3 neither tracks nor trains, and with it under MirroredStrategy TensorFlow 2.21 "
                f"crashed the kernel in validation; create it with self.add_weight(...) in {cls} first.",
                code="raw_variable",
                cell=where,
            ),
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
        "messages": [],
        "select": active,
    }


# ---------------------------------------------------------------------- input pipeline

PIPELINE_FIXES = ("prefetch", "num_parallel_calls", "cache")
_AUTOTUNE = "tf.data.AUTOTUNE"


def _chain_calls(expr: ast.AST) -> list[ast.Call]:
    """The dataset method calls of a chain, first to last: `ds.map(f).batch(32)` -> [map, batch];
    a call on a dotted path (`tf.data.Dataset.from_tensor_slices(...)`) is the source, not a method."""
    calls = []
    while isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        receiver = expr.func.value
        if isinstance(receiver, ast.Attribute):
            break
        calls.append(expr)
        expr = receiver
    return calls[::-1]


def _insert_text(source: str, inserts: list[tuple[int, int, str]]) -> str:
    """The source with each text inserted at its (1-based line, column), the last first."""
    lines = source.split("\n")
    for line, col, text in sorted(inserts, reverse=True):
        lines[line - 1] = lines[line - 1][:col] + text + lines[line - 1][col:]
    return "\n".join(lines)


def _kwarg_insert(source: str, edit: dict[str, Any]) -> tuple[int, int, str]:
    """A `_kwarg_edit` as a plain insertion before the call's closing parenthesis."""
    line = source.split("\n")[edit["line"] - 1]
    return edit["line"], edit["col"], _kwarg_sep(line[: edit["col"]].rstrip()) + edit["text"]


def _plan_input_pipeline(nb: Notebook, options) -> dict[str, Any]:
    """The input pipeline fix a watched fit measured (its finding names the dataset and the fixes):
    in the user's own cells that build that dataset, `.prefetch(tf.data.AUTOTUNE)` at the end,
    `num_parallel_calls=tf.data.AUTOTUNE` on its maps, `.cache()` right after its source."""
    name, fixes = options.get("dataset"), options.get("fixes")
    if not isinstance(name, str) or not name.isidentifier():
        raise PlanError("input_pipeline needs options.dataset: the name of the dataset fit was given")
    if not isinstance(fixes, list) or not fixes or any(f not in PIPELINE_FIXES for f in fixes):
        raise PlanError(f"options.fixes must list some of {', '.join(PIPELINE_FIXES)}")
    found = _assignments(nb, name)
    if not found:
        return _refuse(
            "input_pipeline",
            _msg(
                "warning",
                f"No cell of this notebook assigns `{name}`, so kerasgpu cannot change its pipeline here: "
                "add the fix where the dataset is built.",
            ),
        )
    edits: dict[int, list[tuple[int, int, str]]] = {}
    kwargs: dict[int, list[dict[str, Any]]] = {}
    done: list[tuple[str, int]] = []
    calls = [(cell, call) for cell, stmt in found for call in _chain_calls(stmt.value)]
    last_cell, last = found[-1]
    last_calls = _chain_calls(last.value)
    if "num_parallel_calls" in fixes:
        for cell, call in calls:
            if call.func.attr == "map" and (e := _kwarg_edit(call, "num_parallel_calls", _AUTOTUNE)):
                kwargs.setdefault(cell, []).append(e)
                done.append(("num_parallel_calls", cell))
    if "cache" in fixes and not any(c.func.attr == "cache" for _, c in calls):
        # Right after the source: the records read from files are kept, maps (augmentation) still run.
        cell, stmt = found[0]
        first = _chain_calls(stmt.value)
        source = first[0].func.value if first else stmt.value
        edits.setdefault(cell, []).append((source.end_lineno, source.end_col_offset, ".cache()"))
        done.append(("cache", cell))
    if "prefetch" in fixes and not (last_calls and last_calls[-1].func.attr == "prefetch"):
        value = last.value
        edits.setdefault(last_cell, []).append(
            (value.end_lineno, value.end_col_offset, f".prefetch({_AUTOTUNE})")
        )
        done.append(("prefetch", last_cell))
    if not done:
        return _refuse(
            "input_pipeline",
            _msg("info", f"`{name}` already has what kerasgpu would add ({', '.join(fixes)})."),
            select=last_cell,
        )
    imports_tf = any(
        isinstance(n, ast.Import) and any(a.name == "tensorflow" and a.asname == "tf" for a in n.names)
        for c in nb.cells
        for n in (ast.walk(c.tree) if c.tree else ())
    )
    sources = {c.index: c.source for c in nb.cells}
    out_edits = []
    for cell in sorted(set(edits) | set(kwargs)):
        inserts = edits.get(cell, []) + [_kwarg_insert(sources[cell], e) for e in kwargs.get(cell, [])]
        src = _insert_text(sources[cell], inserts)
        if not imports_tf:
            src = "import tensorflow as tf\n" + src
        out_edits.append({"op": "replace", "index": cell, "source": src})
    what = {
        "prefetch": f".prefetch({_AUTOTUNE})",
        "num_parallel_calls": f"num_parallel_calls={_AUTOTUNE}",
        "cache": ".cache()",
    }
    messages = [
        _msg(
            "info",
            f"{_cell_no(cell)}: {what[fix]} added to `{name}`'s pipeline; the next watched fit compares its "
            "input wait and step time with this one's.",
            code=f"pipeline_{fix}",
            cell=cell,
        )
        for fix, cell in done
    ]
    return {
        "tool": "input_pipeline",
        "ok": True,
        "edits": out_edits,
        "messages": messages,
        "select": last_cell,
    }
