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
            "kerasgpu/server/app.py",
            "kerasgpu/server/base.py",
            # The server's TensorFlow probe runs this file's text in a kernel's Python.
            "kerasgpu/kernel/probe.py",
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
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE in the wheel"
        meta = zipfile.ZipFile(wheels[0]).read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        meta = meta.decode()
        # Never installable next to JupyterLab 3 (where it breaks the notebook toolbars).
        assert re.search(r"^Requires-Dist: jupyterlab<5,>=4\.0\.0$", meta, re.M), meta[:2000]
        assert "Requires-Python: >=3.10" in meta and "License-Expression: BSD-3-Clause" in meta
        # The labextension declares the JupyterLab 4 range it supports, not the version it was built with.
        built = json.loads(zipfile.ZipFile(wheels[0]).read(f"{ext}/package.json"))
        assert built["dependencies"]["@jupyterlab/application"] == "^4.0.0", built["dependencies"]

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
    check_sdist()
    print(f"package OK: one wheel ({wheels[0].name}) with the prebuilt labextension and the server extension")


def no_node_env() -> dict:
    """This environment with only the venv's bin and the system's basic tools on PATH: no node, no npm."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), "/usr/bin", "/bin"])
    hidden = [d for d in env["PATH"].split(os.pathsep) if (Path(d) / "npm").exists()]
    if hidden:  # Debian's npm lives in /usr/bin: hide it with a PATH of links to what the build needs
        tools = Path(tempfile.mkdtemp(prefix="kerasgpu-nonode-"))
        for tool in ("sh", "bash", "git", "tar", "gzip", "uname", "env"):
            real = next((Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists()), None)
            if real:
                (tools / tool).symlink_to(real)
        env["PATH"] = os.pathsep.join([str(BIN), str(tools)])
    return env


def check_sdist() -> None:
    """The sdist carries the prebuilt labextension and the LICENSE, and builds a wheel without Node.js;
    a source tree without the built extension and without Node.js stops with a clear message."""
    with tempfile.TemporaryDirectory(prefix="kerasgpu-sdist-") as tmp:
        tmp = Path(tmp)
        run(sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(tmp / "dist"))
        sdists = list((tmp / "dist").glob("*.tar.gz"))
        assert len(sdists) == 1, sdists
        import tarfile

        with tarfile.open(sdists[0]) as tar:
            names = tar.getnames()
            tar.extractall(tmp / "src", filter="data")
        top = names[0].split("/")[0]
        assert f"{top}/LICENSE" in names, "no LICENSE in the sdist"
        assert f"{top}/python_ext/kerasgpu/labextension/static/style.js" in names, (
            "sdist lacks the built extension"
        )
        src = tmp / "src" / top
        env = no_node_env()
        wheel = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q"]
        out = run(*wheel, "-w", str(tmp / "wheel"), env=env)
        assert list((tmp / "wheel").glob("*.whl")), out
        # The same tree without the built extension: a source build, which needs Node.js.
        import shutil

        shutil.rmtree(src / "python_ext" / "kerasgpu" / "labextension")
        (src / "PKG-INFO").unlink()
        proc = subprocess.run([*wheel, "-w", str(tmp / "wheel2")], env=env, capture_output=True, text=True)
        assert proc.returncode != 0
        assert "needs Node.js 20+ and npm on PATH" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


if __name__ == "__main__":
    main()
