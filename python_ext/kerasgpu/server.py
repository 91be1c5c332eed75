"""The Jupyter server extension: configuration and start-up.

`c.KerasGPU.*` traitlets configure it; `KERASGPU_BACKEND` overrides the
backend when no explicit value is configured.
"""

from __future__ import annotations

import atexit

from traitlets import Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from .routes import setup_handlers
from .telemetry import BACKENDS, resolve_backend
from .telemetry.sampler import MIN_INTERVAL_MS


class KerasGPU(Configurable):
    """Settings of the kerasgpu server extension (`c.KerasGPU.<name>` in jupyter_server_config.py)."""

    backend = Unicode(
        "",
        help="Telemetry backend: auto (NVML, then nvidia-smi), nvml, smi or none. "
        "Empty means the KERASGPU_BACKEND environment variable, else auto.",
    ).tag(config=True)

    interval_ms = Int(1000, help=f"Sampling interval in milliseconds (at least {MIN_INTERVAL_MS}).").tag(
        config=True
    )

    history_seconds = Int(600, help="How many seconds of samples the server keeps for history charts.").tag(
        config=True
    )

    smi_timeout = Float(10.0, help="Seconds before an nvidia-smi call counts as hung.").tag(config=True)

    tf_probe_timeout = Float(
        None,
        allow_none=True,
        help="Seconds the TensorFlow probe of a kernel's Python may take (default 60, or "
        "$KERASGPU_TF_PROBE_TIMEOUT): a cold TensorFlow import with CUDA can take tens of seconds.",
    ).tag(config=True)

    tf_probe_ttl = Float(
        None,
        allow_none=True,
        help="Seconds a TensorFlow probe answer is reused (default 300, or $KERASGPU_TF_PROBE_TTL).",
    ).tag(config=True)

    @validate("backend")
    def _check_backend(self, proposal):
        value = proposal["value"]
        if value and value not in BACKENDS:
            raise TraitError(f"KerasGPU.backend must be one of {', '.join(BACKENDS)}; got {value!r}")
        return value

    @validate("interval_ms")
    def _check_interval(self, proposal):
        value = proposal["value"]
        if value < MIN_INTERVAL_MS:
            raise TraitError(f"KerasGPU.interval_ms must be at least {MIN_INTERVAL_MS} ms; got {value}")
        return value

    @validate("history_seconds")
    def _check_history(self, proposal):
        value = proposal["value"]
        if not 10 <= value <= 24 * 3600:
            raise TraitError(f"KerasGPU.history_seconds must be between 10 and 86400; got {value}")
        return value

    def resolved_backend(self) -> str:
        """The backend to use: the configured one, else $KERASGPU_BACKEND, else auto (ValueError if bad)."""
        return resolve_backend(self.backend or None)


def load(server_app) -> None:
    """Creates the extension's state and registers its handlers."""
    config = KerasGPU(parent=server_app)
    state = setup_handlers(server_app.web_app, config)
    # Function-style server extensions get no stop hook: when the server exits, end the
    # sampler thread and its nvidia-smi process instead of leaving them to the OS.
    atexit.register(state.sampler.stop, 1.0)
    server_app.log.info("kerasgpu: server extension loaded (backend %s)", config.resolved_backend())
