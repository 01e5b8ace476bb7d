"""The Slurm executor: each job an sbatch job, submitted through submitit, followed by its Slurm job id.

A job is submitted with `submitit.AutoExecutor(folder=<job folder>/slurm, cluster="slurm")`, its
parameters from [launch] (sbatch.py), running `JobCommand` (job_command.py): the same command a local
job runs (`python -m w2s_core.training JOB_DIR` for one process, else `accelerate launch ... -m
w2s_core.training JOB_DIR`: launch_config.py), in the job folder, with the code
snapshot it was queued with first on PYTHONPATH, its output in the job's log. The job folder must be on
a file system the nodes share (the results directory); the nodes run the supervisor's Python.

Jobs are submitted as their upstream jobs finish, as the local queue starts them, and not all at once
with `--dependency=afterok`: the supervisor reads and checks an upstream job's outputs (its results,
its predictions, which are its dependents' labels) before a dependent starts, which afterok cannot wait
for; and the dependents of a failed upstream would sit in Slurm's queue for good
(DependencyNeverSatisfied) where the local queue skips them at once. What it costs is the time between
an upstream's end and its dependent's submission: one poll (W2S_SLURM_POLL_S, 5 s) plus Slurm's own
scheduling. How many of a run's jobs are in Slurm at once is `[launch] parallel` (`--parallel`) when
set; else every ready job is submitted and Slurm queues them.

State comes from Slurm (slurm_state.py): a pending or running job is followed (its row's `slurm_state`
says which, and `started_at` is when it started running); one that ended is recorded by its exit record
(the command's own status) or, when Slurm ended it (OUT_OF_MEMORY, TIMEOUT, NODE_FAIL, ...), by that
state, which the diagnosis words as the local executor would (diagnosis.SLURM_REASONS). A job Slurm
requeued itself (preemption, `scontrol requeue`) keeps its job id and goes back to PENDING: it is
followed to its next run, which resumes from its checkpoint. `w2s cancel` runs `scancel` and waits
until Slurm reports the job ended; `w2s retry` submits a new Slurm job. A restarted supervisor
re-attaches to each running job by its Slurm job id.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w2s_core.errors import InputError
from w2s_core.jobdir import JobDir
from w2s_core.status import JobStatus
from w2s_core.supervision import processes, runner
from w2s_core.supervision.diagnosis import LOST
from w2s_core.supervision.executors import SLURM, SubmitError, launch_of
from w2s_core.supervision.executors import sbatch as params
from w2s_core.supervision.executors.slurm_state import ACTIVE_STATES, RUNNING, UNKNOWN, SlurmStates
from w2s_core.supervision.processes import Identity
from w2s_core.supervision.runner import Attempt

if TYPE_CHECKING:
    from w2s_core.store import Store
    from w2s_core.store.rows import JobRow
    from w2s_core.supervision.slots import Slot

GONE_S = 60.0  # a job that neither sacct, squeue nor scontrol knows for this long has left Slurm
RECORD_WAIT_S = 30.0  # an ended job's exit record may reach a shared file system late
CANCEL_WAIT_S = 90.0  # scancel, then wait this long for Slurm to report the job ended (KillWait is 30 s)
CANCEL_POLL_S = 1.0
PENDING = "PENDING"
# a job Slurm put back in its queue after it ran (requeued, preempted with PreemptMode=REQUEUE, held)
WAITING_STATES = frozenset({PENDING, "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "CONFIGURING"})


def load_submitit() -> Any:
    """submitit, with its sacct warnings (a cluster without accounting) kept out of the supervisor's log."""
    try:
        submitit = importlib.import_module("submitit")
    except ImportError as exc:
        raise SubmitError(
            f"the slurm executor needs submitit (`pip install submitit`), which cannot be imported: {exc}"
        ) from None
    logging.getLogger("submitit").setLevel(logging.ERROR)
    return submitit


def check_slurm(where: str = '[launch] executor = "slurm"') -> None:
    """InputError unless jobs can be submitted from here: sbatch on PATH, submitit importable."""
    if shutil.which("sbatch") is None:
        raise InputError(
            f"Slurm's sbatch was not found: {where} submits each job with sbatch, and there is no sbatch "
            "on PATH here. Run w2s on a node of the cluster that can submit jobs (a login node), or use "
            "the local executor (`--executor local`)."
        )
    try:
        load_submitit()
    except SubmitError as exc:
        raise InputError(f"{where}: {exc}") from None


@dataclass
class SlurmAttempt(Attempt):
    """A job handed to Slurm: no process of ours to watch, a Slurm job id and its last state instead."""

    job: Any = None  # submitit's Job
    job_id: str = ""
    state: str = PENDING
    recorded: str | None = None  # the state last written to the store
    nodes: str | None = None
    read_at: float | None = None  # monotonic time of the last state reading
    ended_at: float | None = None  # when Slurm was first seen done (or gone)
    ran: bool = False  # seen RUNNING in its current run
    start_recorded: bool = False  # started_at says when it first ran (else: when it was submitted)
    between_runs: bool = False  # its run's exit record was seen while Slurm still had the job
    requeued: int = 0  # runs Slurm started again, not yet counted in the store

    def poll(self) -> int | str | None:
        raise TypeError("a Slurm job's state comes from SlurmExecutor.poll")

    def remember(self) -> None:
        """No process tree to note: Slurm keeps track of the job's processes."""

    def kill(self) -> None:
        """Nothing left to kill once Slurm reports the job ended (SlurmExecutor.cancel stops it before)."""


