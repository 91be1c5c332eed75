"""What TensorFlow sees from this Python: the facts the server's TensorFlow probe asks a kernel for.

Runs in the kernel's own Python (3.6 or newer, where kerasgpu may not be installed): the server
(`kerasgpu.server.tfprobe`) runs this file's text with `python -c`, after the text of
kerasgpu.core.cudafacts (`gather_cuda`), so the kernel and the probe gather the same CUDA facts.
`python -m kerasgpu.kernel.probe` runs it too. Standard library and TensorFlow only, no
`from __future__` (the text follows another module's), and the answer is one JSON line
after `MARK` on stdout. `%gpu_check --deep` lists devices with `local_devices` too.
"""

import importlib.util
import json
import os
import platform
import sys

MARK = "KERASGPU_TFPROBE_JSON:"
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tf-nightly")
ENV_VARS = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "KERAS_BACKEND", "TF_CONFIG")


def local_devices(tf, device_lib):
    """device_lib's devices (this starts TensorFlow's runtime); allow_growth, so that listing them
    does not reserve the whole GPU."""
    config = tf.compat.v1.ConfigProto()
    config.gpu_options.allow_growth = True
    return [
        {
            "name": d.name,
            "device_type": d.device_type,
            "memory_limit_bytes": int(d.memory_limit),
            "physical_device_desc": d.physical_device_desc,
        }
        for d in device_lib.list_local_devices(config)
    ]


def _start():
    return {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "distributions": {},
        "nvidia_wheels": {},
        "installed": False,
        "error": None,
    }


def _add_distributions(out):
    try:
        from importlib import metadata

        for dist in metadata.distributions():
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name in TF_DISTRIBUTIONS:
                out["distributions"][name] = dist.version
            elif name.startswith("nvidia-") and ("cu1" in name or "cuda" in name or "cudnn" in name):
                out["nvidia_wheels"][name] = dist.version
    except Exception:  # Python < 3.8, or broken metadata: the versions are a nicety
        pass


def _add_cuda(out):
    try:
        # Before TensorFlow loads anything: the same facts %gpu_check gathers (kerasgpu.core.cudafacts).
        out["cuda"] = gather_cuda()  # noqa: F821  (defined before this text, or imported below)
    except Exception as exc:
        out["cuda"] = {"error": f"{type(exc).__name__}: {exc}"}


def _add_build(out, tf):
    out["version"] = getattr(tf, "__version__", None)
    try:
        out["build_info"] = dict(tf.sysconfig.get_build_info())
    except Exception as exc:
        out["build_info"] = {"error": str(exc)}
    try:
        out["built_with_cuda"] = bool(tf.test.is_built_with_cuda())
    except Exception:
        out["built_with_cuda"] = None


def _add_physical_devices(out, tf):
    out["physical_devices"] = []
    try:
        for dev in tf.config.list_physical_devices():
            entry = {"name": dev.name, "device_type": dev.device_type}
            if dev.device_type == "GPU":
                try:
                    details = tf.config.experimental.get_device_details(dev)
                    cc = details.get("compute_capability")
                    entry["device_name"] = details.get("device_name")
                    entry["compute_capability"] = f"{cc[0]}.{cc[1]}" if cc else None
                except Exception as exc:
                    entry["error"] = str(exc)
            out["physical_devices"].append(entry)
    except Exception as exc:
        out["error"] = f"list_physical_devices: {type(exc).__name__}: {exc}"


def _add_local_devices(out, tf):
    out["local_devices"] = []
    out["device_lib_error"] = None
    try:
        from tensorflow.python.client import device_lib

        out["local_devices"] = local_devices(tf, device_lib)
    except Exception as exc:
        out["device_lib_error"] = f"{type(exc).__name__}: {exc}"


def _add_keras(out):
    out["keras"] = None
    if importlib.util.find_spec("keras") is None:
        return
    try:
        import keras

        try:
            backend = keras.config.backend()
        except AttributeError:  # Keras 2 is TensorFlow only
            backend = "tensorflow"
        out["keras"] = {"version": getattr(keras, "__version__", None), "backend": backend}
    except Exception as exc:
        out["keras"] = {"error": f"{type(exc).__name__}: {exc}"}


def facts():
    """Everything the probe reports, as plain JSON-able data."""
    out = _start()
    _add_distributions(out)
    _add_cuda(out)
    if importlib.util.find_spec("tensorflow") is None:
        return out
    out["installed"] = True
    try:
        import tensorflow as tf
    except BaseException as exc:  # a broken CUDA library can raise anything at import
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    _add_build(out, tf)
    _add_physical_devices(out, tf)
    _add_local_devices(out, tf)
    _add_keras(out)
    return out


def main():
    sys.stdout.write("\n" + MARK + json.dumps(facts(), default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if "gather_cuda" not in globals():  # `python -m kerasgpu.kernel.probe`, not the server's text
        from kerasgpu.core.cudafacts import gather_cuda  # noqa: F401
    main()
