"""Executors (issue 12): the local executor is today's runner; the Slurm executor through a fake submitit.

No Slurm is needed: submitit is replaced by a stand-in module with the calls the executor makes
(`AutoExecutor(folder, cluster).update_parameters(...).submit(fn)`, a job's `job_id`, `state`,
`cancel`, `get_info`, and `SlurmJob(folder, job_id)` to re-attach), whose jobs follow a script of
Slurm states; sinfo, squeue and scontrol are a fake `run`. The supervisor's loop, the store, the job
folder and the diagnosis are the real ones. `JobCommand` (what runs inside the Slurm job) is run here
as a plain function call. tests/test_slurm.py runs the same executor against a real Slurm.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import small_recipe
from submitit.core.utils import FailedJobError

from w2s_core import cli
from w2s_core.errors import InputError
from w2s_core.jobdir import EXIT_REQUEUE, JobDir
from w2s_core.spec.launch import time_minutes
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import load_recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.supervision import handlers, processes, runner
from w2s_core.supervision.executors import Executors, job_launch
from w2s_core.supervision.executors import sbatch as sb
from w2s_core.supervision.executors.job_command import JobCommand
from w2s_core.supervision.executors.local import LocalExecutor
from w2s_core.supervision.executors.slurm import SlurmExecutor
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.processes import Identity
from w2s_core.supervision.requests import Cancel, Submit
from w2s_core.supervision.slots import device_slots

MODELS = "".join(
    f'[[models]]\nname = "{m}"\npath = "tiny-random-bert"\ntiny = {{ hidden_size = {size} }}\n'
    for m, size in (("a", 16), ("b", 32))
)


# -- a stand-in for submitit ----------------------------------------------------------------------------


class FakeJob:
    """A Slurm job whose `state` walks through `script` (one state per reading, the last one stays)."""

    def __init__(self, folder, job_id: str, script: list[str]) -> None:
        self.folder, self.job_id, self.script = Path(folder), job_id, list(script)
        self.cancelled = False
        self.reads = 0

    @property
    def state(self) -> str:
        self.reads += 1
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def cancel(self, check: bool = True) -> None:
        self.cancelled = True
        self.script = ["CANCELLED by 0"]

    def get_info(self, mode: str = "force") -> dict:
        return {"NodeList": "node1"}


class FakeSubmitit:
    """The module: `AutoExecutor` submits `FakeJob`s numbered from 1001; `scripts` gives each its states."""

    AUTO_KEYS = {"name", "timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node", "tasks_per_node"}

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.scripts: list[list[str]] = []
        self.submitted: list[tuple[Path, dict, object]] = []  # (folder, parameters, function)
        self.refuse: str | None = None
        outer = self

        class AutoExecutor:
            def __init__(self, folder, cluster=None) -> None:
                assert cluster == "slurm"
                self.folder, self.params = Path(folder), {}

            def update_parameters(self, **kwargs) -> None:
                bad = [k for k in kwargs if k not in outer.AUTO_KEYS and not k.startswith("slurm_")]
                assert not bad, f"not a submitit parameter: {bad}"
                self.params.update(kwargs)

            def submit(self, fn):
                if outer.refuse:
                    raise subprocess.CalledProcessError(1, ["sbatch"], stderr=outer.refuse.encode())
                job = FakeJob(self.folder, str(1001 + len(outer.jobs)), outer.scripts.pop(0))
                outer.jobs[job.job_id] = job
                outer.submitted.append((self.folder, self.params, fn))
                return job

        self.AutoExecutor = AutoExecutor
        self.SlurmJob = lambda folder, job_id: self.jobs[job_id]


class FakeRun:
    """sinfo, squeue and scontrol: `answers[command name]` is their stdout (missing: nothing listed)."""

    def __init__(self, **answers: str) -> None:
        self.answers, self.calls = answers, []

    def __call__(self, command, **kwargs):
        self.calls.append(command)
        return subprocess.CompletedProcess(command, 0, self.answers.get(command[0], ""), "")


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "res") as s:
        yield s


@pytest.fixture
def fake():
    return FakeSubmitit()


def supervisor(store: Store, fake: FakeSubmitit, run: FakeRun | None = None, said: list | None = None) -> Supervisor:
    said = [] if said is None else said
    slurm = SlurmExecutor(submitit=fake, run=run or FakeRun(), echo=said.append, poll_s=0)
    return Supervisor(store, device_slots(parallel=1, gpus=[]), echo=said.append, executors=Executors(slurm=slurm))


def queue(store: Store, name: str, launch: dict, run_id: int | None = None) -> str:
    job_hash = (name * 64)[:64]
    run_id = run_id if run_id is not None else store.start_run(None, ["test"], {})
    store.upsert_job(
        {
            "hash": job_hash,
            "kind": "gt",
            "model": name,
            "seed": 0,
            "spec": {"model": {"name": name}, "train_split": "A", "predict_split": "B"},
            "dir": f"jobs/{job_hash[:16]}",
            "status": JobStatus.QUEUED,
            "run_id": run_id,
            "launch": launch,
        }
    )
    return job_hash


SLURM = {"executor": "slurm", "partition": "gpu", "time": "01:30:00", "gpus_per_job": 2, "mem_gb": 16, "nodes": 1}


def succeed(store: Store, job_hash: str) -> None:
    """What JobCommand and the trainer leave in a job folder that succeeded."""
    folder = JobDir(store.root / "jobs" / job_hash[:16])
    folder.write_outputs({"device": "cpu"}, {"test": {"probs": [0.7, 0.3], "labels": [1, 0]}}, {"test_acc": 1.0})
    folder.exit_status.write_text("0\n")


def tick(sup: Supervisor, times: int = 1) -> None:
    for _ in range(times):
        sup.poll_running()
        sup.start_ready()


# -- the local executor ------------------------------------------------------------------------------------


def test_local_executor_starts_jobs_exactly_as_the_runner_did(store, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    seen = {}

    def fake_launch(command, log_path, exit_path, env, cwd):
        seen.update(command=command, env=env)
        return None, Identity(4242, 4242, 1.0)

    monkeypatch.setattr(processes, "launch", fake_launch)
    job = queue(store, "a", {"parallel": 1})
    sup = Supervisor(store, device_slots(parallel=1, gpus=[]), echo=lambda m: None)
    sup.start_ready()
    row = store.get_job(job)
    folder = (store.root / "jobs" / job[:16]).resolve()
    assert seen["command"] == runner.launch_command(folder, None)
    assert seen["command"] == [sys.executable, "-m", "w2s_core.training", str(folder)]  # one process: no launcher
    assert row["executor"] == "local" and row["pid"] == 4242 and row["slurm_job_id"] is None
    assert row["device"] == "cpu" and seen["env"]["CUDA_VISIBLE_DEVICES"] == ""
    assert LocalExecutor().describe_command(row) == shlex.join(runner.launch_command(row["dir"], None))


def test_local_job_that_stops_with_exit_requeue_is_queued_again_then_runs(store, monkeypatch, tmp_path):
    """A trainer that saved a checkpoint on a signal exits 75 (here directly, no launcher): queued again."""
    script = tmp_path / "stop.py"
    script.write_text(
        "import json, sys, pathlib\nd = pathlib.Path(sys.argv[1])\n"
        "if not (d / 'checkpoints').exists():\n"
        "    (d / 'checkpoints').mkdir(); (d / 'requeue.json').write_text(json.dumps({'step': 3}))\n"
        "    sys.exit(75)\n"
        "(d / 'predictions.json').write_text(json.dumps({'test': {'probs': [0.6], 'labels': [1]}}))\n"
        "(d / 'result.json').write_text(json.dumps({'test_acc': 1.0}))\n"
    )
    monkeypatch.setattr(runner, "launch_command", lambda job_dir, config: [sys.executable, str(script), str(job_dir)])
    said: list[str] = []
    job = queue(store, "a", {"parallel": 1})
    sup = Supervisor(store, device_slots(parallel=1, gpus=[]), echo=said.append)
    sup.start_ready()
    attempt = sup.running[job]
    attempt.popen.wait(30)
    sup.poll_running()
    row = store.get_job(job)
    assert row["status"] == JobStatus.QUEUED and row["requeues"] == 1 and row["error"] is None
    assert row["wait_reason"].startswith("requeued: stopped on a signal")
    assert any(line.startswith("requeued ") for line in said)
    sup.start_ready()
    sup.running[job].popen.wait(30)
    sup.poll_running()
    assert store.get_job(job)["status"] == JobStatus.DONE


# -- the Slurm executor -------------------------------------------------------------------------------------


def test_slurm_job_is_submitted_then_followed_from_pending_to_completed(store, fake):
    fake.scripts = [["PENDING", "RUNNING", "RUNNING", "COMPLETED"]]
    said: list[str] = []
    job = queue(store, "a", {**SLURM, "sbatch": ["--constraint=a100", "#SBATCH --exclusive"]})
    sup = supervisor(store, fake, said=said)
    sup.start_ready()
    row = store.get_job(job)
    assert row["status"] == JobStatus.RUNNING and row["executor"] == "slurm"
    assert row["slurm_job_id"] == "1001" and row["slurm_state"] == "PENDING" and row["pid"] is None
    folder, params, fn = fake.submitted[0]
    job_dir = (store.root / "jobs" / job[:16]).resolve()
    assert folder == job_dir / "slurm"
    assert params["timeout_min"] == 90 and params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 2
    assert params["mem_gb"] == 16 and params["nodes"] == 1 and params["tasks_per_node"] == 1
    assert params["slurm_signal_delay_s"] == 120  # USR1 two minutes before the limit
    assert params["slurm_additional_parameters"] == {"constraint": "a100", "exclusive": True}
    assert isinstance(fn, JobCommand) and fn.cwd == str(job_dir)
    assert fn.command == runner.launch_command(job_dir, None, 2)  # the local command, one process per GPU
    assert "--gpus-per-node=2" in row["provenance"]["sbatch"]
    assert any("as Slurm job 1001" in line for line in said)

    tick(sup, 3)  # PENDING -> RUNNING: recorded (a tick after it is read), with the time it began to run
    running = store.get_job(job)
    assert running["slurm_state"] == "RUNNING" and running["device"] == "slurm:node1"
    assert running["started_at"] > row["started_at"]
    succeed(store, job)
    tick(sup, 2)
    done = store.get_job(job)
    assert done["status"] == JobStatus.DONE and done["slurm_state"] == "COMPLETED" and not sup.running
    assert store.results(job)["test_acc"] == 1.0


def test_slurm_out_of_memory_reads_as_the_local_out_of_memory_reason(store, fake):
    fake.scripts = [["RUNNING", "OUT_OF_MEMORY"]]
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake)
    sup.start_ready()
    tick(sup, 3)
    row = store.get_job(job)
    assert row["status"] == JobStatus.FAILED and row["slurm_state"] == "OUT_OF_MEMORY"
    assert row["error"].startswith("out of memory (Slurm: OUT_OF_MEMORY")  # the local reason's words
    assert "raise [launch] mem_gb" in row["error"] and "1001_0_log.err" in row["error"]


@pytest.mark.parametrize(
    ("state", "words"),
    [("TIMEOUT", "killed by SIGTERM at Slurm's time limit"), ("NODE_FAIL", "lost: its node failed")],
)
def test_slurm_end_states_are_diagnosed(store, fake, state, words):
    fake.scripts = [["RUNNING", state]]
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake)
    tick(sup, 3)
    row = store.get_job(job)
    assert row["status"] == JobStatus.FAILED and row["error"].startswith(words)


def test_cancel_runs_scancel_and_waits_until_slurm_says_it_ended(store, fake):
    fake.scripts = [["RUNNING"]]
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake)
    tick(sup, 2)
    sup.apply(Cancel(jobs=[job]))
    row = store.get_job(job)
    assert fake.jobs["1001"].cancelled and row["status"] == JobStatus.CANCELLED
    assert row["slurm_state"] == "CANCELLED" and row["error"] == runner.CANCELLED_BY_USER and not sup.running


def test_job_slurm_requeued_itself_is_followed_to_its_next_run(store, fake):
    """Preemption or `scontrol requeue`: the same Slurm job runs again (from its checkpoint): never failed."""
    fake.scripts = [["RUNNING", "RUNNING", "REQUEUED", "PENDING", "RUNNING", "COMPLETED"]]
    said: list[str] = []
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake, said=said)
    sup.start_ready()
    folder = JobDir(store.root / "jobs" / job[:16])
    folder.exit_status.write_text("1\n")  # the first run's record, as its trainer stopped on SIGTERM
    folder.requeue.write_text("{}")
    tick(sup, 4)
    assert store.get_job(job)["status"] == JobStatus.RUNNING and sup.running
    assert any("Slurm requeued job" in line for line in said)
    folder.requeue.unlink()  # JobCommand clears the first run's files when the next run starts
    succeed(store, job)
    tick(sup, 3)
    row = store.get_job(job)
    assert row["status"] == JobStatus.DONE and row["slurm_job_id"] == "1001" and row["requeues"] == 1


def test_a_run_restarted_between_two_state_reads_is_still_counted(store, fake):
    """The next run clears the last run's exit record as it starts: a record that came and went while
    Slurm said RUNNING throughout is a requeue the state reads missed."""
    fake.scripts = [["RUNNING"]]
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake)
    tick(sup, 2)
    record = JobDir(store.root / "jobs" / job[:16]).exit_status
    record.write_text("1\n")
    tick(sup, 2)
    assert store.get_job(job)["requeues"] == 0  # a record while it runs: maybe its end, maybe a requeue
    record.unlink()
    tick(sup, 2)
    row = store.get_job(job)
    assert row["requeues"] == 1 and row["status"] == JobStatus.RUNNING


def test_trainer_that_stopped_with_a_checkpoint_is_submitted_again(store, fake):
    """SIGUSR1 before the time limit: the trainer checkpoints, exits 75 (the launcher says 1, the marker
    file says why); the job is queued again and resubmitted as a new Slurm job."""
    fake.scripts = [["RUNNING", "COMPLETED"], ["RUNNING", "COMPLETED"]]
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake)
    sup.start_ready()
    folder = JobDir(store.root / "jobs" / job[:16])
    folder.exit_status.write_text("1\n")
    folder.requeue.write_text(json.dumps({"step": 4}))
    sup.poll_running()
    sup.poll_running()
    row = store.get_job(job)
    assert row["status"] == JobStatus.QUEUED and row["requeues"] == 1 and "resumes from" in row["wait_reason"]
    sup.start_ready()
    again = store.get_job(job)
    assert again["status"] == JobStatus.RUNNING and again["slurm_job_id"] == "1002" and again["wait_reason"] is None
    assert not folder.requeue.exists()  # cleared before the new attempt


def test_job_cancelled_in_slurm_outside_w2s_fails_even_with_a_checkpoint(store, fake):
    fake.scripts = [["RUNNING", "CANCELLED by 1000"]]
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake)
    sup.start_ready()
    JobDir(store.root / "jobs" / job[:16]).requeue.write_text("{}")  # its trainer saved one on SIGTERM
    tick(sup, 3)
    row = store.get_job(job)
    assert row["status"] == JobStatus.FAILED and row["requeues"] == 0
    assert row["error"].startswith("killed by SIGTERM: cancelled in Slurm, not by w2s")


def test_preempted_job_slurm_did_not_requeue_is_submitted_again(store, fake):
    fake.scripts = [["RUNNING", "PREEMPTED"], ["RUNNING"]]
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake, run=FakeRun())  # squeue lists it no more: it ended preempted
    tick(sup, 3)
    row = store.get_job(job)
    assert row["status"] == JobStatus.RUNNING and row["slurm_job_id"] == "1002" and row["requeues"] == 1


def test_unknown_to_sacct_reads_squeue_then_the_exit_record(store, fake, monkeypatch):
    fake.scripts = [["UNKNOWN"]]  # sacct knows nothing (no accounting storage)
    run = FakeRun(squeue="RUNNING|node7\n")
    job = queue(store, "a", SLURM)
    sup = supervisor(store, fake, run=run)
    tick(sup, 3)
    row = store.get_job(job)
    assert row["slurm_state"] == "RUNNING" and row["device"] == "slurm:node7"
    assert ["squeue", "-h", "-j", "1001", "-o", "%T|%N"] in run.calls
    run.answers = {"scontrol": "JobId=1001 JobState=FAILED NodeList=node7 ExitCode=3:0\n"}
    JobDir(store.root / "jobs" / job[:16]).exit_status.write_text("3\n")
    tick(sup, 2)
    row = store.get_job(job)
    assert row["status"] == JobStatus.FAILED and row["exit_code"] == 3 and row["slurm_state"] == "FAILED"


def test_supervisor_restart_reattaches_slurm_jobs_by_their_job_id(store, fake):
    fake.scripts = [["RUNNING"]]
    job = queue(store, "a", SLURM)
    first = supervisor(store, fake)
    tick(first, 2)  # then the supervisor dies; Slurm runs on
    said: list[str] = []
    second = supervisor(store, fake, said=said)
    second.reattach_all()
    assert second.running[job].job_id == "1001" and "Slurm job 1001" in said[0]
    fake.jobs["1001"].script = ["COMPLETED"]
    succeed(store, job)
    tick(second, 2)
    assert store.get_job(job)["status"] == JobStatus.DONE


def test_parallel_bounds_the_jobs_in_slurm_and_sbatch_refusal_fails_only_that_job(store, fake):
    fake.scripts = [["RUNNING"], ["RUNNING"], ["RUNNING"]]
    run_id = store.start_run(None, ["test"], {})
    jobs = [queue(store, n, {**SLURM, "slurm_parallel": 2}, run_id) for n in "abc"]
    sup = supervisor(store, fake)
    sup.start_ready()
    assert [store.get_job(j)["status"] for j in jobs] == ["running", "running", "queued"]
    fake.refuse = "sbatch: error: invalid partition specified: gpu"
    fake.jobs["1001"].script = ["COMPLETED"]
    succeed(store, jobs[0])
    tick(sup, 2)
    row = store.get_job(jobs[2])
    assert row["status"] == JobStatus.FAILED and "invalid partition specified: gpu" in row["error"]


def test_time_limit_defaults_to_the_partitions_own(store, fake):
    run = FakeRun(sinfo="debug*|n/a|infinite\n")
    assert sb.timeout_minutes({"launch": {}}, run)[0] == sb.FALLBACK_TIME_MIN
    run = FakeRun(sinfo="gpu|2:00:00|2-00:00:00\n")
    assert sb.timeout_minutes({"launch": {"partition": "gpu"}}, run) == (120, "the partition's time limit (sinfo)")
    assert ["sinfo", "-h", "-o", "%P|%L|%l", "-p", "gpu"] in run.calls
    assert sb.signal_delay_s(5) == 60  # a short job is warned a fifth of its time before the limit


# -- what runs inside the Slurm job --------------------------------------------------------------------------


def test_job_command_logs_records_its_status_and_shields_the_launcher(tmp_path):
    folder = JobDir(tmp_path / "job")
    folder.path.mkdir()
    folder.log.write_text("an earlier run\n")
    (folder.path / "result.json").write_text("{}")  # an earlier run's: cleared
    shown = "import signal as s; print('ignored:', [s.getsignal(x) == s.SIG_IGN for x in (s.SIGUSR1, s.SIGTERM)])"
    before = signal.getsignal(signal.SIGTERM)
    code = JobCommand([sys.executable, "-c", shown], str(folder.path), {"W2S_X": "1"}, code=str(tmp_path / "snap"))()
    assert signal.getsignal(signal.SIGTERM) == before  # its handlers are for the job's run only
    assert code == 0 and folder.exit_status.read_text() == "0\n" and not folder.result.exists()
    log = folder.log.read_text()
    assert log.startswith("an earlier run\n--- w2s: Slurm job") and "ignored: [True, True]" in log
    env = JobCommand(["true"], str(folder.path), {"W2S_X": "1"}, code="/snap").environment()
    assert env["W2S_X"] == "1" and env["PYTHONPATH"].startswith("/snap")
    with pytest.raises(FailedJobError):
        JobCommand([sys.executable, "-c", "import sys; sys.exit(3)"], str(folder.path), {})()
    assert folder.exit_status.read_text() == "3\n"
    stop = JobCommand([sys.executable, "-c", f"import sys; sys.exit({EXIT_REQUEUE})"], str(folder.path), {})
    assert stop() == EXIT_REQUEUE  # a requested requeue is no failure in Slurm's eyes


def test_multinode_command_takes_its_rendezvous_from_slurms_environment(tmp_path):
    one = {"hash": "h" * 64, "launch": {"executor": "slurm", "gpus_per_job": 1}}  # one node, one GPU: no launcher
    assert sb.job_command(tmp_path / "job", one) == [sys.executable, "-m", "w2s_core.training", str(tmp_path / "job")]
    one["launch"]["gpus_per_job"] = 2
    assert sb.job_command(tmp_path / "job", one)[1:3] == ["-m", "accelerate.commands.launch"]
    row = {"hash": "h" * 64, "launch": {"executor": "slurm", "nodes": 2, "gpus_per_job": 4}}
    command = sb.job_command(tmp_path / "job", row)
    assert command[:2] == ["sh", "-c"]
    line = command[2]
    for part in ('--num_machines "$SLURM_NNODES"', '--machine_rank "$SLURM_NODEID"', '--main_process_ip "$head"'):
        assert part in line
    # run it with `echo` in place of python and a stand-in scontrol: the shell expands what Slurm set
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a\\ngpu-b\\n'\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_NNODES="2", SLURM_NODEID="1")
    env.update(SLURM_JOB_ID="123", SLURM_JOB_NODELIST="gpu-[a-b]")
    out = subprocess.run(
        ["sh", "-c", line.replace(shlex.quote(sys.executable), "echo")], env=env, capture_output=True, text=True
    )
    words = out.stdout.split()
    assert words[words.index("--num_machines") + 1] == "2" and words[words.index("--machine_rank") + 1] == "1"
    assert words[words.index("--main_process_ip") + 1] == "gpu-a"
    assert words[words.index("--main_process_port") + 1] == "20123"
    assert words[words.index("--num_processes") + 1] == "8" and words[-1] == str(tmp_path / "job")
    # never the node's own default accelerate config: the one w2s renders into the job folder
    assert words[words.index("--config_file") + 1] == str(tmp_path / "job" / "accelerate.yaml")
    (tmp_path / "job").mkdir()
    sb.job_command(tmp_path / "job", row)
    assert "distributed_type: MULTI_GPU" in (tmp_path / "job" / "accelerate.yaml").read_text()


# -- the recipe, the store, the command line ----------------------------------------------------------------


def recipe_file(tmp_path: Path, launch: str = "", models: str = MODELS, name: str = "ex") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(small_recipe(name, models) + (f"[launch]\n{launch}" if launch else ""))
    return path


def test_executor_keys_are_checked_and_never_change_job_keys(tmp_path):
    plain = load_recipe(recipe_file(tmp_path, name="plain"))
    nodes_models = MODELS.replace("tiny = { hidden_size = 32 }\n", "tiny = { hidden_size = 32 }\nnodes = 2\n")
    slurm_text = (
        'executor = "slurm"\npartition = "gpu"\ncpus_per_task = 8\nmem_gb = 32.5\ntime = "1-02:00:00"\n'
        'account = "lab"\nqos = "high"\nsbatch = ["--constraint=a100"]\nnodes = 1\ngpus_per_job = 4\n'
    )
    slurm = load_recipe(recipe_file(tmp_path, slurm_text, nodes_models, name="slurm"))
    assert [j.key for j in build_plan(slurm).jobs] == [j.key for j in build_plan(plain).jobs]
    assert time_minutes(slurm.launch["time"]) == 26 * 60
    launches = {j.model: job_launch(slurm, j) for j in build_plan(slurm).jobs}
    assert launches["b"]["nodes"] == 2 and launches["a"]["nodes"] == 1  # the model entry's own nodes win
    assert launches["a"]["executor"] == "slurm" and launches["a"]["slurm_parallel"] is None
    assert all(job_launch(plain, j) == {} for j in build_plan(plain).jobs)  # a local job's row reads as before
    bad = recipe_file(
        tmp_path, 'executor = "pbs"\ntime = "90 minutes"\nsbatch = ["-C a100"]\npartitoin = "x"\n', name="bad"
    )
    with pytest.raises(InputError) as err:
        load_recipe(bad)
    text = str(err.value)
    assert "launch.executor: expected one of 'local', 'slurm'" in text and "launch.time: expected minutes" in text
    assert "'-C a100' is not" in text and "launch.partitoin: unknown key (did you mean 'partition'?)" in text


def test_command_line_executor_overrides_the_recipe_in_the_submission(tmp_path, store):
    path = recipe_file(tmp_path)
    request = Submit(str(path), path.read_text(), [], {}, launch={"executor": "slurm", "parallel": 3})
    recipe, plan, _ = handlers.read_submission(request)
    assert recipe.launch == {"executor": "slurm", "parallel": 3}
    settings = handlers.launch_settings(recipe, request, plan.jobs[0])
    assert settings["executor"] == "slurm" and settings["slurm_parallel"] == 3
    with pytest.raises(InputError, match="launch.executor"):
        handlers.read_submission(Submit(str(path), path.read_text(), [], {}, launch={"executor": "pbs"}))


def test_dry_run_with_slurm_shows_sbatch_options_and_each_jobs_multinode_command(tmp_path, capsys):
    nodes_models = MODELS.replace("tiny = { hidden_size = 32 }\n", "tiny = { hidden_size = 32 }\nnodes = 2\n")
    path = recipe_file(tmp_path, 'partition = "gpu"\ntime = 30\ngpus_per_job = 4\n', nodes_models)
    code = cli.main(["--results-dir", str(tmp_path / "res"), "run", str(path), "--dry-run", "--executor", "slurm"])
    out = capsys.readouterr().out
    assert code == 0 and "executor slurm (submitit AutoExecutor(cluster='slurm'))" in out
    assert "--partition=gpu" in out and "--time=30" in out and "--signal=USR1@120" in out
    assert "--nodes=2" in out and '--num_machines "$SLURM_NNODES"' in out  # model b's jobs span two nodes
    assert out.count("--nodes=1") >= 1 and "-m w2s_core.training" in out


def test_executor_slurm_without_sbatch_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    path = recipe_file(tmp_path)
    code = cli.main(["--results-dir", str(tmp_path / "res"), "run", str(path), "--executor", "slurm", "--detach"])
    err = capsys.readouterr().err
    assert code != 0 and "Slurm's sbatch was not found: --executor slurm submits each job with sbatch" in err


def test_store_records_executor_columns_and_counts_requeues(store):
    job = queue(store, "a", {"executor": "slurm"})
    assert store.has_queued("slurm") and not store.has_queued("local")
    assert store.requeue_job(job, "requeued: test") == 1 and store.requeue_job(job, "again") == 2
    store.upsert_job({"hash": job, "executor": "slurm", "slurm_job_id": "77", "slurm_state": "PENDING"})
    row = store.get_job(job)
    assert (row["executor"], row["slurm_job_id"], row["slurm_state"], row["requeues"]) == ("slurm", "77", "PENDING", 2)
    from w2s_core.cli.queue import _job_line
    from w2s_core.store import queries
    from w2s_tui.widgets.job_table import slurm_text, status_text

    store.set_job_status(job, JobStatus.RUNNING, device="slurm:node3")
    assert "Slurm job 77 PENDING on slurm:node3 since" in _job_line(store.get_job(job))
    listed = queries.job_rows(store)[0]
    assert slurm_text(listed) == "slurm 77 PENDING"
    assert status_text("running", slurm=slurm_text(listed)).plain == "running · slurm 77 PENDING"
    assert slurm_text({"executor": "local"}) == "" and status_text("running").plain == "running"
