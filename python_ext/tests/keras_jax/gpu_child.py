"""Child process of test_jax_gpu: `find_batch_size` for real on a GPU, Keras 3 on JAX.

XLA_PYTHON_CLIENT_MEM_FRACTION (set by the test, before JAX starts) caps what JAX may hold,
so the search reaches the first out-of-memory within seconds on an H200. A small image model
is trained a little (the user's state), the search runs on the default device (GPU 0), then
the user's model is checked and trained again. Prints one JSON line after a marker.
"""

from __future__ import annotations

import json
import os

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from kerasgpu.kernel.train.batch_size import find_batch_size  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [
            keras.Input((128, 128, 3)),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.random((64, 128, 128, 3), dtype="float32")
    y = rng.integers(0, 10, 64)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    weights = [np.array(w) for w in model.get_weights()]
    steps = int(model.optimizer.iterations.numpy())
    gpu = jax.devices("gpu")[0]
    before = gpu.memory_stats()["bytes_in_use"]

    found = find_batch_size(model, x, y, start=32, timing_steps=2, budget=600)  # the whole search

    after = gpu.memory_stats()["bytes_in_use"]
    same = all((a == b).all() for a, b in zip(weights, model.get_weights(), strict=True))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    out = {
        "found": found,
        "device_kind": gpu.device_kind,
        "memory_before_search": before,
        "memory_after_search": after,
        "weights_unchanged": same,
        "optimizer_steps_during_search": int(model.optimizer.iterations.numpy()) - steps - 4,
    }
    print("@@RESULT@@" + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
