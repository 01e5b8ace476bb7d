"""Checkpoint and resume (issue 12, item 3; `w2s_core.training.checkpoint`).

- SIGTERM/SIGUSR1 stop a job at an optimiser step's end: it saves a checkpoint, writes requeue.json
  and exits EXIT_REQUEUE (75).
- A job started again in that folder resumes from the checkpoint, and its predictions and result
  equal an uninterrupted run's: with gradient accumulation, logconf (batch targets) with
  `select = "val_loss"`, probe mode, dropout (RNG state), LoRA (frozen weights left out), and after a
  crash past a periodic `checkpoint_every` checkpoint.
- events.jsonl has each step once after a resume; checkpoints go when the job succeeds; a stale
  checkpoint (another spec) is removed and not resumed; `checkpoint_every` never changes a job key.
- The real paths: the trainer as its own process, killed with SIGTERM; and `w2s run` of a recipe
  whose trainer is SIGTERMed mid-run, then requeued or `w2s retry`-ed, against an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, poll_until, run_w2s, train_in_process

from w2s_core.jobdir import CHECKPOINT_META, EXIT_REQUEUE, Event, JobDir, trim_events, write_json
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RECIPE = """
name = "ckpt"
seeds = [0]

[data]
name = "synthetic"
n_train = 128
n_test = 64

[train]
epochs = 2
lr = 0.01
batch_size = 16
minibatch_size = 8
max_length = 32
{train}

[[models]]
name = "weak"
path = "tiny-random-gpt2"
tiny = {{ hidden_size = 16, num_layers = 1 }}

[[models]]
name = "strong"
path = "tiny-random-bert"
tiny = {{ hidden_size = 16, num_layers = 1 }}

[[transfer]]
loss = "logconf"
alpha = 0.5
warmup_frac = 0.2
"""
STEPS = 8  # 64 examples of half A, two epochs, batch 16


def plan(train: str = ""):
    text = RECIPE.format(train=train)
    return build_plan(parse_recipe(tomllib.loads(text), Path("ckpt.toml"), text)).jobs


def gt_spec(model: str = "weak", **train) -> dict:
    spec = next(j for j in plan() if j.kind == "gt" and j.model == model).spec
    return {**spec, "train": {**spec["train"], **train}}


def logconf_loss() -> dict:
    return next(j for j in plan() if j.kind == "transfer").spec["loss"]


def events(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / "events.jsonl").read_text().splitlines()]


def steps_of(job_dir: Path) -> list[int]:
    return [e[Event.STEP] for e in events(job_dir) if e.get(Event.KIND) != Event.FINAL]


def comparable(job_dir: Path) -> dict:
    """What must not depend on an interruption: predictions, result, and every event's figures."""
    folder = JobDir(job_dir)
    result = {k: v for k, v in folder.read_result().items() if k != "train_seconds"}
    evts = [{k: v for k, v in e.items() if k != Event.EXAMPLES_PER_S} for e in events(job_dir)]
    return {"predictions": folder.read_predictions(), "result": result, "events": evts}


def interrupt_at(monkeypatch, step: int, how: str = "signal") -> None:
    """Make the in-process trainer get SIGUSR1 (or crash, `how = "crash"`) once optimiser step `step` is done."""
    from w2s_core.training import loop

    real = loop.progress_event

    def progress_event(lp, n, frac):
        if lp.step == step and how == "crash":
            raise RuntimeError("the node died")  # before the step's line and any checkpoint: a hard kill
        event = real(lp, n, frac)
        if lp.step == step:
            signal.raise_signal(signal.SIGUSR1)  # handled at once; the loop stops at this step's end
        return event

    monkeypatch.setattr(loop, "progress_event", progress_event)


