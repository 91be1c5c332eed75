# title: GPU memory growth
# description: Let TensorFlow take GPU memory as the model needs it instead of reserving
#   almost all of it up front, so other notebooks can share the GPU. Must run before
#   TensorFlow starts: it goes above the first cell that imports TensorFlow.
# placement: top
# order: 10

import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
if not gpus:
    print(
        "TensorFlow sees no GPU in this kernel, so memory growth changes nothing: "
        "the GPU verification cell (%gpu_check) says why and what to fix."
    )
try:
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        print(f"Memory growth on for {len(gpus)} GPU(s): {', '.join(g.name for g in gpus)}.")
except RuntimeError as err:  # TensorFlow's runtime already started: the setting is frozen
    print(f"Memory growth was not set: {err}. Restart the kernel and run this cell first.")
