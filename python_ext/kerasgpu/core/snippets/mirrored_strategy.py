# title: Run Cell in the Notebook's Strategy
# description: Build this cell's model under the notebook's one tf.distribute strategy
#   (MirroredStrategy over the GPUs; created once per kernel and reused by every wrapped cell,
#   %gpu_distribute and %%distribute). Works when the cell builds and compiles the model; when
#   compile is in another cell, distribute the whole notebook instead.
# placement: wrap
# order: 30

import kerasgpu

with kerasgpu.notebook_strategy().scope():  # kerasgpu: the notebook's one tf.distribute strategy
    pass  # {cell}
