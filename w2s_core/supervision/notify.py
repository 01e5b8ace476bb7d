"""The user's notification command: run when a run ends or a job crashes, never waited for.

The command comes only from the user's own config (`[notify]` in ~/.config/w2s/config.toml or
$W2S_CONFIG, w2s_core/config.py), never from a recipe. It runs through the shell in its own session,
its output appended to RESULTS_DIR/notify.log, with what happened in its environment:

    W2S_EVENT        run_done, run_failed (a run that failed or was interrupted) or job_crashed
    W2S_RUN_ID       the run's id
    W2S_RECIPE       the recipe's name;  W2S_RECIPE_PATH: its file
    W2S_STATUS       the run's status (done, failed, interrupted), or the job's (failed)
    W2S_SUMMARY      one line: the best PGR (weak→strong, method) and the done/failed counts; for a
                     crash the job's hash, what it was and the first line of its diagnosis
    W2S_RESULTS_DIR  the results directory
    W2S_JOB          the crashed job's full hash (job_crashed only)

The supervisor's tick only starts the command (`Popen`) and later looks whether it ended (`tick`):
it never waits for it. A command still running after its `timeout` is killed with its whole process
group; a non-zero exit, a kill or a command that could not start is said in the supervisor's log.
Nothing here raises into the supervisor. The supervisor stays up (idle) until its commands ended or
were killed; commands started by a process that then exits (Ctrl-C, a `w2s cancel` with no supervisor)
run on detached, unwatched.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from w2s_core.config import config_path, load_config, notify_settings
from w2s_core.errors import W2SError
from w2s_core.status import JobStatus, RunStatus
from w2s_core.store import Store
from w2s_core.supervision.diagnosis import headline

LOG_NAME = "notify.log"
# the [notify] `on` entry that runs the command for each event
EVENT_SETTING = {"run_done": "done", "run_failed": "failed", "job_crashed": "crashed"}


@dataclass
class Pending:
    """A command started and not reaped yet."""

    proc: subprocess.Popen
    what: str  # "run_done for run 3", for the log
    deadline: float  # time.monotonic() past which it is killed
    killed: bool = False


class Notifier:
    """Starts the notification command for run and job events, reaps and times it out on later ticks."""

    def __init__(self, store: Store, echo: Callable[[str], None]) -> None:
        self.store, self.echo = store, echo
        self.pending: list[Pending] = []

    # -- events (the supervisor's hooks)

    def run_ended(self, run_id: int, status: str) -> None:
        """A run finished: done, failed or interrupted."""
        try:
            event = "run_done" if status == RunStatus.DONE else "run_failed"
            run = next((r for r in self.store.runs() if r["id"] == run_id), None)
            recipe = self._recipe(run and run["recipe_hash"])
            summary = f"run {run_id} {recipe.get('name') or '-'} {status}: {run_summary(self.store, run_id, recipe)}"
            self._start(event, recipe, {"W2S_RUN_ID": str(run_id), "W2S_STATUS": str(status), "W2S_SUMMARY": summary})
        except Exception as exc:  # noqa: BLE001  # a notification must never break the supervisor
            self.echo(f"notify: no notification for run {run_id}: {exc}")

    def job_crashed(self, job_hash: str) -> None:
        """A job ended failed (not cancelled, not requeued)."""
        try:
            row = self.store.get_job(job_hash)
            if row is None or row["status"] != JobStatus.FAILED:
                return
            recipe = self._recipe(row["recipe_hash"])
            env = {
                "W2S_RUN_ID": "" if row["run_id"] is None else str(row["run_id"]),
                "W2S_STATUS": str(row["status"]),
                "W2S_SUMMARY": crash_summary(row),
                "W2S_JOB": row["hash"],
            }
            self._start("job_crashed", recipe, env)
        except Exception as exc:  # noqa: BLE001
            self.echo(f"notify: no notification for job {job_hash[:10]}: {exc}")

    # -- the commands

    def tick(self) -> None:
        """Reap the commands that ended (saying so when one failed); kill those past their timeout."""
        still = []
        for p in self.pending:
            try:
                code = p.proc.poll()
                if code is None:
                    if not p.killed and time.monotonic() > p.deadline:
                        os.killpg(p.proc.pid, signal.SIGKILL)  # its own session: the shell and its children
                        p.killed = True
                        self.echo(f"notify: the command for {p.what} ran past its timeout; killed it")
                    still.append(p)
                elif code != 0 and not p.killed:
                    self.echo(
                        f"notify: the command for {p.what} exited with {code}; its output is in "
                        f"{self.store.root / LOG_NAME}"
                    )
            except (OSError, subprocess.SubprocessError) as exc:  # gone already, or not ours to kill
                self.echo(f"notify: lost track of the command for {p.what}: {exc}")
        self.pending = still

    def busy(self) -> bool:
        """Whether a command is still running (the supervisor waits, ticking, until it ends or is killed)."""
        return bool(self.pending)

    def _recipe(self, recipe_hash: str | None) -> dict:
        return next((r for r in self.store.recipes() if r["hash"] == recipe_hash), {}) if recipe_hash else {}

    def _start(self, event: str, recipe: dict, env: dict[str, str]) -> None:
        try:
            settings = notify_settings(load_config(), recipe.get("name"))
        except W2SError as exc:
            self.echo(f"notify: the config {config_path()} is not valid, no notification: {exc}")
            return
        if not settings["command"].strip() or EVENT_SETTING[event] not in settings["on"]:
            return
        what = f"{event} of " + (f"job {env['W2S_JOB'][:10]}" if "W2S_JOB" in env else f"run {env['W2S_RUN_ID']}")
        full_env = {
            **os.environ,
            "W2S_EVENT": event,
            "W2S_RECIPE": recipe.get("name") or "",
            "W2S_RECIPE_PATH": recipe.get("path") or "",
            "W2S_RESULTS_DIR": str(self.store.root),
            **env,
        }
        log_path = self.store.root / LOG_NAME
        try:
            with open(log_path, "ab") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what}: {settings['command']}\n".encode())
                log.flush()
                proc = subprocess.Popen(
                    settings["command"],
                    shell=True,
                    start_new_session=True,
                    env=full_env,
                    cwd=self.store.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        except OSError as exc:
            self.echo(f"notify: could not start the command for {what}: {exc}")
            return
        self.pending.append(Pending(proc, what, time.monotonic() + settings["timeout"]))


def run_summary(store: Store, run_id: int, recipe: dict) -> str:
    """The run's line: "best PGR 0.42 (gpt2→gpt2-medium, logconf); 6 done, 1 failed" (its jobs, its recipe)."""
    counts: dict[str, int] = {}
    for job in store.jobs(run_id=run_id):
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    tally = ", ".join(
        f"{counts.get(s, 0)} {s}"
        for s in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED)
        if counts.get(s) or s in (JobStatus.DONE, JobStatus.FAILED)
    )
    return f"{best_pgr(store, recipe.get('hash'))}; {tally}"


