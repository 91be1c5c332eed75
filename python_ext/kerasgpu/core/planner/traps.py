"""What in a notebook's own model code breaks under a tool: the mixed-precision traps (float32
tensors a 16-bit policy cannot cast, a float Input feeding an Embedding, a custom train_step), raw
tf.Variables, and the models without call() that Distribute must mark built (or refuse)."""

from __future__ import annotations

import ast
import re
from typing import Any

from .cells import (
    Cell,
    Notebook,
    assigned_values,
    assignments_of,
    call_name,
    dotted_name,
    is_compile,
    module_level,
)
from .edits import kwarg_edit


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
    if call_name(call) == "Softmax":
        return True
    values = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "activation")]
    if call_name(call) == "Activation":
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
        traps += _float_input_traps(c)
        traps += _custom_layer_traps(nb, c)
    traps += _train_step_traps(nb)
    traps += _output_layer_traps(nb)
    traps += _raw_float32_traps(nb)
    return traps


def _float_input_traps(c: Cell) -> list[dict[str, Any]]:
    """An Input without an integer dtype in a cell (or model) that embeds tokens."""
    if not re.search(r"\bEmbedding\s*\(|TokenAndPositionEmbedding|PositionalEmbedding", c.source):
        return []
    traps = []
    for n in ast.walk(c.tree):
        if not (isinstance(n, ast.Call) and call_name(n) in ("Input", "InputLayer")):
            continue
        dtype = next((k.value for k in n.keywords if k.arg == "dtype"), None)
        if dtype is None or (isinstance(dtype, ast.Constant) and "float" in str(dtype.value)):
            traps.append(
                {
                    "code": "float_input_embedding",
                    "cell": c.index,
                    "evidence": ast.unparse(n),
                    "edit": kwarg_edit(n, "dtype", '"int32"'),
                    "text": "This Input has no integer dtype and feeds an Embedding: under mixed "
                    "precision the token ids become float16 and ids above 2048 are rounded "
                    "(20000 can become an id the Embedding does not have: 'indices[...] = 20000 "
                    "is not in [0, 20000)').",
                    "fix": 'Give the Input dtype="int32".',
                    "blocking": True,
                }
            )
    return traps


_RANDOM_MAKERS = ("normal", "random_normal", "uniform", "random_uniform", "truncated_normal")


def _makes_float32(call: ast.Call) -> bool:
    """A call that makes a float32 tensor unless given a dtype (random ops, zeros, constants)."""
    name = call_name(call) or ""
    makes = name in _RANDOM_MAKERS or (
        name in ("zeros", "ones", "constant", "fill") and "random" not in dotted_name(call.func)
    )
    return makes and not any(k.arg == "dtype" for k in call.keywords)


def _custom_layer_traps(nb: Notebook, c: Cell) -> list[dict[str, Any]]:
    """Custom layers whose call() makes float32 tensors and mixes them with the inputs."""
    traps = []
    for n in ast.walk(c.tree):
        if not (isinstance(n, ast.ClassDef) and n.name in nb.classes):
            continue
        for fn in n.body:
            if not (isinstance(fn, ast.FunctionDef) and fn.name == "call"):
                continue
            for call in ast.walk(fn):
                if not (isinstance(call, ast.Call) and _makes_float32(call)):
                    continue
                dotted = dotted_name(call.func)
                traps.append(
                    {
                        "code": "float32_in_custom_layer",
                        "cell": c.index,
                        "evidence": f"{n.name}.call: {ast.unparse(call)}",
                        "edit": kwarg_edit(call, "dtype", "self.compute_dtype"),
                        "text": f"The custom layer {n.name} makes a float32 tensor ({dotted}(...) "
                        "without dtype) in call() and combines it with its float16 inputs: "
                        "TensorFlow refuses the mixed dtypes ('expected to be a half tensor but is "
                        "a float tensor').",
                        "fix": f"Pass dtype=self.compute_dtype (or the input's dtype) to {dotted}(...).",
                        "blocking": True,
                    }
                )
    return traps


def _train_step_traps(nb: Notebook) -> list[dict[str, Any]]:
    """A custom train_step combines the model's 16-bit outputs with the batch's float32 data."""
    traps = []
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
    return traps


