"""Deadline guard: will the run make it, the single change with the largest measured saving, and progress
that survives a kernel restart (keras.callbacks.BackupAndRestore paced from the measured step time).

Savings are *measured*, never guessed: the input wait this fit measured (a fed pipeline removes
it), the step time `%gpu_estimate` measured on another device, or a faster earlier run of the same
model (its receipt: mixed precision, a larger batch, ...). The checkpoint interval is
`max_loss_s / step time` steps, so an interruption loses at most `max_loss_s` (default 15 min).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from . import results
from .findings import INPUT_MODERATE_PCT, FitStats, ms, pct, pipeline_changes
from .timeutil import format_clock, format_duration

MAX_LOSS_S = 15 * 60.0
DEFAULT_BACKUP_DIR = "kerasgpu-backup"


def data_kind(x: Any) -> str | None:
    """What feeds the fit: "tf.data", "arrays", "generator", "pydataset" (None: nothing given)."""
    if x is None:
        return None
    if hasattr(x, "element_spec"):
        return "tf.data"
    if hasattr(x, "__getitem__") and hasattr(x, "on_epoch_end") and hasattr(x, "__len__"):
        return "pydataset"
    if hasattr(x, "__next__"):
        return "generator"
    return "arrays"


def save_freq(step_time_s: float | None, max_loss_s: float = MAX_LOSS_S) -> int | None:
    """Steps between checkpoints so that an interruption loses at most `max_loss_s`."""
    if not step_time_s:
        return None
    return max(1, int(max_loss_s / step_time_s))


def make_backup(directory: str | os.PathLike, key: str):
    """A keras.callbacks.BackupAndRestore in `directory/key` that kerasgpu paces and reports on."""
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        """BackupAndRestore that says when it last saved and what it resumed from."""

        def __init__(self, backup_dir: str):
            super().__init__(backup_dir, save_freq="epoch", double_checkpoint=True)
            self.saved_at: float | None = None
            self.every: int | None = None
            self.loaded: dict[str, Any] | None = None

        def on_train_begin(self, logs=None):
            meta = Path(self._training_metadata_path)
            if meta.exists():
                try:
                    epoch = int(json.loads(meta.read_text())["epoch"])
                    self.loaded = {"epoch": epoch, "saved_at": meta.stat().st_mtime}
                except (OSError, ValueError, KeyError):
                    self.loaded = None
            super().on_train_begin(logs)

        def on_train_end(self, logs=None):
            super().on_train_end(logs)
            self.model._initial_epoch = None  # the next fit of this model starts at its own epoch 0

        def _save_model(self):
            super()._save_model()
            self.saved_at = time.time()

        def pace(self, step_time_s: float | None, max_loss_s: float) -> None:
            n = save_freq(step_time_s, max_loss_s)
            if n and (self.every is None or abs(n - self.every) > 0.2 * self.every):
                self.every = n
                self.save_freq = n

    return Backup(str(Path(directory) / key))


def resumed(model, backup) -> dict[str, Any] | None:
    """What this fit resumed from: the backup's epoch and when it was saved (None: a fresh start)."""
    loaded = getattr(backup, "loaded", None)
    return dict(loaded) if loaded else None


def _estimate_option(current: dict[str, Any], remaining_s: float) -> dict[str, Any] | None:
    res = results.last_estimate()
    step = current.get("step_time_s")
    if not res or not step:
        return None
    best = None
    for d in res.get("devices", []):
        if d.get("error") or not d.get("step_time_s") or d["device"].upper().startswith("/CPU"):
            continue
        if current.get("device") == "gpu":
            continue
        if best is None or d["step_time_s"] < best["step_time_s"]:
            best = d
    if best is None or best["step_time_s"] >= step:
        return None
    saving = remaining_s * (1 - best["step_time_s"] / step)
    return {
        "change": f"train on {best['label']}",
        "saving_s": saving,
        "how": f"Train on {best['label']} (%gpu_estimate measured {ms(best['step_time_s'])} ms a step "
        f"there, {ms(step)} ms here).",
    }


