"""`%gpu_doctor`: match TensorFlow GPU failures (exceptions or pasted logs) to cause, fix and a link.

The known failures and their patterns are `kerasgpu.core.known_errors` (`match_errors`).

Any other training error (a shape, label or dtype bug) gets a calm card: not a GPU problem,
the exception, the line of the user's cell that raised it, what the error usually means in
Keras (`TRAINING_RULES`, on the messages Keras 3 and TensorFlow 2.21 print), and fixes
written with the user's own names (read from their `fit` call); the GPU state is one line.
"""

from __future__ import annotations

import ast
import linecache
import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..core import diagnosis
from ..core.diagnosis.logs import line_of
from ..core.known_errors import ANSI, KNOWN, cause_match, match_errors
from .render import Card, Fix, Section


def exception_text(exc: BaseException) -> str:
    """The full text of an exception with its chain, as a traceback prints it."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def match_exception(exc: BaseException) -> list[dict[str, Any]]:
    """`match_errors` for a raised exception."""
    return match_errors(exception_text(exc))


def report(text: str, source: str, facts: dict[str, Any] | None = None, ctx: Context | None = None) -> Card:
    """The `%gpu_doctor` card for `text` (an exception or a pasted log).

    Besides what the text shows (`matches`), it names what blocks the GPU in this
    kernel (`kernel`: the shared diagnosis on `facts`, by default gathered here without
    importing anything new), so the doctor and %gpu_check agree on the same kernel;
    `cause` is the first of them all.
    """
    text = ANSI.sub("", text or "")
    found = match_errors(text)
    ctx = ctx or context_of_text(text)
    if facts is None:
        from .checks import gather_light

        facts = gather_light()
    named = {f["code"] for f in found}
    kernel = [
        cause_match(c)
        for c in diagnosis.diagnose(facts)
        if c["severity"] == diagnosis.BLOCKING and c["code"] not in named
    ]
    judged = diagnosis.verdict(facts)
    data = {
        "kind": "gpu_doctor",
        "source": source,
        "matches": found,
        "kernel": kernel,
        "cause": (found or kernel or [{"code": None}])[0]["code"],
        # The kernel's verdict as %gpu_check, the panel and the status bar word it.
        "verdict": {k: judged[k] for k in ("headline", "fix_commands", "text")},
    }
    for f in found:
        f["commands"] = _fill(f["commands"], ctx.names)
    if not found and (source == "exception" or explain_training_error(text)):
        data["cause"] = None
        return _not_gpu_card(text, data, kernel, ctx)
    if not found and kernel:
        fixes = [
            Fix(f["code"], "error", f"{f['title']}: {f['cause']}", f["fix"], f["commands"], f["link"])
            for f in kernel
        ]
        card = Card(
            "GPU doctor",
            "error",
            f"No known TensorFlow GPU failure in this {source}, but: {judged['headline']}.",
            [Section("Tried").add("known failures", [k.title for k in KNOWN])],
            fixes,
            data,
        )
        card.order = list(judged["fix_commands"])
        return card
    if not found:
        return Card(
            "GPU doctor",
            "info",
            "No known TensorFlow GPU failure in this " + source + ".",
            [Section("Tried").add("known failures", [k.title for k in KNOWN])],
            data=data,
        )
    fixes = [
        Fix(f["code"], "error", f"{f['title']}: {f['cause']}", f["fix"], f["commands"], f["link"])
        for f in found + kernel
    ]
    sec = Section("Evidence")
    for f in found:
        sec.add(f["code"], f["evidence"])
        for k, v in f["details"].items():
            sec.add(f"  {k}", v)
    return Card("GPU doctor", "error", found[0]["title"] + ".", [sec], fixes, data)


# ------------------------------------------------------------------ training errors (not the GPU's)


@dataclass
class Context:
    """Where an exception came from in the user's notebook, and the names their call used."""

    cell: str | None = None  # "In [5]"
    lineno: int | None = None
    line: str | None = None  # the line of the user's cell that raised
    names: dict[str, str] = field(default_factory=dict)  # model, x, y, validation_data as written


