"""GET /kerasgpu/api/v1/devices against a real Jupyter server, with the fake nvidia-smi replay."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError


async def get_devices(jp_fetch) -> dict:
    response = await jp_fetch("kerasgpu", "api", "v1", "devices")
    assert response.code == 200
    return json.loads(response.body)


async def test_replay_shows_the_h200(fake_smi, jp_fetch):
    fake_smi.set(state="load")
    data = await get_devices(jp_fetch)
    assert data["status"]["state"] == "ok"
    [gpu] = data["devices"]
    assert gpu["name"] == "NVIDIA H200"
    assert gpu["index"] == 0
    assert gpu["uuid"].startswith("GPU-")
    assert gpu["memory_total_mib"] == 143771
    assert gpu["driver_version"] == "580.159.04"
    [sample] = data["samples"]
    # One python3 process holding ~25 GiB at 100 % in the load capture.
    assert sample["utilization_gpu"] == 100
    assert 25 * 1024 < sample["memory_used_mib"] < 26 * 1024


async def test_several_gpus_are_listed_in_index_order(fake_smi, jp_fetch):
    fake_smi.set(gpus=4)
    data = await get_devices(jp_fetch)
    assert [d["index"] for d in data["devices"]] == [0, 1, 2, 3]
    assert len({d["uuid"] for d in data["devices"]}) == 4


async def test_without_nvidia_smi_the_reason_is_given(no_smi, jp_fetch):
    data = await get_devices(jp_fetch)
    assert data["devices"] == []
    assert data["status"]["state"] == "unavailable"
    assert data["status"]["code"] == "smi_not_found"
    assert "nvidia-smi was not found" in data["status"]["reason"]
    assert data["status"]["hint"]


@pytest.mark.parametrize(
    ("fail", "code", "words"),
    [
        ("no_driver", "driver_not_loaded", "driver"),
        ("mismatch", "driver_mismatch", "mismatch"),
        ("no_devices", "no_devices", "found no GPU"),
        ("malformed", "malformed_output", "nvidia-smi"),
    ],
)
async def test_driver_failures_become_a_status_not_a_500(fake_smi, jp_fetch, fail, code, words):
    fake_smi.set(fail=fail)
    data = await get_devices(jp_fetch)
    assert data["status"]["code"] == code
    assert words.lower() in data["status"]["reason"].lower()
    assert data["devices"] == []


async def test_a_request_without_the_token_is_refused(
    fake_smi, jp_fetch, jp_serverapp, jp_base_url, jp_http_port
):
    url = f"http://localhost:{jp_http_port}{jp_base_url}kerasgpu/api/v1/devices"
    with pytest.raises(HTTPClientError) as err:
        await AsyncHTTPClient().fetch(url)
    assert err.value.code == 403
    # And the same request with the token is answered.
    ok = await AsyncHTTPClient().fetch(
        url, headers={"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    )
    assert json.loads(ok.body)["devices"][0]["name"] == "NVIDIA H200"
