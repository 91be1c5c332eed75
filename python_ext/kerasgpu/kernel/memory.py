"""`%gpu_memory` and `%gpu_mem`: TensorFlow's GPU memory settings and use.

Settings (growth, limits) must be made before TensorFlow's runtime starts;
after that these functions raise an explained `KerasGPUError` instead of
TensorFlow's bare RuntimeError.
"""

from __future__ import annotations

import os
from typing import Any

from .render import Card, Fix, Section
from .runtime import (
    GROWTH_ENV_FIX,
    RESTART_FIX,
    KerasGPUError,
    frozen_error,
    gpu_indexes,
    import_tensorflow,
    physical_gpus,
    runtime_initialized,
)


def _chosen(tf, gpus: str | list[int] | None):
    devs = physical_gpus(tf)
    idx = gpu_indexes(gpus, len(devs), "List GPU indexes TensorFlow sees (see %gpu_memory status).")
    return devs, (list(range(len(devs))) if idx is None else idx)


def _no_gpu_card(title: str, action: str) -> Card:
    return Card(
        title,
        "warning",
        f"TensorFlow sees no GPU, so there is nothing to {action}.",
        fixes=[
            Fix(
                "no_gpu",
                "warning",
                "No GPU visible to TensorFlow in this kernel.",
                "Run %gpu_check for the reason.",
                ["%gpu_check"],
            )
        ],
        data={"ok": False, "gpus": [], "applied": []},
    )


def set_memory_growth(enable: bool = True, gpus: str | list[int] | None = None) -> Card:
    """Turns memory growth on (or off) for the chosen GPUs (default all), before TensorFlow starts."""
    tf = import_tensorflow()
    devs, idx = _chosen(tf, gpus)
    commands = ["%gpu_memory growth  # first cell, after the restart", "%env TF_FORCE_GPU_ALLOW_GROWTH=true"]
    if not devs:
        if runtime_initialized():
            raise frozen_error("memory growth", f"{RESTART_FIX} {GROWTH_ENV_FIX}", commands)
        return _no_gpu_card("GPU memory", "set memory growth on")
    todo = [devs[i] for i in idx if tf.config.experimental.get_memory_growth(devs[i]) != enable]
    if todo and runtime_initialized():
        raise frozen_error("memory growth", f"{RESTART_FIX} {GROWTH_ENV_FIX}", commands)
    try:
        for d in todo:
            tf.config.experimental.set_memory_growth(d, enable)
    except RuntimeError as exc:  # the runtime started between our check and the call
        if "initialized" in str(exc):
            raise frozen_error("memory growth", f"{RESTART_FIX} {GROWTH_ENV_FIX}", commands) from exc
        raise
    card = memory_status()
    card.title = "GPU memory"
    card.summary = f"Memory growth {'on' if enable else 'off'} for GPU {', '.join(map(str, idx))}."
    fixes = []
    if len(idx) < len(devs):
        fixes.append(
            Fix(
                "growth_differs",
                "warning",
                "TensorFlow refuses to start when visible GPUs have different memory growth settings.",
                "Set growth on every visible GPU, or hide the others first with %gpu_visible.",
                ["%gpu_memory growth", f"%gpu_visible {','.join(map(str, idx))}"],
            )
        )
        card.level = "warning"
    card.fixes = fixes
    card.data["applied"] = [{"gpu": i, "memory_growth": enable} for i in idx]
    return card


def set_memory_limit(limit_mib: int, gpus: str | list[int] | None = None) -> Card:
    """Caps TensorFlow at `limit_mib` MiB on the chosen GPUs (default all), before TensorFlow starts."""
    if limit_mib <= 0:
        raise KerasGPUError(
            "bad_limit", f"A memory limit must be a positive number of MiB, not {limit_mib}.", ""
        )
    tf = import_tensorflow()
    devs, idx = _chosen(tf, gpus)
    commands = [f"%gpu_memory limit {limit_mib}  # first cell, after the restart"]
    if not devs:
        if runtime_initialized():
            raise frozen_error("memory limits", RESTART_FIX, commands)
        return _no_gpu_card("GPU memory", "limit")
    conf = [tf.config.LogicalDeviceConfiguration(memory_limit=limit_mib)]
    todo = [devs[i] for i in idx if tf.config.get_logical_device_configuration(devs[i]) != conf]
    if todo and runtime_initialized():
        raise frozen_error("memory limits", RESTART_FIX, commands)
    try:
        for d in todo:
            tf.config.set_logical_device_configuration(d, conf)
    except RuntimeError as exc:
        if "initialized" in str(exc):
            raise frozen_error("memory limits", RESTART_FIX, commands) from exc
        raise
    card = memory_status()
    card.title = "GPU memory"
    card.summary = f"TensorFlow limited to {limit_mib} MiB on GPU {', '.join(map(str, idx))}."
    card.data["applied"] = [{"gpu": i, "memory_limit_mib": limit_mib} for i in idx]
    return card