class SlurmExecutor:
    name = SLURM

    def __init__(self, submitit: Any = None, run: params.Run = subprocess.run, echo=print, poll_s=None) -> None:
        """`submitit` and `run` (subprocess.run, for sinfo, squeue, scontrol) are replaced in tests."""
        self._submitit = submitit
        self.run = run
        self.echo = echo
        self.states = SlurmStates(run, poll_s)
        self._watcher: Any = None
        self._partition_minutes: dict[str | None, tuple[int, str]] = {}

    @property
    def submitit(self) -> Any:
        if self._submitit is None:
            self._submitit = load_submitit()
        return self._submitit

    # -- start -------------------------------------------------------------------------------

    def start(self, store: Store, row: JobRow, slot: Slot | None = None) -> SlurmAttempt:
        """Submit the job; its row records the Slurm job id (SubmitError when sbatch refuses it)."""
        folder = runner.prepare(store, row)
        command = params.job_command(folder.path.resolve(), row)
        minutes, source = self.timeout(row)
        options = params.submitit_parameters(row, minutes)
        code = runner.code_path(store, row)
        function = _job_command(command, str(folder.path.resolve()), runner.JOB_ENV, code)
        try:
            executor = self.submitit.AutoExecutor(folder=folder.path.resolve() / params.SLURM_DIR, cluster="slurm")
        except RuntimeError as exc:  # submitit looks for srun first
            raise SubmitError(f"Slurm's sbatch was not found: submitit says {exc}") from None
        try:
            executor.update_parameters(**options)
            job = executor.submit(function)
            job_id = str(job.job_id)
        except Exception as exc:  # sbatch's refusal comes as CalledProcessError, FailedSubmissionError, ...
            raise SubmitError(f"sbatch did not take job {row['hash'][:10]}: {_reason(exc)}") from exc
        self._share_watcher(job)
        provenance = {
            **(row.get("provenance") or {}),
            "command": command,
            "device": SLURM,
            "sbatch": params.sbatch_flags(options),
            "time_from": source,
            "accelerate_config": runner.accelerate_config_text(launch_of(row).get("accelerate_config"), folder.path),
        }
        store.set_job_status(
            row["hash"], JobStatus.RUNNING, pid=None, pgid=None, proc_start=None, device=SLURM,
            provenance=provenance, executor=SLURM, slurm_job_id=job_id, slurm_state=PENDING,
        )  # fmt: skip
        self.echo(f"submitted job {row['hash'][:10]} as Slurm job {job_id} ({' '.join(options_line(options))})")
        return self._attempt(row["hash"], folder.path, job, job_id, PENDING, time.time())

    def timeout(self, row: dict) -> tuple[int, str]:
        """The job's time limit (minutes) and its source; a partition's limit is asked once per supervisor."""
        if launch_of(row).get("time") is not None:
            return params.timeout_minutes(row, self.run)
        partition = launch_of(row).get("partition")
        if partition not in self._partition_minutes:
            self._partition_minutes[partition] = params.timeout_minutes(row, self.run)
        return self._partition_minutes[partition]

    def _attempt(self, job_hash: str, path: Path, job: Any, job_id: str, state: str, started: float) -> SlurmAttempt:
        return SlurmAttempt(
            job_hash, JobDir(Path(path)), Identity(0, 0, 0.0), None, started, SLURM,
            executor=SLURM, job=job, job_id=job_id, state=state, recorded=state,
        )  # fmt: skip

    def _share_watcher(self, job: Any) -> None:
        """Give the job this executor's sacct watcher: submitit's own waits up to ten minutes between calls."""
        watcher = getattr(type(job), "watcher", None)
        if watcher is None:
            return
        if self._watcher is None:
            self._watcher = type(watcher)(delay_s=max(1, int(self.states.poll_s)))
        job.watcher = self._watcher

    # -- follow ------------------------------------------------------------------------------

    def poll(self, attempt: SlurmAttempt) -> int | str | None:
        """None while Slurm has the job pending or running; then its exit record's status, or Slurm's
        end state when the command left none (OUT_OF_MEMORY, TIMEOUT, ...), or LOST."""
        state = self.states.state(attempt)
        if state in ACTIVE_STATES:
            attempt.ended_at = None
            track_runs(attempt, state)
            return None
        now = time.monotonic()
        attempt.ended_at = attempt.ended_at or now
        status = processes.read_exit(attempt.folder.exit_status)
        if state == UNKNOWN:  # sacct, squeue and scontrol know nothing of it: left Slurm, or not there yet
            if now - attempt.ended_at < GONE_S:
                return None
            return status if status is not None else (0 if attempt.folder.succeeded() else LOST)
        if state in ("COMPLETED", "FAILED"):  # the command ended by itself: its own status says how
            if status is not None:
                return status
            if state == "COMPLETED" and attempt.folder.succeeded():
                return 0
            if now - attempt.ended_at < RECORD_WAIT_S:
                return None
        return state

    def follow(self, store: Store, attempt: SlurmAttempt) -> None:
        """Store the job's new events, a run Slurm started again (counted in `requeues`), and Slurm's
        state when it changed (`started_at`: when the job first began to run, not when it was submitted)."""
        runner.follow(store, attempt)
        for _ in range(attempt.requeued):
            count = store.count_requeue(attempt.job_hash)
            self.echo(
                f"Slurm requeued job {attempt.job_hash[:10]} (Slurm job {attempt.job_id}, requeue {count}): "
                "it resumes from its checkpoint"
            )
        attempt.requeued = 0
        if attempt.state == attempt.recorded:
            return
        fields: dict[str, Any] = {"hash": attempt.job_hash, "slurm_state": attempt.state}
        if attempt.state == RUNNING and not attempt.start_recorded:
            fields["started_at"] = attempt.started = time.time()
            attempt.start_recorded = True
        if attempt.nodes:
            fields["device"] = attempt.device = f"{SLURM}:{attempt.nodes}"
        store.upsert_job(fields)
        attempt.recorded = attempt.state

    def finish(self, store: Store, attempt: SlurmAttempt, status: int | str) -> bool:
        """Record the ended job as the local executor does, with Slurm's last state; a failure also
        names submitit's own log of the job (where an error before the command started shows)."""
        store.upsert_job({"hash": attempt.job_hash, "slurm_state": attempt.state})
        slurm_log = attempt.folder.path / params.SLURM_DIR / f"{attempt.job_id}_0_log.err"
        hint = f"\n(Slurm job {attempt.job_id}, state {attempt.state}; submitit's log: {slurm_log})"
        return runner.finish(store, attempt, status, hint)

    # -- cancel, re-attach, describe --------------------------------------------------------------

    def cancel(self, store: Store, attempt: SlurmAttempt) -> None:
        """scancel the job, wait until Slurm reports it ended (CANCEL_WAIT_S at most), record it cancelled."""
        try:
            attempt.job.cancel(check=False)
        except OSError as exc:
            raise SubmitError(f"cannot cancel Slurm job {attempt.job_id}: scancel failed: {exc}") from exc
        deadline = time.monotonic() + CANCEL_WAIT_S
        while self.states.state(attempt, force=True) in ACTIVE_STATES and time.monotonic() < deadline:
            time.sleep(CANCEL_POLL_S)
        runner.follow(store, attempt)
        note = (
            ""
            if attempt.state not in ACTIVE_STATES
            else f" (Slurm still said {attempt.state} after {CANCEL_WAIT_S:g} s)"
        )
        store.set_job_status(
            attempt.job_hash, JobStatus.CANCELLED, error=runner.CANCELLED_BY_USER + note, slurm_state=attempt.state
        )

    def reattach(self, store: Store, row: JobRow) -> SlurmAttempt:
        """Follow a job a previous supervisor submitted, by its Slurm job id."""
        path = Path(row["dir"] or runner.job_dir(store, row["hash"]))
        job_id = str(row["slurm_job_id"] or "")
        job = self.submitit.SlurmJob(folder=path / params.SLURM_DIR, job_id=job_id)
        self._share_watcher(job)
        state = row.get("slurm_state") or PENDING
        attempt = self._attempt(row["hash"], path, job, job_id, state, row["started_at"] or time.time())
        attempt.ran, attempt.start_recorded = state == RUNNING, state != PENDING
        attempt.device = row.get("device") or SLURM
        return attempt

    def describe_command(self, row: dict) -> str:
        folder = row.get("dir") or f"{runner.JOBS_DIR}/{row['hash'][:16]}"
        return params.describe(row, folder, self.run)


