"""The bottleneck rules against the real H200 trace (healthy vs starving) and their arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kerasgpu.kernel.train import findings as F
from kerasgpu.kernel.train.timeutil import format_duration, parse_deadline

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia" / "h200-trace"
MIB = 2**20


def phase_window(name: str) -> tuple[list[dict], dict]:
    """The 10 Hz records of one phase, and the phase's `*_done` mark (steps/s)."""
    marks = [json.loads(x) for x in (TRACE / "phases.jsonl").read_text().splitlines()]
    start = next(m["t"] for m in marks if m["phase"] == name)
    end = next(m["t"] for m in marks if m["t"] > start)
    done = next(m for m in marks if m["phase"] == f"{name}_done")
    recs = [json.loads(x) for x in (TRACE / "nvml-10hz.jsonl").read_text().splitlines()]
    return [r for r in recs if start <= r["t"] < end], done


def stats_from(name: str, **over) -> F.FitStats:
    recs, done = phase_window(name)
    util = sum(r["util_gpu"] for r in recs) / len(recs)
    gpu = F.GpuUse(
        index=0,
        name="NVIDIA H200",
        util_mean_pct=util,
        samples=len(recs),
        memory_used_mib=max(r["mem_used"] for r in recs) / MIB,
        memory_total_mib=recs[0]["mem_total"] / MIB,
        compute_capability="9.0",
    )
    kw = dict(device="gpu", gpus=[gpu], driver_gpus=1, tf_gpus=1, step_time_s=1 / done["steps_per_s"])
    kw["batch_size"] = 512
    kw["dtype_policy"] = "float32"
    kw.update(over)
    return F.FitStats(**kw)


def codes(stats: F.FitStats) -> list[str]:
    return [f.code for f in F.find(stats)]


def test_starving_trace_says_the_input_pipeline_starves_the_gpu():
    found = {f.code: f for f in F.find(stats_from("starving"))}
    f = found["input_starving"]
    assert f.level == "warning"
    assert 25 <= f.data["util_mean_pct"] <= 35  # the README: ~30 % busy at 6.2 steps/s
    assert "6.2 steps/s" in f.evidence
    # fed, the same GPU ran 20.2 steps/s in the healthy phase: the projection lands near it
    assert 17 <= f.data["projected_steps_per_s"] <= 23
    assert "prefetch(tf.data.AUTOTUNE)" in f.fix and "cache()" in f.fix and "num_parallel_calls" in f.fix


def test_healthy_trace_is_not_starving():
    stats = stats_from("healthy")
    assert stats.gpus[0].util_mean_pct > 85
    assert "input_starving" not in codes(stats)


def test_healthy_trace_memory_mostly_unused_suggests_a_larger_batch():
    f = {f.code: f for f in F.find(stats_from("healthy"))}["memory_unused"]
    # 19.4 GiB of 140 GiB: 0.8 * 140 / 19.4 = 5.8 -> 4x, batch 2048 instead of 512
    assert f.data["factor"] == 4
    assert f.data["suggested_batch_size"] == 2048
    assert "19.4 GiB of 140 GiB" in f.evidence
    assert "%gpu_batch_size" in f.fix


def test_memory_nearly_full_says_nothing():
    stats = stats_from("healthy")
    stats.gpus[0].memory_used_mib = stats.gpus[0].memory_total_mib * 0.6
    assert "memory_unused" not in codes(stats)


def test_short_steps_point_at_launch_overhead_first():
    f = F.input_starving(stats_from("starving", step_time_s=0.004))
    assert f is not None and "steps_per_execution" in f.fix
    # a model that already runs several steps per execution is told the batch only
    fused = F.input_starving(stats_from("starving", step_time_s=0.004, steps_per_execution=32))
    assert "launch overhead dominates" in fused.fix and "steps_per_execution" not in fused.fix


def test_too_few_readings_say_nothing():
    stats = stats_from("starving")
    stats.gpus[0].samples = F.MIN_GPU_SAMPLES - 1
    assert "input_starving" not in codes(stats)


