"""The supervisor: the one process that writes a results directory while work is queued.

The store is the queue: jobs with status 'queued' run, oldest run first, once their upstream job
is done, one per device slot (one per GPU by default, `CUDA_VISIBLE_DEVICES` set per job; CPU
slots when there is no GPU). Other processes never write the database while a supervisor holds
the writer lock: they drop requests (submit, cancel, retry) as JSON files into `inbox/`, which
the supervisor applies one at a time, each exactly once. On start it re-attaches to the jobs a
previous supervisor left running (same pid and start time) or records how they ended. It exits
when nothing is queued or running. `w2s run` runs one in the foreground; `w2s run --detach`
starts one in its own session, so it survives the terminal and the SSH connection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from w2s_core.supervision import processes

from w2s_core.supervision import runner
from w2s_core.errors import W2SError
from w2s_core.supervision.lock import WriterLock
from w2s_core.store import Store

# plan, recipe and models import torch and transformers (seconds): only what plans work imports
# them, so `w2s queue`, `w2s cancel` and `w2s runs` stay quick.

INBOX = "inbox"
LOG_NAME = "supervisor.log"
UNSUCCESSFUL = ("failed", "cancelled", "skipped")
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Slot:
    name: str  # "cuda:0", "cpu"
    env: dict


def visible_gpus() -> list[str]:
    """GPU indices jobs may use: $CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists (no torch import)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() not in ("", "-1")]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def device_slots(parallel: int = 1, jobs_per_gpu: int = 1, gpus: list[str] | None = None) -> list[Slot]:
    """`jobs_per_gpu` slots per GPU; with no GPU, `parallel` CPU slots sharing the cores."""
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        return [Slot(f"cuda:{g}", {"CUDA_VISIBLE_DEVICES": g}) for g in gpus for _ in range(jobs_per_gpu)]
    env = {"CUDA_VISIBLE_DEVICES": ""}
    if parallel > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    return [Slot("cpu", env) for _ in range(parallel)]


# -- requests -------------------------------------------------------------------------------------


def new_request_id() -> str:
    """Sorts by time, unique across processes: requests apply in the order they were made."""
    return f"{time.time_ns()}-{secrets.token_hex(4)}"


def post(root: Path, action: str, **fields) -> str:
    """Queue a request for the supervisor (written atomically); returns its id."""
    inbox = Path(root) / INBOX
    inbox.mkdir(parents=True, exist_ok=True)
    request_id = new_request_id()
    tmp = inbox / f".{request_id}.tmp"
    tmp.write_text(json.dumps({"id": request_id, "action": action, **fields}))
    os.replace(tmp, inbox / f"{request_id}.json")
    return request_id


def pending(root: Path) -> list[Path]:
    return sorted((Path(root) / INBOX).glob("*.json"))


def holder(root: Path) -> dict | None:
    """The supervisor holding the writer lock of `root` ({pid, since}), or None."""
    return WriterLock(root).holder()


