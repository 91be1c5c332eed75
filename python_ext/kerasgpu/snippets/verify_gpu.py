# title: GPU verification
# description: Check the NVIDIA driver, the GPUs, the TensorFlow build and the Keras backend,
#   and say what to fix (%gpu_check). It does not start TensorFlow, so memory settings below
#   it still work.
# placement: top
# order: 0

import importlib.util

from IPython import get_ipython

ip = get_ipython()
if importlib.util.find_spec("kerasgpu") is None:
    print(
        "kerasgpu is not installed in this kernel's environment: "
        "run %pip install jupyterlab-kerasgpu, then restart the kernel."
    )
else:
    if "gpu_check" not in ip.magics_manager.magics["line"]:
        ip.run_line_magic("load_ext", "kerasgpu")
    ip.run_line_magic("gpu_check", "")
