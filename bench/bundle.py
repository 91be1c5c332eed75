"""Size of our built labextension against jupyterlab-nvdashboard's (a benchmark, not a test).

    npm run build:prod            # the production build (then `npm run build` restores the dev one)
    python bench/bundle.py [--nvdashboard-wheel PATH] [--nvdashboard-version 0.15.0]

Ours: python_ext/kerasgpu/labextension/static as built. Theirs: the static files of the
jupyterlab-nvdashboard wheel from PyPI, read straight from the zip (`pip download --no-deps`
into a throwaway directory; nothing installed). Counted: the files a browser can load (.js,
.css, fonts, images); source maps and third-party-licenses.json are left out. Sizes raw and
gzip -9, per file summed. Ratio is ours / theirs.

Target: ours at most a third of nvdashboard's.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "python_ext" / "kerasgpu" / "labextension" / "static"
SKIP_SUFFIXES = (".map", ".LICENSE.txt")
SKIP_NAMES = ("third-party-licenses.json",)


def counted(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.endswith(SKIP_SUFFIXES) and base not in SKIP_NAMES


def measure(files: dict[str, bytes]) -> dict:
    kept = {n: b for n, b in files.items() if counted(n)}
    return {
        "files": len(kept),
        "raw": sum(len(b) for b in kept.values()),
        "gzip": sum(len(gzip.compress(b, 9)) for b in kept.values()),
        "largest": max(kept, key=lambda n: len(kept[n])) if kept else None,
        "largest_raw": max((len(b) for b in kept.values()), default=0),
        "skipped": len(files) - len(kept),
    }


def ours() -> tuple[dict, bool]:
    if not OURS.is_dir():
        sys.exit(f"{OURS} is missing: run `npm run build:prod` first")
    files = {p.name: p.read_bytes() for p in OURS.iterdir() if p.is_file()}
    production = not any(n.endswith(".map") for n in files)
    return measure(files), production


def theirs(wheel: Path | None, version: str) -> tuple[dict, str]:
    with tempfile.TemporaryDirectory(prefix="nvdashboard-") as tmp:
        if wheel is None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    f"jupyterlab-nvdashboard=={version}",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                    tmp,
                    "-q",
                ],
                check=True,
            )
            wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            files = {
                n: z.read(n)
                for n in z.namelist()
                if "/share/jupyter/labextensions/" in n and "/static/" in n and not n.endswith("/")
            }
        return measure(files), wheel.name


def kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvdashboard-wheel", type=Path, help="a downloaded wheel (else pip download)")
    parser.add_argument("--nvdashboard-version", default="0.15.0")
    args = parser.parse_args()

    mine, production = ours()
    other, wheel_name = theirs(args.nvdashboard_wheel, args.nvdashboard_version)
    if not production:
        print("WARNING: ours looks like a development build (source maps): run `npm run build:prod` first")
    print(f"ours: {OURS.relative_to(ROOT)} ({'production' if production else 'development'} build)")
    print(f"theirs: {wheel_name}, share/jupyter/labextensions/*/static")
    print(f"{'':<24}{'files':>6}{'raw':>14}{'gzip':>14}   largest file")
    for name, r in (("jupyterlab-kerasgpu", mine), ("jupyterlab-nvdashboard", other)):
        print(
            f"{name:<24}{r['files']:>6}{kib(r['raw']):>14}{kib(r['gzip']):>14}"
            f"   {r['largest'].rsplit('/', 1)[-1]} ({kib(r['largest_raw'])})"
        )
    raw, gz = mine["raw"] / other["raw"], mine["gzip"] / other["gzip"]
    print(f"{'ours / theirs':<24}{'':>6}{raw:>13.2f}x{gz:>13.2f}x   (target <= 0.33x)")


if __name__ == "__main__":
    main()
