"""Jupyter server configuration for the Galata UI tests (never for real use: it removes auth)."""

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821
c.KerasGPU.interval_ms = 500  # noqa: F821
