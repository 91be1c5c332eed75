#!/usr/bin/env bash
# GPU checks for a machine with a real NVIDIA GPU (no Jupyter or TensorFlow needed):
# every `gpu`-marked test, the whole telemetry suite, the CLI on NVML and on the real
# nvidia-smi, and the sampler benchmark. Usage: bash scripts/device_check.sh [DEPS_DIR]
# DEPS_DIR: an optional folder of wheels for what the machine lacks (Keras and its namex and optree
# for the JAX batch-size test: scripts/device_wheels.sh DEPS_DIR fetches them), installed into a
# folder of their own and put on PYTHONPATH.
set -u
cd "$(dirname "$0")/.."
PY=$(command -v python3)
DEPS=${1:-}
export PYTHONPATH=$PWD/python_ext
if [ -n "$DEPS" ] && ls "$DEPS"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/kerasgpu-site "$DEPS"/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/kerasgpu-site
fi
echo "== machine"; nvidia-smi -L; $PY --version
echo "== gpu-marked tests (telemetry and kernel)"
timeout 240 $PY -m pytest -m gpu python_ext/tests/telemetry python_ext/tests/kernel/test_gpu.py \
  -v -rs -p no:cacheprovider -o asyncio_mode=strict 2>&1 | tail -30
echo "== Keras 3 on JAX: the batch-size finder on the GPU (XLA may hold 10 % of it)"
timeout 300 $PY -m pytest -m gpu python_ext/tests/keras_jax -v -s -rs -p no:cacheprovider -o asyncio_mode=strict 2>&1 | tail -40
echo "== telemetry suite (replay + real)"
timeout 200 $PY -m pytest python_ext/tests/telemetry -q -rs -p no:cacheprovider 2>&1 | tail -8
echo "== kerasgpu status (auto: NVML)"; timeout 60 $PY -m kerasgpu.cli status; echo "rc=$?"
echo "== kerasgpu status --backend smi (the real nvidia-smi)"; timeout 60 $PY -m kerasgpu.cli status --backend smi; echo "rc=$?"
echo "== kerasgpu status --json (auto)"; timeout 60 $PY -m kerasgpu.cli status --json | head -c 1500; echo
echo "== bench/sampler.py"; timeout 120 $PY bench/sampler.py --samples 30 --interval-ms 100
