"""GET /kerasgpu/api/v1/tensorflow: what TensorFlow sees from a kernel's own Python, and why."""

from __future__ import annotations

import asyncio
from typing import Any

import tornado
from jupyter_client.kernelspec import NoSuchKernel
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import ensure_async

from ..telemetry import Sampler
from . import tfprobe
from .base import BaseHandler, dumps, run_blocking

# The kernel runs in a Jupyter gateway (another host): the server has no interpreter to probe.
REMOTE_KERNEL = "remote_kernel"


class TensorFlowHandler(BaseHandler):
    """GET /kerasgpu/api/v1/tensorflow?kernel_id=... (or ?kernel_name=...): what TensorFlow sees there.

    `refresh=1` skips the cache (after installing TensorFlow, or a kernel restart).
    """

    def initialize(self, sampler: Sampler, probe: tfprobe.TFProbe) -> None:
        self.sampler = sampler
        self.probe = probe

    @tornado.web.authenticated
    @authorized
    async def get(self):
        # The probe starts the kernelspec's interpreter (and CUDA): it needs the right to run
        # kernels, not only to read GPU readings.
        user = self.current_user
        allowed = await ensure_async(self.authorizer.is_authorized(self, user, "execute", "kernels"))
        if not allowed:
            raise tornado.web.HTTPError(
                403, "Probing a kernel's TensorFlow needs permission to execute kernels."
            )
        kernel_id = self.get_query_argument("kernel_id", None)
        kernel_name = self.get_query_argument("kernel_name", None)
        refresh = self.get_query_argument("refresh", "").lower() in ("1", "true", "yes")
        if not kernel_id and not kernel_name:
            raise tornado.web.HTTPError(
                400, "Give kernel_id (a running kernel) or kernel_name (a kernelspec)."
            )
        if kernel_id:
            if kernel_id not in self.kernel_manager:
                raise tornado.web.HTTPError(
                    404, f"No running kernel has the id {kernel_id!r}: it may have been shut down."
                )
            kernel = self.kernel_manager.get_kernel(kernel_id)
            kernel_name = kernel.kernel_name
        spec = None  # a gateway's kernel (Enterprise Gateway, a Kubernetes pod): its Python is not here
        if not _uses_gateway(self.settings):
            try:
                spec = await ensure_async(self.kernel_spec_manager.get_kernel_spec(kernel_name))
            except NoSuchKernel:
                raise tornado.web.HTTPError(404, f"There is no kernelspec named {kernel_name!r}.") from None
        answer = await self._answer(kernel_id, kernel_name, spec, refresh)
        self.finish(dumps(answer))

    async def _answer(self, kernel_id, kernel_name, spec, refresh: bool) -> dict[str, Any]:
        env = tfprobe.spec_env(getattr(spec, "env", None))
        argv = list(getattr(spec, "argv", None) or [])
        language = (getattr(spec, "language", "") or "").strip()
        python = tfprobe.interpreter(argv, env) if language.lower() == "python" else None
        kernel = {
            "id": kernel_id,
            "name": kernel_name,
            "display_name": getattr(spec, "display_name", kernel_name),
            "language": language,
            "argv0": argv[0] if argv else None,
            "python": python,
        }
        result: tfprobe.ProbeResult | None = None
        cached = False
        if spec is None:
            status = REMOTE_KERNEL
            reason = (
                "This notebook's kernel runs in a Jupyter gateway, not on this server: "
                "its TensorFlow can't be probed from here."
            )
            hint = "Run %load_ext kerasgpu, then %gpu_check, in the notebook: it checks there."
            driver = await self._driver()
        elif language.lower() != "python":
            status = tfprobe.NOT_PYTHON
            reason = (
                f"The kernel {kernel['display_name']!r} runs {language or 'an unknown language'}, "
                "not Python: TensorFlow for Python can't be probed there."
            )
            hint = "Pick a Python kernel for Keras / TensorFlow notebooks."
            driver = await self._driver()
        elif python is None:
            status = tfprobe.NO_INTERPRETER
            reason = (
                f"The kernel's interpreter {kernel['argv0']!r} (argv[0] of kernelspec {kernel_name!r}) "
                "was not found."
            )
            hint = (
                "Reinstall the kernelspec from its environment: python -m ipykernel install --user --name ..."
            )
            driver = await self._driver()
        else:
            (result, cached), driver = await asyncio.gather(
                self.probe.probe(python, env, refresh=refresh), self._driver()
            )
            status, reason, hint = result.status, result.reason, result.hint
        return {
            "kernel": kernel,
            "status": status,
            "reason": reason,
            "hint": hint,
            "tensorflow": result.tensorflow() if result else None,
            "keras": result.facts.get("keras") if result else None,
            # libcuda.so.1, cuInit and the CUDA wheels as the kernel's Python sees them (cudafacts).
            "cuda": result.facts.get("cuda") if result else None,
            "environment": _environment(result),
            "driver": {
                "state": driver.get("status", {}).get("state"),
                "code": driver.get("status", {}).get("code"),
                "reason": driver.get("status", {}).get("reason"),
                "gpus": len(driver.get("devices", [])),
                "devices": [
                    {k: d.get(k) for k in ("index", "name", "uuid", "pci_bus_id", "compute_capability")}
                    for d in driver.get("devices", [])
                ],
            },
            "verdict": tfprobe.probe_answer(result, driver, status, reason),
            "stderr_tail": result.stderr_tail if result and status != tfprobe.OK else "",
            "cached": cached,
            "probed_at": result.probed_at if result else None,
            "probe_seconds": round(result.seconds, 3) if result else None,
        }

    async def _driver(self) -> dict[str, Any]:
        """The driver's view from the server's one sampler (read in the executor), never raising."""
        sampler = self.sampler

        def read() -> dict[str, Any]:
            status = sampler.status()
            return {"status": status.to_json(), "devices": [d.to_json() for d in sampler.devices()]}

        try:
            return await run_blocking(read)
        except Exception as exc:  # a broken backend must not hide the TensorFlow answer
            self.log.warning("kerasgpu: driver probe failed: %s", exc)
            return {"status": {"state": "error", "code": "backend_error", "reason": str(exc)}, "devices": []}


def _uses_gateway(settings: dict) -> bool:
    """Whether the server's kernels run in a Jupyter gateway (`--gateway-url`)."""
    config = getattr(settings.get("serverapp"), "gateway_config", None)
    return bool(getattr(config, "gateway_enabled", False))


def _environment(result: tfprobe.ProbeResult | None) -> dict[str, Any] | None:
    if not result or not result.facts:
        return None
    f = result.facts
    return {
        "python": f.get("python"),
        "python_version": f.get("python_version"),
        "system": f.get("system"),
        "machine": f.get("machine"),
        **{k.lower(): v for k, v in (f.get("env") or {}).items()},
    }
