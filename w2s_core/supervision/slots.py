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

Issue 14, honest device use:
- `nvidia-smi -L` is read (`parse_listing`): a GPU in MIG mode is used through its MIG instances, each
  a slot addressed by its UUID (`MIG-…`, what CUDA_VISIBLE_DEVICES takes), each with the memory its
  profile names ("3g.40gb": 40 GB); CUDA shows a process one MIG instance only, so a multi-GPU job is
  never placed on them (placement.py).
- Without nvidia-smi (many containers): NVML's GPUs, else, where an NVIDIA driver is present
  (/dev/nvidiactl, /proc/driver/nvidia), `torch.cuda.device_count()` asked of a subprocess
  (`torch_cuda_count`: the supervisor never imports torch; asked once per process, with a timeout).
- Every job learns the device its slot names (`W2S_DEVICE`, "cuda:0", "cuda:1,3" or "cpu"): a trainer
  placed on a GPU that finds no CUDA (a CPU-only torch, a missing driver) fails at once, saying so,
  instead of training on the CPU while the store says cuda (w2s_core.training.device).
- A multi-GPU job gets a free `main_process_port` of its own (`pick_port`), held with its slots.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 60.0  # importing torch and initialising CUDA on a cold machine
PORT_BASE, PORT_SPAN = 29500, 2000  # where multi-GPU jobs' rendezvous ports are looked for
DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version")
_GPU_LINE = re.compile(r"^GPU (\d+): (.*?) \(UUID: (GPU-[^)\s]+)\)")
_MIG_LINE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)\s]+)\)")
_PROFILE_GB = re.compile(r"\.(\d+)gb$")
_torch_count: list[int | None] = []  # torch_cuda_count's answer, once per process


@dataclass(frozen=True)
class Slot:
    name: str  # "cuda:0", "cuda:1,3" (a job on two GPUs), "cpu": recorded as the job's device
    env: dict  # what the job's environment gets on top of the supervisor's
    gpus: tuple[str, ...] = ()  # its GPUs' ids in the pool, as CUDA_VISIBLE_DEVICES spells them; () on CPU
    port: int | None = None  # a multi-GPU job's main_process_port (its own while it runs)
    memory_gib: float | None = None  # the smallest total memory of its GPUs, when placement read it


@dataclass(frozen=True)
class ListedGpu:
    """A GPU as `nvidia-smi -L` lists it, with its MIG instances (profile, UUID) if in MIG mode."""

    index: int
    name: str
    uuid: str
    migs: tuple[tuple[str, str], ...] = ()


def parse_listing(text: str) -> list[ListedGpu]:
    """`nvidia-smi -L`'s GPUs, each with the MIG instances listed under it."""
    gpus: list[ListedGpu] = []
    for line in text.splitlines():
        if match := _GPU_LINE.match(line):
            gpus.append(ListedGpu(int(match.group(1)), match.group(2).strip(), match.group(3)))
        elif (match := _MIG_LINE.match(line)) and gpus:
            last = gpus[-1]
            gpus[-1] = dataclasses.replace(last, migs=(*last.migs, (match.group(1), match.group(3))))
    return gpus


def pool_ids(listing: list[ListedGpu]) -> list[str]:
    """The ids jobs are given: a GPU's index, or the UUIDs of its MIG instances when it has some."""
    return [i for g in listing for i in ([uuid for _, uuid in g.migs] or [str(g.index)])]


def mig_memory_gb(profile: str) -> float | None:
    """The memory a MIG profile names ("3g.40gb": 40.0), None if it names none."""
    match = _PROFILE_GB.search(profile)
    return float(match.group(1)) if match else None


def nvidia_smi_listing() -> list[ListedGpu] | None:
    """`nvidia-smi -L` parsed; None when nvidia-smi is missing or fails."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_listing(out.stdout) if out.returncode == 0 else None


def driver_present() -> bool:
    return any(Path(f).exists() for f in DRIVER_FILES)


def torch_cuda_count(timeout: float = PROBE_TIMEOUT_S) -> int | None:
    """`torch.cuda.device_count()` in a subprocess (the supervisor never imports torch), asked once per
    process; None when the probe fails or times out."""
    if not _torch_count:
        code = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
        try:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
            _torch_count.append(int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None)
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
            _torch_count.append(None)
    return _torch_count[0]


def visible_gpus() -> list[str]:
    """GPU ids jobs may use: $CUDA_VISIBLE_DEVICES if set, else what `nvidia-smi -L` lists (MIG instances
    by UUID), else NVML's GPUs, else torch's count where a driver is present (no torch import here)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() not in ("", "-1")]
    listing = nvidia_smi_listing()
    if listing is not None:
        return pool_ids(listing)
    return fallback_gpus()


def fallback_gpus() -> list[str]:
    """Without nvidia-smi: NVML's indices, else torch's count, asked only where an NVIDIA driver is."""
    from w2s_core.supervision.nvml import read_gpus

    states = read_gpus()
    if states:
        return [str(s.index) for s in states]
    if not driver_present():
        return []
    return [str(i) for i in range(torch_cuda_count() or 0)]


def pick_port(taken: set[int], base: int = PORT_BASE) -> int:
    """A TCP port free now and held by no other job of this supervisor, for a job's rendezvous."""
    for port in range(base, base + PORT_SPAN):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("", port))  # what torch's TCPStore will bind; a port in TIME_WAIT is passed over
            except OSError:
                continue
        return port
    raise OSError(f"no free TCP port in {base}..{base + PORT_SPAN - 1} for a multi-GPU job's rendezvous")


def device_slots(parallel: int = 1, jobs_per_gpu: int = 1, gpus: list[str] | None = None) -> list[Slot]:
    """`jobs_per_gpu` slots per GPU; with no GPU, `parallel` CPU slots sharing the cores."""
    from_driver = gpus is None and "CUDA_VISIBLE_DEVICES" not in os.environ  # nvidia-smi's (NVML's) indices
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        order = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"} if from_driver and "CUDA_DEVICE_ORDER" not in os.environ else {}
        return [
            Slot(f"cuda:{g}", {"CUDA_VISIBLE_DEVICES": g, "W2S_DEVICE": f"cuda:{g}", **order}, (g,))
            for g in gpus
            for _ in range(jobs_per_gpu)
        ]
    env = {"CUDA_VISIBLE_DEVICES": "", "W2S_DEVICE": "cpu"}
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
        self.ports: dict[str, int] = {}  # job hash -> the rendezvous port of a multi-GPU job

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
        port = self.ports[job_hash] = pick_port(set(self.ports.values()))
        env = {**self.slots[taken[0]].env, "CUDA_VISIBLE_DEVICES": ids, "W2S_DEVICE": f"cuda:{ids}"}  # type: ignore[index]
        return Slot(f"cuda:{ids}", env, tuple(gpus), port=port)

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
        self.ports.pop(job_hash, None)
