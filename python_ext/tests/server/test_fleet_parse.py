"""The fleet's pure parts: Prometheus answers of each exporter's shape turned into hosts, and the
settings a user gets wrong (a URL with a query, an interval of 0)."""

from __future__ import annotations

import json

import pytest
from kerasgpu.core import fleet
from kerasgpu.server.config import KerasGPU
from traitlets import TraitError


def answer(*series):
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in series]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


def test_one_gpu_seen_by_two_exporters_on_one_host_is_one_gpu():
    hosts = fleet.parse_response(
        answer(
            ({"__name__": "DCGM_FI_DEV_FB_USED", "UUID": "GPU-ab", "gpu": "0", "Hostname": "n1"}, "100"),
            ({"__name__": "DCGM_FI_DEV_FB_FREE", "UUID": "GPU-ab", "gpu": "0", "Hostname": "n1"}, "900"),
            ({"__name__": "nvidia_smi_utilization_gpu_ratio", "uuid": "ab", "host": "n1"}, "0.5"),
        )
    )
    [host] = hosts
    [gpu] = host["gpus"]
    assert (gpu["uuid"], gpu["mem_total_mib"], gpu["mem_free_mib"], gpu["util"]) == ("GPU-ab", 1000, 900, 50)
    assert host["source"] == "dcgm,nvidia_smi"


def test_values_prometheus_cannot_give_are_unknown_not_zero():
    [host] = fleet.parse_response(
        answer(({"__name__": "kerasgpu_utilization_gpu_percent", "uuid": "GPU-1", "instance": "a:1"}, "NaN"))
    )
    gpu = host["gpus"][0]
    assert gpu["util"] is None and gpu["mem_free_mib"] is None and gpu["free"] is False


def test_a_host_whose_gpus_cannot_be_read_says_so():
    [host] = fleet.parse_response(answer(({"__name__": "kerasgpu_up", "instance": "a:1"}, "0")))
    assert host["gpus"] == [] and "cannot read its GPUs" in host["reason"]


@pytest.mark.parametrize(
    "body, said",
    [
        (b"<html>proxy error</html>", "not JSON"),
        (
            json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}),
            "bad_data parse error",
        ),
        (json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}), "no vector"),
    ],
)
def test_answers_that_are_not_a_vector_say_what_prometheus_said(body, said):
    with pytest.raises(fleet.FleetError, match=said):
        fleet.parse_response(body)


@pytest.mark.parametrize(
    "name, value",
    [
        ("prometheus_url", "prometheus:9090"),
        ("prometheus_url", "http://p:9090/?x=1"),
        ("prometheus_url", "file:///etc/passwd"),
        ("fleet_interval", 0.0),
        ("prometheus_timeout", 0.0),
    ],
)
def test_bad_fleet_settings_are_refused_with_the_rule(name, value):
    with pytest.raises(TraitError, match=f"KerasGPU.{name} must"):
        KerasGPU(**{name: value})
