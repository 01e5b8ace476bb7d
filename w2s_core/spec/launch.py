"""The [launch] keys that say where jobs run: the executor (local or Slurm) and what a Slurm job asks for.

Checks for the recipe schema (`schema.LAUNCH_KEYS`) and the parsing the supervisor's Slurm executor
uses (w2s_core.supervision.executors): `time` in minutes, extra `sbatch` lines as sbatch options. None
of these keys is part of a job key: they say how and where a job runs, never what it computes.

    executor       "local" (default: processes on this machine) or "slurm" (submitit -> sbatch)
    partition      sbatch --partition
    cpus_per_task  sbatch --cpus-per-task
    mem_gb         sbatch --mem (GB per node)
    time           sbatch --time: minutes (an integer) or "HH:MM:SS" / "D-HH:MM:SS"
    account, qos   sbatch --account, --qos
    sbatch         extra sbatch options, one a line: "--constraint=a100", "--exclusive" ("#SBATCH" optional)
    nodes          nodes per job (a model entry's own `nodes` wins): > 1 renders a multi-node launch

Issue 14, the memory plan (w2s_core.spec.memory, w2s_core.supervision.planning):

    gpu_memory_gb  the memory (GiB) of one GPU a job gets, for the plan when NVML cannot say: planning
                   offline (`w2s run --dry-run` on a laptop), a Slurm partition's GPUs, MIG instances
    fsdp           how a multi-GPU job (`gpus_per_job` > 1) without its own accelerate_config shares its
                   model: "auto" (default: a replica per GPU (DDP) unless it would not fit and FSDP shards
                   would), true (always FSDP), false (always DDP)
"""

from __future__ import annotations

import math
import re
from typing import Any

from w2s_core.spec.checks import is_int

EXECUTORS = ("local", "slurm")
SLURM_KEYS = ("partition", "cpus_per_task", "mem_gb", "time", "account", "qos", "sbatch", "nodes")
TIME_FORMATS = 'minutes (a positive integer) or a string "HH:MM:SS", "MM:SS", "D-HH:MM" or "D-HH:MM:SS"'
_TIME = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")
_OPTION = re.compile(r"^--([A-Za-z][A-Za-z0-9_-]*)(?:=(.*))?$")


def time_minutes(value: Any) -> int | None:
    """Minutes of a `time` value (seconds rounded up), or None when it is not one of TIME_FORMATS."""
    if is_int(value):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    match = _TIME.match(value.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if match.group(1) is not None and match.group(2) is None:  # Slurm's "D-HH:MM": with days, two fields
        hours, minutes, seconds = minutes, seconds, 0
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return math.ceil(total / 60) or None


def time_check(value: Any) -> str | None:
    return None if time_minutes(value) is not None else TIME_FORMATS


def sbatch_option(line: str) -> tuple[str, str | bool] | None:
    """("constraint", "a100") for "--constraint=a100" or "#SBATCH --constraint=a100"; ("exclusive", True)
    for a bare flag; None when the line is no long sbatch option."""
    text = line.strip()
    if text.upper().startswith("#SBATCH"):
        text = text[len("#SBATCH") :].strip()
    match = _OPTION.match(text)
    if match is None:
        return None
    name, value = match.group(1), match.group(2)
    return name, True if value is None else value


def sbatch_check(value: Any) -> str | None:
    """A list of long sbatch options ("--constraint=a100"); short ones ("-C a100") are refused, as
    submitit writes each as `#SBATCH --name=value`."""
    bad = [v for v in value if not (isinstance(v, str) and sbatch_option(v))] if isinstance(value, list) else None
    if bad == []:
        return None
    which = f" ({', '.join(repr(b) for b in bad)} is not)" if bad else ""
    return f'a list of long sbatch options such as "--constraint=a100" or "--exclusive"{which}'


def sbatch_options(lines: list[str]) -> dict[str, str | bool]:
    """Extra sbatch lines as submitit's `slurm_additional_parameters` ({name: value}, True for a flag)."""
    return dict(found for found in map(sbatch_option, lines) if found is not None)


def fsdp_check(value: Any) -> str | None:
    """`[launch] fsdp`: true, false or "auto"."""
    return None if isinstance(value, bool) or value == "auto" else 'true, false or "auto"'
