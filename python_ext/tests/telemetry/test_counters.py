"""PCIe / NVLink throughput from NVML's cumulative counters: the arithmetic, on NVML's own
structures (pynvml's ctypes `c_nvmlFieldValue_t`), and what the nvidia-smi backend says instead."""

from __future__ import annotations

import pynvml
import pytest
from kerasgpu.telemetry import counters

MIB = 1024 * 1024


def field_values(answers):
    """An array of NVML's real field-value structs, as nvmlDeviceGetFieldValues returns it."""
    arr = (pynvml.c_nvmlFieldValue_t * len(answers))()
    for slot, (ret, value, ts) in zip(arr, answers, strict=True):
        slot.nvmlReturn = ret
        slot.value.ullVal = value
        slot.timestamp = ts
    return arr


OK = pynvml.NVML_SUCCESS
NS = pynvml.NVML_ERROR_NOT_SUPPORTED


def test_the_request_sums_nvlink_over_every_link_and_asks_pcie_per_gpu():
    req = counters.request(pynvml)
    assert req[:2] == [pynvml.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, pynvml.NVML_FI_DEV_PCIE_COUNT_RX_BYTES]
    assert req[2:] == [
        (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 0xFFFFFFFF),
        (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, 0xFFFFFFFF),
    ]


def test_rates_are_bytes_over_nvml_timestamps_in_mib_per_second():
    rates = counters.Rates()
    first = counters.parse(
        pynvml, field_values([(OK, 10 * MIB, 1_000_000)] * 2 + [(OK, 1024, 1_000_000)] * 2)
    )
    assert rates.update(first) == {"pcie_tx": None, "pcie_rx": None, "nvlink_tx": None, "nvlink_rx": None}
    # half a second later: 5 MiB more sent over PCIe, 1 MiB received; NVLink counts KiB: 2048 KiB more sent
    later = counters.parse(
        pynvml,
        field_values(
            [
                (OK, 15 * MIB, 1_500_000),
                (OK, 11 * MIB, 1_500_000),
                (OK, 1024 + 2048, 1_500_000),
                (OK, 1024, 1_500_000),
            ]
        ),
    )
    got = rates.update(later)
    assert got["pcie_tx"] == pytest.approx(10.0)  # 5 MiB in 0.5 s
    assert got["pcie_rx"] == pytest.approx(2.0)
    assert got["nvlink_tx"] == pytest.approx(4.0)  # 2 MiB in 0.5 s
    assert got["nvlink_rx"] == pytest.approx(0.0)


def test_a_wrapped_or_reset_counter_gives_no_rate_for_that_interval_then_recovers():
    rates = counters.Rates()
    rates.update(counters.parse(pynvml, field_values([(OK, 100 * MIB, 1_000_000)] + [(NS, 0, 0)] * 3)))
    wrapped = rates.update(
        counters.parse(pynvml, field_values([(OK, 3 * MIB, 2_000_000)] + [(NS, 0, 0)] * 3))
    )
    assert wrapped["pcie_tx"] is None
    again = rates.update(counters.parse(pynvml, field_values([(OK, 4 * MIB, 3_000_000)] + [(NS, 0, 0)] * 3)))
    assert again["pcie_tx"] == pytest.approx(1.0)


def test_the_same_reading_twice_is_not_a_rate_of_zero_or_infinity():
    rates = counters.Rates()
    same = field_values([(OK, MIB, 5_000_000)] * 4)
    rates.update(counters.parse(pynvml, same))
    assert rates.update(counters.parse(pynvml, same)) == {
        "pcie_tx": None,
        "pcie_rx": None,
        "nvlink_tx": None,
        "nvlink_rx": None,
    }


def test_unsupported_fields_are_none_with_a_reason_per_link_kind():
    no_nvlink = counters.parse(pynvml, field_values([(OK, 1, 1)] * 2 + [(NS, 0, 0)] * 2))
    assert counters.reasons(no_nvlink) == (None, counters.NVLINK_UNSUPPORTED)
    nothing = counters.parse(pynvml, field_values([(NS, 0, 0)] * 4))
    assert counters.reasons(nothing) == (counters.PCIE_UNSUPPORTED, counters.NVLINK_UNSUPPORTED)
    assert counters.reasons(None) == (counters.PCIE_UNSUPPORTED, counters.NVLINK_UNSUPPORTED)


def test_nvidia_smi_backend_says_why_throughput_is_missing(fake_smi):
    from kerasgpu.telemetry import probe

    snap = probe(backend="smi")
    assert snap.status.state == "ok"
    for d in snap.devices:
        assert d.pcie_throughput_reason == d.nvlink_throughput_reason == counters.SMI_REASON
        assert "nvidia-ml-py" in d.pcie_throughput_reason
    for s in snap.samples:
        assert s.pcie_tx_mib_s is None and s.nvlink_rx_mib_s is None
