"""One job's life: start it detached on a device, follow its events, and record how it ended.

The supervisor (supervisor.py) decides what runs when and is the only writer of the store; this
module knows what a job needs to start (its folder, job.json, the code snapshot, a device) and how
to read its end: the wrapper's exit record, the signal, an out-of-memory in the log, or nothing
at all (a job lost while no supervisor watched it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from w2s_core.supervision import processes
from w2s_core.supervision.processes import Identity
from w2s_core.store import Store

POLL_S = 0.2
LOG_TAIL_LINES = 15
OUTPUT_FILES = ("events.jsonl", "predictions.json", "result.json", "env.json", "log.txt", "exit_status")
OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "can't allocate memory", "MemoryError",
               "Cannot allocate memory")
LOST = "lost"


def launch_command(job_dir: Path, accelerate_config: str | None) -> list[str]:
    """`accelerate launch` with the user's config if any, else one local process."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", accelerate_config]
    elif default_accelerate_config() is None:
        cmd += ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return cmd + ["-m", "w2s_core.training", str(job_dir)]


def default_accelerate_config() -> Path | None:
    from accelerate.commands.config import default_config_file

    path = Path(default_config_file)
    return path if path.is_file() else None


def accelerate_config_text(accelerate_config: str | None) -> str | None:
    """The accelerate config a job runs with, for its provenance (None: one local process)."""
    path = Path(accelerate_config) if accelerate_config else default_accelerate_config()
    try:
        return path.read_text() if path else None
    except OSError as exc:
        return f"(unreadable: {exc})"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def failure_reason(path: Path) -> str:
    """The trainer's own `error:` line when it wrote one (the launcher's traceback is noise), else the log tail."""
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else log_tail(path, 5)


def exit_signal(status: int | str | None, log: str) -> int | None:
    """The signal that ended a job: from its status (Popen -N, shell 128+N) or, under accelerate, its log."""
    if isinstance(status, int) and status < 0:
        return -status
    if isinstance(status, int) and 128 < status <= 128 + 64:
        return status - 128
    return processes.signal_in_log(log) if status not in (0, None, LOST) else None


def diagnose(status: int | str, sig: int | None, log_path: Path) -> str:
    """One paragraph on why a job failed, then the last lines of its log."""
    log = log_path.read_text(errors="replace") if log_path.is_file() else ""
    tail = "\n".join(log.splitlines()[-200:])
    if any(marker in tail for marker in OOM_MARKERS):
        why = "out of memory (the log reports an allocation failure); lower minibatch_size or max_length"
    elif sig == 9:
        why = ("killed by SIGKILL (signal 9) that w2s did not send: most likely the kernel's out-of-memory "
               "killer (see `dmesg`), or someone ran kill -9")
    elif sig is not None:
        why = f"killed by {processes.signal_name(sig)} (signal {sig})"
    elif status == LOST:
        why = ("lost: its process ended while no supervisor was watching and left no exit record "
               "(the machine rebooted, or its wrapper was killed)")
    else:
        why = f"exited with code {status}: {failure_reason(log_path)}"
    return f"{why}\n--- log tail ---\n{log_tail(log_path)}"


@dataclass
class Attempt:
    """A running job: started by this supervisor (popen set) or re-attached after a restart (popen None)."""

    hash: str
    dir: Path
    ident: Identity
    popen: subprocess.Popen | None
    started: float
    device: str
    seen: dict = field(default_factory=dict)  # pid -> psutil.Process: every descendant seen while it ran

    def remember(self) -> None:
        """Note the job's processes now, so one that leaves the tree later is still killed with it."""
        self.seen.update({p.pid: p for p in processes.tree(self.ident)})

    @property
    def exit_path(self) -> Path:
        return self.dir / "exit_status"

    def poll(self) -> int | str | None:
        """None while it runs; then its exit status (Popen's, or the wrapper's record), or LOST."""
        if self.popen is not None:
            return self.popen.poll()
        if processes.alive(self.ident):
            return None
        status = processes.read_exit(self.exit_path)
        if status is None and (self.dir / "result.json").is_file():
            return 0  # its wrapper died after the trainer finished: the result is complete
        return LOST if status is None else status