class _Names(dict):
    """`str.format_map` defaults: the Keras docs' own argument names where the user's are unknown."""

    def __missing__(self, key):
        return {"model": "model", "x": "x", "y": "y", "x_val": "x_val", "y_val": "y_val"}.get(key, key)


def _fill(texts: list[str], names: dict[str, str]) -> list[str]:
    """Commands with {model}, {x}, ... written as the user's own names."""
    out = []
    for t in texts:
        try:
            out.append(t.format_map(_Names(names)))
        except (KeyError, ValueError, IndexError, AttributeError):
            out.append(t)
    return out


_FIT_CALLS = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch")
_SHAPE = r"\([^)]*\)"


def _rule_labels(text: str) -> dict[str, Any] | None:
    m = re.search(r"Received a label value of (-?\d+) which is outside the valid range of \[0, (\d+)\)", text)
    if not m:
        return None
    value, n = int(m.group(1)), int(m.group(2))
    return {
        "code": "labels_out_of_range",
        "evidence": line_of(text, m),
        "title": "Labels out of range for sparse_categorical_crossentropy",
        "meaning": f"A label is {value}, but the model's output has {n} classes, so the labels must be "
        f"0 to {n - 1}. sparse_categorical_crossentropy takes integer class ids, one per sample.",
        "fix": f"Make the labels 0..{n - 1} (e.g. subtract 1 from labels counted from 1), or give the last "
        f"layer as many units as there are classes ({max(value + 1, n)} or more).",
        "commands": ["print({y}.min(), {y}.max())", "{model}.output_shape"],
        "details": {"label": value, "classes": n},
    }


def _rule_target_shape(text: str) -> dict[str, Any] | None:
    m = re.search(
        rf"Arguments `target` and `output` must have the same (rank \(ndim\)|shape)\. "
        rf"Received: target\.shape=({_SHAPE}), output\.shape=({_SHAPE})",
        text,
    ) or re.search(rf"Shapes ({_SHAPE}) and ({_SHAPE}) are incompatible", text)
    if not m:
        return None
    target, output = m.groups()[-2:]
    return {
        "code": "target_shape",
        "evidence": line_of(text, m),
        "title": "Targets and model output of different shapes",
        "meaning": f"The loss compares the targets, shape {target}, with the model's output, shape "
        f"{output}. Usual causes: integer labels with categorical_crossentropy (it wants one-hot "
        "rows; sparse_categorical_crossentropy takes integers), one-hot labels with "
        "sparse_categorical_crossentropy, or a last layer with another number of units than the "
        "targets have columns.",
        "fix": "Match the loss to the labels (integers: sparse_categorical_crossentropy; one-hot: "
        "categorical_crossentropy), or the last layer's units to the targets' columns.",
        "commands": ["print({y}.shape, {model}.output_shape)", "{model}.loss"],
        "details": {"target_shape": target, "output_shape": output},
    }


