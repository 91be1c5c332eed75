# title: GPU memory limit
# description: Cap how much memory TensorFlow may take on each GPU (in MiB), e.g. to leave
#   room for another notebook. Must run before TensorFlow starts: it goes above the first
#   cell that imports TensorFlow. Not together with memory growth (TensorFlow refuses both).
# placement: top
# order: 20

import tensorflow as tf

MEMORY_LIMIT_MIB = 8 * 1024  # per GPU

gpus = tf.config.list_physical_devices("GPU")
if not gpus:
    print(
        "TensorFlow sees no GPU in this kernel, so the limit changes nothing: "
        "the GPU verification cell (%gpu_check) says why and what to fix."
    )
try:
    for gpu in gpus:
        tf.config.set_logical_device_configuration(
            gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=MEMORY_LIMIT_MIB)]
        )
    if gpus:
        print(f"TensorFlow may use up to {MEMORY_LIMIT_MIB} MiB on each of {len(gpus)} GPU(s).")
except RuntimeError as err:  # TensorFlow's runtime already started: the setting is frozen
    print(f"The memory limit was not set: {err}. Restart the kernel and run this cell first.")
