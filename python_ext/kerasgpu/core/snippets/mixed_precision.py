# title: Mixed Precision Policy
# description: Compute in 16-bit on the GPU's Tensor Cores while the weights stay float32:
#   mixed_bfloat16 on compute capability 8.0+ (Ampere, Hopper), mixed_float16 on 7.x; refused,
#   with the reason, on older GPUs or without one. It sets the Keras policy only (no model, no
#   names) and goes before the first cell that builds a model.
# placement: cursor
# order: 50

from kerasgpu import set_mixed_precision

# Only Keras' global dtype policy changes; TensorFlow's runtime does not start here.
# Keep the model's output layer in float32 (dtype="float32"); after building the model,
# %mixed_precision check lists what in it does not suit 16-bit compute.
set_mixed_precision("auto")
