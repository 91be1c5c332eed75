"""Build hook that runs before jupyter-builder's.

- Building the wheel from an sdist that carries the prebuilt labextension needs no Node.js:
  the npm build is skipped (offline builds, conda-forge, `pip install --no-binary`).
- Building from a source tree without Node.js stops with a message that says what to do,
  instead of jupyter-builder's bare "Could not find cmd (npm)".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PREBUILT = (
    "python_ext/kerasgpu/labextension/package.json",
    "python_ext/kerasgpu/labextension/static/style.js",
)


class KerasGPUBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        from_sdist = (root / "PKG-INFO").exists()
        prebuilt = all((root / p).exists() for p in PREBUILT)
        if self.target_name == "wheel" and from_sdist and prebuilt:
            self.app.display_info(
                "jupyterlab-kerasgpu: the sdist's prebuilt labextension is used; no npm build"
            )
            os.environ["SKIP_JUPYTER_BUILDER"] = "1"
            return
        skipping = os.environ.get("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1" or os.environ.get(
            "SKIP_JUPYTER_BUILDER"
        )
        if self.target_name in ("wheel", "sdist") and not skipping and shutil.which("npm") is None:
            raise RuntimeError(
                "Building jupyterlab-kerasgpu from source builds its JupyterLab extension, which needs "
                "Node.js 20+ and npm on PATH (none was found). Install Node.js (e.g. apt-get install nodejs "
                "npm), or install the prebuilt package instead: pip install jupyterlab-kerasgpu (a wheel, "
                "or an sdist that carries the built extension, needs no Node.js)."
            )
