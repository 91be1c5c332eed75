"""Run by `make test-compat` with each compatibility environment's Python: the installed wheel
imports, and Jupyter there sees the server extension and the labextension enabled and OK
(no "not compatible" on the oldest supported JupyterLab)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def jupyter(*args: str) -> str:
    env = {**os.environ, "NO_COLOR": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(BIN / "jupyter"), *args], capture_output=True, text=True, env=env, check=False)
    return proc.stdout + proc.stderr


def main() -> None:
    import kerasgpu
    from kerasgpu.core.planner import plans
    from kerasgpu.kernel import magics  # noqa: F401  (the kernel extension imports too)

    assert Path(kerasgpu.__file__).is_relative_to(Path(sys.prefix)), kerasgpu.__file__
    plan = plans.plan("verify", [], None, {})
    assert plan["ok"] and plan["edits"][0]["source"] == "%load_ext kerasgpu\n%gpu_check", plan
    server = jupyter("server", "extension", "list")
    assert "kerasgpu" in server and "OK" in server.split("kerasgpu", 1)[1][:200], server
    labext = jupyter("labextension", "list")
    line = next((ln for ln in labext.splitlines() if "jupyterlab-kerasgpu" in ln), "")
    assert "enabled" in line and "OK" in line, labext
    assert "not compatible" not in labext.lower() and "Conflicting Dependencies" not in labext, labext
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"Python {version}: kerasgpu {kerasgpu.__version__} imports; Jupyter sees both extensions OK")


if __name__ == "__main__":
    main()