def test_mixed_precision_off_on_h200_suggests_bfloat16_and_on_sets_nothing():
    f = F.mixed_precision_off(stats_from("healthy"))
    assert f is not None and f.data["policy"] == "mixed_bfloat16" and "9.0" in f.evidence
    assert F.mixed_precision_off(stats_from("healthy", dtype_policy="mixed_float16")) is None
    old = stats_from("healthy")
    old.gpus[0].compute_capability = "6.1"  # Pascal: no Tensor Cores
    assert F.mixed_precision_off(old) is None
    turing = stats_from("healthy")
    turing.gpus[0].compute_capability = "7.5"
    assert F.mixed_precision_off(turing).data["policy"] == "mixed_float16"


def test_one_of_several_gpus_without_a_strategy():
    f = F.gpus_unused(stats_from("healthy", tf_gpus=4, replicas=1))
    assert f is not None and f.data == {"used": 1, "available": 4}
    assert "MirroredStrategy" in f.fix
    assert F.gpus_unused(stats_from("healthy", tf_gpus=4, replicas=4)) is None
    assert F.gpus_unused(stats_from("healthy", tf_gpus=1)) is None


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        (dict(tf_built_with_cuda=False, tf_gpus=0), "cpu_only_build"),
        (dict(tf_built_with_cuda=True, tf_gpus=0, cuda_visible_devices=""), "gpus_hidden"),
        (dict(tf_built_with_cuda=True, tf_gpus=1, placed_on_cpu=True), "placed_on_cpu"),
        (dict(tf_built_with_cuda=True, tf_gpus=0), "tf_sees_no_gpu"),
    ],
)
def test_cpu_fit_on_a_gpu_machine_says_why(over, reason):
    stats = F.FitStats(device="cpu", driver_gpus=1, step_time_s=0.05, **over)
    f = F.cpu_fit_with_gpu(stats)
    assert f is not None and f.data["reason"] == reason
    assert codes(stats)[0] == "cpu_fit_with_gpu"


def test_cpu_fit_on_a_machine_without_gpus_says_nothing():
    assert F.find(F.FitStats(device="cpu", driver_gpus=0, tf_built_with_cuda=False, tf_gpus=0)) == []


def test_numbers_are_written_as_the_card_writes_them():
    """The panel rounds a percentage half up (Math.round) and a step to 0.1 ms (toFixed(1)); a finding
    quoting the same number writes it the same way (a mean of integer readings often ends in .5)."""
    gpu = F.GpuUse(0, util_mean_pct=36.5, samples=4)
    stats = F.FitStats(device="gpu", gpus=[gpu], step_time_s=0.00146, input_share=0.125)
    assert stats.gpu_util_pct == 36.5 and F.pct(36.5) == 37 and F.ms(0.00146) == "1.5"
    f = F.input_starving(stats)
    assert "busy 37 % on average" in f.evidence and "(1.5 ms a step)" in f.evidence
    assert "waits 13 % of its time" in f.evidence


PIPE = {
    "kind": "tf.data",
    "stages": ["PrefetchDataset", "ParallelMapDataset", "BatchDataset", "TensorSliceDataset"],
    "prefetch": True,
    "prefetch_last": True,
    "cache": False,
    "sequential_maps": 0,
    "parallel_maps": 1,
    "batch": True,
    "source": "arrays in memory (from_tensor_slices)",
}
WAITS = dict(device="cpu", step_time_s=0.02, input_share=0.5, batch_size=32, input_name="ds")


def test_a_pipeline_that_already_prefetches_is_not_told_to_prefetch():
    done = F.input_bound(F.FitStats(pipeline=dict(PIPE), data_kind="tf.data", **WAITS))
    assert done.data["changes"] == [] and ".prefetch(" not in done.fix and "pipeline_fix" not in done.data
    assert "already prefetches" in done.fix
    late = {**PIPE, "stages": ["MapDataset", *PIPE["stages"]], "prefetch_last": False, "sequential_maps": 1}
    missing = F.input_bound(F.FitStats(pipeline=late, data_kind="tf.data", **WAITS))
    assert [c["what"] for c in missing.data["changes"]] == ["num_parallel_calls", "prefetch"]


