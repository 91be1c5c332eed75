"""The pure core: plain data in, words out.

What a notebook's GPU stack and code mean, with no Jupyter, no kernel and no TensorFlow: the
diagnosis (facts about a kernel's GPU stack -> causes, fixes and the one verdict), the CUDA facts
(what libcuda.so.1 and the CUDA wheels say, asked with ctypes), the notebook planner (a notebook's
cells -> the edits each notebook tool makes), the snippet catalog and the fleet query's parsing.

The server (`kerasgpu.server`) and the kernel side (`kerasgpu.kernel`) both use these modules;
nothing here imports either of them, nor jupyter_server, tornado, IPython, TensorFlow or Keras.
"""
