"""Jupyter server configuration for the Galata UI tests (never for real use: it removes auth)."""

import os

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821
c.KerasGPU.interval_ms = 500  # noqa: F821
# The GPU Fleet test (tests/fleet.spec.ts) starts a real Prometheus on this port itself.
c.KerasGPU.prometheus_url = f"http://127.0.0.1:{os.environ.get('KERASGPU_UI_PROMETHEUS_PORT', '19091')}"  # noqa: F821
c.KerasGPU.fleet_interval = 1  # noqa: F821
