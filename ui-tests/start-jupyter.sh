#!/usr/bin/env bash
# Starts the JupyterLab that the UI tests drive: the fake nvidia-smi (replaying
# real H200 captures) is linked into .fake-bin, which is first on PATH; tests
# switch its state with .fake-bin/state and remove the link to test "not found".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/.fake-bin"
ln -sf "$here/../python_ext/tests/fake_nvidia_smi/nvidia-smi" "$here/.fake-bin/nvidia-smi"
echo '{"state": "load"}' > "$here/.fake-bin/state"
export FAKE_NVIDIA_SMI_STATE_FILE="$here/.fake-bin/state"
export KERASGPU_BACKEND=smi
exec jupyter lab --config "$here/jupyter_server_test_config.py"
