"""Where `%gpu_estimate` and `%gpu_batch_size` run a copy of the model, for the kernel's Keras backend.

Devices are named the same way on every backend ("/CPU:0", "/GPU:1"). For each backend:
the GPUs it sees, a context that places what is created and run inside it on one device,
the bytes it holds there now (and the most it may hold), and the GPU's name.

- TensorFlow: `tf.device`, `tf.config.experimental.get_memory_info` (GPUs only).
- JAX: `jax.default_device`, `Device.memory_stats()` (`bytes_in_use`, `bytes_limit`: by default
  XLA preallocates 75 % of each GPU, and that is all a batch can use). JAX dispatches
  asynchronously: a step's out-of-memory surfaces when its result is read, so callers `sync`.
- PyTorch: refused with a clear error (its device placement is not a context here).
"""

from __future__ import annotations

import logging
import re
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ..runtime import KerasGPUError

_NAME = re.compile(r"^/?(cpu|gpu):(\d+)$", re.IGNORECASE)


def is_oom(err: BaseException) -> bool:
    """An out-of-memory of any backend: TensorFlow's ResourceExhaustedError, XLA's RESOURCE_EXHAUSTED
    (JaxRuntimeError), a host MemoryError."""
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return (
        type(err).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in text
        or "out of memory" in text.lower()
        or "OOM when allocating" in text
    )


def parse_device(device: str) -> tuple[str, int]:
    """("gpu", 1) for "/GPU:1" (also "gpu:1"); a clear error for anything else."""
    m = _NAME.match(str(device).strip())
    if not m:
        raise KerasGPUError(
            "bad_device",
            f"{device!r} is not a device name.",
            'Name a device as "/GPU:0" (or "/CPU:0").',
        )
    return m.group(1).lower(), int(m.group(2))


class Placement:
    """The TensorFlow placement (the default)."""

    backend = "tensorflow"
    framework = "TensorFlow"

    def gpus(self) -> list[str]:
        import tensorflow as tf

        return [f"/GPU:{i}" for i, _ in enumerate(tf.config.list_logical_devices("GPU"))]

    def on(self, device: str) -> AbstractContextManager:
        import tensorflow as tf

        kind, idx = parse_device(device)
        return tf.device(f"/{kind.upper()}:{idx}")

    def memory_in_use(self, device: str) -> int | None:
        """Bytes the framework holds on a GPU now (None for the CPU: no such counter)."""
        kind, idx = parse_device(device)
        if kind != "gpu":
            return None
        try:
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info(f"GPU:{idx}")["current"])
        except Exception:
            return None

    def memory_limit(self, device: str) -> int | None:
        return None

    def gpu_name(self, device: str) -> str | None:
        _, idx = parse_device(device)
        try:
            import tensorflow as tf

            phys = tf.config.list_physical_devices("GPU")
            if idx < len(phys):
                return tf.config.experimental.get_device_details(phys[idx]).get("device_name")
        except Exception:
            pass
        return None

    def sync(self, value: Any) -> Any:
        """`value` with every array read to the host: the step that made it has finished (or raised)."""
        import keras
        import numpy as np

        return keras.tree.map_structure(np.asarray, value)

    def no_gpu_fix(self) -> str:
        return "%gpu_check says why TensorFlow sees no GPU."

    @contextmanager
    def quiet(self):
        """TensorFlow's warnings about tf.function retracing off: each try traces a new copy on purpose."""
        logger = logging.getLogger("tensorflow")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


class JaxPlacement(Placement):
    backend = "jax"
    framework = "JAX"

    @staticmethod
    def _devices(kind: str) -> list:
        import jax

        try:
            return list(jax.devices(kind))
        except RuntimeError:  # "Unknown backend: 'gpu' requested, but no platforms ... are present"
            return []

    def _device(self, device: str):
        kind, idx = parse_device(device)
        devs = self._devices(kind)
        if idx >= len(devs):
            names = ", ".join(f"/{kind.upper()}:{i}" for i in range(len(devs)))
            raise KerasGPUError(
                "bad_device",
                f"JAX has no {device} ({len(devs)} {kind.upper()} device(s) visible).",
                f"Name one of: {names}." if devs else self.no_gpu_fix(),
            )
        return devs[idx]

    def gpus(self) -> list[str]:
        return [f"/GPU:{i}" for i, _ in enumerate(self._devices("gpu"))]

    def on(self, device: str) -> AbstractContextManager:
        import jax

        return jax.default_device(self._device(device))

    def _stats(self, device: str) -> dict:
        if parse_device(device)[0] != "gpu":
            return {}
        try:
            return self._device(device).memory_stats() or {}
        except Exception:
            return {}

    def memory_in_use(self, device: str) -> int | None:
        """XLA's allocator count on a GPU; elsewhere (the CPU has none) the bytes of JAX's live arrays
        there, which is what a failed try could leave behind."""
        v = self._stats(device).get("bytes_in_use")
        if v is not None:
            return int(v)
        import jax

        try:
            dev = self._device(device)
            return sum(a.nbytes for a in jax.live_arrays() if dev in a.devices())
        except Exception:
            return None

    def memory_limit(self, device: str) -> int | None:
        v = self._stats(device).get("bytes_limit")
        return None if v is None else int(v)

    def gpu_name(self, device: str) -> str | None:
        try:
            return getattr(self._device(device), "device_kind", None)
        except KerasGPUError:
            return None

    def no_gpu_fix(self) -> str:
        return 'A CPU-only jaxlib sees no GPU: pip install -U "jax[cuda12]" (then restart the kernel).'


def for_backend(what: str) -> Placement:
    """The placement of this kernel's Keras backend; PyTorch (and others) get a clear error."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return Placement()
    if backend == "jax":
        return JaxPlacement()
    raise KerasGPUError(
        "backend",
        f"{what} places copies of the model with TensorFlow or JAX; this kernel's Keras runs on {backend}.",
        "Use KERAS_BACKEND=tensorflow or jax for the measurement, or time a few epochs with %gpu_watch on.",
    )
