"""GPU samples while the supervisor works, and which w2s job holds which GPU memory.

Every `GPU_SAMPLE_S` seconds the supervisor's tick reads every GPU through NVML (nvml.py) and stores
one row per GPU and one per (running job, GPU it holds memory on) (`Store.record_gpu_sample`, which
also keeps each job's peak memory and mean utilisation). A GPU process belongs to a job when its pid
is in the job's process tree: the launcher, the trainer under it, and any process they started,
as processes.py tracks them to kill them (`Attempt.seen`, refreshed every poll).

NVML is looked for once, at the first tick: on a machine without an NVIDIA driver the sampler turns
itself off and each tick then costs one attribute test. Sampling is an aid, never a reason to stop
work: a store error while writing a sample is said once in the log and sampling stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING

from w2s_core.errors import W2SError
from w2s_core.store import Store
from w2s_core.store.gpus import GpuSampleRow, JobGpuRow
from w2s_core.supervision import processes
from w2s_core.supervision.nvml import GpuState, read_gpus

if TYPE_CHECKING:
    from w2s_core.store.rows import JobRow
    from w2s_core.supervision.runner import Attempt

GPU_SAMPLE_S = 5.0


def gpu_rows(gpus: Iterable[GpuState]) -> list[GpuSampleRow]:
    return [
        {
            "gpu": g.index,
            "name": g.name,
            "util_pct": g.util_pct,
            "mem_used_mb": g.mem_used_mb,
            "mem_total_mb": g.mem_total_mb,
            "temp_c": g.temp_c,
            "power_w": g.power_w,
        }
        for g in gpus
    ]


def job_gpu_rows(gpus: Iterable[GpuState], owner: Mapping[int, str]) -> list[JobGpuRow]:
    """The memory each job's processes hold on each GPU (`owner`: pid -> job hash); processes of no job are left out."""
    held: dict[tuple[str, int], float] = {}
    util: dict[int, float | None] = {}
    for gpu in gpus:
        util[gpu.index] = gpu.util_pct
        for proc in gpu.processes:
            if proc.pid in owner:
                key = (owner[proc.pid], gpu.index)
                held[key] = held.get(key, 0.0) + proc.used_mb
    return [{"job_hash": h, "gpu": i, "mem_mb": mb, "util_pct": util[i]} for (h, i), mb in held.items()]


def attempt_pids(running: Mapping[str, Attempt]) -> dict[int, str]:
    """pid -> job hash for the jobs this supervisor runs: each one's root process and every descendant seen."""
    return {pid: job_hash for job_hash, a in running.items() for pid in (a.ident.pid, *a.seen)}


def row_pids(rows: Iterable[JobRow]) -> dict[int, str]:
    """pid -> job hash for running jobs as the store records them (what `w2s gpus` has): their live process trees."""
    owner: dict[int, str] = {}
    for row in rows:
        if not row["pid"]:
            continue
        ident = processes.Identity(row["pid"], row["pgid"] or row["pid"], row["proc_start"] or 0.0)
        owner.update({proc.pid: row["hash"] for proc in processes.tree(ident)})
    return owner


class GpuSampler:
    """The supervisor's GPU sampling (see the module docstring). `nvml`: a stand-in module for tests."""

    def __init__(
        self,
        store: Store,
        echo: Callable[[str], None] = print,
        every_s: float | None = None,
        nvml: ModuleType | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.echo, self.nvml, self.clock = store, echo, nvml, clock
        self.every_s = GPU_SAMPLE_S if every_s is None else every_s  # read at construction: tests shorten it
        self.enabled: bool | None = None  # None until the first look for NVML
        self.last = float("-inf")
        self.latest: list[GpuState] | None = None  # the last reading (reusable without asking NVML again)

    def tick(self, running: Mapping[str, Attempt]) -> None:
        """Sample if NVML is there and `every_s` has passed since the last sample."""
        if self.enabled is False:
            return
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        self.sample(now, running)

    def sample(self, now: float, running: Mapping[str, Attempt]) -> bool:
        """Read the GPUs and store them with the jobs holding their memory; False when nothing was stored."""
        gpus = read_gpus(self.nvml)
        if gpus is None:
            if self.enabled is None:  # no NVML or no driver: off for this supervisor's life
                self.enabled = False
            return False  # NVML worked before: a passing failure, try again next time
        self.enabled, self.latest = True, gpus
        try:
            self.store.record_gpu_sample(now, gpu_rows(gpus), job_gpu_rows(gpus, attempt_pids(running)))
        except W2SError as exc:
            self.enabled = False
            self.echo(f"GPU sampling stopped: {exc}")
            return False
        return True
