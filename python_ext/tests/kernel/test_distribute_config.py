"""TF_CONFIG validation for %%distribute --strategy multiworker (no TensorFlow needed)."""

from __future__ import annotations

import json

import pytest
from kerasgpu import KerasGPUError, validate_tf_config

GOOD = {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 1}}


def test_valid_config_is_returned():
    assert validate_tf_config(json.dumps(GOOD)) == GOOD


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "is not set"),
        ("{'cluster': {}}", "is not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "no 'cluster'"),
        (
            json.dumps({"cluster": {"worker": ["host1"]}, "task": {"type": "worker", "index": 0}}),
            "not 'host:port'",
        ),
        (json.dumps({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}), "no 'worker'"),
        (
            json.dumps({"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}),
            "twice",
        ),
        (json.dumps({"cluster": GOOD["cluster"]}), "no 'task'"),
        (json.dumps({"cluster": GOOD["cluster"], "task": {"type": "chief", "index": 0}}), "not a job"),
        (json.dumps({"cluster": GOOD["cluster"], "task": {"type": "worker", "index": 2}}), "out of range"),
    ],
)
def test_bad_config_is_explained(raw, says):
    with pytest.raises(KerasGPUError) as info:
        validate_tf_config(raw)
    assert says in info.value.problem
    assert info.value.commands and info.value.commands[0].startswith("%env TF_CONFIG=")
