"""Device slots: where jobs may run at once, and which job holds which slot.

One slot per GPU by default (`jobs_per_gpu` to share one), each job seeing only its GPUs through
`CUDA_VISIBLE_DEVICES`; with no GPU, `parallel` CPU slots sharing the cores. A job that needs several
GPUs (`[launch] gpus_per_job`) holds one slot on each of them at once (`SlotTable.take_gpus`); which
GPUs, and whether they have the memory a job asks for, placement.py decides.

The pool of GPUs w2s may use is $CUDA_VISIBLE_DEVICES when the user set it (indices or UUIDs, passed
on to jobs as written), else every GPU nvidia-smi lists. nvidia-smi's indices are NVML's (PCI bus
order) while CUDA numbers GPUs fastest first unless told otherwise, so slots from nvidia-smi also give
jobs CUDA_DEVICE_ORDER=PCI_BUS_ID (unless the user set an order): index 1 is then the same GPU for the
job, for `w2s gpus` and for the free memory placement reads. GPUs are found without importing torch,
so the supervisor stays a light process.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    name: str  # "cuda:0", "cuda:1,3" (a job on two GPUs), "cpu": recorded as the job's device
    env: dict  # what the job's environment gets on top of the supervisor's
    gpus: tuple[str, ...] = ()  # its GPUs' ids in the pool, as CUDA_VISIBLE_DEVICES spells them; () on CPU


def visible_gpus() -> list[str]:
    """GPU indices jobs may use: $CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists (no torch import)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() not in ("", "-1")]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def device_slots(parallel: int = 1, jobs_per_gpu: int = 1, gpus: list[str] | None = None) -> list[Slot]:
    """`jobs_per_gpu` slots per GPU; with no GPU, `parallel` CPU slots sharing the cores."""
    from_driver = gpus is None and "CUDA_VISIBLE_DEVICES" not in os.environ  # nvidia-smi's (NVML's) indices
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        order = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"} if from_driver and "CUDA_DEVICE_ORDER" not in os.environ else {}
        return [
            Slot(f"cuda:{g}", {"CUDA_VISIBLE_DEVICES": g, **order}, (g,)) for g in gpus for _ in range(jobs_per_gpu)
        ]
    env = {"CUDA_VISIBLE_DEVICES": ""}
    if parallel > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    return [Slot("cpu", env) for _ in range(parallel)]


def gpu_count(device: str) -> int:
    """How many GPUs a job recorded on `device` ("cuda:1,3": 2) runs on; 0 on the CPU."""
    return len(device[len("cuda:") :].split(",")) if device.startswith("cuda:") else 0


class SlotTable:
    """Which job holds which slot. A slot is handed back only once its job's whole process tree is gone."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self._holder: dict[int, str] = {}  # slot index -> job hash
        # placement's bookkeeping, dropped with the job's slots: the memory (MB per GPU) each job was
        # placed for, which it may not have allocated yet, and NVML's last reading (monotonic time, GPUs)
        self.reserved_mb: dict[str, float] = {}
        self.gpu_memory: tuple[float, list | None] | None = None

    def free(self) -> list[int]:
        return [i for i in range(len(self.slots)) if i not in self._holder]

    def take(self, job_hash: str) -> Slot | None:
        """The first free slot, now held by the job; None when every slot is busy."""
        free = self.free()
        if not free:
            return None
        self._holder[free[0]] = job_hash
        return self.slots[free[0]]

    def gpus(self) -> list[str]:
        """The pool: every GPU with a slot, in slot order (empty on a CPU-only machine)."""
        return list(dict.fromkeys(g for s in self.slots for g in s.gpus))

    def free_gpus(self) -> list[str]:
        """The GPUs with a free slot, in slot order."""
        return list(dict.fromkeys(g for i in self.free() for g in self.slots[i].gpus))

    def holders(self, gpu: str) -> set[str]:
        """The jobs holding a slot on `gpu`."""
        return {job for i, job in self._holder.items() if gpu in self.slots[i].gpus}

    def take_gpus(self, job_hash: str, gpus: list[str], reserve_mb: float = 0.0) -> Slot:
        """Hold a free slot on each of `gpus` (each must have one) for the job: one slot naming them all."""
        taken = [self._hold(job_hash, gpu) for gpu in gpus]
        if None in taken:
            self.release(job_hash)
            raise ValueError(f"no free slot on GPU(s) {gpus} for job {job_hash[:10]}")
        if reserve_mb:
            self.reserved_mb[job_hash] = reserve_mb
        if len(gpus) == 1:
            return self.slots[taken[0]]  # type: ignore[index]
        ids = ",".join(gpus)
        return Slot(f"cuda:{ids}", {**self.slots[taken[0]].env, "CUDA_VISIBLE_DEVICES": ids}, tuple(gpus))  # type: ignore[index]

    def take_device(self, job_hash: str, device: str) -> None:
        """For a re-attached job: hold a free slot of each device it runs on ("cuda:1,3": one on GPU 1
        and one on GPU 3), where this supervisor has one."""
        if device.startswith("cuda:"):
            for gpu in device[len("cuda:") :].split(","):
                self._hold(job_hash, gpu)
            return
        for i in self.free():
            if self.slots[i].name == device:
                self._holder[i] = job_hash
                return

    def _hold(self, job_hash: str, gpu: str) -> int | None:
        """Hold the first free slot on `gpu` for the job; its index, or None when there is none."""
        for i in self.free():
            if self.slots[i].gpus == (gpu,):
                self._holder[i] = job_hash
                return i
        return None

    def release(self, job_hash: str) -> None:
        for i, holder in list(self._holder.items()):
            if holder == job_hash:
                del self._holder[i]
        self.reserved_mb.pop(job_hash, None)
