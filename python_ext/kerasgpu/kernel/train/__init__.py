"""Training insight: a live monitor for `fit`, bottleneck findings, deadline estimates, batch-size search.

Modules: `findings` (pure rules and their thresholds), `gpuwatch` (the GPUs this
process uses, sampled on the telemetry thread), `monitor` (the Keras callback and
its progress card), `watch` (`%gpu_watch`: the callback on every `fit`),
`estimate` (`%gpu_estimate`), `batch_size` (`%gpu_batch_size`), `comm` (progress
to the frontend). Importing this package imports neither TensorFlow nor Keras.
"""
