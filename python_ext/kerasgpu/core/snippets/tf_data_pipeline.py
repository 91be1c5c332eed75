# title: tf.data input pipeline
# description: Feed the GPU without waiting on the CPU: parallel map, cache after the
#   expensive steps, shuffle, batch, and prefetch the next batches while the GPU trains.
# placement: cursor
# order: 70

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
BATCH_SIZE = globals().get("BATCH_SIZE", 64)  # your own BATCH_SIZE when the notebook has one

# Stand-in data: use your arrays, files (TFRecordDataset) or image_dataset_from_directory.
features = tf.random.uniform((1024, 32))
labels = tf.random.uniform((1024,), maxval=10, dtype=tf.int32)


def preprocess(x, y):
    return tf.cast(x, tf.float32), y


train_ds = (
    tf.data.Dataset.from_tensor_slices((features, labels))
    .map(preprocess, num_parallel_calls=AUTOTUNE)  # parallel CPU work
    .cache()  # in memory after the first epoch; .cache("/path/file") when it does not fit
    .shuffle(1024)  # after cache, so each epoch gets a new order
    .batch(BATCH_SIZE, drop_remainder=True)
    .prefetch(AUTOTUNE)  # the next batches get ready while the GPU works
)
print(train_ds.element_spec)