def track_runs(attempt: SlurmAttempt, state: str) -> None:
    """Notice Slurm running the same job again (preemption, `scontrol requeue`), while Slurm still has it:
    seen running, then back in the queue; or its run's exit record seen, then gone while it runs (the
    next run clears the record as it starts, which a state read every few seconds may miss)."""
    record = attempt.folder.exit_status.exists()
    if state in WAITING_STATES:
        if attempt.ran:
            attempt.requeued += 1
            attempt.ran = attempt.between_runs = False
        return
    if state == RUNNING:
        if attempt.between_runs and not record:
            attempt.requeued += 1
            attempt.between_runs = False
        attempt.ran = True
    if record and attempt.ran:
        attempt.between_runs = True


def options_line(options: dict) -> list[str]:
    return [f for f in params.sbatch_flags(options) if not f.startswith("--job-name")]


def _job_command(command: list[str], job_dir: str, env: dict, code: str | None) -> Any:
    from w2s_core.supervision.executors.job_command import JobCommand

    return JobCommand(command, job_dir, env, code)


def _reason(exc: Exception) -> str:
    """What sbatch said, when the exception carries it."""
    for attr in ("stderr", "output"):
        text = getattr(exc, attr, None)
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        if text:
            return text.strip()
    return str(exc) or type(exc).__name__
