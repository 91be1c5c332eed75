"""`kerasgpu.TrainingMonitor`: a Keras 3 callback that shows how a `fit` goes and what slows it.

Per step it only reads the clock and adds two numbers (in `on_train_batch_begin`,
so Keras keeps dispatching `on_train_batch_end` asynchronously and no step waits
for its logs). Everything else (the card, the comm, the findings) runs at most
once per `refresh_s` and at the end of each epoch. GPU readings come from the
kernel's telemetry sampler thread (`gpuwatch`).

One window: every update reads this fit's steady steps so far (after the warm-up), with the
GPU readings taken during them, once (`_window`), and both the card's numbers (step time,
busy %, input wait) and its findings are computed from that one reading, written the same
way (`findings.ms`, `findings.pct`: as the panel's toFixed(1) and Math.round write them).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import keras

from .. import comm
from ..render import TextRepr
from . import guard, receipts
from .findings import FitStats, GpuUse, deadline_finding, find, input_level, ms, pct
from .gpuwatch import GpuWatch, WatchWindow
from .inputwait import InputTimer, pipeline_facts
from .modelfacts import tf_facts
from .timeutil import format_clock, format_duration, parse_deadline

WARMUP_STEPS = 3  # first steps of a fit: tracing / compilation, not training speed

_active: list[TrainingMonitor] = []
_fit_ids = iter(range(1, 1 << 30))


@dataclass
class Progress:
    """A snapshot of a running `fit`: what the card, the comm and the tests read."""

    state: str = "running"  # running | done | stopped
    fit_id: int = 0
    epoch: int = 0  # 1-based epoch in progress (or last finished)
    epochs: int = 1
    step: int = 0  # steps done in this epoch
    steps: int | None = None  # steps per epoch (None: unknown until the first epoch ends)
    progress: float | None = None  # 0..1 over the whole fit
    step_time_s: float | None = None
    samples_per_s: float | None = None
    batch_size: int | None = None
    remaining_s: float | None = None
    eta: float | None = None  # epoch seconds
    deadline: float | None = None
    device: str = "cpu"
    gpus: list[int] = field(default_factory=list)
    gpu_util_pct: float | None = None
    input_share: float | None = None  # 0..1 of a warm step spent waiting for its input
    input_level: str | None = None  # "highly input-bound" | "moderately input-bound" | "not input-bound"
    deadline_verdict: dict[str, Any] | None = (
        None  # guard.deadline_verdict: meets, projected_end, best change
    )
    checkpoint_time: float | None = None  # epoch seconds of the last BackupAndRestore save
    checkpoint_every: int | None = None  # its save_freq in steps
    resumed: dict[str, Any] | None = None  # {"epoch", "saved_at"} when this fit resumed from a backup
    compare: dict[str, Any] | None = None  # receipts.compare with the last run of the same model
    findings: list[dict[str, Any]] = field(default_factory=list)
    time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("findings", "state")}
        # "status", not "state": clients that run notebooks (nbclient) read a comm message's
        # "state" as ipywidgets state
        out["status"] = self.state
        out["type"] = "training"
        out["finding"] = self.findings[0] if self.findings else None
        out["findings"] = list(self.findings)
        return out


def physical_index(tf_index: int, cuda_visible: str | None) -> int:
    """The driver's index of TensorFlow's GPU `tf_index` (via CUDA_VISIBLE_DEVICES when it lists numbers)."""
    if cuda_visible:
        items = [x.strip() for x in cuda_visible.split(",") if x.strip()]
        if tf_index < len(items) and items[tf_index].isdigit():
            return int(items[tf_index])
    return tf_index


def user_name(value: Any) -> str | None:
    """The name the user's namespace binds to `value` (None outside IPython or when unnamed)."""
    if value is None:
        return None
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return None
    ns = getattr(shell, "user_ns", None) or {}
    return next((k for k, v in list(ns.items()) if v is value and not k.startswith("_")), None)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