def spawn(root: Path, parallel: int = 1, jobs_per_gpu: int = 1) -> int:
    """Start a supervisor in its own session (it outlives this process and the terminal); returns its pid."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOG_NAME, "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "w2s_core.supervision", str(root), "--parallel", str(parallel),
                                 "--jobs-per-gpu", str(jobs_per_gpu)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=root, start_new_session=True)
    return proc.pid


def resume_parallel(active: list[dict]) -> int:
    """CPU slots for a supervisor taking over queued work: what that work was submitted with."""
    return max([(j["launch"] or {}).get("parallel", 1) for j in active], default=1)


def ensure_running(root: Path, parallel: int = 1, jobs_per_gpu: int = 1) -> tuple[int | None, bool]:
    """A supervisor for `root`: (pid, started_now). Post requests *before* calling this (see main)."""
    current = holder(root)
    if current is not None:
        return current.get("pid"), False
    return spawn(root, parallel, jobs_per_gpu), True


def absolute_model_path(spec: dict) -> dict:
    """The spec with a relative local model folder made absolute: jobs run in their own folder.
    (The job hash already names the resolved folder, so this changes no hash.)"""
    from w2s_core.spec.models import looks_local

    path = spec["model"].get("path", "")
    if not looks_local(path) or os.path.isabs(os.path.expanduser(path)):
        return spec
    return {**spec, "model": {**spec["model"], "path": os.path.abspath(os.path.expanduser(path))}}


def job_provenance(run_provenance: dict) -> dict:
    """A run's provenance without the dirty diff, which can be large: it is stored once, with the run
    (`w2s show JOB` shows it from there)."""
    code = {k: v for k, v in (run_provenance.get("code") or {}).items() if k != "git_diff"}
    return {**run_provenance, "code": code} if run_provenance.get("code") else dict(run_provenance)


def describe_row(row: dict) -> str:
    """plan.describe for a stored job."""
    from w2s_core.spec.plan import Job, describe

    return describe(Job(row["hash"], row["kind"], row["model"], row["seed"], row["spec"], [], row["weak_model"],
                        row["loss"]))


# -- the loop -------------------------------------------------------------------------------------


class Supervisor:
    def __init__(self, store: Store, slots: list[Slot], echo: Callable[[str], None] = print):
        self.store, self.slots, self.echo = store, slots, echo
        self.running: dict[str, runner.Attempt] = {}
        self.slot_of: dict[str, int] = {}
        self.progress: dict[int, list[int]] = {}  # run id -> [finished, total]

    # requests

    def apply_pending(self) -> None:
        for path in pending(self.store.root):
            try:
                request = json.loads(path.read_text())
                self.apply(request)
            except (W2SError, ValueError, KeyError, OSError) as exc:
                self.echo(f"could not apply request {path.name}: {exc}")
                path.rename(path.with_suffix(".rejected"))
                continue
            path.unlink(missing_ok=True)

    def apply(self, request: dict) -> int | None:
        """Apply one request; returns the run it created (submit, retry)."""
        action = request["action"]
        if action == "submit":
            return self.submit(request)
        if action == "retry":
            return self.retry(request)
        if action == "cancel":
            self.cancel(request["jobs"])
            return None
        raise ValueError(f"unknown request action {action!r}")

    def submit(self, request: dict) -> int:
        """Record the recipe snapshot and queue every job of its plan that is not done yet (once per request)."""
        existing = self.store.run_of_submission(request["id"])
        if existing is not None:
            return existing
        from w2s_core.spec.plan import build_plan
        from w2s_core.spec.recipe import parse_recipe

        text = request["recipe_text"]
        with contextlib.chdir(request.get("cwd") or "."):  # relative model paths mean the submitter's folder
            recipe = parse_recipe(tomllib.loads(text), Path(request["recipe_path"]), text)
            plan = build_plan(recipe)
            specs = {job.hash: absolute_model_path(job.spec) for job in plan.jobs}
        store, force = self.store, request.get("force", False)
        todo = 0
        with store.transaction():
            store.add_recipe(recipe.hash, recipe.name, str(recipe.path), text)
            run_id = store.start_run(recipe.hash, request["argv"], request["provenance"], submission=request["id"])
            for job in plan.jobs:
                row = store.get_job(job.hash)
                folder = runner.job_dir(store, job.hash)
                done = bool(row and row["status"] == "done" and (folder / "result.json").is_file())
                fields = {"hash": job.hash, "kind": job.kind, "model": job.model, "weak_model": job.weak_model,
                          "loss": job.spec["loss"]["name"] if job.kind != "gt" else None, "seed": job.seed,
                          "spec": specs[job.hash], "dir": str(folder.relative_to(store.root))}
                if row is None:
                    fields["recipe_hash"] = recipe.hash
                active = row is not None and row["status"] in ACTIVE  # queued or running for another run
                if active or not done or force:
                    todo += 1
                if (not done or force) and not active:
                    fields.update(status="queued", run_id=run_id, error=None, exit_code=None, signal=None,
                                  queued_at=time.time(), code=request.get("code"),
                                  launch={"accelerate_config": recipe.launch.get("accelerate_config"),
                                          "parallel": request.get("parallel", 1)},
                                  provenance={**job_provenance(request["provenance"]), "recipe_hash": recipe.hash})
                store.upsert_job(fields)
                for role in job.roles:
                    store.link_job(recipe.hash, job.hash, json.dumps(role, sort_keys=True))
        total = len(plan.jobs)
        self.progress[run_id] = [total - todo, total]
        self.echo(f"{recipe.name}: {total} jobs, {total - todo} already done, {todo} to run")
        return run_id

    def retry(self, request: dict) -> int:
        """Queue failed, cancelled or skipped jobs again, as a new run."""
        existing = self.store.run_of_submission(request["id"])
        if existing is not None:
            return existing
        rows = [r for r in map(self.store.get_job, request["jobs"]) if r and r["status"] in UNSUCCESSFUL]
        with self.store.transaction():
            recipe_hash = rows[0]["recipe_hash"] if rows else None
            run_id = self.store.start_run(recipe_hash, request["argv"], request["provenance"],
                                          submission=request["id"])
            for row in rows:
                self.store.upsert_job({"hash": row["hash"], "status": "queued", "run_id": run_id, "error": None,
                                       "exit_code": None, "signal": None, "queued_at": time.time(),
                                       "code": request.get("code") or row["code"]})
        self.progress[run_id] = [0, len(rows)]
        self.echo(f"retry: {len(rows)} job(s) queued again")
        return run_id

    def cancel(self, hashes: list[str]) -> None:
        """Cancel queued jobs; kill running ones' whole process trees and wait until they are gone."""
        for job_hash in hashes:
            row = self.store.get_job(job_hash)
            if row is None:
                continue
            if job_hash in self.running:
                runner.cancel(self.store, self.running.pop(job_hash))
                self.slot_of.pop(job_hash, None)
            elif row["status"] == "running":  # started by a supervisor that is gone
                runner.cancel(self.store, runner.reattach(self.store, row))
            elif row["status"] == "queued":
                self.store.set_job_status(job_hash, "cancelled", error="cancelled by `w2s cancel`")
            else:
                continue
            self.echo(f"cancelled {describe_row(row)}")
        self.skip_blocked()
        self.close_runs()

    # jobs

    def reattach_all(self) -> None:
        """Follow the jobs a previous supervisor left running (they may have ended meanwhile)."""
        for row in self.store.jobs(status="running"):
            if row["hash"] in self.running:
                continue
            attempt = runner.reattach(self.store, row)
            self.running[row["hash"]] = attempt
            free = [i for i, s in enumerate(self.slots) if s.name == attempt.device and i not in self.slot_of.values()]
            if free:
                self.slot_of[row["hash"]] = free[0]
            alive = "still running" if attempt.poll() is None else "ended while unsupervised"
            self.echo(f"re-attached {describe_row(row)} (pid {attempt.ident.pid}, {alive})")

    def poll_running(self) -> None:
        for job_hash, attempt in list(self.running.items()):
            self.store.ingest_events(job_hash, attempt.dir / "events.jsonl")
            status = attempt.poll()
            if status is None:
                attempt.remember()
                continue
            # stragglers the launcher orphaned; the device is free only once they are gone
            processes.kill_tree(attempt.ident, popen=attempt.popen, known=attempt.seen.values())
            del self.running[job_hash]
            self.slot_of.pop(job_hash, None)
            ok = runner.finish(self.store, attempt, status)
            row = self.store.get_job(job_hash)
            count = self._count(row["run_id"])
            secs = time.time() - attempt.started
            if ok:
                acc = self.store.results(job_hash).get("test_acc", float("nan"))
                self.echo(f"{count} done   {describe_row(row)}: test acc {acc:.3f} ({secs:.1f}s)")
            else:
                reason = row["error"].split("\n--- log tail ---")[0]
                self.echo(f"{count} FAILED {describe_row(row)}: {reason}\n    log: {attempt.dir / 'log.txt'}")

    def skip_blocked(self) -> None:
        """A queued job whose upstream failed, was cancelled or skipped will never run: skip it (and so on down)."""
        changed = True
        while changed:
            changed = False
            for row in self.store.jobs(status="queued"):
                upstream = runner.upstream_hash(row["spec"])
                up = self.store.get_job(upstream) if upstream else None
                if upstream and (up is None or up["status"] not in ("done", *ACTIVE)):
                    why = f"upstream job {upstream[:10]} {up['status'] if up else 'is missing'}"
                    self.store.set_job_status(row["hash"], "skipped", error=why)
                    self.echo(f"{self._count(row['run_id'])} skipped  {describe_row(row)} ({why})")
                    changed = True

    def start_ready(self) -> None:
        free = [i for i in range(len(self.slots)) if i not in self.slot_of.values()]
        for row in sorted(self.store.jobs(status="queued"), key=lambda r: r["run_id"] or 0):
            if not free:
                return
            upstream = runner.upstream_hash(row["spec"])
            if upstream and self.store.get_job(upstream)["status"] != "done":
                continue
            slot = free.pop(0)
            self.running[row["hash"]] = runner.start(self.store, row, self.slots[slot].name, self.slots[slot].env)
            self.slot_of[row["hash"]] = slot

    def close_runs(self) -> None:
        """A run is over when none of its jobs is queued or running."""
        for run in self.store.runs(status="running"):  # every poll: read only the open runs
            statuses = [j["status"] for j in self.store.jobs(run_id=run["id"])]
            if not any(s in ACTIVE for s in statuses):
                self.store.finish_run(run["id"], "failed" if any(s in UNSUCCESSFUL for s in statuses) else "done")

    def _count(self, run_id: int | None) -> str:
        if run_id is None:
            return "[-]"
        if run_id not in self.progress:  # a run this supervisor took over; the job just counted is ended
            jobs = self.store.jobs(run_id=run_id)
            self.progress[run_id] = [sum(j["status"] not in ACTIVE for j in jobs) - 1, len(jobs)]
        progress = self.progress[run_id]
        progress[0] += 1
        return f"[{progress[0]}/{progress[1]}]"

    def busy(self) -> bool:
        return bool(self.running or self.store.jobs(status="queued") or pending(self.store.root))

    def run(self) -> None:
        """Work until nothing is queued or running. Ctrl-C cancels what this supervisor runs."""
        self.reattach_all()
        try:
            while True:
                self.apply_pending()
                self.poll_running()
                self.skip_blocked()
                self.start_ready()
                self.close_runs()
                if not self.busy():
                    return
                time.sleep(runner.POLL_S)
        except KeyboardInterrupt:
            self.interrupt()
            raise

    def interrupt(self) -> None:
        for job_hash, attempt in list(self.running.items()):
            runner.cancel(self.store, attempt)
        self.running.clear()
        for row in self.store.jobs(status="queued"):
            self.store.set_job_status(row["hash"], "cancelled", error="interrupted (Ctrl-C)")
        for run in self.store.runs(status="running"):
            self.store.finish_run(run["id"], "interrupted")


def serve(root: Path, slots: list[Slot], echo: Callable[[str], None]) -> bool:
    """Supervise `root` until idle if nobody else does; False if another supervisor holds the lock.

    After letting go of the lock it looks at the inbox once more: a request posted just before
    the release found the lock taken and counts on us (posters write first, then check the lock).
    """
    lock = WriterLock(root)
    served = False
    while lock.try_acquire():
        served = True
        try:
            with Store.open(root) as store:
                Supervisor(store, slots, echo).run()
        finally:
            lock.release()
        if not pending(root):
            break
    return served


def _echo(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m w2s_core.supervision", description="Run a results directory's queue.")
    p.add_argument("results_dir")
    p.add_argument("--parallel", type=int, default=1, help="CPU jobs at once when there is no GPU")
    p.add_argument("--jobs-per-gpu", type=int, default=1)
    args = p.parse_args(argv)
    root = Path(args.results_dir).resolve()
    _echo(f"supervisor pid {os.getpid()} for {root}")
    try:
        serve(root, device_slots(args.parallel, args.jobs_per_gpu), _echo)
    except W2SError as exc:
        _echo(f"error: {exc}")
        return exc.exit_code
    _echo("idle: nothing queued or running; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
