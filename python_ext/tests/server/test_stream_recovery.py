"""A browser tab keeps one websocket open through anything nvidia-smi prints: each failure becomes a
status with its reason, and readings come back on the same socket when nvidia-smi is well again.

Real Jupyter server with the extension, the H200 replay on PATH, one websocket per test that is never
reconnected."""

from __future__ import annotations

import json

import pytest
from streamutil import next_message


def strict_json(raw: str):
    """What a browser's JSON.parse accepts: no NaN, Infinity or -Infinity."""

    def refuse(name):
        raise AssertionError(f"{name} in JSON sent to the browser: {raw[:200]}")

    return json.loads(raw, parse_constant=refuse)


async def read(ws, kind: str, where=None, timeout: float = 30.0) -> dict:
    message = await next_message(ws, kind, timeout=timeout, where=where)
    strict_json(json.dumps(message))
    return message


def not_ok(message) -> bool:
    return message["status"]["state"] != "ok"


def ok(message) -> bool:
    return message["status"]["state"] == "ok"


@pytest.mark.parametrize(
    ("fail", "words"),
    [
        # One 200 KB field: over Python's csv field limit, in the stream and in the one-shot query.
        ("overlong", "longer than"),
        ("bad_bytes", "is not a number"),
        ("malformed", "expected"),
    ],
)
async def test_unreadable_output_is_a_status_and_readings_resume_on_the_same_socket(
    fake_smi, stream, jp_serverapp, fail, words
):
    fake_smi.set(state="load")
    ws = await stream()
    await read(ws, "samples")
    sampler = jp_serverapp.web_app.settings["kerasgpu_state"].sampler

    fake_smi.set(fail=fail)
    bad = await read(ws, "status", where=not_ok)
    assert bad["status"]["code"] == "malformed_output"
    assert bad["status"]["state"] == "error"
    assert "could not be read" in bad["status"]["reason"]
    assert len(bad["status"]["reason"]) < 600, "the reason quotes the output, never all of it"
    assert bad["status"]["hint"]
    # The sampler keeps trying (the one-shot query at re-open meets the same output).
    if fail == "overlong":
        assert words in bad["status"]["reason"] or "field larger than field limit" in bad["status"]["reason"]
    assert sampler.running

    fake_smi.set(fail="")
    back = await read(ws, "status", where=ok)
    assert back["devices"][0]["name"] == "NVIDIA H200"
    [sample] = (await read(ws, "samples"))["samples"]
    assert sample["utilization_gpu"] == 100


async def test_an_exception_in_the_parser_or_backend_is_reported_and_outlived(
    fake_smi, stream, jp_serverapp, monkeypatch
):
    """A bug (any exception, not only the ones the parser expects) in the stream reader thread and in
    the sampler's re-open: both threads live on and readings come back by themselves."""
    from kerasgpu.telemetry import smi

    fake_smi.set(state="load")
    ws = await stream()
    await read(ws, "samples")
    real = smi.row_to_sample

    def broken(row, timestamp):
        raise ZeroDivisionError("injected failure")

    monkeypatch.setattr(smi, "row_to_sample", broken)
    bad = await read(ws, "status", where=not_ok)
    assert bad["status"]["code"] == "backend_error"
    assert "ZeroDivisionError: injected failure" in bad["status"]["reason"]

    monkeypatch.setattr(smi, "row_to_sample", real)
    await read(ws, "status", where=ok)
    [sample] = (await read(ws, "samples"))["samples"]
    assert sample["utilization_gpu"] == 100
    assert jp_serverapp.web_app.settings["kerasgpu_state"].sampler.running


async def test_non_finite_readings_are_null_in_the_stream_and_the_api(fake_smi, stream, jp_fetch):
    fake_smi.set(state="load")
    ws = await stream()
    await read(ws, "samples")

    fake_smi.set(fail="nonfinite")  # nan, 1e309, -inf, inf from nvidia-smi
    message = await read(ws, "samples", where=lambda m: m["samples"][0]["utilization_gpu"] is None)
    [sample] = message["samples"]
    assert sample["memory_used_mib"] is None
    assert sample["temperature_c"] is None
    assert sample["power_draw_w"] is None
    assert sample["memory_total_mib"] == 143771, "the finite readings stay"

    for path in ("devices", "history"):
        body = (await jp_fetch("kerasgpu", "api", "v1", path)).body.decode()
        data = strict_json(body)
        assert data["status"]["state"] == "ok"
    assert strict_json(body)["samples"][-1]["utilization_gpu"] is None

    metrics = (await jp_fetch("kerasgpu", "metrics")).body.decode()
    assert "NaN" not in metrics and "Inf" not in metrics
    assert "kerasgpu_utilization_gpu_percent{" not in metrics, "a reading nvidia-smi can't give is absent"

    fake_smi.set(fail="")
    await read(ws, "samples", where=lambda m: m["samples"][0]["utilization_gpu"] == 100)
