"""What a Slurm job asks for and what it runs: submitit's parameters from [launch], and the job's command.

Parameters (`submitit_parameters`, for `AutoExecutor(cluster="slurm").update_parameters`): one task
per node (`tasks_per_node = 1`: that task runs the trainer itself on one GPU, or `accelerate launch`,
which starts one process per GPU),
`gpus_per_node = [launch] gpus_per_job` (left out when unset: no GPU is asked for, which is right on a
CPU partition; set it on a GPU cluster), `cpus_per_task`, `mem_gb`, `timeout_min` from `time`,
`slurm_partition`, `slurm_account`, `slurm_qos`, the extra `sbatch` lines as
`slurm_additional_parameters`, and `slurm_signal_delay_s`: Slurm sends SIGUSR1 this long before the
time limit, so the trainer finishes its optimiser step, saves a checkpoint and exits EXIT_REQUEUE; w2s
then submits the job again and it resumes. submitit always writes a `--time` (5 minutes unless told),
so with `time` unset the partition's own default time is asked (`sinfo`), else its maximum, else a day.

The command (`job_command`) is the local executor's (`runner.launch_command`) on one node: for one GPU
(or none) and no `[launch] accelerate_config`, the trainer started directly, `python -m w2s_core.training
JOB_DIR`, which sets the environment `accelerate launch` would give it (launch_config.py: the launcher
would cost a process that imports torch only to start it); else `accelerate launch`. On
`nodes > 1` (a model entry's `nodes`, else [launch] `nodes`) Slurm starts that one task on every node
(srun), and each runs one `sh -c` line that takes the rendezvous from Slurm's environment:

    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1); port=$((20000 + SLURM_JOB_ID % 20000));
    exec python -m accelerate.commands.launch --config_file JOB_DIR/accelerate.yaml --num_machines "$SLURM_NNODES"
      --machine_rank "$SLURM_NODEID" --main_process_ip "$head" --main_process_port "$port"
      --num_processes "$((SLURM_NNODES * G))" ... -m w2s_core.training JOB_DIR

(G = gpus_per_job, the GPUs of each node; the port follows the job id, so two jobs sharing a head node
do not collide, and every node computes the same one). The config file is the recipe's
`[launch] accelerate_config`, else the one w2s renders into the job folder (launch_config.settings:
MULTI_GPU, no mixed precision), so a node's own default accelerate config is never read; the flags
on the line override its per-node values. `w2s run --dry-run` prints both.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from w2s_core.spec.launch import sbatch_options, time_minutes
from w2s_core.supervision import launch_config, runner
from w2s_core.supervision.executors import launch_of

SLURM_DIR = "slurm"  # in the job folder: submitit's sbatch script, pickles and its own logs (%j_0_log.out/.err)
SIGNAL_DELAY_S = 120  # SIGUSR1 this long before the time limit (at most a fifth of the job's time)
FALLBACK_TIME_MIN = 24 * 60  # when neither [launch] time nor the partition says how long a job may run
RENDEZVOUS = (
    'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1); port=$((20000 + SLURM_JOB_ID % 20000)); '
)
Run = Callable[..., subprocess.CompletedProcess]


def job_name(row: dict) -> str:
    return f"w2s-{row['hash'][:10]}"


def signal_delay_s(timeout_min: int) -> int:
    """Seconds before the limit that SIGUSR1 comes: SIGNAL_DELAY_S, but at most a fifth of a short job's
    time (a 5-minute job is warned at 4), so the signal never comes at the start."""
    return max(10, min(SIGNAL_DELAY_S, timeout_min * 60 // 5))


def submitit_parameters(row: dict, timeout_min: int) -> dict:
    """`update_parameters` keywords for one job, from its launch settings (None values are left out)."""
    launch = launch_of(row)
    params = {
        "name": job_name(row),
        "nodes": int(launch.get("nodes", 1)),
        "tasks_per_node": 1,
        "gpus_per_node": launch.get("gpus_per_job"),
        "cpus_per_task": launch.get("cpus_per_task"),
        "mem_gb": launch.get("mem_gb"),
        "timeout_min": timeout_min,
        "slurm_partition": launch.get("partition"),
        "slurm_account": launch.get("account"),
        "slurm_qos": launch.get("qos"),
        "slurm_signal_delay_s": signal_delay_s(timeout_min),
        "slurm_additional_parameters": sbatch_options(launch.get("sbatch") or []) or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def sbatch_flags(params: dict) -> list[str]:
    """The sbatch options submitit writes for `params` (its `_make_sbatch_string` spelling), for the dry run."""
    names = {
        "name": "job-name",
        "nodes": "nodes",
        "tasks_per_node": "ntasks-per-node",
        "gpus_per_node": "gpus-per-node",
        "cpus_per_task": "cpus-per-task",
        "timeout_min": "time",
        "slurm_partition": "partition",
        "slurm_account": "account",
        "slurm_qos": "qos",
    }
    flags = [f"--{names[k]}={v}" for k, v in params.items() if k in names]
    if "mem_gb" in params:
        gb = params["mem_gb"]
        flags.append(f"--mem={int(gb)}GB" if gb == int(gb) else f"--mem={int(gb * 1024)}MB")
    flags.append(f"--signal=USR1@{params['slurm_signal_delay_s']}")
    for name, value in (params.get("slurm_additional_parameters") or {}).items():
        flags.append(f"--{name}" if value is True else f"--{name}={value}")
    return flags


def slurm_minutes(text: str) -> int | None:
    """Minutes of a time as sinfo prints it ("1-00:00:00", "30:00", "60"), None for "infinite"/"n/a"."""
    text = text.strip()
    if text.isdigit():
        return int(text) or None
    return time_minutes(text)


def partition_minutes(partition: str | None, run: Run = subprocess.run) -> int | None:
    """The partition's default time limit, else its maximum (the default partition when None): what a
    job asks when [launch] has no `time`. None when sinfo cannot say."""
    command = ["sinfo", "-h", "-o", "%P|%L|%l"] + (["-p", partition] if partition else [])
    try:
        out = run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == 2]
    if not partition:  # the default partition is the one sinfo marks with "*"
        rows = [r for r in rows if r[0].endswith("*")] or rows
    for _, default, maximum in rows[:1]:
        return slurm_minutes(default) or slurm_minutes(maximum)
    return None


def timeout_minutes(row: dict, run: Run = subprocess.run) -> tuple[int, str]:
    """The job's time limit in minutes, and where it comes from (for the dry run and provenance)."""
    launch = launch_of(row)
    if launch.get("time") is not None:
        return int(time_minutes(launch["time"]) or FALLBACK_TIME_MIN), "[launch] time"
    found = partition_minutes(launch.get("partition"), run)
    if found:
        return found, "the partition's time limit (sinfo)"
    return FALLBACK_TIME_MIN, "no [launch] time and no partition limit: one day"


