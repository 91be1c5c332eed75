#!/usr/bin/env bash
# GPU checks for a machine with a real NVIDIA GPU (no Jupyter or TensorFlow needed):
# every `gpu`-marked test, the whole telemetry suite, the CLI on NVML and on the real
# nvidia-smi, and the sampler benchmark. Usage: bash scripts/device_check.sh [DEPS_DIR]
# DEPS_DIR: an optional folder of pure-Python test dependencies (pytest, pytest-timeout)
# put on PYTHONPATH when the machine has no pytest.
set -u
cd "$(dirname "$0")/.."
PY=$(command -v python3)
DEPS=${1:-}
export PYTHONPATH=$PWD/python_ext
if ! $PY -c "import pytest" 2>/dev/null && [ -n "$DEPS" ]; then export PYTHONPATH=$PYTHONPATH:$DEPS; fi
echo "== machine"; nvidia-smi -L; $PY --version
echo "== gpu-marked tests (telemetry and kernel)"
timeout 240 $PY -m pytest -m gpu python_ext/tests/telemetry python_ext/tests/kernel/test_gpu.py \
  -v -rs -p no:cacheprovider -o asyncio_mode=strict 2>&1 | tail -30
echo "== telemetry suite (replay + real)"
timeout 200 $PY -m pytest python_ext/tests/telemetry -q -rs -p no:cacheprovider 2>&1 | tail -8
echo "== kerasgpu status (auto: NVML)"; timeout 60 $PY -m kerasgpu.cli status; echo "rc=$?"
echo "== kerasgpu status --backend smi (the real nvidia-smi)"; timeout 60 $PY -m kerasgpu.cli status --backend smi; echo "rc=$?"
echo "== kerasgpu status --json (auto)"; timeout 60 $PY -m kerasgpu.cli status --json | head -c 1500; echo
echo "== bench/sampler.py"; timeout 120 $PY bench/sampler.py --samples 30 --interval-ms 100
