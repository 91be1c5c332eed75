"""c.KerasGPU.* settings: bad values are refused with a message that says what is allowed."""

from __future__ import annotations

import pytest
from kerasgpu.server.config import KerasGPU
from traitlets import TraitError
from traitlets.config import Config


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("interval_ms", 10, "at least 100 ms"),
        ("history_seconds", 5, "between 10 and 86400"),
        ("backend", "cuda", "one of auto, nvml, smi, none"),
    ],
)
def test_absurd_settings_are_refused_clearly(name, value, words):
    with pytest.raises(TraitError, match=words):
        KerasGPU(config=Config({"KerasGPU": {name: value}}))


def test_the_environment_picks_the_backend_unless_configured(monkeypatch):
    monkeypatch.setenv("KERASGPU_BACKEND", "smi")
    assert KerasGPU().resolved_backend() == "smi"
    assert KerasGPU(config=Config({"KerasGPU": {"backend": "nvml"}})).resolved_backend() == "nvml"
    monkeypatch.setenv("KERASGPU_BACKEND", "bogus")
    with pytest.raises(ValueError, match="is not a GPU telemetry backend; use one of auto, nvml, smi, none"):
        KerasGPU().resolved_backend()
