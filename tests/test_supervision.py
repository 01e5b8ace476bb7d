"""Run supervision: detached jobs, the queue, kill -9 of the supervisor or a job, cancel, retry, the writer lock.

The process machinery is real (sessions, process groups, psutil, the sh exit wrapper, SQLite); the
trainer is a stand-in script that writes events slowly and then the result files. It runs as a job of
one process does, the trainer itself under the wrapper (launch_config.direct), or, where a test says
`fake` = "accelerate", as under `accelerate launch` (still what a job of several processes runs): a
launcher that ignores SIGTERM and runs the trainer as its child. That keeps these tests to seconds;
the real trainer runs through the same path in test_end_to_end.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from conftest import poll_until as wait_for
from conftest import small_recipe

from w2s_core import cli
from w2s_core.errors import W2SError
from w2s_core.store import Store
from w2s_core.supervision import diagnosis, handlers, launch_config, processes, requests, runner, supervisor
from w2s_core.supervision.lock import WriterLock
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.requests import Submit
from w2s_core.supervision.slots import device_slots

FAKE = r"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
if len(sys.argv) == 2 and not os.environ.get("FAKE_DIRECT"):
    # the launcher: ignores SIGTERM (as accelerate launch forwards it badly), runs the trainer
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = subprocess.call([sys.executable, __file__, sys.argv[1], "train"])
    if code < 0:
        name = signal.Signals(-code).name
        print(f"subprocess.CalledProcessError: Command '...' died with <Signals.{name}: {-code}>.")
    sys.exit(1 if code else 0)
job_dir = Path(sys.argv[1])
job = json.loads((job_dir / "job.json").read_text())
model = job["model"]["name"]
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
(job_dir / "tree.json").write_text(json.dumps([os.getppid(), os.getpid(), helper.pid]))
if model == os.environ.get("FAKE_FAIL_MODEL"):
    helper.kill()
    print("error: fake trainer told to fail", flush=True)
    sys.exit(3)
n = int(os.environ.get("FAKE_EVENTS", "6"))
with open(job_dir / "events.jsonl", "a") as events:
    for step in range(1, n + 1):
        time.sleep(float(os.environ.get("FAKE_DELAY", "0.05")))
        events.write(json.dumps({"step": step, "loss": 1.0 / step, "lr": 0.01}) + "\n")
        events.flush()
helper.kill()
labels = [i % 2 for i in range(10)]
(job_dir / "env.json").write_text(json.dumps({"device": "cpu", "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}))
probs = [0.7 if y else 0.3 for y in labels]
(job_dir / "predictions.json").write_text(json.dumps({"test": {"probs": probs, "labels": labels}}))
(job_dir / "result.json").write_text(json.dumps({"test_acc": 1.0}))
"""

SUPERVISE = """
import sys
from w2s_core.supervision import runner
from w2s_core.supervision import supervisor
runner.launch_command = lambda job_dir, config: [sys.executable, {fake!r}, str(job_dir)]
sys.exit(supervisor.main(sys.argv[1:]))
"""


def recipe_text(name: str, models) -> str:
    return small_recipe(
        name,
        "".join(  # distinct sizes, or equal models would share one job hash
            f'[[models]]\nname = "{m}"\npath = "tiny-random-bert"\ntiny = {{ hidden_size = {16 * (i + 1)} }}\n'
            for i, m in enumerate(models)
        ),
    )


