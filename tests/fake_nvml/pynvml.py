"""A stand-in for `pynvml` (nvidia-ml-py) with two GPUs and their processes, for machines without one.

Two ways in, both at the import boundary:
- in a test: `FakeNvml(gpus)` is a module-like object to pass as `nvml=` or to put in
  `sys.modules["pynvml"]`;
- in a subprocess: put this folder first on PYTHONPATH and `import pynvml` finds this file; $FAKE_NVML
  then holds the GPUs as JSON (default `DEFAULT_GPUS`), or "missing" for a machine without a driver.

A GPU is a dict: name, uuid, util (%), used_mb, total_mb, temp (°C), power_w, processes ([pid, MiB or
None]), and `fail`: the queries that raise NVMLError_NotSupported on it ("power", "temp", "util",
"memory", "processes"). `processes` may also be a callable returning that list (read at each query).
Only the calls `w2s_core.supervision.nvml` makes are here; `inits` and `shutdowns` count them.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
MIB = 2**20

DEFAULT_GPUS = [
    {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-fake-0000",
        "util": 87,
        "used_mb": 41000,
        "total_mb": 81559,
        "temp": 64,
        "power_w": 312.5,
        "processes": [[4242, 40000], [4343, None]],
    },
    {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-fake-0001",
        "util": 3,
        "used_mb": 600,
        "total_mb": 81559,
        "temp": 35,
        "power_w": None,
        "fail": ["power"],
        "processes": [],
    },
]


class NVMLError(Exception):
    def __init__(self, value: int = 999, text: str = "Unknown Error") -> None:
        super().__init__(text)
        self.value = value


class NVMLError_NotSupported(NVMLError):  # pynvml's own spelling
    def __init__(self) -> None:
        super().__init__(3, "Not Supported")


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(12, "NVML Shared Library Not Found")


class FakeNvml:
    """One fake machine: `gpus` as in the module docstring, None for a machine without a driver."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def __init__(self, gpus: list[dict] | None = DEFAULT_GPUS) -> None:
        self.gpus = gpus
        self.inits = 0
        self.shutdowns = 0
        self.started = False

    def nvmlInit(self) -> None:
        if self.gpus is None:
            raise NVMLError_LibraryNotFound()
        self.inits += 1
        self.started = True

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1
        self.started = False

    def _gpu(self, handle: int, query: str) -> dict:
        if not self.started:
            raise NVMLError(1, "Uninitialized")
        gpu = self.gpus[handle]
        if query in gpu.get("fail", ()):
            raise NVMLError_NotSupported()
        return gpu

    def nvmlDeviceGetCount(self) -> int:
        if not self.started:
            raise NVMLError(1, "Uninitialized")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._gpu(index, "handle")
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:  # old bindings return bytes; nvml.py decodes them
        return self._gpu(handle, "name")["name"].encode()

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._gpu(handle, "uuid")["uuid"]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._gpu(handle, "util")["util"], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        gpu = self._gpu(handle, "memory")
        used, total = gpu["used_mb"] * MIB, gpu["total_mb"] * MIB
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == NVML_TEMPERATURE_GPU
        return self._gpu(handle, "temp")["temp"]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self._gpu(handle, "power")["power_w"] * 1000)  # milliwatts

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        procs = self._gpu(handle, "processes")["processes"]
        procs = procs() if callable(procs) else procs
        return [SimpleNamespace(pid=pid, usedGpuMemory=None if mb is None else mb * MIB) for pid, mb in procs]


def _from_env() -> FakeNvml:
    spec = os.environ.get("FAKE_NVML", "")
    if spec == "missing":
        return FakeNvml(None)
    return FakeNvml(json.loads(spec) if spec else DEFAULT_GPUS)


_machine = _from_env()

# `import pynvml` in a subprocess: the module's functions are those of the machine $FAKE_NVML describes
for _name in dir(FakeNvml):
    if _name.startswith("nvml"):
        globals()[_name] = getattr(_machine, _name)
