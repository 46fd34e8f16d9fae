"""GPU utilisation and memory from NVIDIA's management library (NVML), for the metrics endpoint.

`nvidia-ml-py` (NVIDIA's own `pynvml` bindings) reads the driver's counters without CUDA or torch.
On a machine without an NVIDIA GPU or driver there is nothing to read, and the series are absent,
not zero: a dashboard then shows "no data" rather than an idle GPU that does not exist.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

_LOCK = threading.Lock()
_STATE: dict[str, bool] = {}


@dataclass(frozen=True)
class GpuReading:
    index: str  # the device index NVML reports, as a label
    name: str
    utilization_ratio: float  # share of the last sample period a kernel ran (0..1)
    memory_used_bytes: int
    memory_total_bytes: int


def read_gpus() -> list[GpuReading]:
    """One reading per visible NVIDIA GPU; [] when there is no driver or no GPU (never raises)."""
    try:
        import pynvml
    except ImportError:
        return []
    with _LOCK:
        if "ready" not in _STATE:
            try:
                pynvml.nvmlInit()
                _STATE["ready"] = True
            except pynvml.NVMLError:
                _STATE["ready"] = False
        if not _STATE["ready"]:
            return []
        out = []
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                util = pynvml.nvmlDeviceGetUtilizationRates(handle)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                name = pynvml.nvmlDeviceGetName(handle)
                out.append(
                    GpuReading(
                        index=str(i),
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        utilization_ratio=util.gpu / 100.0,
                        memory_used_bytes=int(memory.used),
                        memory_total_bytes=int(memory.total),
                    )
                )
        except pynvml.NVMLError:
            return []
        return out
