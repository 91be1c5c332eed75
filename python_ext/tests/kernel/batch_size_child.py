"""Child process of test_training_batch_size: the batch-size search under an address-space limit.

Builds a small model, trains it a little (the user's state), then caps this process's
address space a few hundred MiB above what it uses (RLIMIT_AS), so that TensorFlow's
own allocator runs out and raises a real ResourceExhaustedError on the CPU, while the
machine never runs short. Prints one JSON line after a marker.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's kernels abort the process (a C++ exception) when an allocation fails;
# TensorFlow's own kernels report it as ResourceExhaustedError, which is what a GPU does.
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from kerasgpu.kernel.train.batch_size import batch_size_card, find_batch_size  # noqa: E402

HEADROOM_MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 400
UNTIMED = "--untimed" in sys.argv  # also one search without timed steps: only the first step runs
SUBCLASSED = "--subclassed" in sys.argv  # the same layers in a keras.Model clone_model cannot copy


class Net(keras.Model):
    """A subclassed model without get_config(): measured in place and put back."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(4096, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))


def main() -> None:
    rng = np.random.default_rng(0)
    if SUBCLASSED:
        model = Net()
    else:
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(4096, activation="relu"), keras.layers.Dense(1)]
        )
    model.compile("adam", "mse")
    x = rng.random((100, 64), dtype="float32")
    y = rng.random((100, 1), dtype="float32")
    model.fit(x, y, epochs=1, verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    iterations = int(model.optimizer.iterations.numpy())
    optimizer = model.optimizer

    no_gpu = find_batch_size(model, x, y)

    status = Path("/proc/self/status").read_text()
    vm = int(re.search(r"VmSize:\s+(\d+) kB", status).group(1)) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + HEADROOM_MIB * 2**20, resource.RLIM_INFINITY))
    # a budget the whole search fits in (the default, 20 s, may not on a loaded machine)
    found = find_batch_size(model, x, y, device="/CPU:0", start=256, timing_steps=1, budget=600)
    # a budget that ends it after its first try, and what the card then says
    short = batch_size_card(model, x, y, device="/CPU:0", start=256, timing_steps=1, budget=0.001)

    # the batch it suggests trains a step under the same limit
    # (the loss read back: JAX's steps run asynchronously)
    suggested_trains = None
    if found["suggested"]:
        copy = Net() if SUBCLASSED else keras.models.clone_model(model)
        copy.compile("adam", "mse")
        rows = np.arange(found["suggested"]) % len(x)
        try:
            suggested_trains = bool(np.isfinite(np.asarray(copy.train_on_batch(x[rows], y[rows]))).all())
        except Exception as err:
            suggested_trains = f"{type(err).__name__}: {str(err)[:200]}"
        del copy

    untimed = None
    if UNTIMED and found["first_failing"]:
        # well past the edge (which moves with the threads' stacks under RLIMIT_AS), yet its input
        # batch is small: XLA's allocation inside the step is what fails, after the step returned
        fail = 4 * next(t["batch_size"] for t in found["tries"] if not t["fits"])
        untimed = find_batch_size(
            model, x, y, device="/CPU:0", start=fail, max_batch=fail, timing_steps=0, budget=600
        )

    same = all((a == b).all() for a, b in zip(weights, model.get_weights(), strict=True))
    model.fit(x, y, epochs=1, verbose=0)  # the user's model still trains, under the same limit
    out = {
        "no_gpu": no_gpu,
        "found": found,
        "short": {"result": short.data, "text": short.to_text()},
        "untimed": untimed,
        "suggested_trains": suggested_trains,
        "weights_unchanged": same,
        "optimizer_kept": model.optimizer is optimizer,
        "optimizer_steps_during_search": int(model.optimizer.iterations.numpy()) - iterations - 4,
    }
    print("@@RESULT@@" + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
