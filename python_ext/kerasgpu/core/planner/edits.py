"""The parts of a plan: its messages, a refusal, an inserted cell, and the small text edits the tools
make in the user's own code (a keyword added to a call)."""

from __future__ import annotations

import ast
from typing import Any

from .cells import Cell


def message(
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


def shifted(index: int):
    """Maps a cell's index before one insertion at `index` to its index after it."""
    return lambda i: i + 1 if i >= index else i


def finish(plan: dict[str, Any], cells: list[Cell]) -> dict[str, Any]:
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


def refuse(tool: str, *messages: dict[str, Any], select: int | None = None) -> dict[str, Any]:
    return {"tool": tool, "ok": False, "edits": [], "messages": list(messages), "select": select}


def insert_cell(
    tool: str, index: int, source: str, snippet_id: str, messages=(), tags=None
) -> dict[str, Any]:
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


def cell_no(i: int) -> str:
    return f"cell {i + 1}"


def kwarg_edit(call: ast.Call, name: str, value: str) -> dict[str, Any] | None:
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
        lines[n] = before + kwarg_sep(before) + e["text"] + tail
    return "\n".join(lines)


def kwarg_sep(before: str) -> str:
    """What goes between a call's last argument (`before` ends with it) and one more keyword."""
    return "" if before.endswith("(") or not before else (" " if before.endswith(",") else ", ")