def job_command(job_dir: Path | str, row: dict) -> list[str]:
    """What the job runs on each of its nodes: the local executor's command on one node (the trainer itself
    for one GPU, else `accelerate launch`); on several, one `sh -c` line running `accelerate launch` with
    the rendezvous from Slurm's environment (the module docstring)."""
    launch = launch_of(row)
    gpus = int(launch.get("gpus_per_job", 1))
    config = launch.get("accelerate_config")
    if int(launch.get("nodes", 1)) <= 1:
        more = (gpus,) if gpus > 1 else ()
        return runner.launch_command(job_dir, config, *more)
    if not config:  # never a node's default config (module docstring)
        rendered = launch_config.settings(gpus)
        config = str(launch_config.write(job_dir, rendered) if Path(job_dir).is_dir() else launch_config.path(job_dir))
    return ["sh", "-c", multinode_line(job_dir, config, gpus)]


def multinode_line(job_dir: Path | str, config: str, gpus: int) -> str:
    """The `sh -c` line of a multi-node job: `accelerate launch` on this node, told its rank and the head node."""
    base = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config]
    rendezvous = (
        '--num_machines "$SLURM_NNODES" --machine_rank "$SLURM_NODEID" --main_process_ip "$head" '
        f'--main_process_port "$port" --num_processes "$((SLURM_NNODES * {gpus}))"'
    )
    tail = ["-m", "w2s_core.training", str(job_dir)]
    return f"{RENDEZVOUS}exec {shlex.join(base)} {rendezvous} {shlex.join(tail)}"


def describe(row: dict, job_dir: Path | str, run: Run = subprocess.run) -> str:
    """The dry run's lines for one Slurm job: its sbatch options and the command each node runs."""
    minutes, source = timeout_minutes(row, run)
    params = submitit_parameters(row, minutes)
    command = job_command(job_dir, row)
    shown = command[2] if command[:2] == ["sh", "-c"] else shlex.join(command)
    return f"sbatch {' '.join(sbatch_flags(params))}  (time: {source})\n     runs: {shown}"
