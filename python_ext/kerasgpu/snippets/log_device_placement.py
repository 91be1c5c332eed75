# title: Log device placement
# description: Print the device (CPU or GPU) every TensorFlow op runs on, to see whether
#   training really uses the GPU. The log is long: turn it off again when done.
# placement: cursor
# order: 60

import tensorflow as tf

tf.debugging.set_log_device_placement(True)

a = tf.random.uniform((256, 256))
b = tf.linalg.matmul(a, a)
print("matmul ran on", b.device)  # expect .../device:GPU:0 when the GPU is used

# tf.debugging.set_log_device_placement(False)
