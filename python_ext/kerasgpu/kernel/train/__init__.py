"""Training insight: a live monitor for `fit`, bottleneck findings, deadline estimates, batch-size search.

Modules: `findings` (pure rules and their thresholds), `gpuwatch` (the GPUs this
process uses, sampled on the telemetry thread), `monitor` (the Keras callback and
its progress card), `watch` (`%gpu_watch`: the callback on every `fit`),
`estimate` (`%gpu_estimate`), `batch_size` (`%gpu_batch_size`), `inputwait` (each step's
wait for its input), `guard` (the deadline verdict and BackupAndRestore), `receipts` and
`runs_card` (`%gpu_runs`), `modelfacts` (where a model trains, as its framework sees it),
`results` (what the tools measured last: the latest estimate, for the deadline guard);
progress goes to the frontend through the kernel's one comm (`kerasgpu.kernel.comm`).
Importing this package imports neither TensorFlow nor Keras.
"""
