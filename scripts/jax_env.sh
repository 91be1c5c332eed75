#!/usr/bin/env bash
# Builds the Keras-on-JAX environment of the jax tier (make test-jax), outside the clone: Keras 3
# with the JAX backend (CPU jaxlib) and no TensorFlow, so `%gpu_batch_size` and `%gpu_estimate`
# are tested on JAX as a JAX user's kernel runs them. Wheels are downloaded once into WHEELS;
# the environment is built under a lock and marked complete with $ENV/.built.
# Usage: scripts/jax_env.sh ENV WHEELS [PYTHON]
set -euo pipefail
ENV=${1:?env folder}
WHEELS=${2:?wheel folder}
PYTHON=${3:-python3}
REQS=(
  "jax==0.10.2" "jaxlib==0.10.2" "keras==3.15.1" "numpy==2.4.6" "ml_dtypes==0.6.0"
  "ipython==9.18.1" "psutil==7.2.2" "nvidia-ml-py==13.615.71" "pytest==9.2.0" "pytest-timeout==2.4.0" "pytest-asyncio==1.5.0"
)
PIP=(-m pip --disable-pip-version-check -q)

mkdir -p "$WHEELS" "$(dirname "$ENV")"
exec 9>"$ENV.lock"
flock 9
if [ -e "$ENV/.built" ]; then
  echo "jax tier: environment ready in $ENV"
  exit 0
fi
t0=$SECONDS
if ! "$PYTHON" "${PIP[@]}" download --no-index --find-links "$WHEELS" -d "$WHEELS" "${REQS[@]}" >/dev/null 2>&1; then
  echo "jax tier: downloading wheels"
  "$PYTHON" "${PIP[@]}" download -d "$WHEELS" "${REQS[@]}"
fi
rm -rf "$ENV"
"$PYTHON" -m venv "$ENV"
"$ENV/bin/python" "${PIP[@]}" install --no-index --find-links "$WHEELS" "${REQS[@]}"
KERAS_BACKEND=jax "$ENV/bin/python" -c "import keras, jax; assert keras.backend.backend() == 'jax'; jax.devices()"
touch "$ENV/.built"
echo "jax tier: environment built in $((SECONDS - t0)) s ($(du -sh "$ENV" | cut -f1) in $ENV)"
