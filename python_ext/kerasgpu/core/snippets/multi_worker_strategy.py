# title: MultiWorkerMirroredStrategy (TF_CONFIG)
# description: Train on the GPUs of several machines. Every worker runs the same notebook or
#   script with its own WORKER_INDEX; TF_CONFIG lists the workers. It must run before any
#   other TensorFlow op, so it goes first; build the model inside strategy.scope().
# placement: top
# order: 40

import json
import os

import tensorflow as tf

# host:port of every worker, in the same order on each, e.g. ["10.0.0.1:12345", "10.0.0.2:12345"];
# empty: this machine only.
WORKERS = []
WORKER_INDEX = 0

if WORKERS and "TF_CONFIG" not in os.environ:  # a cluster manager may have set it already
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": WORKERS}, "task": {"type": "worker", "index": WORKER_INDEX}}
    )
print("TF_CONFIG:", os.environ.get("TF_CONFIG", "unset (single worker)"))

strategy = tf.distribute.MultiWorkerMirroredStrategy(
    communication_options=tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO  # NCCL on GPUs
    )
)
PER_REPLICA_BATCH_SIZE = 64
BATCH_SIZE = PER_REPLICA_BATCH_SIZE * strategy.num_replicas_in_sync
print(f"{strategy.num_replicas_in_sync} replica(s) in sync; global batch size {BATCH_SIZE}")

# Then, in the cells that build the model:
#   with strategy.scope():
#       model = ...; model.compile(...)
# and let each worker read its own shard of the data (tf.data auto-shards by file or data).
