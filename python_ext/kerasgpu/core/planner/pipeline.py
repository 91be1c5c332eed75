"""The input pipeline tool: the fixes a watched fit measured (prefetch, parallel maps, cache),
written into the user's own cells that build the dataset."""

from __future__ import annotations

import ast
from typing import Any

from .cells import Notebook, PlanError, assignments_of
from .edits import cell_no, kwarg_edit, kwarg_sep, message, refuse

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
    """A `kwarg_edit` as a plain insertion before the call's closing parenthesis."""
    line = source.split("\n")[edit["line"] - 1]
    return edit["line"], edit["col"], kwarg_sep(line[: edit["col"]].rstrip()) + edit["text"]


def plan_input_pipeline(nb: Notebook, options) -> dict[str, Any]:
    """The input pipeline fix a watched fit measured (its finding names the dataset and the fixes):
    in the user's own cells that build that dataset, `.prefetch(tf.data.AUTOTUNE)` at the end,
    `num_parallel_calls=tf.data.AUTOTUNE` on its maps, `.cache()` right after its source."""
    name, fixes = options.get("dataset"), options.get("fixes")
    if not isinstance(name, str) or not name.isidentifier():
        raise PlanError("input_pipeline needs options.dataset: the name of the dataset fit was given")
    if not isinstance(fixes, list) or not fixes or any(f not in PIPELINE_FIXES for f in fixes):
        raise PlanError(f"options.fixes must list some of {', '.join(PIPELINE_FIXES)}")
    found = assignments_of(nb, name)
    if not found:
        return refuse(
            "input_pipeline",
            message(
                "warning",
                f"No cell of this notebook assigns `{name}`, so kerasgpu cannot change its pipeline here: "
                "add the fix where the dataset is built.",
            ),
        )
    last_cell = found[-1][0]
    edits, kwargs, done = _pipeline_fixes(found, fixes)
    if not done:
        return refuse(
            "input_pipeline",
            message("info", f"`{name}` already has what kerasgpu would add ({', '.join(fixes)})."),
            select=last_cell,
        )
    messages = [
        message(
            "info",
            f"{cell_no(cell)}: {_ADDED[fix]} added to `{name}`'s pipeline; the next watched fit compares its "
            "input wait and step time with this one's.",
            code=f"pipeline_{fix}",
            cell=cell,
        )
        for fix, cell in done
    ]
    return {
        "tool": "input_pipeline",
        "ok": True,
        "edits": _pipeline_edits(nb, edits, kwargs),
        "messages": messages,
        "select": last_cell,
    }


_ADDED = {
    "prefetch": f".prefetch({_AUTOTUNE})",
    "num_parallel_calls": f"num_parallel_calls={_AUTOTUNE}",
    "cache": ".cache()",
}


def _pipeline_fixes(found: list[tuple[int, ast.Assign]], fixes: list[str]):
    """Where each fix goes in the dataset's assignments: text insertions and keyword edits by cell,
    and the (fix, cell) pairs made, in order."""
    edits: dict[int, list[tuple[int, int, str]]] = {}
    kwargs: dict[int, list[dict[str, Any]]] = {}
    done: list[tuple[str, int]] = []
    calls = [(cell, call) for cell, stmt in found for call in _chain_calls(stmt.value)]
    last_cell, last = found[-1]
    last_calls = _chain_calls(last.value)
    if "num_parallel_calls" in fixes:
        for cell, call in calls:
            if call.func.attr == "map" and (e := kwarg_edit(call, "num_parallel_calls", _AUTOTUNE)):
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
    return edits, kwargs, done


def _pipeline_edits(nb: Notebook, edits, kwargs) -> list[dict[str, Any]]:
    """The cells' new sources (with `import tensorflow as tf` first where the notebook has none)."""
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
    return out_edits
