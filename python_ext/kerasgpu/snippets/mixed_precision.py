# title: Mixed precision (float32 output)
# description: Compute in float16 on the GPU's Tensor Cores while the weights stay float32,
#   with the output layer kept in float32 so the softmax and the loss stay stable. Run it
#   before building the model.
# placement: cursor
# order: 50

import keras

# "mixed_bfloat16" on Ampere / Hopper (compute capability 8.0+) needs no loss scaling.
keras.mixed_precision.set_global_policy("mixed_float16")
print("Keras dtype policy:", keras.mixed_precision.global_policy().name)

# Build the model as usual, but give the last layer dtype="float32":
inputs = keras.Input(shape=(32,))
x = keras.layers.Dense(64, activation="relu")(inputs)
x = keras.layers.Dense(10)(x)
outputs = keras.layers.Activation("softmax", dtype="float32")(x)
model = keras.Model(inputs, outputs)
# compile() adds loss scaling for float16 by itself.
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
print("compute dtype:", model.layers[1].compute_dtype, "| output dtype:", model.output.dtype)
