"""Placement: which GPUs a ready job starts on, or why it waits (`[launch] gpus_per_job`, `min_free_gb`).

A job needs `gpus_per_job` GPUs at once (default 1), each with a free slot (slots.py), and, when
`min_free_gb` is set (default 0: no memory check, the behaviour before these keys existed), at least
that much memory free on each of them now, as NVML reports it (`nvml.read_gpus`). Memory is a GPU's
free memory (what other processes, w2s's or not, hold counts against it) less what the w2s jobs on it
were placed for and have not allocated yet (a job just started has not loaded its model). GB means
GiB (1024 MiB), as nvidia-smi and torch count. A slot, and the memory reserved with it, is free again
only once its job's whole process tree is gone (`Supervisor.release`).

A job that cannot be placed stays queued with the reason on its row (`wait_reason`, cleared when it
starts), shown by `w2s queue` and the TUI's job list. Jobs start in queue order (oldest run first, as
before): one that waits keeps the jobs behind it waiting too, so a job needing two GPUs is not
starved by one-GPU jobs that keep taking whichever GPU frees first. A job that can never start here
(more GPUs than the pool holds, or more memory than its GPUs have) is refused when submitted
(`check_launch`, by `w2s run` and again by the supervisor, whose pool counts); a queued job needing
more GPUs than the pool of the supervisor that took it over holds is failed with the same words
rather than left waiting forever (`w2s retry` queues it again).

The pool's ids map to NVML devices by index (NVML's, PCI bus order: with $CUDA_VISIBLE_DEVICES as
indices on a machine with mixed GPU models, also set CUDA_DEVICE_ORDER=PCI_BUS_ID, or give UUIDs) or
by UUID (`GPU-…`, or a unique prefix, as CUDA accepts). NVML sees whole GPUs: the free memory of a
MIG instance is unknown, and a job asking for memory on one waits, saying so.

Without a GPU, jobs take today's CPU slots (`parallel`); `gpus_per_job` and `min_free_gb` are then
set aside with a warning, not an error: the recipe written for the GPU box still runs on a laptop,
one process per job, and its results do not depend on the process count.

Issue 14: a GPU that no w2s job holds but other processes do (at least BUSY_GIB of its memory in use,
as NVML reads it) is passed over while `min_free_gb` is 0, and the job waits saying so; with
`min_free_gb` set, its free memory decides as above. Without an NVML reading nothing is passed over.
A multi-GPU job is never placed on MIG instances (CUDA shows a process one of them), and is refused
when the pool has too few whole GPUs. A placed job's slot carries its GPUs' smallest total memory
(for the memory plan's FSDP choice, planning.py) and, on several GPUs, its own rendezvous port.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w2s_core.errors import InputError
from w2s_core.status import JobStatus
from w2s_core.supervision.launch_config import accelerate_settings
from w2s_core.supervision.slots import Slot, SlotTable, visible_gpus

if TYPE_CHECKING:
    from w2s_core.store.rows import JobRow
    from w2s_core.supervision.loop import Supervisor

MB_PER_GB = 1024.0
BUSY_GIB = 1.0  # memory in use by processes of no w2s job that makes a GPU busy (min_free_gb unset)
MEMORY_READ_S = 1.0  # NVML's reading is reused this long: the loop ticks five times a second
PLACEMENT_KEYS = ("gpus_per_job", "min_free_gb")
Reader = Callable[[], "list[Any] | None"]  # () -> nvml.read_gpus(): GpuState list, None without NVML


@dataclass(frozen=True)
class Need:
    """What a job asks of the GPUs: how many at once, and the memory free on each (GB)."""

    gpus: int = 1
    min_free_gb: float = 0.0

    @property
    def min_free_mb(self) -> float:
        return self.min_free_gb * MB_PER_GB


def need_of(launch: dict | None) -> Need:
    """A job's need from its launch settings (the recipe's [launch], recorded on the job row)."""
    launch = launch or {}
    return Need(int(launch.get("gpus_per_job", 1)), float(launch.get("min_free_gb", 0.0)))


@dataclass(frozen=True)
class Placement:
    """Where a job starts (`slot`), or why it waits for now (`wait`; None: only for a free slot, as
    any queued job does), or why it can never start under this pool (`never`)."""

    slot: Slot | None = None
    wait: str | None = None
    never: str | None = None


# -- reading NVML ----------------------------------------------------------------------------------


def nvml_read() -> list[Any] | None:
    """NVML's GPUs now (`nvml.read_gpus`), None without NVML or a driver."""
    from w2s_core.supervision import nvml  # it imports pynvml itself, lazily

    return nvml.read_gpus()