def _input_option(current: dict[str, Any], remaining_s: float, pipeline, kind) -> dict[str, Any] | None:
    share = current.get("input_share")
    if share is None or share * 100 < INPUT_MODERATE_PCT:
        return None
    stats = FitStats(batch_size=current.get("batch_size"), pipeline=pipeline, data_kind=kind)
    codes = [c["code"] for c in pipeline_changes(stats)]
    how = "Feed the steps: " + (
        "; ".join(f"`{c}`" for c in codes) if codes else "make the input's slowest stage cheaper"
    )
    return {
        "change": "the input pipeline fix",
        "saving_s": remaining_s * share,
        "how": how + f" (this fit measured {pct(share * 100)} % of each step waiting for input).",
    }


def _last_run_option(current: dict[str, Any], remaining_s: float, last: dict[str, Any] | None):
    from .receipts import changes

    if not last:
        return None
    ra = last.get("samples_per_s") or last.get("steps_per_s")
    rb = current.get("samples_per_s") or current.get("steps_per_s")
    if not ra or not rb or ra <= rb * 1.05:
        return None
    back = changes(current, last)
    if not back:
        return None
    return {
        "change": ", ".join(back),
        "saving_s": remaining_s * (1 - rb / ra),
        "how": f"Use the settings of the run of {format_clock(last['time'])} ({', '.join(back)}): "
        f"it ran {ra / rb:.1f}x faster.",
    }


def savings(
    current: dict[str, Any], remaining_s: float, last: dict[str, Any] | None, pipeline=None, kind=None
):
    """Every measured saving on the rest of the run, largest first: {change, saving_s, how}."""
    options = [
        _input_option(current, remaining_s, pipeline, kind),
        _estimate_option(current, remaining_s),
        _last_run_option(current, remaining_s, last),
    ]
    return sorted((o for o in options if o), key=lambda o: -o["saving_s"])


def deadline_verdict(
    projected_end: float, deadline: float, now: float, options: list[dict[str, Any]]
) -> dict:
    """Whether the run ends before the deadline; when not, the largest measured saving and the end with it."""
    meets = projected_end <= deadline
    v: dict[str, Any] = {"meets": meets, "projected_end": projected_end, "deadline": deadline, "best": None}
    if meets:
        v["text"] = (
            f"on track for the deadline {format_clock(deadline, now)}: "
            f"ends {format_clock(projected_end, now)}, {format_duration(deadline - projected_end)} to spare"
        )
        return v
    v["text"] = (
        f"will miss the deadline {format_clock(deadline, now)}: ends {format_clock(projected_end, now)}, "
        f"{format_duration(projected_end - deadline)} late"
    )
    if options:
        best = dict(options[0])
        best["projected_end"] = projected_end - best["saving_s"]
        v["best"] = best
        ok = "in time" if best["projected_end"] <= deadline else "still late"
        v["best_text"] = (
            f"Largest measured saving: {best['change']}, {format_duration(best['saving_s'])} "
            f"(ends {format_clock(best['projected_end'], now)}, {ok})"
        )
        v["text"] += "; " + v["best_text"]
    return v


def backup_offer(monitor, max_loss_s: float = MAX_LOSS_S) -> dict[str, Any] | None:
    """A finding that offers BackupAndRestore paced from the measured step time, for a run long enough
    that an interruption would lose more than `max_loss_s` (none when a backup already runs)."""
    st = monitor.step_time
    p = monitor.progress
    if monitor.backup is not None or not st or not p.steps:
        return None
    total = st * p.steps * p.epochs
    if total <= max_loss_s:
        return None
    n = save_freq(st, max_loss_s)
    code = f"keras.callbacks.BackupAndRestore({DEFAULT_BACKUP_DIR!r}, save_freq={n})"
    return {
        "code": "protect_progress",
        "level": "info",
        "title": "Progress is lost if the kernel stops",
        "evidence": f"the run takes {format_duration(total)} at {ms(st)} ms a step; a kernel restart, "
        "a culled server or a preemption starts it over",
        "fix": f"Add callbacks=[{code}] to fit (a checkpoint every {n} steps = "
        f"{format_duration(n * st)}), or run %gpu_watch on --backup: the next fit resumes where it stopped.",
        "data": {"save_freq": n, "code": code, "max_loss_s": max_loss_s},
    }
