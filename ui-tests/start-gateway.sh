#!/usr/bin/env bash
# Starts the remote-kernel set-up that tests/gateway/*.spec.ts drive (gateway.config.js), on loopback:
#  - Jupyter Enterprise Gateway 3.3 from its own venv (scripts/eg_venv.sh; it pins jupyter_server<2)
#    with two kernels: "gpu" (the default) runs the project's venv with the fake nvidia-smi (real
#    H200 captures) first on PATH; "bare" runs the gateway venv's Python, which lacks kerasgpu
#    (as does the "python3" that venv's ipykernel brings);
#  - a JupyterLab with the extension and NO nvidia-smi on its PATH, whose kernels are the gateway's
#    (--gateway-url), relayed by kerasgpu.gateway_ws (see there why).
# In $KERASGPU_UI_GATEWAY_DIR (made afresh, removed at the end): kernel-state.json (what the
# kernels' fake answers), and server-bin/ first on the lab's PATH, empty: a test links the fake
# there, with server-state.json, to give the server GPUs of its own. Both services stop with this
# script (Playwright sends SIGTERM to its process group); the gateway stops its kernels.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv_bin="$root/.venv/bin"
eg_venv="${KERASGPU_EG_VENV:-$HOME/.cache/kerasgpu/eg-venv}"
eg_port="${KERASGPU_UI_EG_PORT:-18889}"
lab_port="${KERASGPU_UI_GATEWAY_LAB_PORT:-18890}"
work="${KERASGPU_UI_GATEWAY_DIR:?set by gateway.config.js}"
fake_dir="$root/python_ext/tests/fake_nvidia_smi"

bash "$root/scripts/eg_venv.sh" "$eg_venv" "${PYTHON:-python3}"

rm -rf "$work"
mkdir -p "$work/root" "$work/server-bin"
eg_pid=""
lab_pid=""
stop() {
  trap - EXIT INT TERM
  [ -n "$lab_pid" ] && kill -TERM "$lab_pid" 2>/dev/null || true
  [ -n "$lab_pid" ] && wait "$lab_pid" 2>/dev/null || true
  [ -n "$eg_pid" ] && kill -TERM "$eg_pid" 2>/dev/null || true
  [ -n "$eg_pid" ] && wait "$eg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT INT TERM

spec() { # name, display name, python
  mkdir -p "$work/eg-data/kernels/$1"
  cat >"$work/eg-data/kernels/$1/kernel.json" <<EOF
{
  "argv": ["$3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
  "display_name": "$2",
  "language": "python",
  "metadata": {"process_proxy": {"class_name":
    "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy"}}
}
EOF
}
spec gpu "Python 3 (gateway)" "$venv_bin/python"
spec bare "Python 3 (gateway, without kerasgpu)" "$eg_venv/bin/python"
echo '{"state": "load", "gpus": 1}' >"$work/kernel-state.json"
echo '{"state": "idle", "gpus": 1}' >"$work/server-state.json"
eg_log="${KERASGPU_UI_GATEWAY_LOG:-$work/gateway.log}"

# PATH for the lab: server-bin/, the project's venv and the system's, without any nvidia-smi.
lab_path="$work/server-bin:$venv_bin"
IFS=: read -ra parts <<<"$PATH"
for dir in "${parts[@]}"; do
  if [ -n "$dir" ] && [ ! -x "$dir/nvidia-smi" ] && [ "$dir" != "$venv_bin" ]; then
    lab_path="$lab_path:$dir"
  fi
done

# Kernels inherit only the variables EG_INHERITED_ENVS names; root may start kernels only when
# EG_UNAUTHORIZED_USERS leaves it out. list_kernels lets the server's gateway client list them.
(
  cd "$work"
  exec env -u PYTHONPATH \
    PATH="$fake_dir:$venv_bin:$lab_path" \
    FAKE_NVIDIA_SMI_STATE_FILE="$work/kernel-state.json" \
    KERASGPU_BACKEND=smi \
    EG_INHERITED_ENVS="PATH,FAKE_NVIDIA_SMI_STATE_FILE,KERASGPU_BACKEND" \
    EG_UNAUTHORIZED_USERS=nobody \
    JUPYTER_RUNTIME_DIR="$work/eg-runtime" \
    JUPYTER_DATA_DIR="$work/eg-data" \
    JUPYTER_CONFIG_DIR="$work/eg-config" \
    JUPYTER_PLATFORM_DIRS=1 \
    "$eg_venv/bin/jupyter-enterprisegateway" \
    --ip=127.0.0.1 --port="$eg_port" --port_retries=0 \
    --EnterpriseGatewayApp.list_kernels=True \
    --EnterpriseGatewayApp.default_kernel_name=gpu \
    >"$eg_log" 2>&1
) &
eg_pid=$!

for _ in $(seq 240); do
  if curl -fsS "http://127.0.0.1:$eg_port/api/kernelspecs" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$eg_pid" 2>/dev/null; then
    echo "Enterprise Gateway exited:" >&2
    tail -50 "$eg_log" >&2
    exit 1
  fi
  sleep 0.5
done

env -u PYTHONPATH PATH="$lab_path" KERASGPU_BACKEND=smi \
  FAKE_NVIDIA_SMI_STATE_FILE="$work/server-state.json" \
  JUPYTERLAB_GALATA_ROOT_DIR="$work/root" \
  "$venv_bin/jupyter" lab --config "$here/jupyter_server_test_config.py" \
  --ServerApp.port="$lab_port" --ServerApp.port_retries=0 \
  --gateway-url="http://127.0.0.1:$eg_port" \
  --GatewayClient.request_timeout=120 \
  --MappingKernelManager.default_kernel_name=gpu \
  --ServerApp.kernel_websocket_connection_class=kerasgpu.gateway_ws.GatewayWebSocketConnection &
lab_pid=$!
wait "$lab_pid"