def nvml_problem() -> str:
    """Why NVML cannot be read, in a line."""
    try:
        from w2s_core.supervision import nvml

        return nvml.nvml_problem() or "NVML returned no GPUs"
    except ImportError as exc:
        return str(exc)


def _cached_read(table: SlotTable) -> list[Any] | None:
    """NVML's reading, reused for MEMORY_READ_S (it lives on the table: one per supervisor)."""
    now = time.monotonic()
    if table.gpu_memory is None or now - table.gpu_memory[0] > MEMORY_READ_S:
        table.gpu_memory = (now, nvml_read())
    return table.gpu_memory[1]


def gpu_state(gpu: str, states: Iterable[Any]) -> Any | None:
    """The NVML device a pool id names: an index, or a UUID or unique UUID prefix ("GPU-…"); None
    when NVML lists none (or it is a MIG instance, whose memory NVML's whole-GPU reading cannot give)."""
    states = list(states)
    if gpu.isdigit():
        return next((s for s in states if s.index == int(gpu)), None)
    want = gpu.lower()
    if want.startswith("mig-"):
        return None
    want = want if want.startswith("gpu-") else f"gpu-{want}"
    found = [s for s in states if s.uuid.lower().startswith(want)]
    return found[0] if len(found) == 1 else None


def free_mb(gpu: str, state: Any, table: SlotTable, pids: dict[str, set[int]]) -> float:
    """`gpu`'s free memory for a new job: NVML's free memory less what the w2s jobs on it were placed
    for and do not use yet (a job's use: its processes' memory there, by pid)."""
    claimed = 0.0
    for job in table.holders(gpu):
        reserve = table.reserved_mb.get(job, 0.0)
        if reserve:
            used = sum(p.used_mb for p in state.processes if p.pid in pids.get(job, ()))
            claimed += max(0.0, reserve - used)
    return state.mem_free_mb - claimed


# -- deciding --------------------------------------------------------------------------------------


def is_mig(gpu: str) -> bool:
    return gpu.lower().startswith("mig-")


def never_fits(need: Need, pool: list[str], states: list[Any] | None = None) -> str | None:
    """Why a job with `need` can never start in `pool` (too few GPUs, or whole GPUs for a multi-GPU job;
    with NVML's `states`, too few GPUs with that much memory in all), or None."""
    if need.gpus > len(pool):
        return (
            f"[launch] gpus_per_job = {need.gpus} needs {need.gpus} GPUs at once, but w2s may use "
            f"{len(pool)} ({', '.join(pool)}: $CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists); "
            f"lower gpus_per_job or make more GPUs visible"
        )
    whole = [g for g in pool if not is_mig(g)]
    if need.gpus > 1 and need.gpus > len(whole):
        return (
            f"[launch] gpus_per_job = {need.gpus} needs {need.gpus} whole GPUs at once, but {len(pool) - len(whole)} "
            f"of the {len(pool)} w2s may use are MIG instances, and CUDA shows a process only one of those; "
            "lower gpus_per_job to 1, or make whole GPUs visible"
        )
    if not need.min_free_mb or states is None:
        return None
    # a GPU NVML could not read is listed with 0 MiB in all: unknown, never a verdict
    totals = {g: s.mem_total_mb for g in pool if (s := gpu_state(g, states)) is not None and s.mem_total_mb > 0}
    big = [g for g, total in totals.items() if total >= need.min_free_mb]
    if len(totals) == len(pool) and len(big) < need.gpus:
        largest = max(totals.values(), default=0.0) / MB_PER_GB
        return (
            f"[launch] min_free_gb = {need.min_free_gb:g} asks that much free on {need.gpus} GPU(s) at once, "
            f"but {len(big)} of the GPUs w2s may use ({', '.join(pool)}) have that much memory at all "
            f"(the largest has {largest:.1f} GB); lower min_free_gb"
        )
    return None


