"""Runs the keras-io corpus (tests/corpus/*.py) as notebooks in real kernels with the notebook tools
applied exactly as the frontend applies them: the server's planner (`plans.plan`) decides the edits,
`apply_plan` makes them (what src/tools/notebook-edits.ts `applyPlan` does), nbclient runs the notebook.

Each kernel gets two logical CPU devices (an IPython startup file, before TensorFlow starts), so
MirroredStrategy has 2 replicas without a GPU. Usable as a script:

    python python_ext/tests/corpus_runner.py [example ...]   # prints what each tool did
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
PYTHON_EXT = HERE.parent
sys.path.insert(0, str(PYTHON_EXT))

from kerasgpu.core.planner import plans  # noqa: E402

STARTUP = """\
import tensorflow as _tf
_cpus = _tf.config.list_physical_devices("CPU")
_tf.config.set_logical_device_configuration(
    _cpus[0], [_tf.config.LogicalDeviceConfiguration(), _tf.config.LogicalDeviceConfiguration()]
)
del _tf, _cpus
"""
# Appended after the user's cells in distributed runs: what a user would check by hand.
REPLICAS_CHECK = """\
import keras as _keras
import tensorflow as tf
from kerasgpu.kernel import strategy_guard as _guard
print(f"REPLICAS {tf.distribute.get_strategy().num_replicas_in_sync}")  # one write: one stream chunk
_models = {
    _k: _guard.model_distribution(_v)
    for _k, _v in list(globals().items())
    if isinstance(_v, _keras.Model) and _v.built and _v.variables
}
_plain = sorted(_k for _k, _d in _models.items() if _d["distributed_variables"] < _d["variables"])
print(f"TRAINED-NOT-MIRRORED {_plain}")
print(f"GUARD-ERRORS {[n['code'] for n in _guard.notes() if n['level'] == 'error']}")
"""

MODES = ("baseline", "notebook", "wrap", "mixed_float16")


def examples() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.py") if not p.name.startswith("_"))


def parse_tutobook(text: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A keras-io tutobook .py -> (header fields, cells); markdown blocks are `\"\"\"` blocks at the
    start of a line, code between them is one cell (as keras-io's own converter does)."""
    lines = text.split("\n")
    header: dict[str, str] = {}
    cells: list[dict[str, Any]] = []
    i = 0
    if lines and lines[0].strip() == '"""':
        i = 1
        while i < len(lines) and lines[i].strip() != '"""':
            m = re.match(r"^([A-Z][\w ]*):\s*(.*)$", lines[i])
            if m:
                header[m.group(1).strip().lower()] = m.group(2).strip()
            i += 1
        i += 1
    code: list[str] = []

    def flush() -> None:
        src = "\n".join(code).strip("\n")
        if src.strip():
            cells.append({"cell_type": "code", "source": src})
        code.clear()

    while i < len(lines):
        if lines[i].strip() == '"""' and not lines[i].startswith(" "):
            flush()
            j = i + 1
            md: list[str] = []
            while j < len(lines) and lines[j].strip() != '"""':
                md.append(lines[j])
                j += 1
            cells.append({"cell_type": "markdown", "source": "\n".join(md).strip("\n")})
            i = j + 1
            continue
        code.append(lines[i])
        i += 1
    flush()
    return header, cells


def plan_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells as the frontend sends them to the planner (src/tools/notebook-edits.ts `planCells`)."""
    out = []
    for c in cells:
        meta = c.get("metadata", {})
        entry = {"source": c["source"], "cell_type": c["cell_type"], "tags": list(meta.get("tags", []))}
        snippet = meta.get("kerasgpu", {}).get("snippet")
        if snippet:
            entry["snippet"] = snippet
        out.append(entry)
    return out


def apply_plan(cells: list[dict[str, Any]], plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's edits on a copy of the cells (src/tools/notebook-edits.ts `applyPlan`)."""
    cells = [dict(c) for c in cells]
    for edit in plan["edits"]:
        if edit["op"] == "insert":
            cells.insert(
                edit["index"],
                {"cell_type": "code", "source": edit["source"], "metadata": edit.get("metadata", {})},
            )
        elif edit["op"] == "replace":
            cells[edit["index"]] = {**cells[edit["index"]], "source": edit["source"]}
    return cells


def use_tool(cells, tool: str, active: int | None = None, **options) -> tuple[list, dict[str, Any]]:
    """One tool as the frontend uses it: plan on the current cells, then apply."""
    plan = plans.plan(tool, plan_cells(cells), active, options)
    return apply_plan(cells, plan), plan


def model_cell_index(cells: list[dict[str, Any]], header: dict[str, str]) -> int:
    """The notebook index of the header's `Model cell` (counted among code cells)."""
    n = int(header.get("model cell", "-1"))
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    if not 0 <= n < len(code):
        raise ValueError(f"bad 'Model cell: {n}' header")
    return code[n]


