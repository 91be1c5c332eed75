"""The Jupyter server extension: REST, websocket and metrics handlers around one GPU sampler.

- `app`: the `ExtensionApp` that creates the services (sampler, websocket fan-out, TensorFlow
  probe, fleet query) and registers the one route table;
- `config`: the `c.KerasGPU.*` settings;
- `base`: `BaseHandler`, the NaN-safe JSON encoder and the API prefix;
- one module per resource: `gpu` (devices, history, processes), `stream` (the websocket),
  `metrics` (Prometheus), `tensorflow` (the kernel's TensorFlow), `notebook` (snippets and the
  notebook tools' planner), `fleet` (the GPU hosts a Prometheus scrapes);
- services: `tfprobe` (runs the kernel-side probe in a kernel's Python), `processes` (which
  kernels hold GPU memory), `gateway_ws` (a gateway websocket that does not leak).

Nothing here imports the kernel side (`kerasgpu.kernel`).
"""
