"""jupyterlab-kerasgpu: get Keras / TensorFlow notebooks onto NVIDIA GPUs and keep them there.

This module holds only the extension hooks: the labextension path, the
Jupyter server extension, and the IPython kernel extension (`%load_ext kerasgpu`).
"""

from __future__ import annotations

try:
    from ._version import __version__
except ImportError:  # running from a source tree that was never built
    __version__ = "0.0.0.dev0"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyterlab-kerasgpu"}]


def _jupyter_server_extension_points():
    """The server extension is an ExtensionApp: the server stops it (sampler, nvidia-smi) when it stops."""
    from .server.app import KerasGPUApp

    return [{"module": "kerasgpu", "app": KerasGPUApp}]


def load_ipython_extension(ipython):
    """`%load_ext kerasgpu`: registers the magics (safe to call twice)."""
    from .kernel.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):
    from .kernel.magics import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str):
    """Lazy kernel-side API (`from kerasgpu import check`): nothing heavy imports at server start."""
    import importlib

    kernel = importlib.import_module(".kernel", __name__)
    if name in kernel.API or name in kernel.ALIASES:
        return getattr(kernel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
