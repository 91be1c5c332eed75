"""Run receipts: what shaped each watched `fit`'s speed, kept in SQLite, and what changed since the last run.

One row per watched fit in `<jupyter data dir>/kerasgpu/runs.sqlite` (`KERASGPU_RUNS_DB`
names another file; tests use it): versions (TensorFlow, Keras, CUDA, cuDNN, driver),
device and compute capability, precision policy, strategy and replicas, batch size,
jit_compile, steps_per_execution, input share, step time and steps/s. The same model
(same layer classes, parameter count and input shapes: `model_key`) run again is compared
with its last run: `compare` says how much faster or slower, and what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from .findings import ms, pct
from .timeutil import format_clock

SLOWER = 1.10  # a run this much slower than the last one (steps/s, same batch: samples/s) is called slower

# the fields that shape speed, in the order `compare` names them: (field, words)
CHANGES = (
    ("device", "device"),
    ("device_name", "device"),
    ("dtype_policy", "precision"),
    ("batch_size", "batch"),
    ("replicas", "replicas"),
    ("strategy", "strategy"),
    ("jit_compile", "XLA (jit_compile)"),
    ("steps_per_execution", "steps_per_execution"),
    ("pipeline_summary", "input"),
    ("tf_version", "TensorFlow"),
    ("keras_version", "Keras"),
    ("cuda", "CUDA"),
    ("cudnn", "cuDNN"),
    ("driver", "driver"),
)
COLUMNS = (
    "time REAL",
    "model_key TEXT",
    "model_name TEXT",
    "status TEXT",
    "tf_version TEXT",
    "keras_version TEXT",
    "cuda TEXT",
    "cudnn TEXT",
    "driver TEXT",
    "device TEXT",
    "device_name TEXT",
    "compute_capability TEXT",
    "dtype_policy TEXT",
    "strategy TEXT",
    "replicas INTEGER",
    "batch_size INTEGER",
    "jit_compile TEXT",
    "steps_per_execution INTEGER",
    "input_share REAL",
    "step_time_s REAL",
    "steps_per_s REAL",
    "samples_per_s REAL",
    "epochs INTEGER",
    "steps INTEGER",
    "pipeline_summary TEXT",
)
NAMES = [c.split()[0] for c in COLUMNS]


def db_path() -> Path:
    """Where receipts live: $KERASGPU_RUNS_DB, else <jupyter data dir>/kerasgpu/runs.sqlite."""
    env = os.environ.get("KERASGPU_RUNS_DB")
    if env:
        return Path(env)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "kerasgpu" / "runs.sqlite"


def _connect() -> sqlite3.Connection:
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=5)
    con.execute(f"CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, {', '.join(COLUMNS)})")
    return con


def model_key(model) -> str:
    """The same model, built again: its class, layer classes, parameter count and input shapes."""
    try:
        layers = [type(layer).__name__ for layer in model.layers]
        params = int(model.count_params())
        inputs = [str(tuple(i.shape)) for i in (getattr(model, "inputs", None) or [])]
    except Exception:
        layers, params, inputs = [], 0, []
    text = json.dumps([type(model).__name__, layers, params, inputs])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _versions() -> dict[str, Any]:
    out: dict[str, Any] = {"tf_version": None, "keras_version": None, "cuda": None, "cudnn": None}
    try:
        import keras

        out["keras_version"] = keras.__version__
    except Exception:
        pass
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        out["tf_version"] = tf.__version__
        try:
            info = tf.sysconfig.get_build_info()
            out["cuda"] = info.get("cuda_version")
            out["cudnn"] = info.get("cudnn_version")
        except Exception:
            pass
    return out


def _pipeline_summary(pipeline: dict[str, Any] | None, data_kind: str | None) -> str | None:
    if pipeline is None:
        return data_kind
    parts = []
    if pipeline.get("sequential_maps"):
        parts.append("sequential map")
    if pipeline.get("parallel_maps"):
        parts.append("parallel map")
    if pipeline.get("cache"):
        parts.append("cache")
    parts.append("prefetch" if pipeline.get("prefetch_last") else "no prefetch")
    return "tf.data: " + ", ".join(parts)


def receipt(model, facts: dict[str, Any], *, key, batch_size, step_time_s, input_share, gpus, **more) -> dict:
    """One fit's receipt (a dict of COLUMNS) from the model, the monitor's facts and its measurements."""
    rec: dict[str, Any] = dict.fromkeys(NAMES)
    rec.update(_versions())
    strategy = None
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            strategy = type(
                getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
            ).__name__
        except Exception:
            strategy = None
    gpu = gpus[0] if gpus else None
    rec.update(
        time=time.time(),
        model_key=key,
        model_name=getattr(model, "name", None),
        status="running",
        device="gpu" if gpus else "cpu",
        device_name=(gpu.name if gpu else None) or ("GPU" if gpu else "CPU"),
        compute_capability=gpu.compute_capability if gpu else None,
        driver=facts.get("driver"),
        dtype_policy=facts.get("dtype_policy"),
        strategy=strategy,
        replicas=facts.get("replicas", 1),
        batch_size=batch_size,
        jit_compile=str(getattr(model, "jit_compile", None)),
        steps_per_execution=int(getattr(model, "steps_per_execution", 1) or 1),
        input_share=round(input_share, 4) if input_share is not None else None,
        step_time_s=step_time_s,
        steps_per_s=(1.0 / step_time_s) if step_time_s else None,
        samples_per_s=(batch_size / step_time_s) if step_time_s and batch_size else None,
        epochs=more.get("epochs"),
        steps=more.get("steps"),
        pipeline_summary=_pipeline_summary(more.get("pipeline"), more.get("data_kind")),
    )
    return rec


def store(rec: dict[str, Any]) -> None:
    """Adds a receipt."""
    con = _connect()
    with con:
        con.execute(
            f"INSERT INTO runs ({', '.join(NAMES)}) VALUES ({', '.join('?' * len(NAMES))})",
            [rec.get(n) for n in NAMES],
        )
    con.close()


def runs(limit: int = 20, key: str | None = None) -> list[dict[str, Any]]:
    """The latest receipts, newest first (of one model with `key`)."""
    path = db_path()
    if not path.exists():
        return []
    con = _connect()
    con.row_factory = sqlite3.Row
    where, args = ("WHERE model_key = ?", [key]) if key else ("", [])
    rows = con.execute(
        f"SELECT * FROM runs {where} ORDER BY time DESC, id DESC LIMIT ?", [*args, limit]
    ).fetchall()
    con.close()
    return [dict(r) for r in rows]


def last_run(key: str) -> dict[str, Any] | None:
    """The latest receipt of the model with `key` that measured its pace."""
    for r in runs(limit=5, key=key):
        if r.get("step_time_s"):
            return r
    return None


def _rate(rec: dict[str, Any]) -> float | None:
    """Samples/s when both have a batch size, else steps/s: what 'faster' means across batch sizes."""
    return rec.get("samples_per_s") or rec.get("steps_per_s")


def _words(field: str, value: Any) -> str:
    if field == "dtype_policy":
        return "mixed precision on" if str(value).startswith("mixed") else "mixed precision off"
    if field == "input_share":
        return f"{value * 100:.0f} %"
    return str(value)


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two receipts, in words: 'mixed precision off', 'batch 256 -> 64'."""
    out: list[str] = []
    seen: set[str] = set()
    for field, words in CHANGES:
        a, b = old.get(field), new.get(field)
        if a == b or a is None or b is None or words in seen:
            continue
        seen.add(words)
        if field == "dtype_policy":
            if str(a).startswith("mixed") != str(b).startswith("mixed"):
                out.append(_words(field, b))
            else:
                out.append(f"precision {a} -> {b}")
        else:
            out.append(f"{words} {a} -> {b}")
    return out


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """How this run's pace compares with the last run of the same model, and what changed."""
    ra, rb = _rate(old), _rate(new)
    if not ra or not rb:
        return None
    ratio = ra / rb  # > 1: this run is slower
    when = format_clock(old["time"])
    diff = changes(old, new)
    step = f"step {ms(old['step_time_s'])} ms -> {ms(new['step_time_s'])} ms"
    wait = ""
    if old.get("input_share") is not None and new.get("input_share") is not None:
        wait = f"input wait {pct(old['input_share'] * 100)} % -> {pct(new['input_share'] * 100)} %, "
    if ratio >= SLOWER:
        text = f"{ratio:.1f}x slower than the run of {when}"
        level, title = "warning", "Slower than the last run of this model"
    elif ratio <= 1 / SLOWER:
        text = f"{1 / ratio:.1f}x faster than the run of {when}"
        level, title = "info", "Faster than the last run of this model"
    else:
        text = f"as fast as the run of {when}"
        level, title = "info", "Same pace as the last run of this model"
    text += ": " + (", ".join(diff) if diff else "nothing that shapes speed changed")
    # the pace in the words of the title: "(2.7x)" faster, "(1.6x slower)", nothing when the same
    pace = (
        f" ({1 / ratio:.1f}x)"
        if ratio <= 1 / SLOWER
        else f" ({ratio:.1f}x slower)"
        if ratio >= SLOWER
        else ""
    )
    evidence = f"{wait}{step}{pace}"
    fix = (
        "Put back what changed (above) if it was not meant; %gpu_runs lists every run."
        if ratio >= SLOWER
        else "%gpu_runs lists every run."
    )
    finding = {
        "code": "compare_last_run",
        "level": level,
        "title": title,
        "evidence": f"{text}; {evidence}",
        "fix": fix,
        "data": {"ratio": round(1 / ratio, 3), "changes": diff, "last_time": old["time"]},
    }
    return {"text": f"{text}; {evidence}", "speedup": 1 / ratio, "changes": diff, "finding": finding}
