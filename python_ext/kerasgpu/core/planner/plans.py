"""What each notebook tool does to a user's notebook: where a cell goes, how a cell is wrapped, and
what the tool must refuse or warn about. Pure functions over the notebook's cells.

The frontend asks the server for a plan (`POST /kerasgpu/api/v1/notebook-tools/plan`) and applies
its edits as one undo step; the corpus tests apply the same plans to real keras-io notebooks. So
there is one implementation of every tool: `plan` here, over the rest of `kerasgpu.core.planner`.

A plan is ``{"tool", "ok", "edits", "messages", "select"}``:
- ``edits``: applied in order; ``{"op": "insert", "index", "source", "metadata"}`` adds a code
  cell before ``index``; ``{"op": "replace", "index", "source"}`` changes a cell's code;
- ``messages``: ``{"level": "info"|"warning"|"error", "text", "action"?, "code"?, "cell"?,
  "cell_line"?}``; ``action`` names a command the frontend offers (``distribute-notebook``);
  ``cell`` is the index (after the edits) of the cell it is about, ``cell_line`` that cell's first line;
- ``ok``: False when the tool refused (no edits), with the reason in ``messages``;
- ``select``: the cell to select afterwards (after the edits), or None.
"""

from __future__ import annotations

import re
from typing import Any

from .. import snippets
from .cells import (
    CELL_MAGIC,
    DISTRIBUTE_ID,
    VERIFY_TAG,
    Notebook,
    PlanError,
    below_title,
    config_index,
    find_batch_sizes,
    parse_cells,
    top_index,
)
from .edits import apply_kwarg_edits, cell_no, finish, insert_cell, message, refuse, shifted
from .pipeline import plan_input_pipeline
from .traps import built_marks, mixed_precision_traps, raw_variables
from .wrap import is_wrapped, wrap_source

TOOLS = ("verify", "snippet", "wrap", "distribute", "mixed_precision", "input_pipeline")
VERIFY_SOURCE = snippets.cell_source(snippets.get("verify_gpu"))  # "%load_ext kerasgpu\n%gpu_check"


# The memory snippets TensorFlow refuses to combine (growth with a logical-device memory limit).
_MEMORY_CONFLICT = {"memory_growth": "memory_limit", "memory_limit": "memory_growth"}


_GROWTH_RE = re.compile(r"set_memory_growth\s*\(|%gpu_memory\s+growth|TF_FORCE_GPU_ALLOW_GROWTH")
_LIMIT_RE = re.compile(
    r"set_logical_device_configuration\s*\(|set_virtual_device_configuration|%gpu_memory\s+limit"
)


_DISTRIBUTE_RE = re.compile(r"^\s*%gpu_distribute\b|experimental_set_strategy\s*\(", re.M)


