"""The server extension's settings: `c.KerasGPU.*` in jupyter_server_config.py.

`KERASGPU_BACKEND` overrides the backend when no explicit value is configured;
`KERASGPU_TF_PROBE_TIMEOUT` / `KERASGPU_TF_PROBE_TTL` stand in for the probe's two settings.
"""

from __future__ import annotations

import logging
import os

from traitlets import Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from ..telemetry import BACKENDS, resolve_backend
from ..telemetry.sampler import MIN_INTERVAL_MS

log = logging.getLogger(__name__)

# The seconds of history the server may keep (c.KerasGPU.history_seconds); the one source of
# these bounds on the Python side.
HISTORY_SECONDS_MIN = 10
HISTORY_SECONDS_MAX = 24 * 3600


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

    prometheus_url = Unicode(
        "",
        help="Base URL of a Prometheus (e.g. http://prometheus:9090) whose HTTP API the GPU Fleet view "
        "queries; empty turns the fleet view off. Only this URL is ever contacted.",
    ).tag(config=True)

    fleet_interval = Float(
        15.0, help="Seconds between fleet queries to Prometheus (one per interval for all clients)."
    ).tag(config=True)

    prometheus_timeout = Float(
        5.0, help="Seconds a Prometheus query may take before it counts as unreachable."
    ).tag(config=True)

    prometheus_username = Unicode(
        "", help="User for HTTP basic auth to Prometheus (kept on the server)."
    ).tag(config=True)

    prometheus_password = Unicode(
        "", help="Password for HTTP basic auth to Prometheus (kept on the server)."
    ).tag(config=True)

    prometheus_token = Unicode("", help="Bearer token sent to Prometheus (kept on the server).").tag(
        config=True
    )

    prometheus_ca_certs = Unicode(
        "", help="CA bundle (PEM file) to verify an https Prometheus; empty uses the system's."
    ).tag(config=True)

    @validate("prometheus_url")
    def _check_prometheus_url(self, proposal):
        from urllib.parse import urlsplit

        value = proposal["value"].strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
                raise TraitError(
                    "KerasGPU.prometheus_url must be an http(s) URL without query, e.g. "
                    f"http://prometheus:9090; got {value[:80]!r}"
                )
        return value

    @validate("fleet_interval")
    def _check_fleet_interval(self, proposal):
        value = proposal["value"]
        if not 1.0 <= value <= 3600.0:
            raise TraitError(f"KerasGPU.fleet_interval must be between 1 and 3600 seconds; got {value}")
        return value

    @validate("prometheus_timeout")
    def _check_prometheus_timeout(self, proposal):
        value = proposal["value"]
        if not 0.1 <= value <= 120.0:
            raise TraitError(f"KerasGPU.prometheus_timeout must be between 0.1 and 120 seconds; got {value}")
        return value

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
        if not HISTORY_SECONDS_MIN <= value <= HISTORY_SECONDS_MAX:
            raise TraitError(
                f"KerasGPU.history_seconds must be between {HISTORY_SECONDS_MIN} and "
                f"{HISTORY_SECONDS_MAX}; got {value}"
            )
        return value

    def resolved_backend(self) -> str:
        """The backend to use: the configured one, else $KERASGPU_BACKEND, else auto (ValueError if bad)."""
        return resolve_backend(self.backend or None)


def resolved_seconds(config: KerasGPU, name: str, default: float) -> float:
    """A setting from `c.KerasGPU.<name>` when it is set, else $KERASGPU_<NAME>, else the default."""
    value = getattr(config, name, None)
    if value is None:
        value = os.environ.get(f"KERASGPU_{name.upper()}") or default
    try:
        return float(value)
    except ValueError:
        log.warning(
            "kerasgpu: KERASGPU_%s=%r is not a number of seconds; using %g", name.upper(), value, default
        )
        return float(default)
