"""`%gpu_runs`: the watched fits' receipts, newest first, each compared with the previous run of its model."""

from __future__ import annotations

from typing import Any

from . import receipts
from .timeutil import format_clock


def _row(r: dict[str, Any]) -> str:
    parts = [r.get("model_name") or r["model_key"], r.get("device_name") or r.get("device") or "?"]
    if r.get("compute_capability"):
        parts.append(f"cc {r['compute_capability']}")
    parts.append(r.get("dtype_policy") or "?")
    if r.get("replicas") and r["replicas"] > 1:
        parts.append(f"{r['replicas']} replicas ({r.get('strategy')})")
    if r.get("batch_size"):
        parts.append(f"batch {r['batch_size']}")
    if r.get("jit_compile") == "True":
        parts.append("XLA")
    if r.get("steps_per_s"):
        parts.append(f"{r['steps_per_s']:.1f} steps/s ({r['step_time_s'] * 1000:.1f} ms)")
    if r.get("input_share") is not None:
        parts.append(f"input wait {r['input_share'] * 100:.0f} %")
    parts.append(f"TF {r.get('tf_version')}, Keras {r.get('keras_version')}")
    if r.get("cuda"):
        parts.append(f"CUDA {r['cuda']}, cuDNN {r.get('cudnn')}")
    return ", ".join(str(p) for p in parts)


def runs_card(limit: int = 20):
    """What `%gpu_runs` shows."""
    from ..render import Card, Section

    rows = receipts.runs(limit=limit)
    sec = Section(f"Watched fits (newest first), stored in {receipts.db_path()}")
    for i, r in enumerate(rows):
        older = next(
            (o for o in rows[i + 1 :] if o["model_key"] == r["model_key"] and o.get("step_time_s")), None
        )
        text = _row(r)
        if older and r.get("step_time_s"):
            cmp = receipts.compare(older, r)
            if cmp:
                text += f". {cmp['text']}"
                r["compare"] = cmp["text"]
        sec.add(
            format_clock(r["time"]), text, "warning" if r.get("compare", "").find("slower") >= 0 else None
        )
    summary = f"{len(rows)} watched fit(s)" if rows else "No watched fits yet: %gpu_watch on, then fit."
    return Card("GPU runs", "info", summary, [sec], data={"kind": "gpu_runs", "runs": rows})