class ProgressCard(TextRepr):
    """The live card: HTML in notebooks (updated in place), one line of text in terminals."""

    def __init__(self, p: Progress, now: float | None = None):
        self.p = p
        self.now = now or time.time()

    def headline(self) -> str:
        p = self.p
        parts = [f"epoch {p.epoch}/{p.epochs}"]
        parts.append(f"step {p.step}/{p.steps}" if p.steps else f"step {p.step}")
        if p.progress is not None:
            parts.append(f"{p.progress * 100:.0f} %")
        if p.step_time_s:
            parts.append(f"{ms(p.step_time_s)} ms/step")
        if p.samples_per_s:
            parts.append(f"{p.samples_per_s:,.0f} samples/s")
        if p.state == "running" and p.eta is not None:
            parts.append(f"ETA {format_clock(p.eta, self.now)} (in {format_duration(p.remaining_s or 0)})")
        if p.gpus:
            util = f"{pct(p.gpu_util_pct)} %" if p.gpu_util_pct is not None else "n/a"
            parts.append(f"GPU {','.join(map(str, p.gpus))} busy {util}")
        elif p.device == "cpu":
            parts.append("on CPU")
        if p.input_share is not None:
            parts.append(f"input wait {pct(p.input_share * 100)} %")
        return "  ".join(parts)

    def extra_lines(self) -> list[str]:
        """Deadline verdict, checkpoint, resume and the comparison with the last run, as lines."""
        p, out = self.p, []
        v = p.deadline_verdict
        if v:
            out.append(v["text"])
        elif p.deadline:
            out.append(f"deadline {format_clock(p.deadline, self.now)}")
        if p.resumed:
            out.append(
                f"resumed from the checkpoint of {format_clock(p.resumed['saved_at'], self.now)} "
                f"(epoch {p.resumed['epoch'] + 1})"
            )
        if p.checkpoint_time:
            out.append(
                f"last checkpoint {format_duration(self.now - p.checkpoint_time)} ago "
                f"(every {p.checkpoint_every} steps)"
            )
        if p.compare:
            out.append(p.compare["text"])
        return out

    def to_text(self) -> str:
        word = {"running": "Training", "done": "Trained", "stopped": "Stopped"}[self.p.state]
        lines = [f"{word}: {self.headline()}"]
        lines += [f"  {line}" for line in self.extra_lines()]
        for f in self.p.findings:
            mark = "!!" if f["level"] == "warning" else "--"
            lines.append(f"  [{mark}] {f['title']}: {f['evidence']}")
            lines.append(f"       Fix: {f['fix']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        e = html.escape
        p = self.p
        pct = max(0.0, min(1.0, p.progress or 0.0)) * 100
        warn = any(f["level"] == "warning" for f in p.findings)
        color = "var(--jp-warn-color1, #f57c00)" if warn else "var(--jp-brand-color1, #1976d2)"
        word = {"running": "Training", "done": "Trained", "stopped": "Stopped"}[p.state]
        out = [
            f'<div class="kerasgpu-card kerasgpu-training" data-state="{e(p.state)}" '
            f'style="border-left:4px solid {color};padding:6px 10px;margin:4px 0;'
            "font-family:var(--jp-ui-font-family);font-size:var(--jp-ui-font-size1);"
            'color:var(--jp-ui-font-color1)">',
            f'<div style="font-weight:600">{e(word)} &mdash; {e(self.headline())}</div>',
            '<div style="height:6px;background:var(--jp-layout-color3,#ddd);margin:4px 0;border-radius:3px">'
            f'<div style="height:6px;width:{pct:.1f}%;background:{color};border-radius:3px"></div></div>',
        ]
        for line in self.extra_lines():
            out.append(f"<div>{e(line)}</div>")
        if p.findings:
            out.append('<ul style="margin:2px 0;padding-left:18px">')
            for f in p.findings:
                c = (
                    "var(--jp-warn-color1,#f57c00)"
                    if f["level"] == "warning"
                    else "var(--jp-info-color1,#0288d1)"
                )
                out.append(
                    f'<li><span style="color:{c};font-weight:600">{e(f["title"])}</span>: '
                    f"{e(f['evidence'])}<br><b>Fix:</b> {e(f['fix'])}</li>"
                )
            out.append("</ul>")
        out.append("</div>")
        return "".join(out)


class TrainingMonitor(keras.callbacks.Callback):
    """Measures a `fit`: warm step time, samples/s, progress, ETA, GPU use; shows it live; finds bottlenecks.

    `batch_size`: samples per step (for samples/s; %gpu_watch fills it in from the `fit` call).
    `deadline`: "36h", "2026-12-01 18:00" or epoch seconds: warns as soon as the measured rate misses it.
    `display`: show the live card (notebook) / progress lines (terminal). `gpu`: read the GPUs.
    After `fit`, `progress` holds the last snapshot and `findings` the end-of-fit findings.
    """

    def __init__(
        self,
        batch_size: int | None = None,
        deadline: str | float | None = None,
        warmup_steps: int = WARMUP_STEPS,
        refresh_s: float = 1.0,
        display: bool = True,
        gpu: bool = True,
        publish: bool = True,
        inputs: Any = None,
        measure_input: bool = True,
        backup=None,
        max_loss_s: float = guard.MAX_LOSS_S,
        record: bool = True,
    ):
        super().__init__()
        self.batch_size = batch_size
        self.deadline = parse_deadline(deadline)
        self.warmup_steps = max(1, int(warmup_steps))
        self.refresh_s = refresh_s
        self.show = display
        self.publish = publish
        self.watch = GpuWatch() if gpu else None
        self.timer = InputTimer() if measure_input else None
        self.pipeline = pipeline_facts(inputs)
        self.input_name = user_name(inputs)
        self.data_kind = guard.data_kind(inputs)
        workers = getattr(inputs, "workers", None) if self.data_kind == "pydataset" else None
        self.input_workers = workers if isinstance(workers, int) else None
        self.backup = backup  # a guard.Backup (keras.callbacks.BackupAndRestore) in the same fit
        self.max_loss_s = max_loss_s
        self.record = record
        self.receipt: dict[str, Any] | None = None
        self.findings: list[dict[str, Any]] = []
        self.epoch_findings: list[list[dict[str, Any]]] = []
        self.progress = Progress()
        self._handle = None
        self._reset()

    # --------------------------------------------------------------- the hot path

    def _reset(self) -> None:
        self._t = None  # time of the last batch begin
        self._b = 0  # its step index
        self._intervals = 0  # step intervals seen in this fit
        self._sum_t = 0.0  # steady time and steps (after warm-up)
        self._sum_n = 0
        self._sum_w = 0.0  # input wait during those steps
        self._w = 0.0  # the timer's total at the last batch begin
        self._next = 0.0
        self._epoch = 0
        self._steps_done = 0  # steps of finished epochs
        self._epoch_t0 = 0.0
        self._overheads: list[float] = []
        self._last_miss: dict[str, Any] | None = None

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        t = self._t
        timer = self.timer
        w = timer.wait_s if timer is not None else 0.0
        if t is not None and batch > self._b:
            self._intervals += 1
            if self._intervals > self.warmup_steps:
                self._sum_t += now - t
                self._sum_n += batch - self._b
                self._sum_w += w - self._w
            elif self._intervals == self.warmup_steps and self.watch is not None:
                self.watch.take()  # drop the readings of the warm-up steps
                self.watch.recording = True
        self._t = now
        self._b = batch
        self._w = w
        if now >= self._next:
            self._next = now + self.refresh_s
            self._refresh(batch)

    # --------------------------------------------------------------- epochs and fit

    def on_train_begin(self, logs=None):
        for other in list(_active):  # a fit that raised never ended: stop its watch
            other._finish("stopped")
        _active.append(self)
        self._reset()
        self.findings = []
        self.epoch_findings = []
        params = self.params or {}
        self.progress = Progress(
            fit_id=next(_fit_ids),
            epochs=int(params.get("epochs") or 1),
            steps=params.get("steps"),
            batch_size=self.batch_size,
            deadline=self.deadline,
            time=time.time(),
        )
        self._facts = tf_facts(self.model)
        if self.timer is not None:
            self.timer.install(self.model)
        self._model_key = receipts.model_key(self.model)
        self._last_run = receipts.last_run(self._model_key) if self.record else None
        self.progress.resumed = guard.resumed(self.model, self.backup)
        self._handle = None
        self._notebook = _in_notebook()
        if self.watch is not None:
            self.watch.recording = False
            self.watch.start()
        if self.publish:
            comm.retry()
        self._update_gpus()
        self._emit()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_t0 = time.perf_counter()
        self._t = None  # the first interval of an epoch includes making its iterator
        self.progress.epoch = epoch + 1
        self.progress.step = 0

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        steps = (self._b + 1) if self._t is not None else 0
        if self.progress.steps is None and steps:
            self.progress.steps = steps
        spe = self.progress.steps or steps
        self._steps_done += spe
        st = self.step_time
        if st and spe:
            self._overheads.append(max(0.0, (now - self._epoch_t0) - spe * st))
        self.progress.step = spe
        found = self._findings(self._update(batch=None))
        self.epoch_findings.append(found)
        self.progress.findings = found
        self._emit(text_line=True)

    def on_train_end(self, logs=None):
        self._finish("done")

    def _finish(self, state: str) -> None:
        if self in _active:
            _active.remove(self)
        if self.timer is not None:
            self.timer.uninstall()
        window = self._update(batch=None)
        if self.watch is not None:
            self.watch.stop()
        self.findings = [f.to_json() for f in find(window)] if window else []
        if self.deadline and state == "done" and time.time() > self.deadline:
            self.findings.insert(
                0,
                {
                    "code": "deadline_missed",
                    "level": "warning",
                    "title": "Training ended after the deadline",
                    "evidence": f"ended {format_duration(time.time() - self.deadline)} late",
                    "fix": "Run %gpu_estimate before the next run to pick the device and settings.",
                    "data": {},
                },
            )
        self._record(state, window)
        self.progress.state = state
        self.progress.findings = self.findings
        self.progress.remaining_s = 0.0 if state == "done" else self.progress.remaining_s
        if state == "done":
            self.progress.progress = 1.0
        self.progress.time = time.time()
        self._emit(text_line=True)

    def stop(self) -> None:
        """Ends the monitor of a `fit` that raised (Keras calls no `on_train_end` then)."""
        if self in _active:
            self._finish("stopped")

    # --------------------------------------------------------------- numbers

    @property
    def step_time(self) -> float | None:
        """Mean time of a warm step in this fit (None before the warm-up is over)."""
        return self._sum_t / self._sum_n if self._sum_n else None

    @property
    def input_share(self) -> float | None:
        """Share of the warm steps' time spent waiting for the next batch (None: not measured yet)."""
        if self.timer is None or not self.timer.installed and not self._sum_w or not self._sum_t:
            return None
        return min(1.0, self._sum_w / self._sum_t)

    def _refresh(self, batch: int) -> None:
        window = self._update(batch)
        if self.backup is not None and self._sum_n:
            self.backup.pace(self.step_time, self.max_loss_s)
        if window is not None and (self._sum_n >= 2 or self.progress.findings):
            self.progress.findings = self._findings(window, deadline=self._sum_n >= 10)
        self._emit()

    def _update(self, batch: int | None) -> FitStats | None:
        """Reads the window once and writes the card's numbers from it; returns it for the findings."""
        p = self.progress
        if batch is not None:
            p.step = batch
        window = self._window()
        st = window.step_time_s if window is not None else self.step_time
        p.step_time_s = st
        if st and self.batch_size:
            p.samples_per_s = self.batch_size / st
        share = window.input_share if window is not None else None
        p.input_share = share
        p.input_level = input_level(share) if share is not None else None
        if window is not None and window.gpu_util_pct is not None:
            p.gpu_util_pct = window.gpu_util_pct
        elif self.watch is not None and p.gpus:  # before the window has readings: the newest one
            p.gpu_util_pct = self.watch.latest_util(p.gpus)
        if self.backup is not None:
            p.checkpoint_time = self.backup.saved_at
            p.checkpoint_every = self.backup.every
        self._update_eta(batch, st)
        p.time = time.time()
        return window

    def _update_eta(self, batch: int | None, st: float | None) -> None:
        p = self.progress
        done = self._steps_done + (batch if batch is not None else 0)
        spe = p.steps
        if spe:
            total = spe * p.epochs
            p.progress = min(1.0, done / total)
            if st:
                overhead = sum(self._overheads) / len(self._overheads) if self._overheads else 0.0
                # epoch ends still to come (each costs the measured per-epoch overhead)
                epochs_left = p.epochs - self._epoch - (1 if batch is None else 0)
                p.remaining_s = (total - done) * st + max(0, epochs_left) * overhead
                p.eta = time.time() + p.remaining_s

    def _update_gpus(self) -> None:
        p = self.progress
        f = getattr(self, "_facts", {}) or {}
        used = self.watch._used if self.watch is not None else []
        if not used and f.get("tf_gpu_indexes"):
            used = [physical_index(i, f.get("cuda_visible_devices")) for i in f["tf_gpu_indexes"]]
        p.gpus = list(used)
        p.device = "gpu" if used else "cpu"

    def _window(self) -> FitStats | None:
        """The one window the card's numbers and its findings are both computed from: this fit's steady
        steps so far (after the warm-up) with the GPU readings taken during them (None before fit)."""
        f = getattr(self, "_facts", None)
        if f is None:
            return None
        win = self.watch.take(reset=False) if self.watch is not None else WatchWindow()
        self._update_gpus()
        used = self.progress.gpus
        gpus = []
        for i in used:
            g = win.gpus.get(i)
            tf_peak = self._tf_peak_mib(used.index(i))
            gpus.append(
                GpuUse(
                    index=i,
                    name=g.name if g else None,
                    util_mean_pct=g.util_mean_pct if g else None,
                    samples=g.samples if g else 0,
                    memory_used_mib=tf_peak if tf_peak is not None else (g.memory_used_mib if g else None),
                    memory_total_mib=g.memory_total_mib if g else None,
                    compute_capability=g.compute_capability if g else None,
                )
            )
        share = self.input_share if self._sum_n >= 2 else None
        return FitStats(
            device=self.progress.device,
            gpus=gpus,
            driver_gpus=win.driver_gpus if win.status == "ok" else 0,
            tf_gpus=f.get("tf_gpus"),
            tf_built_with_cuda=f.get("tf_built_with_cuda"),
            cuda_visible_devices=f.get("cuda_visible_devices"),
            placed_on_cpu=f.get("placed_on_cpu", False),
            replicas=f.get("replicas", 1),
            step_time_s=self.step_time,
            batch_size=self.batch_size,
            dtype_policy=f.get("dtype_policy"),
            backend=f.get("backend"),
            input_share=round(share, 4) if share is not None else None,
            pipeline=self.pipeline,
            data_kind=self.data_kind,
            input_name=self.input_name,
            input_workers=self.input_workers,
            steps_per_execution=f.get("steps_per_execution", 1),
        )

    def _tf_peak_mib(self, tf_index: int) -> float | None:
        """TensorFlow's own peak on its GPU `tf_index` (the driver's number includes what TF reserved)."""
        f = getattr(self, "_facts", {}) or {}
        if f.get("backend") != "tensorflow" or not f.get("tf_gpus"):
            return None
        try:
            tf = sys.modules["tensorflow"]
            info = tf.config.experimental.get_memory_info(f"GPU:{tf_index}")
            return info["peak"] / 2**20
        except Exception:
            return None

    def _findings(self, window: FitStats | None, deadline: bool = True) -> list[dict[str, Any]]:
        """The findings of `window` (the same one the card's numbers come from), the checkpoint offer,
        and the deadline warning first while the measured pace misses the deadline."""
        found = [f.to_json() for f in find(window)] if window is not None else []
        offer = guard.backup_offer(self, self.max_loss_s)
        if offer is not None:
            found.append(offer)
        if deadline:
            miss = self._deadline_miss(window)
            if miss is not None:
                found.insert(0, miss)
        return found

    def _deadline_miss(self, window: FitStats | None) -> dict[str, Any] | None:
        """The deadline warning at the window's pace (None while the run makes it). With no step left
        (the last epoch's end) there is nothing left to save: the last warning with work left stands."""
        p = self.progress
        if not self.deadline or p.remaining_s is None:
            return None
        if p.remaining_s <= 0:
            return self._last_miss
        now = time.time()
        self._deadline_verdict(window)
        rate = f"{ms(p.step_time_s)} ms a step" if p.step_time_s else "the measured rate"
        d = deadline_finding(now + p.remaining_s, self.deadline, now, rate)
        if d is None:
            return None
        best = p.deadline_verdict.get("best")
        if best:
            d.evidence += f". {p.deadline_verdict['best_text']}"
            d.fix = best["how"] + " " + d.fix
            d.data["best"] = best
        self._last_miss = d.to_json()
        return self._last_miss

    def _deadline_verdict(self, window: FitStats | None) -> None:
        """Whether the run makes the deadline at the measured pace, and the largest measured saving."""
        p = self.progress
        if not self.deadline or not p.remaining_s:  # none left: the last verdict with work left stands
            return
        now = time.time()
        current = self._current(window)
        options = guard.savings(current, p.remaining_s, self._last_run, self.pipeline, self.data_kind)
        p.deadline_verdict = guard.deadline_verdict(now + p.remaining_s, self.deadline, now, options)

    def _current(self, window: FitStats | None) -> dict[str, Any]:
        """This fit's receipt so far (what shapes its speed, and its measured pace, from `window`)."""
        return receipts.receipt(
            self.model,
            self._facts,
            key=self._model_key,
            batch_size=self.batch_size,
            step_time_s=window.step_time_s if window is not None else self.step_time,
            input_share=window.input_share if window is not None else None,
            gpus=window.gpus if window is not None else [],
            pipeline=self.pipeline,
            data_kind=self.data_kind,
            input_name=self.input_name,
            epochs=self.progress.epochs,
            steps=self.progress.steps,
        )

    def _record(self, state: str, window: FitStats | None) -> None:
        """Stores this fit's receipt and compares it with the last run of the same model."""
        if not self.record or not self._sum_n or getattr(self, "_facts", None) is None:
            return
        try:
            rec = self._current(window)
            rec["status"] = state
            self.receipt = rec
            cmp = receipts.compare(self._last_run, rec) if self._last_run else None
            self.progress.compare = cmp
            if cmp is not None:
                self.findings.append(cmp["finding"])
            receipts.store(rec)
        except Exception as err:  # a receipt must never break training
            self.receipt = {"error": str(err)}
        offer = guard.backup_offer(self, self.max_loss_s)
        if offer is not None:
            self.findings.append(offer)

    # --------------------------------------------------------------- output

    def _emit(self, text_line: bool = False) -> None:
        p = self.progress
        if self.publish:
            comm.publish(p.to_json())
        if not self.show:
            return
        card = ProgressCard(p)
        if self._notebook:
            from IPython.display import display

            if self._handle is None:
                self._handle = display(card, display_id=True)
            else:
                self._handle.update(card)
        elif text_line:
            print(card.to_text(), flush=True)