def _rule_input_shape(text: str) -> dict[str, Any] | None:
    layer = expected = found = None
    m = re.search(
        rf"of layer '([^']+)' is incompatible with the layer: expected shape=({_SHAPE}), "
        rf"found shape=({_SHAPE})",
        text,
    )
    if m:
        layer, expected, found = m.groups()
    else:
        m = re.search(
            rf"Input \d+ of layer \"?([\w/.-]+)\"? is incompatible with the layer: (expected .*?), "
            rf"but received input with shape ({_SHAPE})",
            text,
        )
        if m:
            layer, expected, found = m.groups()
    if not m:
        m = re.search(rf"Expected shape ({_SHAPE}), but input has incompatible shape ({_SHAPE})", text)
        if m:  # the model's own Input (Keras names the model's class, not a layer)
            expected, found = m.groups()
    if not m:
        m = re.search(r"(?:Matrix size-incompatible: In\[0\]: (\[[\d,]+\]), In\[1\]: (\[[\d,]+\]))", text)
        m = m or re.search(r"Incompatible shapes: (\[[\d,]+\]) vs\. (\[[\d,]+\])", text)
        if not m:
            return None
        expected, found = m.groups()
    where = f"layer '{layer}'" if layer else "the model's input"
    return {
        "code": "input_shape",
        "evidence": line_of(text, m),
        "title": f"Data of the wrong shape for {where}",
        "meaning": f"{where[0].upper() + where[1:]} expects inputs of shape {expected} but got {found} "
        "(None or the first number is the batch). Usual causes: the data was not reshaped or "
        "flattened as the model's Input says, a missing channel axis (28, 28) vs (28, 28, 1), "
        "or the Input's shape written for other data.",
        "fix": "Reshape the data to the model's input shape (or change the Input's shape to the data's).",
        "commands": ["print({x}.shape, {model}.input_shape)", "{model}.summary()"],
        "details": {k: v for k, v in (("layer", layer), ("expected", expected), ("found", found)) if v},
    }


def _rule_dtype(text: str) -> dict[str, Any] | None:
    m = (
        re.search(r"Invalid dtype: (\w+)", text)
        or re.search(r"Failed to convert a NumPy array to a Tensor \(Unsupported object type (\w+)\)", text)
        or re.search(r"could not convert (string) to float", text)
        or re.search(r"Cannot convert .{0,80} to EagerTensor of dtype (\w+)", text)
    )
    if not m:
        return None
    dtype = m.group(1)
    return {
        "code": "wrong_dtype",
        "evidence": line_of(text, m),
        "title": f"Data of a type Keras cannot train on ({dtype})",
        "meaning": f"Some of the data is {dtype}: Keras trains on numbers (float features, integer or "
        "float labels). Strings, Python objects or mixed columns (a DataFrame column read as "
        "object, a list of arrays of different lengths) have to be turned into numbers first.",
        "fix": "Convert the features to float32 and the labels to integers (a StringLookup or "
        "LabelEncoder for text labels; pad sequences to one length).",
        "commands": ["print({x}.dtype, {y}.dtype)", '{x} = np.asarray({x}, dtype="float32")'],
        "details": {"dtype": dtype},
    }


TRAINING_RULES = [_rule_labels, _rule_target_shape, _rule_input_shape, _rule_dtype]


def explain_training_error(text: str) -> dict[str, Any] | None:
    """What a non-GPU training error usually means in Keras (the first rule that matches), or None."""
    for rule in TRAINING_RULES:
        found = rule(text or "")
        if found:
            return found
    return None


def _cell_files() -> dict[str, int]:
    """The filenames IPython compiled the user's cells under, with their execution counts."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return dict(getattr(shell.compile, "_filename_map", {}) or {})
    except Exception:
        return {}


def _is_cell(filename: str, cells: dict[str, int]) -> bool:
    return filename in cells or filename.startswith("<ipython-input-") or "/ipykernel_" in filename


def context_of(exc: BaseException) -> Context:
    """The line of the user's cell that raised `exc` (the last frame in a cell) and its names."""
    cells = _cell_files()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_cell(f.filename, cells)]
    if not frames:
        return Context()
    f = frames[-1]
    n = cells.get(f.filename)
    source = "".join(linecache.getlines(f.filename))
    ctx = Context(f"In [{n}]" if n else "your cell", f.lineno, (f.line or "").strip() or None)
    call = _fit_call(source, f.lineno or 0)
    if call is not None:
        ctx.names = _names_of(call)
    return ctx