def _output_layer_traps(nb: Notebook) -> list[dict[str, Any]]:
    """The output layer: the last Dense/Activation of the first model cell, without dtype float32."""
    for c in nb.cells:
        if c.tree is None or not nb.builds(c):
            continue
        layer_calls = [
            n
            for n in ast.walk(c.tree)
            if isinstance(n, ast.Call) and call_name(n) in ("Dense", "Activation", "Softmax")
        ]
        if not layer_calls:
            continue
        last = max(layer_calls, key=lambda n: (n.lineno, n.col_offset))
        dtype = next((k.value for k in last.keywords if k.arg == "dtype"), None)
        if not _is_output_activation(last) or (dtype is not None and "float32" in ast.unparse(dtype)):
            return []
        return [
            {
                "code": "output_not_float32",
                "cell": c.index,
                "evidence": ast.unparse(last)[:120],
                "edit": kwarg_edit(last, "dtype", '"float32"'),
                "text": "The model's last layer computes in the mixed policy's float16/bfloat16: the "
                "softmax and loss lose precision.",
                "fix": 'Give the last layer dtype="float32" (or add keras.layers.Activation("linear", '
                'dtype="float32") after it).',
                "blocking": False,
            }
        ]
    return []


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
                    if isinstance(value, ast.Call) and dotted_name(value.func) in _RAW_VARIABLE:
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
            if not (
                isinstance(n, ast.ClassDef) and any(dotted_name(b).endswith("Regularizer") for b in n.bases)
            ):
                continue
            made = next(
                (
                    call
                    for call in ast.walk(n)
                    if isinstance(call, ast.Call)
                    and call_name(call) in _FLOAT_MAKERS
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
            own |= methods(dotted_name(b).split(".")[-1], seen)
        return own

    for name, node in defs.items():
        bases = {dotted_name(b).split(".")[-1] for b in node.bases}
        if not (bases & {"Model"} or bases & {k for k in defs if k != name and k in nb.classes}):
            continue
        found = methods(name, set())
        if "train_step" in found and "call" not in found:
            out.append((name, where[name]))
    return out


_KERAS_BUILT_BY_CALL = ("loss", "metrics", "weighted_metrics")  # compile() args Keras builds by calling
_INPUT_KWARGS = {"input_shape", "batch_input_shape", "input_dim"}


def _defs(nb: Notebook, kind) -> dict[str, ast.AST]:
    return {n.name: n for c in nb.cells for n in (ast.walk(c.tree) if c.tree else ()) if isinstance(n, kind)}


def _unbuilt(nb: Notebook, expr: ast.AST, label: str, depth: int = 0) -> str | None:
    """Why the model or layer `expr` makes has no variables once it runs (None: it has them, or it
    is no layer). Keras models built from an Input (functional, or a Sequential that starts with
    one) have their variables when they are created; layers get theirs when first called."""
    if depth > 4:
        return None
    if isinstance(expr, ast.Name):
        found = assignments_of(nb, expr.id)
        return _unbuilt(nb, found[-1][1].value, expr.id, depth + 1) if found else None
    if not isinstance(expr, ast.Call):
        return None
    name = call_name(expr) or ""
    dotted = dotted_name(expr.func)
    if name in ("Model", "Functional"):
        has_io = expr.args or any(k.arg in ("inputs", "outputs") for k in expr.keywords)
        return None if has_io else f"`{label}` is a Model made without inputs, built only when called"
    if name == "Sequential":
        elts = expr.args[0].elts if expr.args and isinstance(expr.args[0], ast.List | ast.Tuple) else []
        first = elts[0] if elts else None
        starts = isinstance(first, ast.Call) and call_name(first) in ("Input", "InputLayer")
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
        local = assigned_values(fn)
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
            and call_name(n.func.value) == "super"
        ]
        return any(passes(n, 1) for n in supers)
    calls = [
        n
        for c in nb.cells
        for n in (ast.walk(c.tree) if c.tree else ())
        if is_compile(n) and isinstance(n.func.value, ast.Name) and n.func.value.id == target
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
                for n in (module_level(c.tree) if c.tree else ())
                if isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Call)
                and call_name(n.value) == cls_name
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
