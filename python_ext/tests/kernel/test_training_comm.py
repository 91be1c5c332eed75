"""A real ipykernel sends training progress to the frontend over the `kerasgpu` comm."""

from __future__ import annotations

import queue

import pytest
from kgpu_testlib import clean_env

jupyter_client = pytest.importorskip("jupyter_client")

CODE = """
%load_ext kerasgpu
%gpu_watch on --no-card
import numpy as np, keras
x = np.random.rand(256, 8).astype("float32"); y = np.random.rand(256, 1).astype("float32")
m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
m.compile("sgd", "mse")
m.fit(x, y, epochs=3, batch_size=32, verbose=0)
m.fit(x, y, epochs=1, batch_size=32, verbose=0)
"""


def _run(code: str, timeout: float = 240) -> list[dict]:
    """Runs `code` in a fresh kernel; returns every iopub message until the kernel is idle again,
    then the kernel's comm_info_reply for the `kerasgpu` target."""
    km = jupyter_client.KernelManager(kernel_name="python3")  # ipykernel's own spec: this Python
    km.start_kernel(env=clean_env({"KERASGPU_BACKEND": "none"}))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        msg_id = kc.execute(code)
        msgs = []
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise AssertionError("the kernel did not finish in time") from None
            msgs.append(msg)
            mine = msg.get("parent_header", {}).get("msg_id") == msg_id
            if mine and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        # what a page that connects later asks for (src/training-comm.ts)
        info_id = kc.comm_info(target_name="kerasgpu")
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == info_id:
                return [*msgs, reply]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def iopub():
    return _run(CODE)


def test_one_comm_per_kernel_to_the_kerasgpu_target(iopub):
    errors = [m["content"] for m in iopub if m["msg_type"] == "error"]
    assert not errors, errors
    opens = [m["content"] for m in iopub if m["msg_type"] == "comm_open"]
    assert len(opens) == 1, "one comm for two fits"
    assert opens[0]["target_name"] == "kerasgpu"
    assert opens[0]["data"]["type"] == "hello" and opens[0]["data"]["protocol"] == 1


def test_progress_messages_of_each_fit(iopub):
    comm_id = next(m["content"]["comm_id"] for m in iopub if m["msg_type"] == "comm_open")
    data = [m["content"]["data"] for m in iopub if m["msg_type"] == "comm_msg"]
    assert all(m["content"]["comm_id"] == comm_id for m in iopub if m["msg_type"] == "comm_msg")
    assert all(d["type"] == "training" for d in data)
    first = [d for d in data if d["fit_id"] == data[0]["fit_id"]]
    assert first[0]["status"] == "running" and first[-1]["status"] == "done"
    assert first[-1]["progress"] == 1.0 and first[-1]["epochs"] == 3 and first[-1]["steps"] == 8
    assert first[-1]["batch_size"] == 32 and first[-1]["device"] == "cpu"
    # at the end of each epoch too
    assert {d["epoch"] for d in first} >= {1, 2, 3}
    second = [d for d in data if d["fit_id"] != data[0]["fit_id"]]
    assert second and second[-1]["status"] == "done" and second[-1]["epochs"] == 1


def test_a_page_that_connects_later_finds_the_comm(iopub):
    comm_id = next(m["content"]["comm_id"] for m in iopub if m["msg_type"] == "comm_open")
    info = iopub[-1]
    assert info["msg_type"] == "comm_info_reply"
    assert info["content"]["comms"] == {comm_id: {"target_name": "kerasgpu"}}