def job_dir(store: Store, job_hash: str) -> Path:
    return store.root / "jobs" / job_hash[:16]


def upstream_hash(spec: dict) -> str | None:
    labels = spec.get("labels")
    return labels["from"] if isinstance(labels, dict) else None


def start(store: Store, row: dict, device: str, device_env: dict) -> Attempt:
    """Launch a queued job in its own session on `device`, running the code snapshot it was queued with."""
    folder = job_dir(store, row["hash"])
    folder.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        (folder / name).unlink(missing_ok=True)
    store.reset_job_outputs(row["hash"])
    spec = dict(row["spec"])
    upstream = upstream_hash(spec)
    if upstream:
        spec["upstream_dir"] = str(job_dir(store, upstream).resolve())
    (folder / "job.json").write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", **device_env)
    if row.get("code"):  # the snapshot comes first on the path; cwd is the job folder, not a checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(store.root / row["code"]), env.get("PYTHONPATH")]))
    accelerate_config = (row.get("launch") or {}).get("accelerate_config")
    command = launch_command(folder.resolve(), accelerate_config)
    popen, ident = processes.launch(command, folder / "log.txt", folder / "exit_status", env, folder)
    provenance = {**(row.get("provenance") or {}), "command": command, "device": device,
                  "cuda_visible_devices": device_env.get("CUDA_VISIBLE_DEVICES"),
                  "accelerate_config": accelerate_config_text(accelerate_config)}
    store.set_job_status(row["hash"], "running", pid=ident.pid, pgid=ident.pgid, proc_start=ident.start,
                         device=device, provenance=provenance)
    return Attempt(row["hash"], folder, ident, popen, time.time(), device)


def reattach(store: Store, row: dict) -> Attempt:
    """A job a previous supervisor started: follow it by pid and start time (it may have ended already)."""
    ident = Identity(row["pid"] or 0, row["pgid"] or row["pid"] or 0, row["proc_start"] or 0.0)
    return Attempt(row["hash"], Path(row["dir"]), ident, None, row["started_at"] or time.time(), row["device"] or "?")


def finish(store: Store, attempt: Attempt, status: int | str) -> bool:
    """Record an ended job: results and predictions on success, else a diagnosis. Returns success."""
    store.ingest_events(attempt.hash, attempt.dir / "events.jsonl")
    result_path = attempt.dir / "result.json"
    if status == 0 and result_path.is_file():
        result = json.loads(result_path.read_text())
        preds = json.loads((attempt.dir / "predictions.json").read_text())
        with store.transaction():
            for split, p in preds.items():
                store.add_predictions(attempt.hash, split, p["probs"], p["labels"])
            store.set_results(attempt.hash, result)
            env = json.loads((attempt.dir / "env.json").read_text())
            provenance = {**(store.get_job(attempt.hash)["provenance"] or {}), "job_env": env}
            store.set_job_status(attempt.hash, "done", exit_code=0, provenance=provenance)
        return True
    log = log_tail(attempt.dir / "log.txt", 200)
    sig = exit_signal(status, log)
    store.set_job_status(attempt.hash, "failed", exit_code=None if status == LOST else status, signal=sig,
                         error=diagnose(status, sig, attempt.dir / "log.txt"))
    return False


def cancel(store: Store, attempt: Attempt) -> None:
    """Kill the job's whole process tree, wait until it is gone, then record it cancelled."""
    processes.kill_tree(attempt.ident, popen=attempt.popen, known=attempt.seen.values())
    store.ingest_events(attempt.hash, attempt.dir / "events.jsonl")
    code = attempt.popen.returncode if attempt.popen is not None else None
    store.set_job_status(attempt.hash, "cancelled", exit_code=code, error="cancelled by `w2s cancel`")
