#!/usr/bin/env bash
# Builds the Jupyter Enterprise Gateway environment of the remote-kernel tests, outside the clone:
# EG 3.3 pins jupyter_server<2, so it cannot share the project's venv. The tests' kernels run the
# project's venv; this one's ipykernel serves the UI test's kernel *without* kerasgpu (a kernel
# environment that lacks the package). Built under a lock; $VENV/.built marks a complete one,
# which is kept (one built before ipykernel was listed gets it added).
# Usage: scripts/eg_venv.sh [VENV] [PYTHON]
set -euo pipefail
VENV=${1:-$HOME/.cache/kerasgpu/eg-venv}
PYTHON=${2:-python3}
REQS=("jupyter_enterprise_gateway==3.3.0" "ipykernel==6.29.5")
PIP=(-m pip --disable-pip-version-check -q)

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [ -e "$VENV/.built" ]; then
  "$VENV/bin/python" -c "import ipykernel" 2>/dev/null || "$VENV/bin/python" "${PIP[@]}" install "${REQS[@]}"
  echo "gateway: environment ready in $VENV"
  exit 0
fi
t0=$SECONDS
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" "${PIP[@]}" install "${REQS[@]}"
"$VENV/bin/jupyter-enterprisegateway" --version >/dev/null
touch "$VENV/.built"
echo "gateway: environment built in $((SECONDS - t0)) s in $VENV"
