"""One job's life: start it detached on a device, follow its events, and record how it ended.

The supervisor's loop (loop.py) decides what runs when and is the only writer of the store; this
module knows what a job needs to start (its folder and job.json, the code snapshot, a device) and
how to read its end: results on success, else a diagnosis (diagnosis.py) from the wrapper's exit
record, the signal, the log, or nothing at all (a job lost while no supervisor watched it).
Job-folder files are named by w2s_core.jobdir.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from w2s_core.jobdir import JobDir
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.supervision import launch_config, processes
from w2s_core.supervision.diagnosis import LOST, diagnose, exit_signal, log_tail
from w2s_core.supervision.processes import Identity
from w2s_core.supervision.slots import gpu_count

if TYPE_CHECKING:
    from w2s_core.store.rows import JobRow

POLL_S = 0.2
JOBS_DIR = "jobs"
CANCELLED_BY_USER = "cancelled by `w2s cancel`"


def launch_command(
    job_dir: Path, accelerate_config: str | None, processes: int = 1, port: int | None = None, fsdp: dict | None = None
) -> list[str]:
    """The job's command (launch_config.py says how and why): one process with no config of the user's
    and no FSDP, its trainer started directly (`python -m w2s_core.training JOB_DIR`: `accelerate launch`
    would cost a process importing torch only to start it; the trainer sets the launcher's environment
    itself); else `accelerate launch` with the user's config if any, else w2s's own flags or rendered
    config, never accelerate's default config. `processes` > 1: a job placement gave that many GPUs
    (`[launch] gpus_per_job`), one process per GPU, rendezvous on `port` (its own); `fsdp`: the FSDP
    settings of a sharded job (launch_config.fsdp_config)."""
    return launch_config.command(job_dir, accelerate_config, processes, port, fsdp)


def accelerate_config_text(accelerate_config: str | None, job_dir: Path | None = None) -> str | None:
    """The accelerate config a job runs with, for its provenance: the user's, else the one w2s rendered
    into `job_dir` (None: flags only, or a direct job: no config file read)."""
    path = Path(accelerate_config) if accelerate_config else None
    if path is None and job_dir is not None:
        path = launch_config.path(job_dir)
    try:
        return path.read_text() if path and path.is_file() else None
    except OSError as exc:
        return f"(unreadable: {exc})"


@dataclass
class Attempt:
    """A running job: started by this supervisor (popen set) or re-attached after a restart (popen None)."""

    job_hash: str
    folder: JobDir
    ident: Identity
    popen: subprocess.Popen | None
    started: float
    device: str
    seen: dict = field(default_factory=dict)  # pid -> psutil.Process: every descendant seen while it ran
    executor: str = "local"  # the executor that runs it (w2s_core.supervision.executors)
    walked: float = 0.0  # when its process tree was last walked (remember)

    def remember(self) -> None:
        """Note the job's processes, so one that leaves the tree later is still killed with it. The walk
        reads every process on the machine, so it runs every processes.TREE_WALK_S, not every poll; more
        often while the job is young (a quarter of its age), when `accelerate launch` starts its processes."""
        now = time.time()
        if now - self.walked < min(processes.TREE_WALK_S, (now - self.started) / 4):
            return
        self.walked = now
        self.seen.update({p.pid: p for p in processes.tree(self.ident)})

    def poll(self) -> int | str | None:
        """None while it runs; then its exit status (Popen's, or the wrapper's record), or LOST."""
        if self.popen is not None:
            return self.popen.poll()
        if processes.alive(self.ident):
            return None
        status = processes.read_exit(self.folder.exit_status)
        if status is None and self.folder.succeeded():
            return 0  # its wrapper died after the trainer finished: the result is complete
        return LOST if status is None else status

    def kill(self) -> None:
        """Kill its whole process tree, stragglers its wrapper or launcher orphaned included; return once gone."""
        processes.kill_tree(self.ident, popen=self.popen, known=self.seen.values())


def job_dir(store: Store, job_hash: str) -> Path:
    return store.root / JOBS_DIR / job_hash[:16]


def launch_spec(store: Store, spec: dict) -> dict:
    """The job.json a job starts with: its spec plus where its upstreams' outputs are, `upstream_dir`
    (the labeller's predictions) and `init_dir` (the generative stage's checkpoint)."""
    out = dict(spec)
    for field_name, ref in (("upstream_dir", spec.get("labels")), ("init_dir", spec.get("init"))):
        if isinstance(ref, dict):
            out[field_name] = str(job_dir(store, ref["from"]).resolve())
    return out


def prepare(store: Store, row: JobRow) -> JobDir:
    """A queued job's folder, ready for a new attempt: what an earlier one wrote is gone (its checkpoint
    stays, to resume from), the store forgot its outputs, and job.json is written."""
    folder = JobDir(job_dir(store, row["hash"]))
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.clear_outputs()
    store.reset_job_outputs(row["hash"])
    folder.write_spec(launch_spec(store, row["spec"]))
    return folder


JOB_ENV = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}  # what every job's environment gains


def code_path(store: Store, row: JobRow) -> str | None:
    """The code snapshot a job was queued with (it comes first on the job's PYTHONPATH), if any."""
    return str(store.root / row["code"]) if row.get("code") else None


def start(
    store: Store, row: JobRow, device: str, device_env: dict, port: int | None = None, fsdp: dict | None = None
) -> Attempt:
    """Launch a queued job in its own session on `device`, running the code snapshot it was queued with;
    a multi-GPU job rendezvous on `port` and, with `fsdp`, shards its model (launch_config.py)."""
    folder = prepare(store, row)
    env = dict(os.environ, **JOB_ENV, **device_env)
    if row.get("code"):  # the snapshot comes first on the path; cwd is the job folder, not a checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_path(store, row), env.get("PYTHONPATH")]))
    accelerate_config = (row.get("launch") or {}).get("accelerate_config")
    n_gpus = gpu_count(device)  # one process per GPU placement gave the job
    more = (n_gpus,) if n_gpus > 1 else ()  # one process: started directly unless the recipe names a config
    extra = {"port": port, "fsdp": fsdp} if n_gpus > 1 else {}
    command = launch_command(folder.path.resolve(), accelerate_config, *more, **extra)
    popen, ident = processes.launch(command, folder.log, folder.exit_status, env, folder.path)
    provenance = {
        **(row.get("provenance") or {}),
        "command": command,
        "device": device,
        "cuda_visible_devices": device_env.get("CUDA_VISIBLE_DEVICES"),
        "accelerate_config": accelerate_config_text(accelerate_config, folder.path),
        **({"main_process_port": port} if n_gpus > 1 else {}),
    }
    store.set_job_status(
        row["hash"],
        JobStatus.RUNNING,
        pid=ident.pid,
        pgid=ident.pgid,
        proc_start=ident.start,
        device=device,
        provenance=provenance,
        executor="local",
        slurm_job_id=None,
        slurm_state=None,
    )
    return Attempt(row["hash"], folder, ident, popen, time.time(), device)


def reattach(store: Store, row: JobRow) -> Attempt:
    """A job a previous supervisor started: follow it by pid and start time (it may have ended already)."""
    ident = Identity(row["pid"] or 0, row["pgid"] or row["pid"] or 0, row["proc_start"] or 0.0)
    return Attempt(
        row["hash"], JobDir(Path(row["dir"])), ident, None, row["started_at"] or time.time(), row["device"] or "?"
    )


def follow(store: Store, attempt: Attempt) -> None:
    """Store the events the job wrote since the last look."""
    store.ingest_events(attempt.job_hash, attempt.folder.events)


def finish(store: Store, attempt: Attempt, status: int | str, hint: str = "") -> bool:
    """Record an ended job: results and predictions on success, else a diagnosis (and `hint`, where else
    to look). Returns success."""
    follow(store, attempt)
    folder = attempt.folder
    if status == 0 and folder.succeeded():
        result = folder.read_result()
        preds = folder.read_predictions()
        with store.transaction():
            for split, p in preds.items():
                store.add_predictions(
                    attempt.job_hash, split, p["probs"], p["labels"], p.get("index"), dists=p.get("dists")
                )
            store.set_results(attempt.job_hash, result)
            provenance = {**(store.get_job(attempt.job_hash)["provenance"] or {}), "job_env": folder.read_env()}
            store.set_job_status(attempt.job_hash, JobStatus.DONE, exit_code=0, provenance=provenance)
        return True
    sig = exit_signal(status, log_tail(folder.log, 200))
    store.set_job_status(
        attempt.job_hash,
        JobStatus.FAILED,
        exit_code=None if status == LOST else status,
        signal=sig,
        error=diagnose(status, sig, folder.log, hint),
    )
    return False


def cancel(store: Store, attempt: Attempt) -> None:
    """Kill the job's whole process tree, wait until it is gone, then record it cancelled."""
    attempt.kill()
    follow(store, attempt)
    code = attempt.popen.returncode if attempt.popen is not None else None
    store.set_job_status(attempt.job_hash, JobStatus.CANCELLED, exit_code=code, error=CANCELLED_BY_USER)