def best_pgr(store: Store, recipe_hash: str | None) -> str:
    """The recipe's best PGR row as "best PGR 0.42 (weak→strong, method)", or why there is none."""
    if not recipe_hash:
        return "no PGR (no recipe)"
    from w2s_core.analysis.pgr import pgr_table  # numpy: only when a run ends

    try:
        rows = [r for r in pgr_table(store, recipe_hash, "acc") if not math.isnan(r.get("pgr_mean", math.nan))]
    except Exception as exc:  # noqa: BLE001  # the summary must not stop the notification
        return f"no PGR ({type(exc).__name__}: {exc})"
    if not rows:
        return "no PGR yet (no transfer with its weak model and ceiling done)"
    best = max(rows, key=lambda r: r["pgr_mean"])
    where = [f"{best['weak']}→{best['strong']}", str(best["method"])]
    if len({r.get("task") for r in rows}) > 1:
        where.insert(0, str(best["task"]))
    where += [f"{k}={v}" for k, v in (best.get("grid") or {}).items()]
    return f"best PGR {best['pgr_mean']:.2f} ({', '.join(where)})"


def crash_summary(row: dict) -> str:
    """One line on a crashed job: its hash, model, what it was and its diagnosis's first line
    ("job 1a2b3c4d5e gpt2 (gt gpt2 seed=0 ...) failed: out of memory ...")."""
    from w2s_core.supervision.progress import describe_row

    why = headline(row["error"] or "").strip().splitlines()
    what = " ".join(describe_row(row).split())  # the describe columns' padding, not wanted on one line
    return f"job {row['hash'][:10]} {row['model']} ({what}) failed: {why[0] if why else 'no diagnosis'}"
