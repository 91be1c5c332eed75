#!/usr/bin/env bash
# Builds the two environments of the CUDA-build test tier (make test-cuda) from a wheel folder
# outside the clone, so a second run, or a fresh clone on the same machine, downloads nothing:
#   $VENVS/tf        the real `tensorflow` CUDA build, without the nvidia-*-cu12 runtime wheels
#   $VENVS/and-cuda  the same plus every wheel of `tensorflow[and-cuda]` (a hard-linked copy of tf/)
# Both get IPython, so the tests can run magics there; kerasgpu comes from the clone (PYTHONPATH),
# so clones share them: $VENVS is keyed (by the Makefile) on this script and the Python it uses.
# Builds under a lock and marks the result complete with $VENVS/.built; a complete one is kept.
# Usage: scripts/cuda_venvs.sh VENVS WHEELS PYTHON
set -euo pipefail
VENVS=${1:?venv folder}
WHEELS=${2:?wheel folder}
PYTHON=${3:-python3}
REQS=("tensorflow[and-cuda]==2.21.0" "ipython==9.18.1")
PIP=(-m pip --disable-pip-version-check -q)

mkdir -p "$WHEELS" "$(dirname "$VENVS")"
exec 9>"$VENVS.lock"
flock 9
if [ -e "$VENVS/.built" ]; then
  echo "cuda tier: environments ready in $VENVS"
  exit 0
fi
t0=$SECONDS
# Offline first: only what the folder lacks is downloaded (pip's own HTTP cache stays empty here).
if ! "$PYTHON" "${PIP[@]}" download --no-index --find-links "$WHEELS" -d "$WHEELS" "${REQS[@]}" 2>/dev/null; then
  echo "cuda tier: downloading the tensorflow[and-cuda] wheels (~3.3 GB) into $WHEELS"
  "$PYTHON" "${PIP[@]}" download -d "$WHEELS" "${REQS[@]}"
fi
echo "cuda tier: wheels ready in $((SECONDS - t0)) s ($(du -sh "$WHEELS" | cut -f1) in $WHEELS)"

rm -rf "$VENVS"
mkdir -p "$VENVS"
OFFLINE=(install --no-index --find-links "$WHEELS")
"$PYTHON" -m venv "$VENVS/tf"
"$VENVS/tf/bin/python" "${PIP[@]}" "${OFFLINE[@]}" "tensorflow==2.21.0" "ipython==9.18.1"
# and-cuda shares tf/'s files (hard links: seconds, no second copy on disk); pip replaces files, it
# never writes into one, so installing the runtime wheels there leaves tf/ as it was.
cp -al "$VENVS/tf" "$VENVS/and-cuda"
"$VENVS/and-cuda/bin/python" "${PIP[@]}" "${OFFLINE[@]}" "tensorflow[and-cuda]==2.21.0"
"$VENVS/tf/bin/python" -c "import importlib.metadata as m; assert not [d for d in m.distributions() if (d.metadata['Name'] or '').startswith('nvidia-')]"
touch "$VENVS/.built"
echo "cuda tier: environments built in $((SECONDS - t0)) s ($(du -sh "$VENVS" | cut -f1) in $VENVS)"