@pytest.fixture
def fake(tmp_path, monkeypatch, request):
    """The stand-in trainer, started as a job of one process is (directly), or with `fake` parametrized
    "accelerate" (indirect=True) behind a stand-in `accelerate launch`."""
    if getattr(request, "param", "direct") == "direct":
        monkeypatch.setenv("FAKE_DIRECT", "1")  # the command runs the trainer itself: no launcher
    else:
        monkeypatch.delenv("FAKE_DIRECT", raising=False)
    script = tmp_path / "fake_accelerate.py"
    script.write_text(FAKE)
    monkeypatch.setattr(runner, "launch_command", lambda job_dir, config: [sys.executable, str(script), str(job_dir)])
    # `w2s run` and `w2s retry` hand work to a background supervisor: it runs the stand-in trainer too
    monkeypatch.setattr(supervisor, "ENTRY", ["-c", SUPERVISE.format(fake=str(script))])
    monkeypatch.setenv("FAKE_DELAY", "0.05")
    monkeypatch.setenv("W2S_KILL_GRACE_S", "1")  # a fake launcher ignores SIGTERM: escalate to SIGKILL sooner
    return script


def recipe(tmp_path: Path, models=("a", "b"), name="sup") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(recipe_text(name, models))
    return path


def submit(root: Path, recipe_path: Path) -> str:
    return requests.post(
        root,
        Submit(
            recipe_path=str(recipe_path),
            recipe_text=recipe_path.read_text(),
            force=False,
            argv=["test"],
            provenance={},
            code=None,
        ),
    )


def start_supervisor(root: Path, script: Path, parallel: int = 1) -> subprocess.Popen:
    code = SUPERVISE.format(fake=str(script))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(root), "--parallel", str(parallel)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def jobs(root: Path) -> dict[str, dict]:
    try:
        with Store.open(root, readonly=True) as store:
            return {f"{j['kind']}:{j['weak_model'] or ''}>{j['model']}": j for j in store.jobs()}
    except W2SError:  # not created (or not yet migrated) by the supervisor
        return {}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def assert_metrics_match_files(root: Path):
    """Every numeric field of every complete JSONL line is one metric row: none duplicated or missing."""
    with Store.open(root, readonly=True) as store:
        for job in store.jobs():
            events = Path(job["dir"]) / "events.jsonl"
            lines = events.read_text().splitlines() if events.is_file() else []  # a skipped job never ran
            expected = sorted(
                (seq, e["step"], k, float(v))
                for seq, line in enumerate(lines)
                for e in [json.loads(line)]
                for k, v in e.items()
                if k != "step"
            )
            got = sorted((m["seq"], m["step"], m["key"], m["value"]) for m in store.metrics(job["hash"]))
            assert got == expected, job["hash"]


