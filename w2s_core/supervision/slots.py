"""Device slots: where jobs may run at once, and which job holds which slot.

One slot per GPU by default (`jobs_per_gpu` to share one), each job seeing only its GPU through
`CUDA_VISIBLE_DEVICES`; with no GPU, `parallel` CPU slots sharing the cores. GPUs are found without
importing torch ($CUDA_VISIBLE_DEVICES, else nvidia-smi), so the supervisor stays a light process.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    name: str  # "cuda:0", "cpu": recorded as the job's device
    env: dict  # what the job's environment gets on top of the supervisor's


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
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        return [Slot(f"cuda:{g}", {"CUDA_VISIBLE_DEVICES": g}) for g in gpus for _ in range(jobs_per_gpu)]
    env = {"CUDA_VISIBLE_DEVICES": ""}
    if parallel > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    return [Slot("cpu", env) for _ in range(parallel)]


class SlotTable:
    """Which job holds which slot. A slot is handed back only once its job's whole process tree is gone."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self._holder: dict[int, str] = {}  # slot index -> job hash

    def free(self) -> list[int]:
        return [i for i in range(len(self.slots)) if i not in self._holder]

    def take(self, job_hash: str) -> Slot | None:
        """The first free slot, now held by the job; None when every slot is busy."""
        free = self.free()
        if not free:
            return None
        self._holder[free[0]] = job_hash
        return self.slots[free[0]]

    def take_device(self, job_hash: str, device: str) -> None:
        """For a re-attached job: hold a free slot of the device it runs on, if this supervisor has one."""
        for i in self.free():
            if self.slots[i].name == device:
                self._holder[i] = job_hash
                return

    def release(self, job_hash: str) -> None:
        for i, holder in list(self._holder.items()):
            if holder == job_hash:
                del self._holder[i]
