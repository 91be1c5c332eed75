"""Packaging check (run by `make test`): `pip wheel .` gives ONE wheel holding the
prebuilt labextension, the server extension and its jupyter-config, and that
wheel, installed on its own, is seen by `jupyter labextension list` and
`jupyter server extension list` as enabled and OK. No Node.js is needed to use it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args: str, env: dict | None = None) -> str:
    env = dict(env or os.environ)
    # The build hook runs `npm run build:prod`, which needs this environment's jupyter-builder.
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(args)}\n{out}")
    return out


def section(output: str, folder: str) -> str:
    """The lines Jupyter printed under the heading that names `folder`."""
    lines, inside = [], False
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("/", "Config dir:")) or stripped.endswith(":"):
            inside = folder in stripped
            continue
        if inside:
            lines.append(stripped)
    return "\n".join(lines)


def under(output: str, folder: str, name: str) -> str:
    """The line about `name` under the heading that names `folder`."""
    return next((ln for ln in section(output, folder).splitlines() if name in ln), "")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kerasgpu-wheel-") as tmp:
        tmp = Path(tmp)
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp),
        )
        wheels = list(tmp.glob("*.whl"))
        assert len(wheels) == 1, f"expected one wheel, got {wheels}"
        names = zipfile.ZipFile(wheels[0]).namelist()
        data = next(n.split("/")[0] for n in names if ".data/" in n)
        ext = f"{data}/data/share/jupyter/labextensions/jupyterlab-kerasgpu"
        must = [
            "kerasgpu/__init__.py",
            "kerasgpu/server.py",
            "kerasgpu/routes.py",
            f"{ext}/package.json",
            f"{ext}/install.json",
            f"{ext}/static/style.js",
            f"{ext}/schemas/jupyterlab-kerasgpu/panel.json",
            f"{data}/data/etc/jupyter/jupyter_server_config.d/kerasgpu.json",
        ]
        missing = [m for m in must if m not in names]
        assert not missing, f"wheel lacks {missing}"
        assert any(n.startswith(f"{ext}/static/remoteEntry.") for n in names), "no remoteEntry in the wheel"
        leaked = [n for n in names if "fake_nvidia_smi" in n or "/tests/" in n or n.endswith(".map")]
        assert not leaked, f"test files or source maps in the wheel: {leaked[:5]}"

        # Unpack that wheel alone into a prefix, as pip would install it, and ask Jupyter what
        # it sees there. (Unpacking, not `pip install --prefix`, which would uninstall the
        # development install from this environment.)
        prefix = tmp / "prefix"
        site = prefix / "site-packages"
        with zipfile.ZipFile(wheels[0]) as whl:
            for name in whl.namelist():
                target = (
                    prefix / name.split("/data/", 1)[1] if name.startswith(f"{data}/data/") else site / name
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(whl.read(name))
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(site),
            JUPYTER_PATH=str(prefix / "share" / "jupyter"),
            JUPYTER_CONFIG_PATH=str(prefix / "etc" / "jupyter"),
            NO_COLOR="1",
        )
        labext = run(str(BIN / "jupyter"), "labextension", "list", env=env)
        assert "enabled" in under(labext, str(prefix), "jupyterlab-kerasgpu"), labext
        assert "OK" in under(labext, str(prefix), "jupyterlab-kerasgpu"), labext
        # The wheel's jupyter-config enables the server extension...
        config = json.loads((prefix / "etc/jupyter/jupyter_server_config.d/kerasgpu.json").read_text())
        assert config["ServerApp"]["jpserver_extensions"]["kerasgpu"] is True, config
        # ...and `jupyter server extension list` (which reads only the user, sys-prefix and
        # system folders) sees it enabled and OK in this environment, installed the same way.
        plain = {**os.environ, "NO_COLOR": "1"}
        serverext = run(str(BIN / "jupyter"), "server", "extension", "list", env=plain)
        listed = section(serverext, sys.prefix)
        assert re.search(r"kerasgpu\s+\S*enabled", listed), serverext
        assert re.search(r"kerasgpu \S+ \S*OK", listed), serverext
        # The copy Jupyter loaded is the wheel's, not the source tree's.
        where = run(sys.executable, "-c", "import kerasgpu; print(kerasgpu.__file__)", env=env)
        assert where.strip().startswith(str(prefix)), where
    print(f"package OK: one wheel ({wheels[0].name}) with the prebuilt labextension and the server extension")


if __name__ == "__main__":
    main()
