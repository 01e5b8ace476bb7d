"""The supervisor's poll loop: the one place that decides what runs when, and the only writer of the store.

The store is the queue: jobs with status 'queued' run, oldest run first, once their upstream job is
done, one per device slot (local jobs) or within `[launch] parallel` (Slurm jobs). Requests from
other processes arrive as files in `inbox/` (requests.py) and are applied by one handler each
(handlers.py); jobs start, run and end through their executor (executors/: local processes, or Slurm
jobs); what the supervisor says goes through a Reporter (progress.py). `Supervisor`'s docstring lists
the steps of a tick.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from w2s_core.errors import W2SError
from w2s_core.spec.launch import EXECUTORS
from w2s_core.status import ACTIVE, RETRYABLE, JobStatus, RunStatus
from w2s_core.store import Store
from w2s_core.supervision import diagnosis, handlers, notify, placement, requests, runner, sampling, upstream
from w2s_core.supervision.executors import LOCAL, SLURM, Executor, Executors, SubmitError, executor_name
from w2s_core.supervision.progress import Reporter
from w2s_core.supervision.slots import Slot, SlotTable

INTERRUPTED = "interrupted (Ctrl-C)"
SLURM_SLOT = Slot(SLURM, {})  # Slurm places a job itself: it holds none of this machine's slots


def max_requeues() -> int:
    """How often one job may stop with a checkpoint and be queued again ($W2S_MAX_REQUEUES, default 20)
    before it is failed instead: a job that never gets further must not run for ever."""
    return int(os.environ.get("W2S_MAX_REQUEUES", "20"))


class Supervisor:
    """Works one results folder's queue until nothing is queued, running or requested.

    `run` first re-attaches to the jobs a previous supervisor left running (they may have ended
    meanwhile), then repeats, every POLL_S seconds:

    1. apply pending requests, oldest first, each exactly once (`apply_pending`);
    2. poll running jobs through their executor: store their new events, record those that ended (or
       queue again those that stopped with a checkpoint to resume from), free their slots (`poll_running`);
    3. sample the GPUs every GPU_SAMPLE_S seconds, when NVML is there: each GPU, and the memory each
       running job holds on it (`sample_gpus`, sampling.py);
    4. skip blocked jobs: queued jobs whose upstream failed, was cancelled or skipped (`skip_blocked`);
    5. start ready jobs: queued jobs whose upstream is done, oldest run first, a local job per free slot,
       a Slurm job (submitted) while fewer than its `[launch] parallel` are in Slurm (`start_ready`);
    6. close runs that have nothing queued or running left (`close_runs`);
    7. reap the user's notification commands (started, never waited for, when a run ends in step 6 or a
       job crashes in step 2: notify.py), killing those past their timeout (`notifier.tick`);
    8. stop when nothing is queued, running or requested and no notification command runs (`busy`).

    Ctrl-C cancels what this supervisor runs and what is queued (`interrupt`).
    """

    def __init__(
        self, store: Store, slots: list[Slot], echo: Callable[[str], None] = print, executors: Executors | None = None
    ) -> None:
        self.store = store
        self.slots = SlotTable(slots)
        self.report = Reporter(store, echo)
        self.running: dict[str, runner.Attempt] = {}  # job hash -> the attempt running it
        self.gpus = sampling.GpuSampler(store, echo)
        self.executors = executors or Executors(echo)
        self.notifier = notify.Notifier(store, echo)  # the user's [notify] command (w2s_core.config)

    def run(self) -> None:
        """Re-attach, then tick (the steps in the class docstring) until idle. Ctrl-C cancels what this runs."""
        self.reattach_all()
        try:
            while True:
                self.apply_pending()
                self.poll_running()
                self.sample_gpus()
                self.skip_blocked()
                self.start_ready()
                self.close_runs()
                self.notifier.tick()
                if not self.busy():
                    return
                time.sleep(runner.POLL_S)
        except KeyboardInterrupt:
            self.interrupt()
            raise

    # -- requests

    def apply(self, request: requests.Request) -> int | None:
        """Apply one request (by its handler); returns the run it created (Submit, Retry)."""
        return handlers.handle(self, request)

    def apply_pending(self) -> None:
        """Apply the inbox's requests in order; one that fails is reported and set aside, never retried."""
        for path in requests.pending(self.store.root):
            try:
                self.apply(requests.read(path))
            except (W2SError, ValueError, KeyError, OSError) as exc:  # BadRequest is a ValueError
                self.report.rejected(path, exc, requests.set_aside(path))
                continue
            path.unlink(missing_ok=True)

    # -- jobs

    def reattach_all(self) -> None:
        """Follow the jobs a previous supervisor left running (they may have ended meanwhile)."""
        for row in self.store.jobs(status=JobStatus.RUNNING):
            if row["hash"] in self.running:
                continue
            executor = self.executors.of(row)
            attempt = executor.reattach(self.store, row)
            self.running[row["hash"]] = attempt
            if executor.name == LOCAL:
                self.slots.take_device(row["hash"], attempt.device)
                self.report.reattached(row, attempt.ident.pid, alive=executor.poll(attempt) is None)
            else:
                alive = executor.poll(attempt) is None
                self.report.reattached(row, 0, alive, where=f"Slurm job {row['slurm_job_id']}, {attempt.state}")

    def executor(self, attempt: runner.Attempt) -> Executor:
        return self.executors.get(attempt.executor)

    def poll_running(self) -> None:
        for job_hash, attempt in list(self.running.items()):
            executor = self.executor(attempt)
            executor.follow(self.store, attempt)
            status = executor.poll(attempt)
            if status is None:
                attempt.remember()
                continue
            attempt.kill()  # stragglers the launcher orphaned; the device is free only once they are gone
            self.release(job_hash)
            self.ended(executor, attempt, status)

    def ended(self, executor: Executor, attempt: runner.Attempt, status: int | str) -> None:
        """Record a job that ended, or queue it again when it stopped with a checkpoint to resume from
        (EXIT_REQUEUE) or Slurm preempted it, at most `max_requeues()` times."""
        job_hash = attempt.job_hash
        row = self.store.get_job(job_hash)
        if diagnosis.wants_requeue(status, attempt.folder) and (row["requeues"] or 0) < max_requeues():
            runner.follow(self.store, attempt)
            step = attempt.folder.checkpoint_step()
            where = f"its checkpoint at step {step}" if step is not None else "the start (no checkpoint was saved)"
            count = self.store.requeue_job(job_hash, f"requeued: stopped on a signal, resumes from {where}")
            self.report.requeued(self.store.get_job(job_hash), count, where)
            return
        ok = executor.finish(self.store, attempt, status)
        self.report.finished(self.store.get_job(job_hash), ok, time.time() - attempt.started, attempt.folder.log)
        if not ok:
            self.notifier.job_crashed(job_hash)

    def sample_gpus(self) -> None:
        """Each GPU and each running job's memory on it, every GPU_SAMPLE_S (nothing without NVML)."""
        self.gpus.tick(self.running)

    def skip_blocked(self) -> None:
        """A queued job whose upstream failed, was cancelled or skipped will never run: skip it (and so on down)."""
        while blocked := upstream.blocked(self.store):
            for row, why in blocked:
                self.store.set_job_status(row["hash"], JobStatus.SKIPPED, error=why)
                self.report.skipped(row, why)

    def start_ready(self) -> None:
        """Start ready jobs in queue order. A local job that cannot be placed keeps the local jobs behind
        it waiting (placement.py); a Slurm job over its `parallel` bound, the Slurm jobs behind it."""
        if not self.slots.free() and not self.store.has_queued(SLURM):  # nothing could start: skip the reads
            return
        waiting: set[str] = set()  # executors whose first ready job waits
        for row in upstream.ready(self.store):
            name = executor_name(row)
            if name in waiting:
                continue
            slot = placement.take(self, row) if name == LOCAL else self.slurm_slot(row)
            if slot is None:
                waiting.add(name)
                continue
            try:
                self.running[row["hash"]] = self.executors.get(name).start(self.store, row, slot)
            except SubmitError as exc:
                self.slots.release(row["hash"])
                self.store.set_job_status(row["hash"], JobStatus.FAILED, error=str(exc))
                self.report.echo(f"job {row['hash'][:10]} could not start: {exc}")

    def slurm_slot(self, row: dict) -> Slot | None:
        """SLURM_SLOT while fewer Slurm jobs than the row's `[launch] parallel` are in Slurm (no bound unset)."""
        bound = (row.get("launch") or {}).get("slurm_parallel")
        in_slurm = sum(a.executor == SLURM for a in self.running.values())
        return SLURM_SLOT if bound is None or in_slurm < bound else None

    def release(self, job_hash: str) -> runner.Attempt:
        """Stop following a job and free its slot (its process tree must be gone); returns its attempt."""
        self.slots.release(job_hash)
        return self.running.pop(job_hash)

    # -- runs

    def close_runs(self) -> None:
        """A run is over when none of its jobs is queued or running."""
        for run in self.store.runs(status=RunStatus.RUNNING):  # every poll: read only the open runs
            statuses = [j["status"] for j in self.store.jobs(run_id=run["id"])]
            if not any(s in ACTIVE for s in statuses):
                status = RunStatus.FAILED if any(s in RETRYABLE for s in statuses) else RunStatus.DONE
                self.store.finish_run(run["id"], status)
                self.notifier.run_ended(run["id"], status)

    def busy(self) -> bool:
        return bool(
            self.running
            or any(self.store.has_queued(name) for name in EXECUTORS)  # a LIMIT 1 look-up, no row decoded
            or requests.pending(self.store.root)
            or self.notifier.busy()
        )

    def interrupt(self) -> None:
        for attempt in list(self.running.values()):
            self.executor(attempt).cancel(self.store, attempt)
        self.running.clear()
        for row in self.store.jobs(status=JobStatus.QUEUED):
            self.store.set_job_status(row["hash"], JobStatus.CANCELLED, error=INTERRUPTED)
        for run in self.store.runs(status=RunStatus.RUNNING):
            self.store.finish_run(run["id"], RunStatus.INTERRUPTED)
            self.notifier.run_ended(run["id"], RunStatus.INTERRUPTED)
