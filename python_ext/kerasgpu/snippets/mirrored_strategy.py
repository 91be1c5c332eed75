# title: MirroredStrategy scope
# description: Train on every GPU of this machine: the cell's code (model building and
#   compile) runs inside strategy.scope(), and the global batch size grows with the number
#   of replicas so each GPU keeps the batch it had alone.
# placement: wrap
# order: 30

import tensorflow as tf

strategy = tf.distribute.MirroredStrategy()  # one replica per visible GPU, the CPU if none
REPLICAS = strategy.num_replicas_in_sync
print(f"MirroredStrategy: {REPLICAS} replica(s) on {', '.join(strategy.extended.worker_devices)}")

# Use BATCH_SIZE in model.fit / tf.data; if convergence slows, scale the learning rate too.
PER_REPLICA_BATCH_SIZE = 64
BATCH_SIZE = PER_REPLICA_BATCH_SIZE * REPLICAS
LEARNING_RATE = 1e-3 * REPLICAS

with strategy.scope():
    pass  # {cell}