def context_of_text(text: str) -> Context:
    """The same from a pasted IPython traceback ("Cell In[5], line 3" ... "----> 3 model.fit(...)")."""
    hits = list(re.finditer(r"Cell In ?\[(\d+)\], line (\d+)\n(?:.*\n){0,12}?-+> ?\d+ ([^\n]+)", text))
    m = hits[-1] if hits else None  # the last one: the user's own line, nearest the error
    if m is None:
        return Context()
    line = m.group(3).strip()
    call = _fit_call(line, 1)
    return Context(f"In [{m.group(1)}]", int(m.group(2)), line, _names_of(call) if call is not None else {})


def _fit_call(source: str, lineno: int) -> ast.Call | None:
    """The model.fit/evaluate/predict call spanning `lineno` in the cell's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    best = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _FIT_CALLS
            and node.lineno <= lineno <= (node.end_lineno or node.lineno)
        ):
            best = node
    return best


def _names_of(call: ast.Call) -> dict[str, str]:
    """model, x, y, x_val, y_val as the user wrote them in the call, where each is a name (or an
    attribute or item of one): an expression such as `x.astype(object)` is not something to
    assign to, so the fix keeps Keras' own word for it."""
    out: dict[str, str] = {}

    def put(key, node):
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
            out[key] = ast.unparse(node)

    put("model", call.func.value)
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    for i, name in enumerate(("x", "y")):
        put(name, call.args[i] if len(call.args) > i else kw.get(name))
    val = kw.get("validation_data")
    if isinstance(val, (ast.Tuple, ast.List)) and len(val.elts) >= 2:
        put("x_val", val.elts[0])
        put("y_val", val.elts[1])
    return out


def _gpu_line(kernel: list[dict[str, Any]]) -> str:
    if not kernel:
        return "nothing found that blocks the GPU in this kernel (%gpu_check for details)"
    return f"{kernel[0]['title']} (not what failed here; %gpu_check for details)"


def report_exception(exc: BaseException, facts: dict[str, Any] | None = None) -> Card:
    """The `%gpu_doctor` card for a raised exception: a GPU failure's card, or for any other error a
    calm one that it is not a GPU problem, with the user's line and what the error usually means."""
    return report(exception_text(exc), "exception", facts, context_of(exc))


def _not_gpu_card(text: str, data: dict[str, Any], kernel: list, ctx: Context) -> Card:
    """The card for an error that matches no GPU failure."""
    last = _last_error_line(text)
    meaning = explain_training_error(text)
    data.update(
        not_gpu=True,
        error=last,
        user_line=ctx.line,
        user_cell=ctx.cell,
        user_lineno=ctx.lineno,
        names=ctx.names,
        explanation=meaning,
    )
    title = meaning["title"] if meaning else (last.split(":", 1)[0] if last else "an error")
    sections = [Section("The error").add("raised", last or "(no message)")]
    if meaning and meaning["evidence"] not in (last or ""):
        sections[0].add("message", meaning["evidence"])
    if ctx.line:
        where = f"{ctx.cell}, line {ctx.lineno}" if ctx.cell else "your code"
        sections.append(Section("Raised by your code").add(where, ctx.line))
    fixes = []
    if meaning:
        sec = Section("What it usually means in Keras").add("meaning", meaning["meaning"])
        for k, v in meaning["details"].items():
            sec.add(k, v)
        sections.append(sec)
        commands = _fill(meaning["commands"], ctx.names)
        fixes.append(Fix(meaning["code"], "info", meaning["title"], meaning["fix"], commands))
    sections.append(Section("GPU", collapsed=True).add("state", _gpu_line(kernel)))
    summary = f"Not a GPU problem: {title[0].lower() + title[1:] if meaning else title}."
    return Card("GPU doctor", "info", summary, sections, fixes, data)


def _last_error_line(text: str) -> str | None:
    """The exception's own line ("ValueError: ..."), its first line of message."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        m = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt)):?(.*)$", lines[i])
        if m:
            head = m.group(0).strip()
            return head if len(head) <= 300 else head[:297] + "..."
    return lines[-1].strip()[:300] if lines else None
