"""Run a plan's jobs in dependency order, each in its own `accelerate launch` subprocess.

The runner is the only writer of the store: it tails each job's events.jsonl by byte offset and,
when a job exits, records its results and predictions. Finished jobs (by content hash) are skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .plan import Job, Plan, describe
from .provenance import provenance
from .store import Store

POLL_S = 0.2
LOG_TAIL_LINES = 15


def launch_command(job_dir: Path, accelerate_config: str | None) -> list[str]:
    """`accelerate launch` with the user's config if any, else one local process."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    from accelerate.commands.config import default_config_file

    if accelerate_config:
        cmd += ["--config_file", accelerate_config]
    elif not Path(default_config_file).is_file():
        cmd += ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return cmd + ["-m", "w2s_core.train", str(job_dir)]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def failure_reason(path: Path) -> str:
    """The trainer's own `error:` line when it wrote one (the launcher's traceback is noise), else the log tail."""
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else log_tail(path, 5)


@dataclass
class Running:
    job: Job
    proc: subprocess.Popen
    dir: Path
    started: float
    command: list[str]


class Runner:
    def __init__(self, store: Store, plan: Plan, *, force: bool = False, parallel: int | None = None,
                 echo: Callable[[str], None] = print):
        self.store, self.plan, self.force, self.echo = store, plan, force, echo
        self.parallel = parallel or plan.recipe.launch.get("parallel", 1)
        self.jobs_dir = store.root / "jobs"

    def job_dir(self, job: Job) -> Path:
        return self.jobs_dir / job.hash[:16]

    def is_done(self, job: Job) -> bool:
        row = self.store.get_job(job.hash)
        return bool(row and row["status"] == "done" and (self.job_dir(job) / "result.json").is_file())

    def record_plan(self, run_id: int) -> list[Job]:
        """Store the recipe, every job and its roles; return the jobs that still need to run."""
        recipe = self.plan.recipe
        self.store.add_recipe(recipe.hash, recipe.name, str(recipe.path), recipe.text)
        todo = []
        for job in self.plan.jobs:
            done = self.is_done(job)
            fields = {"hash": job.hash, "kind": job.kind, "model": job.model, "weak_model": job.weak_model,
                      "loss": job.spec["loss"]["name"] if job.kind != "gt" else None, "seed": job.seed,
                      "spec": job.spec, "dir": str(self.job_dir(job).relative_to(self.store.root))}
            if self.store.get_job(job.hash) is None:
                fields["recipe_hash"] = recipe.hash
            if not done or self.force:
                fields.update(status="queued", run_id=run_id, error=None, exit_code=None)
                todo.append(job)
            self.store.upsert_job(fields)
            for role in job.roles:
                self.store.link_job(recipe.hash, job.hash, json.dumps(role, sort_keys=True))
        return todo

    def start(self, job: Job) -> Running:
        job_dir = self.job_dir(job)
        job_dir.mkdir(parents=True, exist_ok=True)
        for name in ("events.jsonl", "predictions.json", "result.json", "env.json", "log.txt"):
            (job_dir / name).unlink(missing_ok=True)
        self.store.reset_job_outputs(job.hash)
        spec = dict(job.spec)
        if job.deps:
            spec["upstream_dir"] = str(self.job_dir(self.plan.job(job.deps[0])).resolve())
        (job_dir / "job.json").write_text(json.dumps(spec, indent=1))
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
        if self.parallel > 1 and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.parallel))
        command = launch_command(job_dir, self.plan.recipe.launch.get("accelerate_config"))
        with open(job_dir / "log.txt", "w") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.store.set_job_status(job.hash, "running", pid=proc.pid, started_at=time.time())
        return Running(job, proc, job_dir, time.time(), command)

    def finish(self, r: Running, code: int) -> bool:
        """Record a job that exited; return whether it succeeded."""
        self.store.ingest_events(r.job.hash, r.dir / "events.jsonl")
        result_path = r.dir / "result.json"
        if code == 0 and result_path.is_file():
            result = json.loads(result_path.read_text())
            preds = json.loads((r.dir / "predictions.json").read_text())
            for split, p in preds.items():
                self.store.add_predictions(r.job.hash, split, p["probs"], p["labels"])
            self.store.set_results(r.job.hash, result)
            env = json.loads((r.dir / "env.json").read_text())
            self.store.set_job_status(r.job.hash, "done", exit_code=0, finished_at=time.time(),
                                      provenance={**self.provenance, "job_env": env, "command": r.command})
            return True
        error = failure_reason(r.dir / "log.txt") + "\n--- log tail ---\n" + log_tail(r.dir / "log.txt")
        self.store.set_job_status(r.job.hash, "failed", exit_code=code, finished_at=time.time(), error=error)
        return False

    def run(self, argv: list[str]) -> int:
        """Run every job not yet done; return the number of jobs that failed or were skipped."""
        self.provenance = provenance()
        run_id = self.store.start_run(self.plan.recipe.hash, argv, self.provenance)
        todo = self.record_plan(run_id)
        total, cached = len(self.plan.jobs), len(self.plan.jobs) - len(todo)
        self.echo(f"{self.plan.recipe.name}: {total} jobs, {cached} already done, {len(todo)} to run")
        pending, running, failed = list(todo), [], set()
        done = {j.hash for j in self.plan.jobs if j not in todo}
        count = cached
        try:
            while pending or running:
                for job in [j for j in pending if any(d in failed for d in j.deps)]:
                    pending.remove(job)
                    failed.add(job.hash)
                    self.store.set_job_status(job.hash, "skipped", error="an upstream job failed")
                    self.echo(f"  skipped  {describe(job)} (upstream failed)")
                for job in [j for j in pending if all(d in done for d in j.deps)][: self.parallel - len(running)]:
                    pending.remove(job)
                    running.append(self.start(job))
                for r in list(running):
                    self.store.ingest_events(r.job.hash, r.dir / "events.jsonl")
                    code = r.proc.poll()
                    if code is None:
                        continue
                    running.remove(r)
                    count += 1
                    secs = time.time() - r.started
                    if self.finish(r, code):
                        done.add(r.job.hash)
                        acc = self.store.results(r.job.hash).get("test_acc", float("nan"))
                        self.echo(f"[{count}/{total}] done   {describe(r.job)}: test acc {acc:.3f} ({secs:.1f}s)")
                    else:
                        failed.add(r.job.hash)
                        self.echo(f"[{count}/{total}] FAILED {describe(r.job)} (exit {code}): "
                                  f"{failure_reason(r.dir / 'log.txt')}\n    log: {r.dir / 'log.txt'}")
                time.sleep(POLL_S if running else 0)
        except KeyboardInterrupt:
            for r in running:
                stop(r.proc)
                self.store.set_job_status(r.job.hash, "cancelled", finished_at=time.time())
            self.store.finish_run(run_id, "interrupted")
            raise
        self.store.finish_run(run_id, "failed" if failed else "done")
        return len(failed)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate a job's whole process group (accelerate launch does not forward signals reliably)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
