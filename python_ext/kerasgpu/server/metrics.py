"""GET /kerasgpu/metrics: the sampler's latest reading as Prometheus text."""

from __future__ import annotations

import tornado
from jupyter_server.auth.decorator import authorized
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .base import run_blocking
from .gpu import SamplerHandler

# Prometheus' text exposition format (what its scrapers ask for; Prometheus 3 refuses JSON).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsHandler(SamplerHandler):
    """GET /kerasgpu/metrics: Prometheus text, a gauge per metric labelled by GPU index, uuid and name."""

    GAUGES = (
        ("utilization_gpu", "kerasgpu_utilization_gpu_percent", "GPU utilization (%)"),
        ("utilization_memory", "kerasgpu_utilization_memory_percent", "Memory controller utilization (%)"),
        ("memory_used_mib", "kerasgpu_memory_used_bytes", "GPU memory used (bytes)"),
        ("memory_total_mib", "kerasgpu_memory_total_bytes", "GPU memory total (bytes)"),
        ("temperature_c", "kerasgpu_temperature_celsius", "GPU temperature (degrees C)"),
        ("power_draw_w", "kerasgpu_power_draw_watts", "Power draw (W)"),
        ("power_limit_w", "kerasgpu_power_limit_watts", "Power limit (W)"),
        ("clock_sm_mhz", "kerasgpu_clock_sm_hertz", "SM clock (Hz)"),
        ("clock_mem_mhz", "kerasgpu_clock_memory_hertz", "Memory clock (Hz)"),
        # NVML's byte counters only: absent with nvidia-smi, which cannot measure them.
        ("pcie_rx_mib_s", "kerasgpu_pcie_rx_bytes_per_second", "PCIe traffic received by the GPU (bytes/s)"),
        ("pcie_tx_mib_s", "kerasgpu_pcie_tx_bytes_per_second", "PCIe traffic sent by the GPU (bytes/s)"),
        ("nvlink_rx_mib_s", "kerasgpu_nvlink_rx_bytes_per_second", "NVLink data received (bytes/s)"),
        ("nvlink_tx_mib_s", "kerasgpu_nvlink_tx_bytes_per_second", "NVLink data sent (bytes/s)"),
    )
    SCALE = {
        "pcie_rx_mib_s": 1024 * 1024,
        "pcie_tx_mib_s": 1024 * 1024,
        "nvlink_rx_mib_s": 1024 * 1024,
        "nvlink_tx_mib_s": 1024 * 1024,
        "memory_used_mib": 1024 * 1024,
        "memory_total_mib": 1024 * 1024,
        "clock_sm_mhz": 1e6,
        "clock_mem_mhz": 1e6,
    }

    @tornado.web.authenticated
    @authorized
    async def get(self):
        sampler = self.sampler
        samples, status, devices = await run_blocking(
            lambda: (sampler.latest(), sampler.status(), sampler.devices())
        )
        names = {d.uuid: d.name for d in devices}
        registry = CollectorRegistry()
        registry.register(_Collector(self, samples, names, status.state == "ok"))
        # APIHandler.finish would set application/json.
        self.finish(generate_latest(registry), set_content_type=METRICS_CONTENT_TYPE)


class _Collector:
    def __init__(self, handler: MetricsHandler, samples, names, up: bool):
        self.handler, self.samples, self.names, self.up = handler, samples, names, up

    def collect(self):
        up = GaugeMetricFamily("kerasgpu_up", "1 when the GPUs can be read, else 0")
        up.add_metric([], 1.0 if self.up else 0.0)
        yield up
        for field, name, doc in self.handler.GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["gpu", "uuid", "name"])
            scale = self.handler.SCALE.get(field, 1)
            for s in self.samples:
                value = getattr(s, field)
                if value is not None:  # a value the GPU lacks is absent, never 0
                    gauge.add_metric([str(s.index), s.uuid, self.names.get(s.uuid, "")], value * scale)
            yield gauge