def place(
    table: SlotTable, job_hash: str, need: Need, pids: dict[str, set[int]] | None = None, read: Reader | None = None
) -> Placement:
    """Place one job: hold its slots and return them as one `Slot`, or say why it waits or never fits.
    `read` gives NVML's GPUs (default: `nvml.read_gpus`, reused briefly): free memory when the job asks
    for some, else which GPUs other processes use."""
    pool = table.gpus()
    if not pool:  # no GPU: today's CPU slots; the GPU keys were warned about at submission
        slot = table.take(job_hash)
        return Placement(slot)
    if never := never_fits(need, pool):
        return Placement(never=never)
    free = [g for g in table.free_gpus() if need.gpus == 1 or not is_mig(g)]
    if len(free) < need.gpus:
        return Placement(wait=_too_few(need, free, pool) if need.gpus > 1 else None)
    states = read() if read is not None else _cached_read(table)
    if need.min_free_mb:
        if states is None:
            return Placement(wait=f"[launch] min_free_gb: cannot read GPU memory ({nvml_problem()})")
        if never := never_fits(need, pool, states):  # refused at submission; here one odd reading must not fail a job
            return Placement(wait=never)
        free, short = _with_memory(free, need, states, table, pids or {})
        if len(free) < need.gpus:
            return Placement(wait=_short_of_memory(need, short))
    elif states is not None:
        free, busy = _not_busy(free, states, table)
        if len(free) < need.gpus:
            return Placement(wait=_busy(need, busy))
    slot = table.take_gpus(job_hash, free[: need.gpus], need.min_free_mb)
    return Placement(_with_total(slot, states))


def _not_busy(free: list[str], states: list[Any], table: SlotTable) -> tuple[list[str], list[str]]:
    """The free GPUs that no other process uses, and a phrase for each busy one: a GPU no w2s job holds
    with BUSY_GIB or more in use (a GPU a w2s job holds is judged by its slots alone: in a container
    NVML's pids are the host's, and its own jobs would look like strangers)."""
    idle, busy = [], []
    for gpu in free:
        state = gpu_state(gpu, states)
        if state is not None and not table.holders(gpu) and state.mem_used_mb >= BUSY_GIB * MB_PER_GB:
            count = f", {len(state.processes)} process(es)" if state.processes else ""
            busy.append(f"GPU {gpu} has {state.mem_used_mb / MB_PER_GB:.1f} GB in use by others{count}")
        else:
            idle.append(gpu)
    return idle, busy


def _busy(need: Need, busy: list[str]) -> str:
    on = "a GPU" if need.gpus == 1 else f"{need.gpus} GPUs"
    return f"waits for {on} no other process uses: {', '.join(busy)} (set [launch] min_free_gb to share them)"


def _with_total(slot: Slot, states: list[Any] | None) -> Slot:
    """The slot with its GPUs' smallest total memory (GiB), when NVML read all of them."""
    totals = [s.mem_total_mb for g in slot.gpus if (s := gpu_state(g, states or [])) and s.mem_total_mb > 0]
    if not slot.gpus or len(totals) < len(slot.gpus):
        return slot
    return dataclasses.replace(slot, memory_gib=min(totals) / MB_PER_GB)


def _with_memory(
    free: list[str], need: Need, states: list[Any], table: SlotTable, pids: dict[str, set[int]]
) -> tuple[list[str], list[str]]:
    """The free GPUs with the memory the job needs, and a phrase for each of the others."""
    fits, short = [], []
    for gpu in free:
        state = gpu_state(gpu, states)
        if state is None:
            short.append(f"GPU {gpu}: NVML lists no such GPU (MIG instances and unknown ids have no reading)")
            continue
        available = free_mb(gpu, state, table, pids)
        if available >= need.min_free_mb:
            fits.append(gpu)
        else:
            short.append(f"GPU {gpu} has {max(available, 0.0) / MB_PER_GB:.1f} GB free")
    return fits, short


def _too_few(need: Need, free: list[str], pool: list[str]) -> str:
    return f"needs {need.gpus} GPUs at once ([launch] gpus_per_job), {len(free)} of {len(pool)} free"


