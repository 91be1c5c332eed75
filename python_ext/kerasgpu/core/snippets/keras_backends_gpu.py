# title: Keras 3 GPU check for JAX and PyTorch
# description: Keras 3 also trains on JAX or PyTorch: say which backend this kernel uses and
#   whether JAX and PyTorch are installed and see a GPU (without grabbing its memory).
# placement: cursor
# order: 80

import importlib.util
import os

# JAX reserves 75 % of GPU memory when it starts, unless told otherwise.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

try:
    import keras

    print(f"Keras {keras.__version__}, backend: {keras.config.backend()}")
except ImportError:
    print("Keras is not installed in this kernel's environment.")
print("Switch backends with KERAS_BACKEND=jax|torch|tensorflow before keras is imported (restart).")

if importlib.util.find_spec("jax") is None:
    print('JAX: not installed (pip install -U "jax[cuda12]")')
else:
    try:
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        print(f"JAX {jax.__version__}: {len(gpus)} GPU(s) {[d.device_kind for d in gpus]}")
    except Exception as err:  # a broken CUDA plugin raises here; report it, don't fail the cell
        print(f"JAX: could not list devices: {err}")

if importlib.util.find_spec("torch") is None:
    print("PyTorch: not installed (pip install torch)")
else:
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = [torch.cuda.get_device_name(i) for i in range(n)]
        print(f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}): {n} GPU(s) {names}")
    except Exception as err:
        print(f"PyTorch: could not list devices: {err}")
