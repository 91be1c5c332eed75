"""The one view of the facts every rule reads: what the driver, TensorFlow, Keras, CUDA
(`core.cudafacts`) and TensorFlow's log (`logs.parse_log`) said, and what follows from them.

Facts come from `kernel.checks.gather` (the driver's view, the TensorFlow build, what TensorFlow
sees), `cudafacts.gather_cuda` (libcuda.so.1, cuInit, the CUDA runtime wheels) and the log; any
part may be missing, and a rule whose facts are missing stays silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# CUDA_VISIBLE_DEVICES values that hide every GPU.
HIDING = ("", "-1", "none", "NoDevFiles")


@dataclass
class Facts:
    """The facts as the rules read them (each part a dict, {} when it is missing)."""

    platform: dict[str, Any]
    driver: dict[str, Any]
    tf: dict[str, Any]
    keras: dict[str, Any]
    cuda: dict[str, Any]
    log: dict[str, Any]
    runtime_initialized: bool
    status: dict[str, Any]  # the driver's status (nvidia-smi / NVML)
    driver_gpus: list[dict[str, Any]]  # the GPUs the driver lists, when it answers
    tf_version: str | None
    cvd: str | None  # CUDA_VISIBLE_DEVICES
    physical: list[dict[str, Any]]  # TensorFlow's physical GPUs
    tf_gpus: list[dict[str, Any]]  # ... those it may use
    libcuda: bool | None  # whether libcuda.so.1 loads (None: unknown)
    cu_init: dict[str, Any] | None  # cuInit's answer, where libcuda.so.1 loads
    from_log: bool  # libcuda / cu_init known from TensorFlow's log only

    @classmethod
    def of(cls, facts: dict[str, Any]) -> Facts:
        plat = facts.get("platform") or {}
        drv = facts.get("driver") or {}
        tf = facts.get("tensorflow") or {}
        cuda = facts.get("cuda") or {}
        log = facts.get("log") or {}
        status = drv.get("status") or {}
        physical = tf.get("physical_gpus") or []
        libcuda, cu_init, from_log = _driver_library(cuda, log)
        return cls(
            platform=plat,
            driver=drv,
            tf=tf,
            keras=facts.get("keras") or {},
            cuda=cuda,
            log=log,
            runtime_initialized=bool(facts.get("runtime_initialized")),
            status=status,
            driver_gpus=(drv.get("devices") or []) if status.get("state") == "ok" else [],
            tf_version=tf.get("version") or (cuda.get("tf_distribution") or {}).get("version"),
            cvd=plat.get("cuda_visible_devices", cuda.get("cuda_visible_devices")),
            physical=physical,
            tf_gpus=[g for g in physical if g.get("visible", True)],
            libcuda=libcuda,
            cu_init=cu_init,
            from_log=from_log,
        )

    @property
    def lines(self) -> dict[str, str]:
        """The log's line for each thing it said (logs.parse_log)."""
        return self.log.get("lines", {})

    @property
    def smi_known(self) -> bool:
        return bool(self.status)

    @property
    def windows(self) -> bool:
        return self.platform.get("system") == "Windows"

    @property
    def dists(self) -> dict[str, str]:
        return self.tf.get("distributions") or {}

    @property
    def driver_evidence(self) -> bool:
        """Whether anything says an NVIDIA driver is here (GPUs listed, device files, /proc entry)."""
        return (
            bool(self.driver_gpus)
            or bool(self.cuda.get("dev_nodes"))
            or bool(self.cuda.get("proc_driver_version"))
        )

    @property
    def cpu_build(self) -> bool:
        """TensorFlow is built without CUDA (or tensorflow-cpu is what is installed)."""
        built = self.tf.get("built_with_cuda")
        return built is False or (
            built is None and (self.cuda.get("tf_distribution") or {}).get("name") == "tensorflow-cpu"
        )

    @property
    def cuda_build(self) -> bool:
        """TensorFlow is built with CUDA (or its distribution names the [and-cuda] wheels)."""
        built = self.tf.get("built_with_cuda")
        return built is True or (built is None and bool(self.cuda.get("and_cuda")))

    @property
    def hides_all(self) -> bool:
        return self.cvd is not None and self.cvd.strip() in HIDING


def _driver_library(cuda: dict[str, Any], log: dict[str, Any]) -> tuple[bool | None, dict | None, bool]:
    """(libcuda.so.1 loads, cuInit's answer, known from the log only): from this process's own CUDA
    facts, else from TensorFlow's log."""
    libcuda = (cuda.get("libcuda") or {}).get("loaded")
    cu_init = cuda.get("cu_init") if libcuda else None
    if libcuda is None and log:
        # TensorFlow's CUDA stub answers cuInit with 303 when it could not load libcuda.so.1.
        log_init = log.get("cu_init") or {}
        if log.get("libcuda_error") or log_init.get("code") == 303:
            return False, cu_init, True
        if log_init.get("code") is not None or log_init.get("name"):
            return True, log_init, True
    return libcuda, cu_init, False