CASES = {
    # name: (train overrides, loss, stop at, how)
    "accumulation": ({}, None, 3, "signal"),  # two minibatches per optimiser step
    "logconf-val-loss": ({"val_size": 16, "select": "val_loss", "eval_every": 1}, "logconf", 4, "signal"),
    "probe": ({"mode": "probe", "minibatch_size": 16}, None, 3, "signal"),
    "dropout": ({"train_with_dropout": True}, None, 4, "signal"),  # the RNG state matters
    "lora": ({"lora": True}, None, 3, "signal"),  # only the trainable weights are saved
    "periodic-then-crash": ({"checkpoint_every": 3, "eval_every": 2}, None, 5, "crash"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_job_equals_an_uninterrupted_one(case, w2s_cache, tmp_path, monkeypatch):
    check_resume(case, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", ["accumulation", "logconf-val-loss", "periodic-then-crash"])
def test_figures_read_one_step_late_as_on_a_gpu_change_no_line_and_resume_alike(case, w2s_cache, tmp_path, monkeypatch):
    """On a GPU each step's line is written one step late (training/progress.py); forced here on the CPU."""
    from w2s_core.training import progress

    check_resume(case, tmp_path / "now", monkeypatch)
    monkeypatch.setattr(progress, "lags", lambda loop: True)
    check_resume(case, tmp_path / "late", monkeypatch, late=True)
    for run in ("whole", "stopped"):  # the same lines, the same predictions and result
        assert comparable(tmp_path / "late" / run) == comparable(tmp_path / "now" / run)


def test_read_late_a_steps_line_is_written_at_the_next_steps_end(w2s_cache, tmp_path, monkeypatch):
    from w2s_core.training import loop, progress

    monkeypatch.setattr(progress, "lags", lambda lp: True)
    real, written = loop.progress_event, []

    def progress_event(lp, n, frac):
        lines = real(lp, n, frac)
        written.append((lp.step, [e[Event.STEP] for e in lines]))
        return lines

    monkeypatch.setattr(loop, "progress_event", progress_event)
    train_in_process(tmp_path / "job", gt_spec(eval_every=4))
    # step 1 writes nothing; each later step the one before; an eval step (4, 8) its own line too
    assert written == [(1, []), (2, [1]), (3, [2]), (4, [3, 4]), (5, []), (6, [5]), (7, [6]), (8, [7, 8])]
    assert steps_of(tmp_path / "job") == list(range(1, STEPS + 1))


def check_resume(case: str, tmp_path: Path, monkeypatch, late: bool = False) -> None:
    """Stop `case` at its step, resume it in the same folder, and compare with an uninterrupted run."""
    train, loss, stop, how = CASES[case]
    spec = gt_spec(**train)
    if loss:
        spec["loss"] = logconf_loss()
    train_in_process(tmp_path / "whole", spec)

    job_dir = tmp_path / "stopped"
    with monkeypatch.context() as mp:
        interrupt_at(mp, stop, how)
        with pytest.raises(SystemExit if how == "signal" else RuntimeError) as stopped:
            train_in_process(job_dir, spec)
    folder = JobDir(job_dir)
    saved = stop if how == "signal" else stop - stop % train["checkpoint_every"]
    assert folder.checkpoint_step() == saved and not folder.succeeded()
    if how == "signal":
        assert stopped.value.code == EXIT_REQUEUE
        assert json.loads(folder.requeue.read_text()) == {"step": stop, "signal": "SIGUSR1"}
        assert steps_of(job_dir) == list(range(1, stop + 1))  # read late, the saved step's line is flushed first
    else:  # past the checkpoint: cut when it resumes; read late, the step before the crash's is still pending
        written = stop - 1 - (late and (stop - 1) % train.get("eval_every", stop) != 0)
        assert steps_of(job_dir) == list(range(1, written + 1))

    train_in_process(job_dir, spec)  # the next attempt, in the same folder
    total = JobDir(tmp_path / "whole").read_result()["steps"]
    assert total > stop and steps_of(job_dir) == list(range(1, total + 1))  # each step once
    assert comparable(job_dir) == comparable(tmp_path / "whole")  # exactly, on a CPU
    assert not folder.checkpoints.exists() and not folder.requeue.exists()
    if case == "logconf-val-loss":  # the kept eval point came before the stop, and was carried over
        result = folder.read_result()
        assert result["selected_step"] <= stop < result["steps"], result


def test_stale_checkpoint_is_removed_and_not_resumed(w2s_cache, tmp_path, monkeypatch, capfd):
    spec = gt_spec()
    job_dir = tmp_path / "job"
    with monkeypatch.context() as mp:
        interrupt_at(mp, 3)
        with pytest.raises(SystemExit):
            train_in_process(job_dir, spec)
    assert JobDir(job_dir).checkpoint_step() == 3
    changed = {**spec, "train": {**spec["train"], "lr": 0.02}}  # same folder, another job
    train_in_process(job_dir, changed)
    assert steps_of(job_dir) == list(range(1, STEPS + 1))  # from step 1, not 4
    err = capfd.readouterr().err
    assert "no checkpoint there belongs to this job" in err and "resuming" not in err
    assert not JobDir(job_dir).checkpoints.exists()


def test_checkpoint_every_keeps_only_the_newest_and_all_go_on_success(w2s_cache, tmp_path, monkeypatch):
    from w2s_core.training import checkpoint

    seen: list[list[str]] = []
    real = checkpoint.Checkpointer.save

    def save(self, lp):
        real(self, lp)
        seen.append(sorted(p.name for p in self.folder.checkpoints.iterdir()))

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)
    train_in_process(tmp_path / "job", gt_spec(checkpoint_every=3))
    assert seen == [["step-000000003"], ["step-000000006"]]  # one at a time, complete (no .tmp left)
    assert not (tmp_path / "job" / "checkpoints").exists() and JobDir(tmp_path / "job").succeeded()


def test_checkpoint_every_never_changes_a_job_key():
    keys = {v: [j.key for j in plan(v)] for v in ("", "checkpoint_every = 0", "checkpoint_every = 5")}
    assert keys[""] == keys["checkpoint_every = 0"] == keys["checkpoint_every = 5"]
    assert all(j.spec["train"]["checkpoint_every"] == 5 for j in plan("checkpoint_every = 5"))


def test_spec_digest_ignores_checkpoint_every_and_follows_the_spec():
    from w2s_core.training.checkpoint import spec_digest

    spec = gt_spec()
    assert spec_digest(spec) == spec_digest(gt_spec(checkpoint_every=7))
    assert spec_digest(spec) != spec_digest(gt_spec(lr=0.02))


# --- the job folder's side (no torch) -----------------------------------------------------------


def fake_checkpoint(folder: JobDir, step: int, complete: bool = True) -> None:
    path = folder.checkpoints / (f"step-{step:09d}" if complete else f".tmp-step-{step:09d}")
    path.mkdir(parents=True)
    write_json(path / CHECKPOINT_META, {"step": step, "digest": "d"})


def test_clear_outputs_keeps_the_checkpoint_and_cuts_events_at_its_step(tmp_path):
    folder = JobDir(tmp_path)
    lines = [{"step": s, "loss": 1.0 / s} for s in range(1, 6)] + [{"step": 5, "event": "final"}]
    folder.events.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"step": 6, "lo')
    for name in ("result.json", "predictions.json", "log.txt", "requeue.json"):
        (tmp_path / name).write_text("{}")
    fake_checkpoint(folder, 3)
    fake_checkpoint(folder, 4, complete=False)  # a save cut short: never read
    assert folder.checkpoint_step() == 3
    folder.clear_outputs()
    assert [json.loads(x)["step"] for x in folder.events.read_text().splitlines()] == [1, 2, 3]
    assert not any((tmp_path / n).exists() for n in ("result.json", "predictions.json", "log.txt", "requeue.json"))
    assert folder.checkpoint_step() == 3
    folder.clear_checkpoints()
    assert folder.checkpoint_step() is None and not folder.checkpoints.exists()
    folder.clear_outputs()  # no checkpoint: the events go, as before
    assert not folder.events.exists()


def test_trim_events_to_zero_empties_and_a_missing_file_stays_missing(tmp_path):
    path = tmp_path / "events.jsonl"
    trim_events(path, 0)
    assert not path.exists()
    path.write_text('{"step": 1}\n')
    trim_events(path, 0)
    assert path.read_text() == ""


# --- the real processes -------------------------------------------------------------------------

SLOW_TRAINER = """
import os, sys, time
from w2s_core.training import __main__ as entry, loop, progress
if os.environ.get("W2S_TEST_LATE"):  # read each step's figures a step late, as on a GPU
    progress.lags = lambda lp: True
real = loop.progress_event
def progress_event(lp, n, frac):  # slow enough for the test to signal it mid-run
    time.sleep(0.3)
    return real(lp, n, frac)
loop.progress_event = progress_event
sys.argv = ["w2s_core.training", sys.argv[1]]
entry.main()
"""


def trainer_env(tmp_path: Path) -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", W2S_CACHE=str(tmp_path / "cache"))


def wait_until(predicate, timeout: float = 60.0, what: str = "it"):
    return poll_until(predicate, timeout, what, interval=0.02)


def last_step(job_dir: Path) -> int:
    try:
        return max([0, *steps_of(job_dir)])
    except (OSError, ValueError):
        return 0


def test_sigterm_to_the_trainer_process_saves_and_exits_75(tmp_path):
    spec = gt_spec()
    env = trainer_env(tmp_path)
    runs = {}
    for name in ("whole", "stopped"):
        JobDir(tmp_path / name).write_spec(spec)
    whole = subprocess.run([sys.executable, "-m", "w2s_core.training", str(tmp_path / "whole")], env=env, cwd=ROOT)
    assert whole.returncode == 0
    job_dir = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_TRAINER, str(job_dir)], env=env, cwd=ROOT)
    wait_until(lambda: last_step(job_dir) >= 2, what="step 2")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == EXIT_REQUEUE
    folder = JobDir(job_dir)
    stopped_at = folder.checkpoint_step()
    assert stopped_at is not None and 2 <= stopped_at < STEPS and stopped_at == last_step(job_dir)
    assert json.loads(folder.requeue.read_text())["signal"] == "SIGTERM"
    again = subprocess.run([sys.executable, "-m", "w2s_core.training", str(job_dir)], env=env, cwd=ROOT)
    assert again.returncode == 0
    runs = {name: comparable(tmp_path / name) for name in ("whole", "stopped")}
    assert runs["stopped"] == runs["whole"]
    assert not folder.checkpoints.exists()