def test_kill_9_supervisor_mid_plan_then_restart(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EVENTS", "15")
    root = tmp_path / "res"
    submit(root, recipe(tmp_path))  # GT a, GT b, transfer a>b; one at a time
    first = start_supervisor(root, fake)
    running = wait_for(
        lambda: (
            [j for j in jobs(root).values() if j["status"] == "running"]
            if any(j["status"] == "done" for j in jobs(root).values())
            else None
        ),
        what="one done, one running",
    )
    before = jobs(root)
    victim = running[0]
    wait_for(lambda: (Path(victim["dir"]) / "events.jsonl").is_file(), what="the running job's first event")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert processes.alive(processes.Identity(victim["pid"], victim["pgid"], victim["proc_start"]))  # it lives on

    second = start_supervisor(root, fake)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert "re-attached" in out
    after = jobs(root)
    assert all(j["status"] == "done" for j in after.values()), out
    for key, job in before.items():
        if job["status"] == "done":  # finished before the kill: not run again
            assert after[key]["started_at"] == job["started_at"] and after[key]["pid"] == job["pid"]
    assert after_key(after, victim)["pid"] == victim["pid"]  # re-attached, not restarted
    assert after_key(after, victim)["exit_code"] == 0  # the wrapper's exit record, read after the restart
    assert_metrics_match_files(root)
    with Store.open(root, readonly=True) as store:
        assert [r["status"] for r in store.runs()] == ["done"]


def after_key(after: dict, job: dict) -> dict:
    return next(j for j in after.values() if j["hash"] == job["hash"])


@pytest.mark.parametrize("fake", ["direct", "accelerate"], indirect=True)
def test_kill_9_job_fails_it_and_skips_only_dependents(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EVENTS", "30")
    root = tmp_path / "res"
    path = recipe(tmp_path, models=("a", "b"))  # GT a, GT b, transfer a>b

    def kill_weak():
        weak = wait_for(
            lambda: (
                (j := jobs(root).get("gt:>a"))
                and j["status"] == "running"
                and (Path(j["dir"]) / "tree.json").is_file()
                and j
            ),
            what="GT a running",
        )
        tree = json.loads((Path(weak["dir"]) / "tree.json").read_text())
        os.kill(weak["pid"], signal.SIGKILL)
        killed.extend([weak["pid"], *tree])

    killed: list[int] = []
    killer = threading.Thread(target=kill_weak)
    killer.start()
    code = cli.main(["--results-dir", str(root), "run", str(path), "--parallel", "2"])
    killer.join()
    assert code == 1
    status = jobs(root)
    weak = status["gt:>a"]
    assert weak["status"] == "failed" and weak["signal"] == 9
    assert "SIGKILL" in weak["error"] and "out-of-memory" in weak["error"]
    assert status["transfer:a>b"]["status"] == "skipped" and "failed" in status["transfer:a>b"]["error"]
    assert status["gt:>b"]["status"] == "done"
    assert all(gone(pid) for pid in killed[:3])  # the trainer (and launcher) the wrapper left behind are gone too
    if not gone(killed[3]):  # the trainer's own-session helper escapes if it left before any poll saw it
        os.kill(killed[3], signal.SIGKILL)
    assert_metrics_match_files(root)

    # w2s retry runs the failed job and the one it blocked, nothing else
    assert cli.main(["--results-dir", str(root), "retry", "--parallel", "2"]) == 0
    again = jobs(root)
    assert {k: j["status"] for k, j in again.items()} == {k: "done" for k in status}
    assert again["gt:>b"]["started_at"] == status["gt:>b"]["started_at"]


@pytest.mark.parametrize("fake", ["direct", "accelerate"], indirect=True)
def test_cancel_kills_the_whole_tree_before_the_next_job_starts(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_EVENTS", "2000")
    root = tmp_path / "res"
    submit(root, recipe(tmp_path, name="gts"))  # GT a and GT b, independent; the transfer a>b waits for GT a
    sup = start_supervisor(root, fake, parallel=1)
    first = wait_for(
        lambda: next(
            (j for j in jobs(root).values() if j["status"] == "running" and (Path(j["dir"]) / "tree.json").is_file()),
            None,
        ),
        what="a job running",
    )
    tree = [first["pid"], *json.loads((Path(first["dir"]) / "tree.json").read_text())]
    # wrapper, (launcher,) trainer, its own-session helper: run directly, the trainer's parent is the wrapper
    assert len(set(tree)) == (3 if os.environ.get("FAKE_DIRECT") else 4) and not any(gone(p) for p in tree)

    assert cli.main(["--results-dir", str(root), "cancel", first["hash"][:12]]) == 0
    assert all(gone(p) for p in tree)  # gone when cancel returns: no orphan, not even the helper in its own session
    assert "cancelled 1 job" in capsys.readouterr().out
    cancelled = jobs(root)[next(k for k, j in jobs(root).items() if j["hash"] == first["hash"])]
    assert cancelled["status"] == "cancelled"
    second = wait_for(
        lambda: next((j for j in jobs(root).values() if j["status"] == "running"), None), what="the next job"
    )
    assert second["started_at"] >= cancelled["finished_at"]  # the slot was reused only after the tree was gone

    assert cli.main(["--results-dir", str(root), "cancel", "gts"]) == 0  # by recipe name
    out, _ = sup.communicate(timeout=60)
    assert sup.returncode == 0, out
    final = jobs(root)
    assert final["gt:>a"]["status"] == final["gt:>b"]["status"] == "cancelled"
    assert final["transfer:a>b"]["status"] == "skipped"  # its weak labels will never exist
    with Store.open(root, readonly=True) as store:
        assert [r["status"] for r in store.runs()] == ["failed"]


def test_second_writer_is_refused_and_detach_snapshots_the_recipe(tmp_path, fake, capsys):
    root = tmp_path / "res"
    path = recipe(tmp_path, models=("a", "b"))
    held = WriterLock(root)
    assert held.try_acquire()
    try:
        # a second writer is refused and told who writes (issue 16: `w2s run` no longer writes itself;
        # it queues behind the writer as --detach does, see tests/test_follow.py)
        with pytest.raises(W2SError) as refused:
            WriterLock(root).acquire(f"run {path}")
        err = f"error: {refused.value}"
        assert f"process {os.getpid()} is already writing to {root}" in err and "--detach" in err
        assert "Traceback" not in err
        # --detach queues behind the running supervisor and returns at once
        assert cli.main(["--results-dir", str(root), "run", str(path), "--detach"]) == 0
        assert f"queued behind supervisor pid {os.getpid()}" in capsys.readouterr().out
        assert not supervisor.serve(root, [], echo=print)  # a second supervisor steps back
    finally:
        held.release()
    assert len(requests.pending(root)) == 1
    submitted = path.read_text()
    path.write_text(recipe_text("sup", ("a", "b", "c")))  # edited after submission
    assert supervisor.serve(root, device_slots(2, gpus=[]), echo=lambda m: None)
    status = jobs(root)
    assert sorted(status) == ["gt:>a", "gt:>b", "transfer:a>b"]  # the snapshot ran, not the edited file
    assert all(j["status"] == "done" for j in status.values())
    request_code = status["gt:>a"]["code"]
    assert request_code.startswith("code/") and (root / request_code / "w2s_core" / "training" / "loop.py").is_file()
    show = cli.main(["--results-dir", str(root), "show", status["gt:>a"]["hash"][:10]])
    shown = json.loads(capsys.readouterr().out)
    assert show == 0 and shown["recipe"]["text"] == submitted
    assert {"git_sha", "git_dirty", "git_diff"} <= set(shown["run_provenance"]["code"])  # the diff: once, per run
    assert "git_diff" not in shown["provenance"]["code"] and "packages" in shown["provenance"]
    assert "accelerate_config" in shown["provenance"] and shown["provenance"]["device"] == "cpu"

    moved = tmp_path / "moved"  # a results directory opens (and is complete) wherever it is moved
    shutil.move(str(root), moved)
    (tmp_path / "again.toml").write_text(submitted)
    assert cli.main(["--results-dir", str(moved), "run", str(tmp_path / "again.toml")]) == 0
    assert "3 jobs, 3 already done, 0 to run" in capsys.readouterr().out


def test_two_readers_and_a_writer_never_see_locked(tmp_path):
    root = tmp_path / "res"
    with Store.open(root) as store:
        store.upsert_job(
            {"hash": "h" * 64, "kind": "gt", "model": "m", "seed": 0, "spec": {}, "status": "running", "dir": "jobs/h"}
        )
        run_id = store.start_run(None, ["x"], {})
        store.upsert_job({"hash": "h" * 64, "run_id": run_id})
    reader = (
        "import sys\nfrom w2s_core.cli import main\n"
        "for i in range(20):\n"
        "    assert main(['--results-dir', sys.argv[1], 'runs', '--json']) == 0\n"
        "    assert main(['--results-dir', sys.argv[1], 'show', 'hhhh']) == 0\n"
    )
    events = root / "jobs" / "h" / "events.jsonl"
    events.parent.mkdir(parents=True)
    lock = WriterLock(root).acquire("write")  # first: a reader seeing a running job and no writer would start one
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", reader, str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    with Store.open(root) as store:
        step = 0
        while any(r.poll() is None for r in readers):
            step += 1
            with open(events, "a") as f:
                f.write(json.dumps({"step": step, "loss": 0.5}) + "\n")
            store.ingest_events("h" * 64, events)
            store.set_job_status("h" * 64, "running", pid=step)
    lock.release()
    for r in readers:
        err = r.stderr.read()
        assert r.wait() == 0 and "locked" not in err and "Traceback" not in err, err
    assert step > 10
    assert_metrics_match_files(root)


@pytest.mark.parametrize(
    "status, log, signal_, words",
    [
        (-9, "", 9, ["SIGKILL", "out-of-memory"]),
        (137, "", 9, ["SIGKILL"]),
        (1, "subprocess.CalledProcessError: Command '[...]' died with <Signals.SIGKILL: 9>.", 9, ["SIGKILL"]),
        (1, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", None, ["out of memory"]),
        (-15, "", 15, ["SIGTERM"]),
        (143, "", 15, ["SIGTERM"]),  # a direct job's trainer killed by SIGTERM, as the wrapper records it
        (2, "error: could not load model x", None, ["exited with code 2", "could not load model x"]),
        (diagnosis.LOST, "", None, ["lost", "no exit record"]),
    ],
)
def test_crash_diagnosis(tmp_path, status, log, signal_, words):
    path = tmp_path / "log.txt"
    path.write_text("some output\n" + log + "\n")
    assert diagnosis.exit_signal(status, log) == signal_
    text = diagnosis.diagnose(status, signal_, path)
    assert all(w in text for w in words), text
    assert text.rstrip().endswith(log.strip() or "some output")  # the log tail comes with it


@pytest.mark.parametrize("fake", ["direct", "accelerate"], indirect=True)
def test_failed_job_records_its_exit_code_and_reason(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_MODEL", "a")
    root = tmp_path / "res"
    assert cli.main(["--results-dir", str(root), "run", str(recipe(tmp_path)), "--parallel", "2"]) == 1
    status = jobs(root)
    weak = status["gt:>a"]
    code = 3 if os.environ.get("FAKE_DIRECT") else 1  # the trainer's own exit code; the launcher says 1
    assert weak["status"] == "failed" and weak["exit_code"] == code and weak["signal"] is None
    assert weak["error"].startswith(f"exited with code {code}: fake trainer told to fail")
    assert status["gt:>b"]["status"] == "done" and status["transfer:a>b"]["status"] == "skipped"


def test_gpu_slots_one_job_per_gpu_with_its_own_cuda_visible_devices(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EVENTS", "10")
    slots = device_slots(parallel=4, jobs_per_gpu=1, gpus=["3", "5"])
    assert [(s.name, s.env["CUDA_VISIBLE_DEVICES"]) for s in slots] == [("cuda:3", "3"), ("cuda:5", "5")]
    assert len(device_slots(jobs_per_gpu=2, gpus=["0"])) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible: CPU slots, and jobs see no GPU
    assert [s.name for s in device_slots(parallel=3)] == ["cpu"] * 3

    root = tmp_path / "res"
    submit(root, recipe(tmp_path, models=("a", "b", "c")))  # 3 GT jobs, then 3 transfers
    assert supervisor.serve(root, slots, echo=lambda m: None)
    with Store.open(root, readonly=True) as store:
        done = store.jobs()
    assert len(done) == 6 and all(j["status"] == "done" for j in done)
    for job in done:  # the job saw exactly the GPU of the slot it was given
        env = json.loads((Path(job["dir"]) / "env.json").read_text())
        assert job["device"] == f"cuda:{env['cuda']}" and job["provenance"]["cuda_visible_devices"] == env["cuda"]
    for gpu in ("cuda:3", "cuda:5"):  # never two jobs on one GPU at once
        spans = sorted((j["started_at"], j["finished_at"]) for j in done if j["device"] == gpu)
        assert spans and all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


@pytest.mark.parametrize(
    "exit_record, status, words",
    [
        (None, "failed", ["lost", "no exit record"]),
        ("137", "failed", ["SIGKILL"]),
        ("2", "failed", ["exited with code 2", "error: bad thing"]),
    ],
)
def test_job_that_ended_unsupervised_is_diagnosed_on_restart(tmp_path, exit_record, status, words):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    start = psutil.Process(proc.pid).create_time()
    proc.wait()  # the job ended while no supervisor watched it
    root = tmp_path / "res"
    folder = root / "jobs" / "dddd"
    folder.mkdir(parents=True)
    (folder / "log.txt").write_text("loading\nerror: bad thing\n")
    (folder / "events.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.25}\n')
    if exit_record is not None:
        (folder / "exit_status").write_text(exit_record + "\n")
    with Store.open(root) as store:
        run_id = store.start_run(None, ["x"], {})
        spec = {"train_split": "A", "predict_split": "B", "labels": "gt"}
        store.upsert_job(
            {
                "hash": "d" * 64,
                "kind": "gt",
                "model": "m",
                "seed": 0,
                "spec": spec,
                "status": "running",
                "run_id": run_id,
                "dir": "jobs/dddd",
                "pid": proc.pid,
                "pgid": proc.pid,
                "proc_start": start,
            }
        )
        Supervisor(store, [], echo=lambda m: None).run()
        job = store.get_job("d" * 64)
        assert job["status"] == status and all(w in job["error"] for w in words), job["error"]
        assert job["exit_code"] == (None if exit_record is None else int(exit_record))
        assert [m["value"] for m in store.metrics("d" * 64, "loss")] == [0.5, 0.25]  # its metrics were finished
        assert store.runs()[0]["status"] == "failed"


def test_relative_model_folder_means_the_submitters_folder(tmp_path, fake, monkeypatch):
    (tmp_path / "models" / "m1").mkdir(parents=True)
    (tmp_path / "models" / "m1" / "config.json").write_text("{}")
    path = recipe(tmp_path)
    path.write_text(
        path.read_text().replace('path = "tiny-random-bert"\ntiny = { hidden_size = 16 }', 'path = "./models/m1"')
    )
    root = tmp_path / "res"
    requests.post(
        root,
        Submit(
            recipe_path=str(path),
            recipe_text=path.read_text(),
            force=False,
            argv=["test"],
            provenance={},
            code=None,
            cwd=str(tmp_path),
        ),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a detached supervisor runs in the results folder, not where `w2s run` ran
    said: list[str] = []
    assert supervisor.serve(root, device_slots(1, gpus=[]), echo=said.append)
    assert not list((root / "inbox").glob("*.rejected")), said
    job = jobs(root)["gt:>a"]
    assert {j["status"] for j in jobs(root).values()} == {"done"} and Path.cwd() == elsewhere
    assert json.loads((Path(job["dir"]) / "job.json").read_text())["model"]["path"] == str(tmp_path / "models" / "m1")


def test_requests_round_trip_through_their_files_and_old_action_files_still_read(tmp_path):
    root = tmp_path / "res"
    made = [
        Submit(
            recipe_path="/r.toml",
            recipe_text="name = 'x'",
            argv=["w2s", "run"],
            provenance={"p": 1},
            code="code/abc",
            cwd="/home",
            force=True,
            parallel=3,
        ),
        requests.Retry(jobs=["a" * 64], argv=["w2s", "retry"], provenance={}),
        requests.Cancel(jobs=["b" * 64, "c" * 64]),
    ]
    for request in made:
        assert requests.post(root, request) == request.id
    files = requests.pending(root)
    assert [json.loads(p.read_text())["kind"] for p in files] == ["submit", "retry", "cancel"]  # oldest first
    assert [requests.read(p) for p in files] == made
    old = {"id": "1-x", "action": "cancel", "jobs": ["d" * 64]}  # written before requests had a kind
    assert requests.from_json(old) == requests.Cancel(jobs=["d" * 64], id="1-x")
    assert set(handlers.HANDLERS) == set(requests.KINDS.values())  # every kind of request has its handler
    with pytest.raises(TypeError, match="no handler for dict"):
        handlers.handle(None, old)  # dispatch is by type, never by a string in the request


BAD_REQUESTS = {
    "1-notjson.json": ("{oops", "cannot be read as JSON"),
    "2-list.json": ("[1, 2]", "is a JSON list"),
    "3-kind.json": ('{"kind": "frobnicate", "id": "3"}', "has kind 'frobnicate'"),
    "4-missing.json": ('{"kind": "retry", "id": "4", "jobs": []}', "lacks argv, provenance"),
    "5-type.json": ('{"kind": "cancel", "id": "5", "jobs": "abc"}', "jobs = 'abc'"),
    "6-extra.json": ('{"kind": "cancel", "id": "6", "jobs": [], "force": true}', "fields force"),
    "7-recipe.json": (
        '{"kind": "submit", "id": "7", "recipe_path": "r.toml", "recipe_text": "seeds = [", '
        '"argv": [], "provenance": {}}',
        "not valid TOML",
    ),
}


def test_bad_request_files_are_reported_and_set_aside_and_the_loop_goes_on(tmp_path):
    root = tmp_path / "res"
    inbox = root / requests.INBOX
    inbox.mkdir(parents=True)
    for name, (text, _) in BAD_REQUESTS.items():
        (inbox / name).write_text(text)
    with Store.open(root) as store:
        store.upsert_job(
            {
                "hash": "e" * 64,
                "kind": "gt",
                "model": "m",
                "seed": 0,
                "status": "queued",
                "dir": "jobs/eeee",
                "spec": {"train_split": "A", "predict_split": "B", "labels": "gt"},
            }
        )
    good = requests.post(root, requests.Cancel(jobs=["e" * 64]))  # after the bad ones: they must not stop it
    said: list[str] = []
    with Store.open(root) as store:
        Supervisor(store, [], echo=said.append).run()
        assert store.get_job("e" * 64)["status"] == "cancelled"
    assert not requests.is_pending(root, good) and requests.pending(root) == [], said
    assert sorted(p.name for p in requests.rejected(root)) == sorted(
        n.replace(".json", ".rejected") for n in BAD_REQUESTS
    )
    for name, (_, words) in BAD_REQUESTS.items():
        line = next(m for m in said if name in m)
        assert line.startswith(f"could not apply request {name}") and words in line, line


def test_accelerate_default_config_is_found_where_accelerate_looks_without_importing_it(tmp_path, monkeypatch):
    ask = "from accelerate.commands.config import default_config_file as f; print(f)"
    for env in ({"HF_HOME": str(tmp_path / "hf")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}):
        monkeypatch.delenv("HF_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        theirs = subprocess.run(
            [sys.executable, "-c", ask], capture_output=True, text=True, check=True, env=dict(os.environ)
        ).stdout.strip()
        direct = [sys.executable, "-m", "w2s_core.training", str(tmp_path)]
        assert launch_config.default_accelerate_config() is None  # none written yet
        assert runner.launch_command(tmp_path, None) == direct  # one process: no launcher at all
        assert "--config_file" not in runner.launch_command(tmp_path, None, 2)  # several: flags only
        Path(theirs).parent.mkdir(parents=True)
        Path(theirs).write_text("compute_environment: LOCAL_MACHINE\n")
        assert launch_config.default_accelerate_config() == Path(theirs)
        # a default config exists: one process still runs no launcher, which alone would read it; a launched
        # job names the config w2s renders into its folder, never that one
        assert runner.launch_command(tmp_path, None) == direct
        command = runner.launch_command(tmp_path, None, 2)
        assert command[command.index("--config_file") + 1] == str(tmp_path / "accelerate.yaml") != theirs
    code = (
        "import sys\nfrom pathlib import Path\nfrom w2s_core.supervision import runner\n"
        "runner.launch_command(Path('.'), None); runner.accelerate_config_text(None)\n"
        "assert not {'torch', 'accelerate'} & set(sys.modules), 'the supervisor imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