@dataclass
class Run:
    """What happened to one example under one mode."""

    example: str
    mode: str
    plans: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # what the tools said before running
    warnings: list[str] = field(default_factory=list)
    ran: bool = False
    error: str | None = None  # first cell error: "ename: evalue"
    error_cell: str | None = None
    outputs: str = ""
    cells: list[dict[str, Any]] = field(default_factory=list)
    notebook: Any = None

    @property
    def trained(self) -> bool:
        return self.ran and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "example": self.example,
            "mode": self.mode,
            "refused": self.refused,
            "warnings": self.warnings,
            "ran": self.ran,
            "trained": self.trained,
            "error": self.error,
        }


def prepare(path: Path, mode: str) -> Run:
    """The example's notebook with the mode's tools applied (not run yet)."""
    header, cells = parse_tutobook(path.read_text(encoding="utf-8"))
    run = Run(path.stem, mode)
    model_idx = model_cell_index(cells, header)

    def tool(name, active=None, **options):
        nonlocal cells
        cells, plan = use_tool(cells, name, active, **options)
        run.plans.append(plan)
        for m in plan["messages"]:
            if not plan["ok"]:
                run.refused.append(m["text"])
            elif m["level"] in ("warning", "error"):
                run.warnings.append(m["text"])
        return plan

    if mode == "notebook":
        tool("verify")
        tool("snippet", 0, id="memory_growth")
        tool("mixed_precision")  # auto: on CPU it refuses at run time and says why
        tool("distribute")
        cells.append({"cell_type": "code", "source": REPLICAS_CHECK})
    elif mode == "wrap":
        # The cell index moves when tools insert cells above it: find it again by its code.
        tool("wrap", model_idx)
    elif mode == "mixed_float16":
        tool("mixed_precision", policy="mixed_float16")
    elif mode != "baseline":
        raise ValueError(f"unknown mode {mode!r}")
    run.cells = cells
    return run


def _notebook(run: Run) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for c in run.cells:
        if c["cell_type"] == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(c["source"]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(c["source"], metadata=c.get("metadata", {})))
    return nb


def _clip(text: str, keep: int = 3000) -> str:
    """An error's head and tail (TensorFlow's graph errors put the message last)."""
    return text if len(text) <= 2 * keep else text[:keep] + "\n...\n" + text[-keep:]


async def execute_async(run: Run, timeout: int = 300) -> Run:
    """Runs the prepared notebook in a fresh kernel (two logical CPUs); records the first error."""
    nb = _notebook(run)
    with tempfile.TemporaryDirectory() as ipdir:
        startup = Path(ipdir) / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-two-cpus.py").write_text(STARTUP)
        env = {
            **os.environ,
            "IPYTHONDIR": ipdir,
            "PYTHONPATH": os.pathsep.join([str(PYTHON_EXT), os.environ.get("PYTHONPATH", "")]),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "KERAS_BACKEND": "tensorflow",
        }
        env.pop("TF_CONFIG", None)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True)
        await client.async_execute(env=env, cwd=ipdir)
    run.ran = True
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and run.error is None:
                run.error = _clip(f"{out['ename']}: {out['evalue']}")
                run.error_cell = cell.source
            if out.get("output_type") == "stream":
                texts.append(out.get("text", ""))
            data = out.get("data", {})
            if "text/plain" in data:
                texts.append(data["text/plain"])
            if out.get("output_type") == "error":
                texts.append("\n".join(out.get("traceback", [])))
    run.outputs = "\n".join(texts)
    run.notebook = nb
    return run


async def run_all(runs: list[Run], parallel: int = 2) -> list[Run]:
    """Executes the runs, `parallel` kernels at a time. Refused wraps are not run; a notebook that a
    refusing tool left as it was shares its baseline's run (the same cells, the same outcome)."""
    gate = asyncio.Semaphore(parallel)
    baselines = {r.example: r for r in runs if r.mode == "baseline"}
    base_done = {name: asyncio.Event() for name in baselines}

    async def one(run: Run) -> Run:
        if run.mode == "wrap" and run.refused:
            return run
        base = baselines.get(run.example)
        if run.mode != "baseline" and base is not None and _same_cells(run, base):
            # A tool that refused changed nothing: this notebook is the baseline's; its outcome too.
            await base_done[run.example].wait()
            run.ran, run.error, run.error_cell, run.outputs = (
                base.ran,
                base.error,
                base.error_cell,
                base.outputs,
            )
            return run
        async with gate:
            try:
                return await execute_async(run)
            except Exception as exc:  # a dead or stuck kernel is this run's failure, not every run's
                run.ran, run.error = True, f"{type(exc).__name__}: {exc}"
                return run

    async def track(run: Run) -> Run:
        try:
            return await one(run)
        finally:
            if run.mode == "baseline" and run.example in base_done:
                base_done[run.example].set()

    return list(await asyncio.gather(*(track(r) for r in runs)))


def _same_cells(a: Run, b: Run) -> bool:
    return [(c["cell_type"], c["source"]) for c in a.cells] == [
        (c["cell_type"], c["source"]) for c in b.cells
    ]


def main(argv: list[str]) -> int:
    names = set(argv)
    results = []
    runs = [prepare(p, m) for p in examples() if not names or p.stem in names for m in MODES]
    for run in asyncio.run(run_all(runs)):
        results.append(run.to_json())
        print(json.dumps(run.to_json()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
