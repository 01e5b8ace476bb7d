"""The memory plan against this machine's GPUs: the dry run's lines, refusal at submission, FSDP at start.

w2s_core.spec.memory estimates what one job needs per GPU; this module knows the GPUs. A job runs on
`[launch] gpus_per_job` GPUs (default 1) of the memory `gpu_memory` finds: `[launch] gpu_memory_gb`
when set (planning offline, or for a Slurm partition), else the smallest of the GPUs w2s may use as
NVML reads them (a MIG instance: the memory its profile names), else unknown (no check).

- `w2s run --dry-run` prints each job's estimate per GPU, the strategy it trains with and the accelerate
  config it launches with (`dry_run_lines`).
- `w2s run` and the supervisor refuse a recipe with a job that cannot fit, naming its estimate and the
  options that would (`check_memory`, an InputError), before anything is queued. On a machine without
  GPUs nothing is refused: jobs run on the CPU there (placement.py).
- At start, a multi-GPU job with no accelerate config of its own is sharded by w2s's FSDP config when
  `[launch] fsdp = true`, or by default ("auto") when a replica would not fit and shards would
  (`fsdp_for`, memory.plan); else it runs DDP, a replica per GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from w2s_core.errors import InputError
from w2s_core.spec import memory
from w2s_core.spec.shapes import model_shape
from w2s_core.supervision import launch_config
from w2s_core.supervision.placement import gpu_state, is_mig, nvml_read
from w2s_core.supervision.slots import mig_memory_gb, nvidia_smi_listing

Reader = Callable[[], "list[Any] | None"]
SHOWN = 6  # jobs named in a refusal
NO_OPTION = "none of w2s's own (a smaller model, or your own [launch] accelerate_config: FSDP2, DeepSpeed)"


def gpus_of(launch: dict) -> int:
    return int(launch.get("gpus_per_job", 1))


def fsdp_mode(launch: dict) -> bool | str:
    """How the job's GPUs share its model: True when the user's accelerate config shards it (FSDP,
    DeepSpeed) or `[launch] fsdp = true`; False for the user's other configs or `fsdp = false`; else "auto"."""
    config = launch.get("accelerate_config")
    if config:
        kind = str(launch_config.accelerate_settings(config).get("distributed_type", "NO")).upper()
        return kind in ("FSDP", "DEEPSPEED")
    return launch.get("fsdp", "auto")


def configured_gib(launch: dict) -> float | None:
    """`[launch] gpu_memory_gb` (GiB), None when unset."""
    return float(launch["gpu_memory_gb"]) if launch.get("gpu_memory_gb") else None


def gpu_memory(launch: dict, pool: list[str], read: Reader | None = None) -> tuple[float | None, str]:
    """(GiB of one GPU a job may plan for, where that figure comes from); None when unknown."""
    if (gib := configured_gib(launch)) is not None:
        return gib, "[launch] gpu_memory_gb"
    if not pool:
        return None, "no GPU here; set [launch] gpu_memory_gb to plan for one"
    sizes: list[float] = []
    migs = [g for g in pool if is_mig(g)]
    if migs:
        profiles = {uuid: p for g in (nvidia_smi_listing() or []) for p, uuid in g.migs}
        sizes += [gb for g in migs if (gb := mig_memory_gb(profiles.get(g, ""))) is not None]
    whole = [g for g in pool if g not in migs]
    if whole:
        states = (read or nvml_read)() or []
        sizes += [s.mem_total_mb / 1024.0 for g in whole if (s := gpu_state(g, states)) and s.mem_total_mb > 0]
    if len(sizes) < len(pool):
        return None, "the GPUs' memory cannot be read (NVML); set [launch] gpu_memory_gb"
    return min(sizes), "the smallest GPU w2s may use (NVML)"


def job_plan(spec: dict, launch: dict, gpu_gib: float | None, gpus: int | None = None) -> memory.Estimate | None:
    """The estimate the job runs with on its GPUs (`gpus`: as placed, default `[launch] gpus_per_job`)."""
    return memory.plan(spec, gpus or gpus_of(launch), gpu_gib, fsdp_mode(launch))


def fsdp_for(
    spec: dict, launch: dict, gpus: int, gpu_gib: float | None, planned: memory.Estimate | None = None
) -> dict | None:
    """The FSDP settings of a job started on `gpus` GPUs when w2s shards it (None: DDP or one process, or
    the user's own accelerate config decides); `planned`: its `job_plan` on those GPUs, if known."""
    if gpus <= 1 or launch.get("accelerate_config"):
        return None
    planned = planned or job_plan(spec, launch, gpu_gib, gpus)
    if planned is None or not planned.sharded:
        return None
    shape = model_shape(spec["model"])
    return launch_config.fsdp_config(shape.block if shape else None)