SUPERVISED = """
name = "ckpt-run"
seeds = [0]
[data]
name = "synthetic"
n_train = 256
n_test = 400
[train]
epochs = 1
lr = 0.01
batch_size = 16
minibatch_size = 16
max_length = 32
[[models]]
name = "weak"
path = "tiny-random-gpt2"
tiny = { hidden_size = 16, num_layers = 1 }
epochs = 5
eval_every = 1  # an eval point per step: a few seconds of training to interrupt
checkpoint_every = 7
[[models]]
name = "strong"
path = "tiny-random-bert"
tiny = { hidden_size = 16, num_layers = 1 }
[[transfer]]
loss = "xent"
"""


def weak_gt_dir(results: Path) -> Path | None:
    for spec in (results / "jobs").glob("*/job.json"):
        try:
            job = json.loads(spec.read_text())
        except ValueError:
            continue
        if job["model"]["name"] == "weak" and job["labels"] == "gt":
            return spec.parent.resolve()
    return None


def trainer_process(job_dir: Path):
    """The training process itself of `job_dir`: `python -m w2s_core.training JOB_DIR`, as the supervisor
    starts a job of one process, or as accelerate's launcher starts it; never the wrapper shell (`sh -c ...
    python -m w2s_core.training JOB_DIR`, which names the trainer's argv too) nor a launcher."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd[1:] == ["-m", "w2s_core.training", str(job_dir)]:
            return proc
    return None


def weak_job(results: Path, folder: Path) -> dict:
    """The stored status of the job in `folder` and the steps of its stored loss metrics."""
    from w2s_core.store import Store

    with Store.open(results, readonly=True) as store:
        job = next(j for j in store.jobs() if j["hash"].startswith(folder.name))
        return {"status": job["status"], "loss_steps": [m["step"] for m in store.metrics(job["hash"], Event.LOSS)]}


def test_w2s_run_sigterm_mid_run_then_retry_resumes_and_matches_an_uninterrupted_run(tmp_path):
    """The issue's test: kill a tiny job mid-training through the real supervisor, run it again, and compare
    with the same job trained without a stop."""
    recipe = tmp_path / "ckpt.toml"
    recipe.write_text(SUPERVISED)
    env = {"W2S_CACHE": str(tmp_path / "cache")}
    res = tmp_path / "res"
    command = [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(res), "run", str(recipe), "--parallel", "2"]
    cli = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    weak = wait_until(lambda: weak_gt_dir(res), what="the weak GT job's folder")
    wait_until(lambda: last_step(weak) >= 9, what="step 9 of the weak GT job")  # past its checkpoint at step 7
    trainer = wait_until(lambda: trainer_process(weak), what="the weak GT job's trainer")
    trainer.send_signal(signal.SIGTERM)  # as Slurm or `w2s cancel` would; started directly, the job exits 75
    trainer.wait(60)
    folder = JobDir(weak)
    stopped_at = folder.checkpoint_step()
    assert stopped_at is not None and 9 <= stopped_at < 40, stopped_at  # saved at the signal, not at step 7
    output, _ = cli.communicate(timeout=300)

    whole = tmp_path / "whole"  # the same job trained in one go, meanwhile (the supervised job has one thread too)
    JobDir(whole).write_spec(JobDir(weak).read_spec())
    baseline = subprocess.Popen(
        [sys.executable, "-m", "w2s_core.training", str(whole)], env=trainer_env(tmp_path), cwd=ROOT
    )
    if weak_job(res, weak)["status"] != "done":
        # a supervisor that does not requeue EXIT_REQUEUE by itself marked the job failed: retry it
        retry = run_w2s(res, "retry", weak.name, env=env)
        assert retry.returncode == 0, output + retry.stdout + retry.stderr
    job = weak_job(res, weak)
    assert job["status"] == "done", output
    assert job["loss_steps"] == list(range(1, 41))  # each step once in the store
    assert not folder.checkpoints.exists()
    assert baseline.wait(120) == 0
    assert comparable(weak) == comparable(whole)


@pytest.mark.parametrize("late", [False, True])
def test_ddp_workers_stop_together_and_resume(tmp_path, monkeypatch, late):
    """Two processes (gloo): SIGTERM to one worker stops both at the same step's end (the flag is reduced with
    the step's figures), and the resumed pair ends where one uninterrupted process does (results do not depend
    on the process count, test_multiprocess.py); also with the figures read a step late, as on a GPU."""
    import psutil

    monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
    spec = gt_spec(lora=True)  # the frozen weights are left out by their unwrapped names, under DDP too
    train_in_process(tmp_path / "one", spec)
    env = dict(trainer_env(tmp_path), ACCELERATE_USE_CPU="1", **({"W2S_TEST_LATE": "1"} if late else {}))
    (tmp_path / "slow.py").write_text(SLOW_TRAINER)
    job_dir = tmp_path / "ddp"
    JobDir(job_dir).write_spec(spec)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    launcher = subprocess.Popen([*ddp, str(tmp_path / "slow.py"), str(job_dir)], env=env, cwd=ROOT)
    wait_until(lambda: last_step(job_dir) >= 2, what="step 2")
    workers = [p for p in psutil.Process(launcher.pid).children(recursive=True) if "slow.py" in " ".join(p.cmdline())]
    assert len(workers) == 2
    workers[1].send_signal(signal.SIGTERM)
    assert launcher.wait(60) == 1  # torch's launcher turns its workers' 75 into 1, as accelerate's does
    folder = JobDir(job_dir)
    # published only once both processes passed the save's barriers: both stopped at this step
    assert folder.checkpoint_step() == last_step(job_dir) < STEPS and folder.wants_requeue()
    again = subprocess.run([*ddp, "-m", "w2s_core.training", str(job_dir)], env=env, cwd=ROOT)
    assert again.returncode == 0 and steps_of(job_dir) == list(range(1, STEPS + 1))
    one, two = (JobDir(d).read_predictions()["test"]["probs"] for d in (tmp_path / "one", job_dir))
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) < 1e-5
    assert not folder.checkpoints.exists()
