"""Kernel-extension fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def shell():
    """A real in-process InteractiveShell with the extension loaded (no TensorFlow)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kerasgpu")
    yield ip
    ip.run_line_magic("unload_ext", "kerasgpu")
