#!/usr/bin/env bash
# Fetches the wheels scripts/device_check.sh needs on the GPU machine and that its image lacks
# (it has JAX, pytest, numpy, h5py, rich, absl-py, ml-dtypes; not Keras, namex, optree), for its
# Python 3.12, into DIR (default .whl/, git-ignored). Usage: bash scripts/device_wheels.sh [DIR]
set -euo pipefail
DIR=${1:-.whl}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DIR" "keras==3.15.1" "namex==0.1.0" "optree==0.20.0"
ls -la "$DIR"