def memory_status(gpus: str | list[int] | None = None) -> Card:
    """Each GPU's memory settings (growth, limit, visible) and whether they can still change."""
    tf = import_tensorflow()
    devs, idx = _chosen(tf, gpus)
    started = runtime_initialized()
    visible = tf.config.get_visible_devices("GPU")
    rows = []
    sec = Section("GPUs")
    for i in idx:
        d = devs[i]
        conf = tf.config.get_logical_device_configuration(d)
        row = {
            "gpu": i,
            "name": d.name,
            "visible": d in visible,
            "memory_growth": tf.config.experimental.get_memory_growth(d),
            "memory_limit_mib": [c.memory_limit for c in conf] if conf else None,
        }
        rows.append(row)
        sec.add(
            f"GPU {i}",
            f"growth {'on' if row['memory_growth'] else 'off'}, "
            f"limit {row['memory_limit_mib'][0] if row['memory_limit_mib'] else 'none'} MiB, "
            f"{'visible' if row['visible'] else 'hidden'}",
        )
    env = os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH")
    state = Section("TensorFlow")
    state.add("runtime initialised", started)
    state.add("settings can change", not started, "warning" if started else None)
    if env is not None:
        state.add("TF_FORCE_GPU_ALLOW_GROWTH", env)
    summary = (
        f"{len(devs)} GPU(s); settings are {'frozen (runtime started)' if started else 'still open'}."
        if devs
        else "TensorFlow sees no GPU."
    )
    data: dict[str, Any] = {
        "ok": True,
        "runtime_initialized": started,
        "can_change": not started,
        "tf_force_gpu_allow_growth": env,
        "gpus": rows,
    }
    return Card("GPU memory", "info" if devs else "warning", summary, [sec, state], data=data)


def memory_usage(reset: bool = False) -> Card:
    """TensorFlow's current and peak memory per GPU beside the driver's view of this process (`%gpu_mem`)."""
    tf = import_tensorflow()
    started = runtime_initialized()
    pid = os.getpid()
    driver: dict[str, Any] = {"status": None, "this_process_mib": {}, "gpus": []}
    try:
        from kerasgpu.telemetry import probe

        snap = probe()
        driver["status"] = snap.status.to_json()
        driver["gpus"] = [
            {"index": s.index, "memory_used_mib": s.memory_used_mib, "memory_total_mib": s.memory_total_mib}
            for s in snap.samples
        ]
        for p in snap.processes:
            if p.pid == pid:
                key = str(p.gpu_index if p.gpu_index is not None else p.gpu_uuid)
                driver["this_process_mib"][key] = (driver["this_process_mib"].get(key) or 0) + (
                    p.used_memory_mib or 0
                )
    except ImportError as exc:
        driver["status"] = {"state": "error", "reason": f"telemetry unavailable: {exc}"}
    tf_rows = []
    sec = Section("Per GPU")
    # get_memory_info would start the runtime: only read it once TensorFlow is running.
    logical = tf.config.list_logical_devices("GPU") if started else []
    for d in logical:
        key = d.name.replace("/device:", "")
        try:
            if reset:
                tf.config.experimental.reset_memory_stats(key)
            info = tf.config.experimental.get_memory_info(key)
            row = {"device": key, "current_mib": info["current"] / 2**20, "peak_mib": info["peak"] / 2**20}
        except Exception as exc:
            row = {"device": key, "error": str(exc)}
        tf_rows.append(row)
        idx = key.rsplit(":", 1)[-1]
        held = driver["this_process_mib"].get(idx)
        sec.add(
            key,
            f"TensorFlow current {row.get('current_mib', 0):.1f} MiB, peak {row.get('peak_mib', 0):.1f} MiB; "
            f"driver: this kernel holds {held if held is not None else 'n/a'} MiB",
        )
    st = driver["status"] or {}
    dsec = Section("Driver")
    dsec.add(
        "state", st.get("state") if st.get("state") == "ok" else f"{st.get('state')}: {st.get('reason')}"
    )
    for g in driver["gpus"]:
        mine = driver["this_process_mib"].get(str(g["index"]))
        dsec.add(
            f"GPU {g['index']}",
            f"{g['memory_used_mib']} / {g['memory_total_mib']} MiB used; this kernel: {mine or 0} MiB",
        )
    if not started:
        summary = "TensorFlow hasn't started on a device yet: it holds no GPU memory."
    elif not logical:
        summary = "TensorFlow runs without a GPU (no GPU memory to report)."
    else:
        summary = ("Peak reset. " if reset else "") + f"TensorFlow memory on {len(logical)} GPU(s)."
    data = {
        "ok": True,
        "runtime_initialized": started,
        "reset": reset and bool(logical),
        "tensorflow": tf_rows,
        "driver": driver,
        "pid": pid,
    }
    return Card("GPU memory use", "info", summary, [sec, dsec], data=data)