def _short_of_memory(need: Need, short: list[str]) -> str:
    on = "a GPU" if need.gpus == 1 else f"each of {need.gpus} GPUs"
    return f"needs {need.min_free_gb:g} GB free on {on} ([launch] min_free_gb): {', '.join(short)}"


def take(sup: Supervisor, row: JobRow, read: Reader | None = None) -> Slot | None:
    """The supervisor's start step for one ready job: its slot, or None. A job that waits gets the reason
    on its row (written only when it changed); one that can never start here is failed, saying why."""
    job_hash = row["hash"]
    pids = {h: {a.ident.pid, *a.seen} for h, a in sup.running.items()}
    placed = place(sup.slots, job_hash, need_of(row.get("launch")), pids, read)
    if placed.never:
        sup.store.set_job_status(job_hash, JobStatus.FAILED, error=placed.never)
        sup.report.echo(f"job {job_hash[:10]} cannot start on this machine: {placed.never}")
        return None
    if placed.slot is None and placed.wait != row.get("wait_reason"):
        sup.store.set_wait_reason(job_hash, placed.wait)
    return placed.slot


# -- at submission ---------------------------------------------------------------------------------


def check_launch(launch: dict, where: str, pool: list[str] | None = None, read: Reader | None = None) -> list[str]:
    """Refuse [launch] settings no job could ever start with (InputError naming the key); return
    warnings to show. `pool`: the supervisor's GPUs (default: this process's, as a supervisor it
    starts would find them); `read`: NVML's GPUs (default `nvml.read_gpus`)."""
    if not any(key in launch for key in PLACEMENT_KEYS):
        return []
    need = need_of(launch)
    pool = visible_gpus() if pool is None else pool
    if not pool:
        if need.gpus == 1 and not need.min_free_gb:
            return []
        return [
            f"{where}: [launch] gpus_per_job and min_free_gb need GPUs, and none is visible "
            "($CUDA_VISIBLE_DEVICES, nvidia-smi): the jobs run on the CPU, one process each, with no memory check"
        ]
    if never := never_fits(need, pool):
        raise InputError(f"{where}: {never}")
    _check_accelerate_config(launch, need, where)
    if need.min_free_gb:
        states = (read or nvml_read)()
        if states is None:
            raise InputError(
                f"{where}: [launch] min_free_gb = {need.min_free_gb:g} needs NVML to read each GPU's free "
                f"memory, and it cannot be read: {nvml_problem()}. Remove min_free_gb, or fix the driver"
            )
        if never := never_fits(need, pool, states):
            raise InputError(f"{where}: {never}")
    return []


def _check_accelerate_config(launch: dict, need: Need, where: str) -> None:
    """With `gpus_per_job` set, the recipe's accelerate config must agree: w2s gives a job that many
    GPUs and starts one process on each (`--num_processes`), so a config's other count, a one-process
    distributed type, or fixed `gpu_ids` (they would replace the GPUs placement chose) are refused."""
    config = launch.get("accelerate_config")
    if "gpus_per_job" not in launch or not config:
        return
    if not Path(config).is_file():
        raise InputError(f"{where}: [launch] accelerate_config {config} does not exist")
    settings = accelerate_settings(config)
    n, key = need.gpus, f"[launch] gpus_per_job = {need.gpus}"
    count = settings.get("num_processes")
    if count is not None and count != n:
        raise InputError(
            f"{where}: {key} but accelerate_config {config} has num_processes: {count}; they must agree "
            f"(one process per GPU the job gets). Set num_processes: {n} there, or remove it"
        )
    kind = str(settings.get("distributed_type", "NO")).upper()
    if n > 1 and kind in ("NO", "MULTI_CPU"):
        raise InputError(
            f"{where}: {key} but accelerate_config {config} has distributed_type: {kind}, which runs "
            "one process per job here; use MULTI_GPU (or DEEPSPEED, FSDP)"
        )
    if str(settings.get("gpu_ids", "all")).lower() not in ("all", "none"):
        raise InputError(
            f"{where}: {key} but accelerate_config {config} fixes gpu_ids: {settings['gpu_ids']}, which would "
            "replace the GPUs w2s places the job on; set gpu_ids: all, or remove it"
        )
