# title: Log device placement
# description: Print the device (CPU or GPU) every TensorFlow op runs on, to see whether
#   training really uses the GPU. TensorFlow ignores it once its runtime has started, so it
#   goes above the first cell that imports TensorFlow. The log is long: turn it off when done.
# placement: top
# order: 25

import tensorflow as tf
from tensorflow.python.eager import context

ctx = context.context_safe()
if ctx is not None and ctx._context_handle is not None:  # the runtime already started
    print(
        "TensorFlow already started in this kernel, so it would ignore placement logging. "
        "Restart the kernel and run this cell first."
    )
else:
    tf.debugging.set_log_device_placement(True)
    print("Placement logging on: each op prints its device when it runs (GPU:0 means the GPU).")
# Off again: tf.debugging.set_log_device_placement(False)
