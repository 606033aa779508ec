"""What a trial's process uses, sampled once per epoch in the trial worker and reported with its metrics, so the
MLflow run of each trial shows it (the UI's "System metrics" tab reads the ``system/`` metrics): several trials
packed on one GPU or one node can be seen side by side. MLflow's own system-metrics monitor samples the process
it runs in, and every MLflow write here happens in the sweep driver, so the trial samples itself.

Keys (``system/``): ``trial_cpu_percentage`` (this process since the last sample, 100 = one core),
``trial_memory_megabytes`` (resident), ``cpu_utilization_percentage`` and ``system_memory_usage_megabytes`` /
``_percentage`` (the node), and on CUDA ``trial_gpu_memory_megabytes`` (the epoch's peak allocated by this
process), ``gpu_utilization_percentage`` and ``gpu_memory_usage_megabytes`` (the device, through NVML, when
``nvidia-ml-py`` is installed)."""

from __future__ import annotations

from typing import Any

import psutil

PREFIX = "system/"


class SystemSampler:
    """Call :meth:`sample` once per epoch; CPU percentages cover the time since the previous call."""

    def __init__(self, device: str = "cpu"):
        self.process = psutil.Process()
        self.device = device
        self.process.cpu_percent(None)  # the first call only starts the interval
        psutil.cpu_percent(None)

    def sample(self) -> dict[str, float]:
        memory = psutil.virtual_memory()
        out = {"trial_cpu_percentage": self.process.cpu_percent(None),
               "trial_memory_megabytes": self.process.memory_info().rss / 2**20,
               "cpu_utilization_percentage": psutil.cpu_percent(None),
               "system_memory_usage_megabytes": (memory.total - memory.available) / 2**20,
               "system_memory_usage_percentage": memory.percent}
        if self.device.startswith("cuda"):
            out.update(_cuda())
        return {PREFIX + k: float(v) for k, v in out.items()}


def _cuda() -> dict[str, Any]:
    import torch
    out: dict[str, Any] = {"trial_gpu_memory_megabytes": torch.cuda.max_memory_allocated() / 2**20}
    torch.cuda.reset_peak_memory_stats()
    try:  # NVML (nvidia-ml-py): the whole device, every process on it
        out["gpu_utilization_percentage"] = torch.cuda.utilization()
        out["gpu_memory_usage_megabytes"] = torch.cuda.device_memory_used() / 2**20
    except Exception:  # noqa: BLE001 -- no NVML here: the process's own figure stands
        pass
    return out