def _label(job: Any) -> str:
    return f"{job.short} {job.model}"


def problems(jobs: Iterable[Any], launch: dict, gpu_gib: float | None, max_gpus: int) -> list[str]:
    """A sentence per job that cannot fit GPUs of `gpu_gib` (or that `[launch] fsdp = true` cannot shard)."""
    found = []
    for job in jobs:
        if launch.get("fsdp") is True and gpus_of(launch) > 1 and not launch.get("accelerate_config"):
            if not memory.can_shard(job.spec) and job.spec["train"].get("mode") != "probe":
                found.append(
                    f"{_label(job)}: [launch] fsdp = true, but w2s's FSDP config needs one parameter dtype "
                    f'per layer (float32: dtype "auto" or "float32"); this job trains '
                    f"{job.spec['train'].get('dtype')} weights{' with LoRA' if job.spec['train'].get('lora') else ''}"
                    " (name your own [launch] accelerate_config to shard it otherwise)"
                )
                continue
        planned = job_plan(job.spec, launch, gpu_gib)
        if gpu_gib is None or planned is None or planned.fits(gpu_gib):
            continue
        ways = memory.options(job.spec, gpus_of(launch), gpu_gib, max_gpus) or [NO_OPTION]
        found.append(
            f"{_label(job)} needs about {planned.gib:.1f} GiB per GPU ({planned.what}: {planned.breakdown()}) "
            f"+ {memory.CONTEXT_GIB:.0f} GiB CUDA context, more than {memory.USABLE:.0%} of {gpu_gib:.1f} GiB; "
            f"options: {'; '.join(ways)}"
        )
    return found


def check_memory(
    jobs: list[Any], launch: dict, where: str, pool: list[str], read: Reader | None = None, slurm: bool = False
) -> None:
    """Refuse (InputError) a plan with a job that cannot fit the GPUs it may use. Local jobs are checked
    only where there are GPUs; Slurm jobs only against `[launch] gpu_memory_gb`."""
    if slurm:
        gpu_gib = configured_gib(launch)
    elif not pool:
        return
    else:
        gpu_gib, _ = gpu_memory(launch, pool, read)
    found = problems(jobs, launch, gpu_gib, max(len(pool), 8))
    if found:
        more = f"\n  ... and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise InputError(
            f"{where}: {len(found)} job(s) would not fit the GPUs (estimated before anything starts; "
            "`w2s run --dry-run` shows every job's plan):\n  " + "\n  ".join(found[:SHOWN]) + more
        )


def dry_run_lines(jobs: list[Any], launch: dict, pool: list[str], read: Reader | None = None) -> list[str]:
    """The dry run's memory plan: a line per job (estimate per GPU, verdict, strategy, accelerate), then
    each distinct estimate's parts, and the options of a job that does not fit."""
    gpu_gib, source = gpu_memory(launch, pool, read)
    size = f"GPUs of {gpu_gib:.1f} GiB ({source})" if gpu_gib else f"GPU memory unknown: {source}"
    n = gpus_of(launch)
    lines = [
        f"memory plan (estimated peak per GPU before anything starts; {size}; "
        f"+{memory.CONTEXT_GIB:.0f} GiB CUDA context per process):"
    ]
    parts: dict[str, str] = {}
    for i, job in enumerate(jobs, 1):
        planned = job_plan(job.spec, launch, gpu_gib)
        if planned is None:
            lines.append(f"{i:>5}. {_label(job)}: size unknown (no config.json here and not in the registry)")
            continue
        verdict = "" if gpu_gib is None else ("  fits" if planned.fits(gpu_gib) else "  DOES NOT FIT")
        fsdp = fsdp_for(job.spec, launch, n, gpu_gib, planned)
        accelerate = launch_config.describe(launch.get("accelerate_config"), n, fsdp)
        on = f"{n} GPU{'s' if n > 1 else ''}"
        head = f"{i:>5}. {_label(job)}: {memory.size_text(planned.gib * memory.GIB)} per GPU on {on}{verdict}"
        lines.append(f"{head}; {planned.what}; {accelerate}")
        parts.setdefault(f"{job.model}: {planned.what}", f"{planned.breakdown()} (sizes from the {planned.source})")
        if gpu_gib is not None and not planned.fits(gpu_gib):
            ways = memory.options(job.spec, n, gpu_gib, max(len(pool), 8)) or [NO_OPTION]
            lines.append(f"         options: {'; '.join(ways)}")
    if launch.get("fsdp") is True and n <= 1 and not launch.get("accelerate_config"):
        lines.append(
            "  note: [launch] fsdp = true shards only a job of several processes ([launch] gpus_per_job > 1); "
            "these jobs run as one process each, unsharded"
        )
    lines.append("  per part (per GPU):")
    lines += [f"    {what}: {detail}" for what, detail in parts.items()]
    return lines
