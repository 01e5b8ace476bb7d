"""Running a results folder's queue, in the style of a task daemon: typed requests, one handler each, a poll loop.

    requests.py    Submit / Cancel / Retry: the files other processes drop into inbox/
    handlers.py    one handler per request type, looked up by class
    loop.py        Supervisor: the poll loop (its docstring lists the steps of a tick)
    supervisor.py  the supervisor process: spawn it, find it, serve a folder until idle, cancel through it, main
    follow.py      following a run from the store (w2s run in the foreground, w2s follow): read-only
    executors/     where a job's command runs: LocalExecutor (processes here), SlurmExecutor (sbatch via submitit)
    runner.py      one job's life: start it detached, follow its events, record its end
    diagnosis.py   why a job failed, in one paragraph
    upstream.py    which queued job waits for which: ready and blocked jobs
    slots.py       device slots (one per GPU, or CPU slots) and which job holds which
    nvml.py        the GPUs as NVML reports them (utilisation, memory, temperature, power, processes)
    sampling.py    GPU samples into the store while the supervisor works, and which job holds which GPU memory
    placement.py   which GPUs a ready job starts on ([launch] gpus_per_job, min_free_gb), or why it waits
    planning.py    the memory plan against this machine's GPUs: dry-run lines, refusal, FSDP at start
    launch_config.py  a job's command (the trainer directly, or `accelerate launch`) and its accelerate config
    processes.py   job processes that outlive their manager: identify by pid + start time, kill whole trees
    lock.py        the single-writer lock of a results folder
    progress.py    what the supervisor says as it works
    preflight.py   checks a recipe must pass before anything is queued
    provenance.py  code version, packages and machine recorded with every run

The names below are what other processes (the CLI) use to talk to a supervisor.
"""

from w2s_core.supervision.follow import Outcome, TerminalLost, attach
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.requests import INBOX, BadRequest, Cancel, Request, Retry, Submit, is_pending, pending, post
from w2s_core.supervision.slots import Slot, device_slots
from w2s_core.supervision.supervisor import (
    LOG_NAME,
    cancel_jobs,
    ensure_running,
    holder,
    open_store_if_idle,
    resume_parallel,
    serve,
    spawn,
)
from w2s_core.supervision.upstream import upstream_hash

__all__ = [
    "INBOX",
    "LOG_NAME",
    "BadRequest",
    "Cancel",
    "Outcome",
    "Request",
    "Retry",
    "Slot",
    "Submit",
    "Supervisor",
    "TerminalLost",
    "attach",
    "cancel_jobs",
    "device_slots",
    "ensure_running",
    "holder",
    "is_pending",
    "open_store_if_idle",
    "pending",
    "post",
    "resume_parallel",
    "serve",
    "spawn",
    "upstream_hash",
]
