"""Bottleneck findings: the rules that turn what a `fit` measured into "what is slow, and what to do".

Pure: no TensorFlow, no Keras, no clock. The input is a `FitStats` (what the
monitor measured and what TensorFlow said about the devices); the output a list
of findings, each with its evidence in numbers and a concrete fix.

Thresholds (checked against a real H200 trace, tests/fixtures/nvidia/h200-trace:
the same model fed from GPU memory ran 20.2 steps/s at 95 % busy; fed by a slow
CPU pipeline, 6.2 steps/s at 30 % busy):

- STARVING_UTIL_PCT = 60: mean GPU busy below this during steady training steps
  means the GPU waits for the host (input pipeline, Python). 95 % busy is what a fed
  GPU shows; 60 % leaves a 1.5x gain on the table, enough to be worth fixing.
- MIN_GPU_SAMPLES = 3: fewer telemetry readings (about one a second) say nothing.
- FED_UTIL_PCT = 95: the busy level a fed GPU reaches; the speed-up a fix can
  bring is estimated as FED_UTIL_PCT / measured busy (on the trace: 6.2 steps/s at
  30 % -> ~19.6 steps/s projected, 20.2 measured).
- SHORT_STEP_S = 0.010: below 10 ms a step is dominated by launch overhead, so
  the fix starts with a larger batch or `steps_per_execution`.
- MEMORY_UNUSED_FRACTION = 0.35: peak memory of the training below 35 % of the
  GPU's memory means the batch could grow; the suggested factor is the largest
  power of two with factor x peak <= MEMORY_HEADROOM (80 %) of the GPU's memory
  (activations grow about linearly with the batch; weights and optimizer don't,
  so this is a floor of what fits, which %gpu_batch_size confirms).
- INPUT_HIGH_PCT = 20, INPUT_MODERATE_PCT = 5: the share of the step spent waiting for input
  (measured by `inputwait`) at which a step is highly / moderately input-bound, the TensorBoard
  profiler's Input Pipeline Analyzer thresholds (openxla/xprof
  `op_stats_to_input_pipeline_analysis.cc`: kHighlyInfeedBoundThresholdInPercent = 20,
  kModeratelyInfeedBoundThresholdInPercent = 5). On the H200 trace the starving phase is
  1 - 6.2/20.2 = 69 % input (highly), the healthy phase under 5 % (not).
- MIXED_PRECISION_MIN_CC = 7.0: Tensor Cores (Volta and newer) run float16
  matmuls several times faster; bfloat16 from 8.0 (Ampere).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .timeutil import format_duration

STARVING_UTIL_PCT = 60.0
FED_UTIL_PCT = 95.0
MIN_GPU_SAMPLES = 3
SHORT_STEP_S = 0.010
MEMORY_UNUSED_FRACTION = 0.35
MEMORY_HEADROOM = 0.80
MIXED_PRECISION_MIN_CC = 7.0
BF16_MIN_CC = 8.0
INPUT_HIGH_PCT = 20.0
INPUT_MODERATE_PCT = 5.0

THRESHOLDS = {
    "starving_util_pct": STARVING_UTIL_PCT,
    "fed_util_pct": FED_UTIL_PCT,
    "min_gpu_samples": MIN_GPU_SAMPLES,
    "short_step_s": SHORT_STEP_S,
    "memory_unused_fraction": MEMORY_UNUSED_FRACTION,
    "memory_headroom": MEMORY_HEADROOM,
    "mixed_precision_min_cc": MIXED_PRECISION_MIN_CC,
    "input_high_pct": INPUT_HIGH_PCT,
    "input_moderate_pct": INPUT_MODERATE_PCT,
}


@dataclass
class GpuUse:
    """One GPU the training uses, as the telemetry saw it during the steady steps."""

    index: int
    name: str | None = None
    util_mean_pct: float | None = None
    samples: int = 0
    memory_used_mib: float | None = None  # peak of this process (TensorFlow's peak, else the driver's)
    memory_total_mib: float | None = None
    compute_capability: str | None = None


@dataclass
class FitStats:
    """What one `fit` (or one epoch of it) measured; every field may be unknown (None)."""

    device: str = "cpu"  # "gpu" when the training's variables live on a GPU, else "cpu"
    gpus: list[GpuUse] = field(default_factory=list)  # the GPUs this process trains on
    driver_gpus: int = 0  # GPUs the NVIDIA driver shows on this machine
    tf_gpus: int | None = None  # GPUs TensorFlow can use (None: unknown / not TensorFlow)
    tf_built_with_cuda: bool | None = None
    cuda_visible_devices: str | None = None  # the environment variable, None when unset
    placed_on_cpu: bool = False  # TensorFlow has GPUs but the model's variables are on the CPU
    replicas: int = 1  # replicas of the distribution strategy
    step_time_s: float | None = None  # steady (warm) step time
    batch_size: int | None = None
    dtype_policy: str | None = None  # Keras' global dtype policy name
    backend: str | None = None  # Keras backend
    input_share: float | None = None  # 0..1 of the steady step time spent waiting for the next batch
    pipeline: dict[str, Any] | None = None  # inputwait.pipeline_facts of a tf.data input; None otherwise
    data_kind: str | None = None  # "tf.data" | "arrays" | "generator" | "pydataset"
    input_name: str | None = None  # the user's variable fit was given as x (for a one-click pipeline fix)
    input_workers: int | None = None  # a PyDataset's workers (None: not a PyDataset / unknown)
    steps_per_execution: int = 1  # the model's compile(steps_per_execution=...)

    @property
    def steps_per_s(self) -> float | None:
        return 1.0 / self.step_time_s if self.step_time_s else None

    @property
    def measured_gpus(self) -> list[GpuUse]:
        """The GPUs with enough readings to say how busy they were."""
        return [g for g in self.gpus if g.util_mean_pct is not None and g.samples >= MIN_GPU_SAMPLES]

    @property
    def gpu_util_pct(self) -> float | None:
        """Mean busy % of the measured GPUs: the number the card's headline and the findings both quote."""
        gpus = self.measured_gpus
        return sum(g.util_mean_pct for g in gpus) / len(gpus) if gpus else None


