"""The machine's NVIDIA GPUs as NVML reports them: utilisation, memory, temperature, power, and which
processes hold memory on each. What `w2s gpus`, the supervisor's sampling (sampling.py) and placement read.

NVML comes from `nvidia-ml-py` (`import pynvml`, what nvitop builds on), imported inside the functions:
never torch, so the supervisor and the CLI stay light. Every call opens NVML and closes it again
(`nvmlShutdown` always runs), so nothing stays attached to the driver between samples.

Each device query may fail on its own (a GPU or driver that cannot report power, temperature or
utilisation raises NVMLError_NotSupported): the GPU is still listed, that figure is None. A device
whose handle or memory cannot be read is listed with 0 MiB total (so 0 free: nothing is placed on it).
A process NVML reports without `usedGpuMemory` (Windows WDDM, some containers) counts 0.

Units: memory in MiB (2**20 bytes, as nvidia-smi prints "MiB"), power in W, temperature in °C.
Indices are NVML's physical ones (the order nvidia-smi lists), which `CUDA_VISIBLE_DEVICES` does not
renumber. Process ids are as the driver sees them: inside a container with its own pid namespace they
are the host's pids and match no job (the job columns then stay empty).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

MIB = float(2**20)

T = TypeVar("T")


@dataclass(frozen=True)
class GpuProcess:
    """A process holding memory on one GPU."""

    pid: int
    used_mb: float


@dataclass(frozen=True)
class GpuState:
    """One GPU at one moment; a figure the device cannot report is None."""

    index: int
    uuid: str
    name: str
    util_pct: float | None
    mem_used_mb: float
    mem_total_mb: float
    temp_c: float | None
    power_w: float | None
    processes: tuple[GpuProcess, ...]

    @property
    def mem_free_mb(self) -> float:
        return max(0.0, self.mem_total_mb - self.mem_used_mb)


def _module(nvml: ModuleType | None) -> tuple[ModuleType | None, str | None]:
    """The NVML bindings (the one given, else `pynvml`), or None and why not."""
    if nvml is not None:
        return nvml, None
    try:
        import pynvml
    except ImportError as exc:
        return None, f"the NVML bindings are not installed (pip install nvidia-ml-py): {exc}"
    return pynvml, None


def _text(value: Any) -> str:
    """Old bindings return bytes for names and UUIDs, newer ones str."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def probe(nvml: ModuleType | None = None) -> tuple[list[GpuState] | None, str | None]:
    """(every GPU, None), or (None, the one-line reason) when NVML or the driver is missing."""
    module, problem = _module(nvml)
    if module is None:
        return None, problem
    try:
        module.nvmlInit()
    except (module.NVMLError, OSError) as exc:
        return None, f"NVML cannot start ({str(exc) or type(exc).__name__}): is the NVIDIA driver installed?"
    try:
        try:
            count = module.nvmlDeviceGetCount()
        except module.NVMLError as exc:
            return None, f"NVML cannot count the GPUs ({str(exc) or type(exc).__name__})"
        return [_read_device(module, index) for index in range(count)], None
    finally:
        try:
            module.nvmlShutdown()
        except module.NVMLError:
            pass  # nothing left to release: the next nvmlInit starts afresh


def read_gpus(nvml: ModuleType | None = None) -> list[GpuState] | None:
    """Every GPU NVML sees, in its physical order; None when NVML or the driver is missing
    (`nvml_problem` says why). `nvml`: a stand-in module for tests (default: `import pynvml`)."""
    return probe(nvml)[0]


def nvml_problem(nvml: ModuleType | None = None) -> str | None:
    """Why `read_gpus` returns None, in one line; None when NVML works."""
    return probe(nvml)[1]


def _read_device(nvml: ModuleType, index: int) -> GpuState:
    """One GPU; each figure on its own, so one unsupported query leaves the others."""

    def ask(query: Callable[[], T], default: T) -> T:
        try:
            return query()
        except nvml.NVMLError:
            return default

    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as exc:
        return GpuState(index, "", f"unreadable GPU ({exc})", None, 0.0, 0.0, None, None, ())
    memory = ask(lambda: nvml.nvmlDeviceGetMemoryInfo(handle), None)
    util = ask(lambda: nvml.nvmlDeviceGetUtilizationRates(handle), None)
    temp = ask(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU), None)
    power_mw = ask(lambda: nvml.nvmlDeviceGetPowerUsage(handle), None)
    return GpuState(
        index=index,
        uuid=_text(ask(lambda: nvml.nvmlDeviceGetUUID(handle), "")),
        name=_text(ask(lambda: nvml.nvmlDeviceGetName(handle), "NVIDIA GPU")),
        util_pct=None if util is None else float(util.gpu),
        mem_used_mb=0.0 if memory is None else memory.used / MIB,
        mem_total_mb=0.0 if memory is None else memory.total / MIB,
        temp_c=None if temp is None else float(temp),
        power_w=None if power_mw is None else power_mw / 1000.0,
        processes=_processes(ask(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle), [])),
    )


def _processes(reported: list) -> tuple[GpuProcess, ...]:
    """Compute processes by pid (one listed twice, e.g. on two MIG instances, adds up)."""
    used: dict[int, float] = {}
    for proc in reported:
        used[int(proc.pid)] = used.get(int(proc.pid), 0.0) + (getattr(proc, "usedGpuMemory", None) or 0) / MIB
    return tuple(GpuProcess(pid, mb) for pid, mb in sorted(used.items()))