def plan(
    tool: str, cells: list[dict[str, Any]], active: int | None = None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The edits that `tool` makes to a notebook with these cells (see the module's docstring)."""
    options = options or {}
    if tool not in TOOLS:
        raise PlanError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
    parsed = parse_cells(cells)
    if active is not None and not (isinstance(active, int) and 0 <= active < max(len(parsed), 1)):
        raise PlanError(f"active cell {active!r} is not a cell of this notebook (0-{len(parsed) - 1})")
    return finish(_plan(tool, Notebook.of(parsed), active, options), parsed)


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
        return plan_input_pipeline(nb, options)
    snippet_id = options.get("id")
    if not isinstance(snippet_id, str):
        raise PlanError("the snippet tool needs options.id")
    try:
        entry = snippets.get(snippet_id)
    except KeyError:
        raise PlanError(f"unknown snippet {snippet_id!r}") from None
    return _plan_snippet(nb, entry, active, options)


def _plan_verify(nb: Notebook) -> dict[str, Any]:
    """The verification cell: below the notebook's title (its leading markdown), before its first
    code cell; it loads kerasgpu, so the cells below it no longer do (one `%load_ext` per notebook)."""
    for c in nb.cells:
        if VERIFY_TAG in c.tags:
            return _update_verify(nb, c)
    index = below_title(nb.cells)
    plan = insert_cell("verify", index, VERIFY_SOURCE, "verify_gpu", tags=[VERIFY_TAG])
    _one_load(plan, nb, index, shifted(index), f"the verification cell ({cell_no(index)})")
    return plan


def _update_verify(nb: Notebook, c) -> dict[str, Any]:
    """An existing verification cell, brought up to date (without its `%load_ext` where a cell above
    it already loads kerasgpu)."""
    loaded_above = any(
        o.code and _LOAD_LINE.match(line) for o in nb.cells[: c.index] for line in o.source.split("\n")
    )
    want = _without_load(VERIFY_SOURCE) if loaded_above else VERIFY_SOURCE
    if c.source.strip() == want:
        return {"tool": "verify", "ok": True, "edits": [], "messages": [], "select": c.index}
    return {
        "tool": "verify",
        "ok": True,
        "edits": [{"op": "replace", "index": c.index, "source": want}],
        "messages": [message("info", "The GPU verification cell was updated.")],
        "select": c.index,
    }


# A line that loads kerasgpu; a second load in a notebook only prints "already loaded".
_LOAD_LINE = re.compile(r"^\s*%load_ext\s+kerasgpu\s*(?:#.*)?$")


def _loads(source: str) -> bool:
    return any(_LOAD_LINE.match(line) for line in source.split("\n"))


def _without_load(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if not _LOAD_LINE.match(line))


def _one_load(plan: dict[str, Any], nb: Notebook, start: int, after, loader: str) -> None:
    """One `%load_ext kerasgpu` per notebook: the plan's new cell loads kerasgpu above the code cells
    from `start` on, so their own `%load_ext kerasgpu` lines go (in the plan's edit of the cell,
    where it has one). `after` maps a cell's index to its index after the insertion."""
    replaced = {e["index"]: e for e in plan["edits"] if e["op"] == "replace"}
    for c in nb.cells[start:]:
        i = after(c.index)
        edit = replaced.get(i)
        source = edit["source"] if edit else c.source
        if not c.code or not _loads(source):
            continue
        if edit:
            edit["source"] = _without_load(source)
        else:
            plan["edits"].append({"op": "replace", "index": i, "source": _without_load(source)})
        plan["messages"].append(
            message(
                "info",
                f"{cell_no(i)}: its `%load_ext kerasgpu` was taken out: {loader} loads kerasgpu first, and a "
                "second load only says it is already loaded.",
                code="load_ext_moved",
                cell=i,
            )
        )


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
            return refuse(
                "snippet",
                message("info", f'"{title}" is already in this notebook ({cell_no(c.index)}).'),
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
            return refuse(
                "snippet",
                message(
                    "error",
                    f'"{title}" was not added: {cell_no(clash.index)} already sets {theirs}, and TensorFlow '
                    "refuses both on one GPU ('Cannot set memory growth on device when virtual devices "
                    "configured'). Growth lets TensorFlow take memory as needed; a limit caps it. Keep one: "
                    f"delete {cell_no(clash.index)} first to switch.",
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
    return insert_cell("snippet", index, code, sid, messages)


def _plan_mixed_precision(nb: Notebook, options) -> dict[str, Any]:
    entry = snippets.get("mixed_precision")
    for c in nb.cells:
        if c.snippet == "mixed_precision":
            return refuse(
                "mixed_precision",
                message("info", f"Mixed precision is already set in {cell_no(c.index)}."),
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
            message("info", "No cell builds a Keras model yet: run this cell before the one that does.")
        )
    after = shifted(index)
    traps = mixed_precision_traps(nb)
    stuck = next((t for t in traps if t["blocking"] and not t.get("edit")), None)
    if stuck is not None:
        return refuse(
            "mixed_precision",
            message(
                "warning",
                f"Mixed precision was not added: {cell_no(stuck['cell'])} ({stuck['evidence']}): "
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
            message(
                "info" if t.get("edit") else "warning",
                f"{cell_no(after(t['cell']))}: {t['evidence']}: "
                + (f"{t['edit']['text']} added. " if t.get("edit") else f"{t['fix']} ")
                + t["text"],
                code=t["code"],
                cell=after(t["cell"]),
            )
        )
    plan = insert_cell("mixed_precision", index, code, "mixed_precision", messages)
    sources = {c.index: c.source for c in nb.cells}
    plan["edits"] += [
        {"op": "replace", "index": after(i), "source": apply_kwarg_edits(sources[i], edits)}
        for i, edits in sorted(by_cell.items())
    ]
    return plan


def _distributed_cell(nb: Notebook):
    """The cell that already sets the notebook's strategy (ours or the user's), or None."""
    return next(
        (c for c in nb.cells if c.snippet == DISTRIBUTE_ID or (c.code and _DISTRIBUTE_RE.search(c.source))),
        None,
    )


def _plan_distribute(nb: Notebook, options) -> dict[str, Any]:
    existing = _distributed_cell(nb)
    if existing is not None:
        return _already_distributed(nb, existing)
    kind = options.get("strategy", "")
    if kind not in ("", "auto", "mirrored", "multiworker", "onedevice"):
        raise PlanError("options.strategy must be auto, mirrored, multiworker or onedevice")
    index, found = config_index(nb)
    messages = []
    if not found:
        messages.append(
            message(
                "info", "No cell builds a Keras model yet: the strategy goes first; build models below it."
            )
        )
    refusal = _not_distributable(nb)
    if refusal is not None:
        return refusal
    marks, _ = built_marks(nb)
    source = _distribute_source(nb, index, kind)
    plan = insert_cell("distribute", index, source, DISTRIBUTE_ID, messages)
    _mark_built(plan, nb, marks, shifted(index))
    if source.startswith("%load_ext kerasgpu"):
        _one_load(plan, nb, index, shifted(index), f"the strategy cell ({cell_no(index)})")
    return plan


def _already_distributed(nb: Notebook, existing) -> dict[str, Any]:
    """The refusal when a strategy is already set (and a warning when a model is built above it)."""
    first = nb.first_build()
    msgs = [message("info", f"This notebook is already distributed ({cell_no(existing.index)}).")]
    if 0 <= first < existing.index:
        msgs.append(
            message(
                "warning",
                f"{cell_no(first)} builds a model before the strategy is set, so its variables are not "
                f"distributed: move {cell_no(existing.index)} above {cell_no(first)}, restart the "
                "kernel "
                "and run all.",
            )
        )
    return refuse("distribute", *msgs, select=existing.index)


def _distribute_source(nb: Notebook, index: int, kind: str) -> str:
    """The strategy cell: `%load_ext kerasgpu` (unless a cell above loads it), the notebook's own
    batch size as a comment, then `%gpu_distribute`."""
    loaded = any(
        VERIFY_TAG in c.tags or re.search(r"^\s*%(?:re)?load_ext\s+kerasgpu\b", c.source, re.M)
        for c in nb.cells[:index]
    )
    lines = [] if loaded else ["%load_ext kerasgpu"]
    batches = find_batch_sizes(nb)
    if batches:
        b = batches[0]
        lines.append(f"# Your batch: {b['code']} ({cell_no(b['cell'])}). It becomes the global batch, split")
        lines.append(
            f"# over the replicas. For {b['value']} per replica, use {b['value']} * "
            "tf.distribute.get_strategy().num_replicas_in_sync."
        )
    magic = "%gpu_distribute" + (f" {kind}" if kind and kind != "auto" else "")
    if batches:
        magic += f" --batch {batches[0]['value']}"
    lines.append(magic)
    return "\n".join(lines)


def _not_distributable(nb: Notebook) -> dict[str, Any] | None:
    """The refusal when the notebook's own model code cannot run under a strategy, or None."""
    raw = raw_variables(nb)
    if raw:
        cls, cell, code = raw[0]
        return refuse(
            "distribute",
            message(
                "warning",
                f"Not distributed: {cls} ({cell_no(cell)}) keeps a weight in a raw tf.Variable ({code}), "
                "which Keras 3 neither tracks nor trains, and with it under MirroredStrategy TensorFlow 2.21 "
                "crashed the kernel in validation ('free(): invalid pointer'); create it with "
                f"self.add_weight(...) in {cls} to distribute it. The notebook is unchanged and trains on "
                "one device.",
                code="raw_variable",
                cell=cell,
            ),
            select=cell,
        )
    _, refusal = built_marks(nb)
    if refusal is None:
        return None
    cls, cell, why = refusal
    return refuse(
        "distribute",
        message(
            "warning",
            f"Not distributed: {cls} ({cell_no(cell)}) has its own train_step and no call(), and {why}, "
            "so Keras cannot build it under a strategy ('Unable to automatically build the model'); "
            f"give {cls} a call() that runs its sub-models to distribute it. The notebook is unchanged "
            "and trains on one device.",
            code="model_without_call",
            cell=cell,
        ),
        select=cell,
    )


def _mark_built(plan: dict[str, Any], nb: Notebook, marks, after) -> None:
    """`model.built = True` after each model without call() is created (traps.built_marks)."""
    sources = {c.index: c.source for c in nb.cells}
    for cell, lineno, line, _cls, _target in sorted(marks, key=lambda m: (m[0], m[1]), reverse=True):
        src = sources[cell].split("\n")  # the last line first: earlier insertions keep their places
        src.insert(lineno, line)
        sources[cell] = "\n".join(src)
    for cell, _lineno, _line, cls, target in marks:
        plan["messages"].append(
            message(
                "info",
                f"{cell_no(after(cell))}: `{target}.built = True` added after {target} is created. "
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


def _plan_wrap(nb: Notebook, active: int | None) -> dict[str, Any]:
    if active is None:
        raise PlanError("the wrap needs the active cell's index")
    cell = nb.cells[active]
    why = _wrap_refusal(nb, cell) or _mixed_strategies(nb, cell)
    if why is not None:
        return refuse("wrap", why, select=active)
    return {
        "tool": "wrap",
        "ok": True,
        "edits": [{"op": "replace", "index": active, "source": wrap_source(cell.source)}],
        "messages": [],
        "select": active,
    }


def _wrap_refusal(nb: Notebook, cell) -> dict[str, Any] | None:
    """Why this cell is not wrapped (not code, already wrapped or distributed, not Python, a raw
    tf.Variable, no model built), as the refusal's message; None when none of these holds."""
    if not cell.code:
        return message("warning", "Select a code cell to run in the strategy's scope.")
    if is_wrapped(cell.source):
        return message("info", "This cell already runs in the notebook's strategy scope.")
    distributed = _distributed_cell(nb)
    if distributed is not None:
        return message(
            "info",
            f"This notebook is already distributed ({cell_no(distributed.index)}): every cell "
            "builds and "
            "trains in its strategy, no wrap needed.",
        )
    if cell.tree is None and not CELL_MAGIC.match(cell.source):
        return message("error", "This cell is not valid Python, so it cannot be wrapped safely.")
    raw = raw_variables(nb)
    if raw and nb.builds(cell):
        cls, where, code = raw[0]
        return message(
            "warning",
            f"Not wrapped: {cls} ({cell_no(where)}) keeps a weight in a raw tf.Variable ({code}), which "
            "Keras 3 neither tracks nor trains, and with it under MirroredStrategy TensorFlow 2.21 "
            f"crashed the kernel in validation; create it with self.add_weight(...) in {cls} first.",
            code="raw_variable",
            cell=where,
        )
    if not nb.builds(cell):
        return message(
            "info",
            "This cell builds no Keras model, so a strategy scope would change nothing: select the cell "
            "that creates the model.",
        )
    return None


def _mixed_strategies(nb: Notebook, cell) -> dict[str, Any] | None:
    """Why wrapping this cell alone would mix strategies (a model it uses is built, or its model is
    compiled, in another cell), as the refusal's message; None when it would not."""
    built = nb.built_names(cell)
    # Models (or layers) built in other cells that this cell uses: their variables are outside the scope.
    used_elsewhere = []
    for name in sorted(nb.loads(cell) - built):
        for other in nb.cells:
            if other.index != cell.index and name in nb.built_names(other):
                used_elsewhere.append((name, other.index))
                break
    if used_elsewhere:
        names = ", ".join(f"`{n}` ({cell_no(i)})" for n, i in used_elsewhere)
        return message(
            "warning",
            f"Not wrapped: this cell uses {names}, built outside the strategy. Distribute the whole "
            "notebook instead. (Keras would mix strategies and fail: 'Mixing different "
            "tf.distribute.Strategy objects'; one strategy for every cell needs no wrap.)",
            "distribute-notebook",
            code="built_elsewhere",
        )
    if nb.compiles(cell):
        return None
    elsewhere = [
        o.index
        for o in nb.cells
        if o.index != cell.index and (nb.compiled_names(o) & built or (not built and nb.compiles(o)))
    ]
    if not elsewhere:
        return None
    return message(
        "warning",
        f"Not wrapped: this model is compiled in {cell_no(elsewhere[0])}. Distribute the whole "
        "notebook instead. (Keras needs build and compile under one strategy, or fit fails: "
        "'Mixing different tf.distribute.Strategy objects'; one strategy for every cell needs "
        "no wrap.)",
        "distribute-notebook",
        code="compiled_elsewhere",
    )