# How the card and the findings write the numbers they share, so that a reader sees one value: a
# percentage rounded half up (as the panel's Math.round), milliseconds to 0.1 (as its toFixed(1)).
def pct(value: float) -> int:
    """A percentage (0..100) as the card shows it."""
    return math.floor(value + 0.5)


def ms(seconds: float) -> str:
    """A duration in milliseconds as the card shows it ("1.5")."""
    return f"{math.floor(seconds * 1000 * 10 + 0.5) / 10:.1f}"


@dataclass
class Finding:
    """A bottleneck found: what (title), the numbers that show it (evidence), what to do (fix)."""

    code: str
    level: str  # "warning" | "info"
    title: str
    evidence: str
    fix: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cc(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _pow2_floor(x: float) -> int:
    n = 1
    while n * 2 <= x:
        n *= 2
    return n


def input_starving(stats: FitStats) -> Finding | None:
    """GPU busy well under 100 % while training: the GPU waits for its input."""
    if stats.device != "gpu":
        return None
    measured = stats.measured_gpus
    util = stats.gpu_util_pct
    if util is None or util >= STARVING_UTIL_PCT:
        return None
    which = ", ".join(f"GPU {g.index}" for g in measured)
    samples = sum(g.samples for g in measured)
    evidence = f"{which} busy {pct(util)} % on average ({samples} readings during training)"
    data: dict[str, Any] = {"util_mean_pct": round(util, 1), "samples": samples}
    if stats.step_time_s:
        sps = 1.0 / stats.step_time_s
        gain = FED_UTIL_PCT / max(util, 1.0)
        evidence += f" at {sps:.1f} steps/s ({ms(stats.step_time_s)} ms a step)"
        evidence += f"; fed, it could reach about {sps * gain:.0f} steps/s ({gain:.1f}x)"
        data.update(steps_per_s=round(sps, 2), projected_steps_per_s=round(sps * gain, 2))
    fix = f"Feed the GPU faster. {input_fix(stats)}; a larger batch also gives the GPU more work per step."
    if stats.step_time_s is not None and stats.step_time_s < SHORT_STEP_S:
        fused = "" if stats.steps_per_execution > 1 else ", or model.compile(..., steps_per_execution=32)"
        fix = (
            f"Steps are short ({ms(stats.step_time_s)} ms): launch overhead dominates. Use a larger "
            f"batch{fused}. " + fix
        )
    share = stats.input_share
    if share is not None:
        evidence += (
            f"; measured: each step waits {pct(share * 100)} % of its time for input ({input_level(share)})"
        )
        data["input_share"] = round(share, 3)
    return Finding("input_starving", "warning", "The GPU waits for its input", evidence, fix, data)


def input_level(share: float) -> str:
    """The Input Pipeline Analyzer's words for an input share (0..1)."""
    value = share * 100
    if value >= INPUT_HIGH_PCT:
        return "highly input-bound"
    if value >= INPUT_MODERATE_PCT:
        return "moderately input-bound"
    return "not input-bound"


# pipeline_changes' "what" -> the fix the notebook planner's input_pipeline tool makes in the cell.
PLANNER_FIXES = {"num_parallel_calls": "num_parallel_calls", "cache": "cache", "prefetch": "prefetch"}


def pipeline_changes(stats: FitStats) -> list[dict[str, str]]:
    """The changes to the user's input that remove the wait, most effective first: {what, code, why}."""
    pipe = stats.pipeline
    kind = stats.data_kind
    out: list[dict[str, str]] = []
    if pipe is None:
        # Keras (TensorFlow backend) already feeds arrays, generators and PyDatasets through tf.data
        # ending in .prefetch(AUTOTUNE): the change that helps is more producers, not a prefetch.
        if kind == "generator":
            out.append(
                {
                    "what": "workers",
                    "code": "class Batches(keras.utils.PyDataset): ... "
                    "super().__init__(workers=4, use_multiprocessing=False)",
                    "why": "Keras already prefetches a generator's batches, but the generator makes them one "
                    "at a time, under the GIL; a PyDataset's workers make several at once",
                }
            )
        elif kind == "pydataset" and (stats.input_workers or 1) < 2:
            out.append(
                {
                    "what": "workers",
                    "code": "super().__init__(workers=4, use_multiprocessing=False)",
                    "why": "the PyDataset makes one batch at a time (workers=1); Keras prefetches what "
                    "its workers make",
                }
            )
        return out
    if pipe.get("sequential_maps"):
        out.append(
            {
                "what": "num_parallel_calls",
                "code": ".map(fn, num_parallel_calls=tf.data.AUTOTUNE)",
                "why": f"{pipe['sequential_maps']} map(s) run one element at a time on one core",
            }
        )
    if not pipe.get("cache") and pipe.get("source") in (
        "TFRecord files",
        "text files",
        "fixed-length record files",
        "files",
    ):
        out.append(
            {
                "what": "cache",
                "code": ".cache()",
                "why": f"every epoch reads {pipe['source']} again (cache before random augmentation)",
            }
        )
    if not pipe.get("prefetch_last"):
        out.append(
            {
                "what": "prefetch",
                "code": ".prefetch(tf.data.AUTOTUNE)",
                "why": "no prefetch at the end: the pipeline and the step take turns instead of overlapping",
            }
        )
    return out


def input_fix(stats: FitStats, changes: list[dict[str, str]] | None = None) -> str:
    """What to change in the input, from what it already does (never a stage it already has)."""
    changes = pipeline_changes(stats) if changes is None else changes
    if changes:
        return "In the cell that builds the input: " + "; ".join(
            f"`{c['code']}` ({c['why']})" for c in changes
        )
    if stats.pipeline is None and stats.data_kind is None:  # what feeds the fit is unknown
        return (
            "Build the input with tf.data and end it with `.cache()` (if it fits in memory) and "
            "`.prefetch(tf.data.AUTOTUNE)`; decode/augment with "
            "`.map(fn, num_parallel_calls=tf.data.AUTOTUNE)`"
        )
    if stats.pipeline is None:
        return (
            "Keras already prepares the next batch while a step runs: make each batch cheaper to make "
            "or use a larger batch (fewer, larger batches per epoch)"
        )
    return (
        "The pipeline already prefetches and maps in parallel: make its slowest stage cheaper "
        "(decode once and `.cache()`, smaller images on disk) or use a larger batch"
    )


def dominant_part(stats: FitStats) -> str | None:
    """Which part of the input most likely sets the wait, when the pipeline's stages say so."""
    pipe = stats.pipeline
    if pipe is None:
        return {
            "arrays": "slicing the arrays (Keras already feeds them through tf.data with a prefetch)",
            "generator": "the Python generator (one batch at a time)",
            "pydataset": "the PyDataset's __getitem__",
        }.get(stats.data_kind or "")
    if "generator" in (pipe.get("source") or ""):
        return "the Python generator (from_generator runs it one element at a time, under the GIL)"
    if pipe.get("sequential_maps"):
        return "map without num_parallel_calls (one element at a time)"
    if pipe.get("source") and "files" in pipe["source"] and not pipe.get("cache"):
        return f"reading {pipe['source']}"
    if not pipe.get("prefetch"):
        return "no prefetch (input and compute take turns)"
    return None


def input_bound(stats: FitStats) -> Finding | None:
    """The measured share of each step spent waiting for input, with the Input Pipeline Analyzer's levels."""
    share = stats.input_share
    if share is None or not stats.step_time_s or share * 100 < INPUT_MODERATE_PCT:
        return None
    if input_starving(stats) is not None:  # the GPU-busy finding already carries the share
        return None
    step = stats.step_time_s
    wait = share * step
    level = input_level(share)
    evidence = (
        f"Each step waits {ms(wait)} ms of its {ms(step)} ms for the next batch "
        f"({pct(share * 100)} %: {level}; TensorBoard's Input Pipeline Analyzer: >= {INPUT_HIGH_PCT:.0f} % "
        f"highly, >= {INPUT_MODERATE_PCT:.0f} % moderately)"
    )
    util = stats.gpu_util_pct
    if util is not None:
        evidence += f", GPU busy {pct(util)} %"
    part = dominant_part(stats)
    if part:
        evidence += f"; the likely cause: {part}"
    changes = pipeline_changes(stats)
    projected = step * (1 - share)
    fix = input_fix(stats, changes)
    fix += f". Without the wait a step would take about {ms(projected)} ms ({1 / (1 - share):.1f}x)."
    data = {
        "input_share": round(share, 3),
        "wait_ms": round(wait * 1000, 2),
        "step_ms": round(step * 1000, 2),
        "level": "high" if share * 100 >= INPUT_HIGH_PCT else "moderate",
        "dominant": part,
        "changes": changes,
        "projected_step_s": projected,
    }
    offered = [PLANNER_FIXES[c["what"]] for c in changes if c["what"] in PLANNER_FIXES]
    if offered and stats.input_name and stats.pipeline is not None:
        # The notebook tool that makes these changes in the user's own cell (planner "input_pipeline").
        data["pipeline_fix"] = {"dataset": stats.input_name, "fixes": offered}
    lvl = "warning" if share * 100 >= INPUT_HIGH_PCT else "info"
    title = "Highly input-bound" if lvl == "warning" else "Moderately input-bound"
    return Finding("input_bound", lvl, f"{title}: steps wait for their input", evidence, fix, data)


def memory_unused(stats: FitStats) -> Finding | None:
    """Most GPU memory unused: the batch could be larger, and by how much."""
    if stats.device != "gpu":
        return None
    best = None
    for g in stats.gpus:
        if not g.memory_used_mib or not g.memory_total_mib:
            continue
        frac = g.memory_used_mib / g.memory_total_mib
        if frac < MEMORY_UNUSED_FRACTION and (best is None or frac < best[1]):
            best = (g, frac)
    if best is None:
        return None
    g, frac = best
    factor = _pow2_floor(MEMORY_HEADROOM * g.memory_total_mib / g.memory_used_mib)
    if factor < 2:
        return None
    evidence = (
        f"GPU {g.index} used at most {g.memory_used_mib / 1024:.1f} GiB of "
        f"{g.memory_total_mib / 1024:.0f} GiB ({frac * 100:.0f} %)"
    )
    data = {"memory_fraction": round(frac, 3), "factor": factor}
    if stats.batch_size:
        bigger = stats.batch_size * factor
        data["suggested_batch_size"] = bigger
        size = f"about {factor}x larger: batch {bigger} instead of {stats.batch_size}"
    else:
        size = f"about {factor}x larger"
    fix = (
        f"The batch could be {size} (memory grows about linearly with the batch). Confirm the "
        "largest that fits with %gpu_batch_size, and raise the learning rate with the batch "
        "(linear scaling) so accuracy per epoch holds."
    )
    return Finding("memory_unused", "info", "Most GPU memory is unused", evidence, fix, data)


def cpu_fit_with_gpu(stats: FitStats) -> Finding | None:
    """The `fit` runs on the CPU though the machine has a GPU, and why."""
    if stats.device == "gpu" or stats.driver_gpus < 1:
        return None
    n = stats.driver_gpus
    has = f"the NVIDIA driver shows {n} GPU{'s' if n > 1 else ''}"
    cvd = stats.cuda_visible_devices
    if stats.tf_built_with_cuda is False:
        why = "this TensorFlow is a CPU-only build (no CUDA)"
        fix = "Run %gpu_check: it names every cause and the commands to run, in order."
        code = "cpu_only_build"
    elif cvd is not None and cvd.strip() in ("", "-1", "none", "NoDevFiles"):
        why = f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU from this process"
        fix = "Unset CUDA_VISIBLE_DEVICES (or list the GPUs, e.g. %gpu_visible 0) and restart the kernel."
        code = "gpus_hidden"
    elif stats.placed_on_cpu:
        why = "TensorFlow sees a GPU, but the model's variables were created on the CPU"
        fix = (
            "Build and compile the model outside `with tf.device('/cpu:0')` (or inside a GPU strategy): "
            "TensorFlow places ops on GPU:0 by default. %tf_placement on shows where each op runs."
        )
        code = "placed_on_cpu"
    elif stats.tf_gpus == 0:
        why = "TensorFlow found no usable GPU (CUDA libraries, driver or compute capability)"
        fix = (
            "Run %gpu_check --deep: it names the missing library or the driver mismatch; "
            "%gpu_doctor explains logs."
        )
        code = "tf_sees_no_gpu"
    else:
        why = "the training did not run on a GPU"
        fix = "Run %gpu_check --deep and %tf_placement on to see where the ops run."
        code = "cpu_fit"
    evidence = f"The training ran on the CPU while {has}: {why}"
    data = {"reason": code, "driver_gpus": n, "tf_gpus": stats.tf_gpus}
    judged = _kernel_verdict() if code in ("cpu_only_build", "gpus_hidden", "tf_sees_no_gpu") else None
    if judged and judged.get("fix_commands"):
        # The kernel's one verdict (core.diagnosis), word for word as %gpu_check and the panel say it.
        evidence = f"{judged['headline']}."
        fix = "Run, in this order, then restart the kernel: " + " ; ".join(judged["fix_commands"])
        data.update(headline=judged["headline"], fix_commands=judged["fix_commands"])
    return Finding(
        "cpu_fit_with_gpu", "warning", "Training runs on the CPU, not the GPU", evidence, fix, data
    )


def mixed_precision_off(stats: FitStats) -> Finding | None:
    """Mixed precision off on GPUs with Tensor Cores (compute capability 7.0 and newer)."""
    if stats.device != "gpu" or not stats.gpus:
        return None
    if stats.dtype_policy and stats.dtype_policy.startswith("mixed"):
        return None
    ccs = [_cc(g.compute_capability) for g in stats.gpus]
    if not ccs or any(c is None for c in ccs):
        return None
    low = min(ccs)
    if low < MIXED_PRECISION_MIN_CC:
        return None
    policy = "mixed_bfloat16" if low >= BF16_MIN_CC else "mixed_float16"
    names = ", ".join(f"GPU {g.index}" + (f" ({g.name})" if g.name else "") for g in stats.gpus)
    evidence = (
        f"Keras trains in {stats.dtype_policy or 'float32'} on {names}, compute capability "
        f"{low:.1f} (Tensor Cores: {MIXED_PRECISION_MIN_CC:.1f} and newer)"
    )
    fix = (
        f"Set the policy before building the model: %mixed_precision {policy} "
        f"(keras.mixed_precision.set_global_policy('{policy}')); keep the last layer float32 "
        "(dtype='float32'). Matmuls and convolutions typically run 2-3x faster and use half the memory."
    )
    return Finding(
        "mixed_precision_off",
        "info",
        "Mixed precision is off on a GPU that supports it",
        evidence,
        fix,
        {"compute_capability": low, "policy": policy},
    )


def gpus_unused(stats: FitStats) -> Finding | None:
    """One of several GPUs trains while the others idle (no distribution strategy)."""
    if stats.device != "gpu":
        return None
    available = stats.tf_gpus if stats.tf_gpus else stats.driver_gpus
    used = max(stats.replicas, len(stats.gpus), 1)
    if available < 2 or used >= available:
        return None
    evidence = f"{used} of {available} GPUs train (the strategy has {stats.replicas} replica(s))"
    fix = (
        "Train on all of them with tf.distribute.MirroredStrategy: run %gpu_distribute in a cell "
        "before the model is built (or the distribution snippet), and multiply the batch by the "
        "number of GPUs."
    )
    set_replicas, current = _notebook_strategy()
    if set_replicas > used and current:
        fix = (
            f"The notebook's strategy is already set ({set_replicas} replicas), but this model was built "
            "outside it: run the cells that build and compile the model again, after %gpu_distribute."
        )
    elif set_replicas > used:
        fix = (
            f"The notebook has a strategy for its %%distribute cells ({set_replicas} replicas), but this "
            "model was built outside them: build and compile it in a %%distribute cell."
        )
    return Finding(
        "gpus_unused",
        "warning",
        f"{available - used} GPU(s) idle while one trains",
        evidence,
        fix,
        {"used": used, "available": available},
    )


def _kernel_verdict() -> dict[str, Any] | None:
    """The kernel's verdict (kerasgpu.core.diagnosis via kernel.checks), None where it can't be read."""
    try:
        from ..checks import kernel_verdict

        return kernel_verdict()
    except Exception:
        return None


def _notebook_strategy() -> tuple[int, bool]:
    """Replicas of the strategy the notebook set (%gpu_distribute, %%distribute, the cell wrap), 1
    without one, and whether it is current for every cell. The strategy guard keeps it even while a
    model built outside it trains with no strategy current; else TensorFlow's current strategy."""
    import sys

    guard = sys.modules.get("kerasgpu.kernel.strategy_guard")
    state = getattr(guard, "_STATE", None) or {}
    strategy = state.get("strategy")
    try:
        if strategy is not None:
            return int(strategy.num_replicas_in_sync), bool(state.get("current"))
        tf = sys.modules.get("tensorflow")
        return (int(tf.distribute.get_strategy().num_replicas_in_sync) if tf else 1), True
    except Exception:
        return 1, True


RULES = (cpu_fit_with_gpu, input_starving, input_bound, memory_unused, mixed_precision_off, gpus_unused)


def find(stats: FitStats) -> list[Finding]:
    """Every finding for `stats`, most important first."""
    out = []
    for rule in RULES:
        f = rule(stats)
        if f is not None:
            out.append(f)
    return out


def deadline_finding(projected_end: float, deadline: float, now: float, rate_text: str) -> Finding | None:
    """A warning when training, at the measured rate, ends after the deadline (times in epoch seconds)."""
    if projected_end <= deadline:
        return None
    late = projected_end - deadline
    evidence = (
        f"At {rate_text} the run ends {format_duration(projected_end - now)} from now, "
        f"{format_duration(late)} after the deadline"
    )
    fix = (
        "Stop early and change what sets the pace: run %gpu_estimate to compare devices; mixed precision, "
        "a larger batch (%gpu_batch_size), a fed input pipeline or more GPUs (%%distribute) shorten it; "
        "fewer epochs or a smaller model are the fallback."
    )
    return Finding(
        "deadline_miss", "warning", "Training will miss the deadline", evidence, fix, {"late_s": round(late)}
    )


# the public name (`kerasgpu.training_findings(FitStats(...))`)
training_findings = find