def test_a_starving_gpu_fed_by_a_prefetching_pipeline_is_not_told_to_prefetch():
    fed = F.input_starving(stats_from("starving", pipeline=dict(PIPE), data_kind="tf.data"))
    assert ".prefetch(" not in fed.fix and "already prefetches" in fed.fix
    plain = {**PIPE, "stages": PIPE["stages"][1:], "prefetch": False, "prefetch_last": False}
    unfed = F.input_starving(stats_from("starving", pipeline=plain, data_kind="tf.data"))
    assert "`.prefetch(tf.data.AUTOTUNE)` (no prefetch at the end" in unfed.fix


@pytest.mark.parametrize(
    ("kind", "workers", "advice"),
    [
        ("arrays", None, []),
        ("generator", None, ["workers"]),
        ("pydataset", 1, ["workers"]),
        ("pydataset", 4, []),
    ],
)
def test_keras_own_input_is_not_told_to_prefetch(kind, workers, advice):
    """Keras already feeds arrays, generators and PyDatasets through tf.data ending in a prefetch: the
    advice is more producers where there is one, never a prefetch or a from_tensor_slices copy of it."""
    f = F.input_bound(F.FitStats(data_kind=kind, input_workers=workers, **WAITS))
    assert [c["what"] for c in f.data["changes"]] == advice
    assert ".prefetch(" not in f.fix and "from_tensor_slices" not in f.fix
    if not advice:
        assert "Keras already prepares the next batch" in f.fix


def test_deadline_arithmetic():
    now = 1_000_000.0
    assert F.deadline_finding(now + 3600, now + 7200, now, "10 ms a step") is None
    f = F.deadline_finding(now + 50 * 3600, now + 36 * 3600, now, "10 ms a step")
    assert f is not None and f.data["late_s"] == 14 * 3600
    assert "50 h from now" in f.evidence and "14 h after the deadline" in f.evidence


def test_parse_deadline():
    now = 1_000_000.0
    assert parse_deadline("36h", now) == now + 36 * 3600
    assert parse_deadline("90min", now) == now + 5400
    assert parse_deadline("2d", now) == now + 2 * 86400
    assert parse_deadline("45 s", now) == now + 45
    when = parse_deadline('"2026-12-01 18:00"', now)
    import datetime

    assert datetime.datetime.fromtimestamp(when) == datetime.datetime(2026, 12, 1, 18, 0)
    with pytest.raises(ValueError):
        parse_deadline("tomorrowish", now)
    assert format_duration(50 * 3600) == "50 h" and format_duration(36 * 3600) == "36 h"
    assert format_duration(5400) == "1.5 h" and format_duration(150 * 3600) == "6.2 days"


def test_public_names():
    import kerasgpu

    assert kerasgpu.training_findings is F.find
    assert kerasgpu.estimate.__module__ == "kerasgpu.kernel.train.estimate"
    assert kerasgpu.find_batch_size.__module__ == "kerasgpu.kernel.train.batch_size"
    assert callable(kerasgpu.watch_on) and callable(kerasgpu.watch_off)


def test_the_comparison_with_the_last_run_says_its_pace_in_the_titles_words():
    """A slower run reads "1.6x slower ... (1.6x slower)", never a bare "(0.6x)" beside "slower"."""
    from kerasgpu.kernel.train.receipts import compare

    old = {"time": 1_700_000_000, "steps_per_s": 1000.0, "step_time_s": 0.001, "input_share": 0.2}
    slower = compare(old, dict(old, steps_per_s=625.0, step_time_s=0.0016, input_share=0.36))
    assert slower["text"].startswith("1.6x slower than the run of ")
    assert slower["text"].endswith("step 1.0 ms -> 1.6 ms (1.6x slower)")
    assert "0.6x" not in slower["text"]
    faster = compare(old, dict(old, steps_per_s=2700.0, step_time_s=0.00037, input_share=0.04))
    assert faster["text"].startswith("2.7x faster") and faster["text"].endswith("(2.7x)")
    same = compare(old, dict(old, steps_per_s=1020.0))
    assert same["text"].startswith("as fast as") and not same["text"].endswith("x)")
