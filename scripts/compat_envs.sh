#!/usr/bin/env bash
# Builds the environments of the compatibility tier (make test-compat) outside the clone, from a
# wheel folder, so a second run (or a fresh clone on the same machine) downloads nothing:
#   $ENVS/lab40   JupyterLab 4.0 (the oldest supported) + ipykernel
#   $ENVS/nb7     Jupyter Notebook 7 + ipykernel
#   $ENVS/py3XX   Python 3.10, 3.12, 3.13 with the package's runtime dependencies (install + import)
# The package itself is installed from a fresh wheel on every run (--no-deps): see the Makefile.
# Builds under a lock and marks the result complete with $ENVS/.built.
# Usage: scripts/compat_envs.sh ENVS WHEELS
set -euo pipefail
ENVS=${1:?env folder}
WHEELS=${2:?wheel folder}
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
RUNTIME=("jupyter_server>=2.4,<3" "nvidia-ml-py>=12.535" "psutil>=5.9" "prometheus-client>=0.17")
PIP=(-m pip --disable-pip-version-check -q)

python_for() {  # python_for 3.12 -> an interpreter of that version (pyenv's, else python3.12)
  local v=$1 found
  found=$(ls -d "$PYENV_ROOT"/versions/"$v".* 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$found" ] && [ -x "$found/bin/python" ]; then echo "$found/bin/python"; return; fi
  command -v "python$v" || { echo "compat tier: no Python $v (pyenv install $v)" >&2; exit 1; }
}

make_env() {  # make_env NAME PYTHON-VERSION REQUIREMENT...
  local name=$1 version=$2; shift 2
  local py; py=$(python_for "$version")
  if ! "$py" "${PIP[@]}" download --no-index --find-links "$WHEELS" -d "$WHEELS" "$@" >/dev/null 2>&1; then
    echo "compat tier: downloading wheels for $name (Python $version)"
    "$py" "${PIP[@]}" download -d "$WHEELS" "$@"
  fi
  rm -rf "$ENVS/$name"
  "$py" -m venv "$ENVS/$name"
  "$ENVS/$name/bin/python" "${PIP[@]}" install --no-index --find-links "$WHEELS" "$@"
}

mkdir -p "$WHEELS" "$(dirname "$ENVS")"
exec 9>"$ENVS.lock"
flock 9
if [ -e "$ENVS/.built" ]; then
  echo "compat tier: environments ready in $ENVS"
  exit 0
fi
t0=$SECONDS
rm -rf "$ENVS"
mkdir -p "$ENVS"
make_env lab40 3.11 "jupyterlab==4.0.13" "ipykernel==6.29.5" "${RUNTIME[@]}"
make_env nb7 3.11 "notebook==7.6.5" "ipykernel==7.4.0" "${RUNTIME[@]}"
for v in 3.10 3.12 3.13; do
  make_env "py${v/./}" "$v" "jupyterlab>=4.0.0,<5" "${RUNTIME[@]}"
done
touch "$ENVS/.built"
echo "compat tier: environments built in $((SECONDS - t0)) s ($(du -sh "$ENVS" | cut -f1) in $ENVS; wheels $(du -sh "$WHEELS" | cut -f1))"
