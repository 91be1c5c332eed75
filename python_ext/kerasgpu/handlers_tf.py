"""GET /kerasgpu/api/v1/snippets and /tensorflow; authenticated and authorized like the rest."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import tornado
from jupyter_client.kernelspec import NoSuchKernel
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import ensure_async, url_path_join

from . import tfprobe
from .core import snippets
from .routes import API, BaseHandler, State

log = logging.getLogger(__name__)

# The kernel runs in a Jupyter gateway (another host): the server has no interpreter to probe.
REMOTE_KERNEL = "remote_kernel"


class SnippetsHandler(BaseHandler):
    """GET /kerasgpu/api/v1/snippets: the snippet catalog the cell toolbar and palette insert."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(
            json.dumps({"version": 1, "marker": snippets.MARKER, "snippets": snippets.load_catalog()})
        )


class TensorFlowHandler(BaseHandler):
    """GET /kerasgpu/api/v1/tensorflow?kernel_id=... (or ?kernel_name=...): what TensorFlow sees there.

    `refresh=1` skips the cache (after installing TensorFlow, or a kernel restart).
    """

    def initialize(self, state: State, probe: tfprobe.TFProbe) -> None:
        super().initialize(state)
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
        self.finish(json.dumps(answer))

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
            "verdict": tfprobe.verdict(result, driver, status, reason),
            "stderr_tail": result.stderr_tail if result and status != tfprobe.OK else "",
            "cached": cached,
            "probed_at": result.probed_at if result else None,
            "probe_seconds": round(result.seconds, 3) if result else None,
        }

    async def _driver(self) -> dict[str, Any]:
        """The driver's view from the server's one sampler (read in the executor), never raising."""
        sampler = self.state.sampler

        def read() -> dict[str, Any]:
            status = sampler.status()
            return {"status": status.to_json(), "devices": [d.to_json() for d in sampler.devices()]}

        try:
            return await self.state.run(read)
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


def _seconds(name: str, default: float, config) -> float:
    """A setting from `c.KerasGPU.<name>` when it exists, else $KERASGPU_<NAME>, else the default."""
    value = getattr(config, name, None)
    if value is None:
        value = os.environ.get(f"KERASGPU_{name.upper()}") or default
    try:
        return float(value)
    except ValueError:
        log.warning(
            "kerasgpu: KERASGPU_%s=%r is not a number of seconds; using %g", name.upper(), value, default
        )
        return float(default)


def tf_routes(base_url: str, state: State) -> list[tuple]:
    """The URL specs of the snippet catalog and the TensorFlow probe (one probe cache per server)."""
    probe = tfprobe.TFProbe(
        timeout=_seconds("tf_probe_timeout", tfprobe.PROBE_TIMEOUT_S, state.config),
        ttl=_seconds("tf_probe_ttl", tfprobe.CACHE_TTL_S, state.config),
    )
    return [
        (url_path_join(base_url, API, "snippets"), SnippetsHandler, {"state": state}),
        (url_path_join(base_url, API, "tensorflow"), TensorFlowHandler, {"state": state, "probe": probe}),
    ]
