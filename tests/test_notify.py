"""Notifications (issue 13): the user's config, a recipe's [notify] refused, and the command the supervisor
runs when a run ends or a job crashes: its environment, its timeout, its failures, never a delayed tick.

Against a real store and the real supervisor: runs are closed by `Supervisor.close_runs` and reaped by
`notifier.tick`, and a crash comes from a whole supervised run with a stand-in trainer that fails.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from conftest import RECIPE_HASH, fill, poll_until, small_recipe

from w2s_core import cli
from w2s_core.analysis.pgr import pgr_table
from w2s_core.config import load_config, notify_settings
from w2s_core.errors import InputError
from w2s_core.spec.recipe import load_recipe
from w2s_core.status import JobStatus, RunStatus
from w2s_core.store import Store
from w2s_core.supervision import notify, requests, runner, supervisor
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.requests import Submit
from w2s_core.supervision.slots import device_slots

# Writes the W2S_* variables it was given to RESULTS_DIR/notified/<event>-<job or run>.json.
DUMP = """
import json, os, sys
from pathlib import Path
env = {k: v for k, v in os.environ.items() if k.startswith("W2S_")}
out = Path(env["W2S_RESULTS_DIR"]) / "notified"
out.mkdir(exist_ok=True)
(out / f"{env['W2S_EVENT']}-{env.get('W2S_JOB', 'run')[:10]}.json").write_text(json.dumps(env))
"""
FAILING_TRAINER = "import sys\nprint('error: the stand-in trainer fails on purpose', flush=True)\nsys.exit(3)\n"


def write_config(tmp_path: Path, monkeypatch, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("W2S_CONFIG", str(path))
    return path


def dump_command(tmp_path: Path) -> str:
    script = tmp_path / "dump.py"
    script.write_text(DUMP)
    return f'\'"{sys.executable}" "{script}"\''  # a TOML literal string holding a quoted command


def notified(root: Path) -> dict[str, dict]:
    folder = root / "notified"
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")} if folder.is_dir() else {}


def open_run(root: Path) -> int:
    """The filled database (every job done) plus a second run over one of its jobs, still open."""
    with Store.open(root) as store:
        run_id = store.start_run(RECIPE_HASH, ["w2s", "run"], {})
        job = store.jobs()[0]["hash"]
        store.upsert_job({"hash": job, "run_id": run_id})
    return run_id


def filled_with_open_run(root: Path) -> int:
    """A filled database at `root` (conftest `fill`) with one run still open (`open_run`): its id."""
    fill(root)
    return open_run(root)


def timed_tick(sup: Supervisor) -> float:
    """One pass of the supervisor's steps that involve notifications; its wall time."""
    start = time.perf_counter()
    sup.close_runs()
    sup.notifier.tick()
    return time.perf_counter() - start


# -- config -----------------------------------------------------------------------------------------


def test_config_missing_is_empty_and_overrides_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CONFIG", str(tmp_path / "absent.toml"))
    assert load_config() == {}
    write_config(
        tmp_path,
        monkeypatch,
        '[notify]\ncommand = "echo all"\ntimeout = 5\n'
        '[notify.recipes.sweep]\ncommand = "echo sweep"\non = ["crashed"]\n',
    )
    config = load_config()
    assert notify_settings(config, "other") == {
        "command": "echo all",
        "timeout": 5.0,
        "on": ["done", "failed", "crashed"],
    }
    assert notify_settings(config, "sweep") == {"command": "echo sweep", "timeout": 5.0, "on": ["crashed"]}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[notify\n", "not valid TOML"),
        ("[notfy]\ncommand = 'x'\n", "notfy: unknown key (did you mean 'notify'?)"),
        ("[notify]\ncommand = ['echo']\n", "notify.command: expected a shell command"),
        ("[notify]\ntimeout = -1\n", "notify.timeout"),
        ("[notify]\non = ['finished']\n", "notify.on"),
        ("[notify.recipes.x]\ncomand = 'y'\n", "notify.recipes.x.comand: unknown key (did you mean 'command'?)"),
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path, monkeypatch, text, named):
    path = write_config(tmp_path, monkeypatch, text)
    with pytest.raises(InputError) as info:
        load_config()
    assert str(path) in str(info.value) and named in str(info.value)


def test_a_recipe_notify_table_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    path = tmp_path / "sweep.toml"
    text = small_recipe("sweep", '[[models]]\nname = "a"\npath = "tiny-random-bert"\n')
    path.write_text(f'{text}\n[notify]\ncommand = "touch {marker}"\ntimeout = 5\n')
    with pytest.raises(InputError) as info:
        load_recipe(path)
    message = str(info.value)
    assert str(path) in message and "cannot run commands" in message
    # the config-file equivalent, under the recipe's own name, parses as the user's config would
    snippet = message.split("\n\n", 1)[1]
    assert tomllib.loads(snippet) == {"notify": {"recipes": {"sweep": {"command": f"touch {marker}", "timeout": 5}}}}
    assert cli.main(["--results-dir", str(tmp_path / "res"), "run", str(path), "--dry-run"]) == 2
    assert "cannot run commands" in capsys.readouterr().err and not marker.exists()


# -- the supervisor runs it ------------------------------------------------------------------------


def test_a_finished_run_runs_the_command_with_its_environment(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, f"[notify]\ncommand = {dump_command(tmp_path)}\n")
    root = tmp_path / "res"
    run_id = filled_with_open_run(root)
    said: list[str] = []
    with Store.open(root) as store:
        sup = Supervisor(store, [], echo=said.append)
        assert timed_tick(sup) < 0.5  # it starts the command, never waits for it
        assert store.runs()[-1]["status"] == RunStatus.DONE
        poll_until(lambda: notified(root), what="the notification command", timeout=20)
        rows = [r for r in pgr_table(store, RECIPE_HASH) if not math.isnan(r["pgr_mean"])]
        poll_until(lambda: (sup.notifier.tick(), not sup.notifier.busy())[1], what="the command reaped")
    env = notified(root)["run_done-run"]
    best = max(rows, key=lambda r: r["pgr_mean"])
    assert env["W2S_EVENT"] == "run_done" and env["W2S_RUN_ID"] == str(run_id) and env["W2S_STATUS"] == "done"
    assert env["W2S_RECIPE"] == "grid-demo" and env["W2S_RECIPE_PATH"] == "grid-demo.toml"
    assert env["W2S_RESULTS_DIR"] == str(root.resolve()) and "W2S_JOB" not in env
    summary = env["W2S_SUMMARY"]
    assert "\n" not in summary and f"best PGR {best['pgr_mean']:.2f} ({best['weak']}→{best['strong']}" in summary
    assert best["method"] in summary and "1 done, 0 failed" in summary
    assert not [line for line in said if line.startswith("notify:")]  # it exited 0: nothing to say


def test_a_command_past_its_timeout_is_killed_without_delaying_the_supervisor(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, "[notify]\ncommand = 'echo $$ > pid; sleep 60'\ntimeout = 1\n")
    root = tmp_path / "res"
    filled_with_open_run(root)
    said: list[str] = []
    with Store.open(root) as store:
        sup = Supervisor(store, [], echo=said.append)
        ticks = [timed_tick(sup)]
        pid = int(poll_until(lambda: (root / "pid").is_file() and (root / "pid").read_text().strip(), what="pid"))
        assert sup.busy()  # the supervisor stays (idle) until its command ended or was killed
        start = time.monotonic()
        while sup.notifier.busy() and time.monotonic() - start < 20:
            ticks.append(timed_tick(sup))
            time.sleep(runner.POLL_S)
        assert not sup.notifier.busy() and not sup.busy()
    assert max(ticks) < 0.5 and 0.8 < time.monotonic() - start < 10
    assert any("ran past its timeout; killed it" in line for line in said)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_failing_command_is_logged_and_an_invalid_config_never_breaks_the_tick(tmp_path, monkeypatch):
    config = write_config(tmp_path, monkeypatch, "[notify]\ncommand = 'echo about to fail; exit 7'\n")
    root = tmp_path / "res"
    filled_with_open_run(root)
    said: list[str] = []
    with Store.open(root) as store:
        sup = Supervisor(store, [], echo=said.append)
        timed_tick(sup)
        poll_until(lambda: (sup.notifier.tick(), not sup.notifier.busy())[1], what="the command reaped")
        config.write_text("[notify]\ntimeout = 'soon'\n")
        open_run(root)
        timed_tick(sup)  # the next run ends with a broken config: said, not raised
    assert any("exited with 7" in line and notify.LOG_NAME in line for line in said)
    assert "about to fail" in (root / notify.LOG_NAME).read_text()
    assert any("not valid" in line and "notify.timeout" in line for line in said)


def test_a_crashed_job_and_the_failed_run_notify_through_a_supervised_run(tmp_path, monkeypatch):
    write_config(
        tmp_path,
        monkeypatch,
        f"[notify]\ncommand = {dump_command(tmp_path)}\n[notify.recipes.crashy]\non = ['crashed', 'failed']\n",
    )
    trainer = tmp_path / "trainer.py"
    trainer.write_text(FAILING_TRAINER)
    monkeypatch.setattr(runner, "launch_command", lambda job_dir, config: [sys.executable, str(trainer)])
    root, path = tmp_path / "res", tmp_path / "crashy.toml"
    models = "".join(
        f'[[models]]\nname = "{m}"\npath = "tiny-random-bert"\ntiny = {{ hidden_size = {n} }}\n'
        for m, n in (("a", 16), ("b", 32))
    )
    path.write_text(small_recipe("crashy", models))  # GT a and GT b crash; the transfer a>b is skipped
    requests.post(root, Submit(recipe_path=str(path), recipe_text=path.read_text(), argv=["test"], provenance={}))
    assert supervisor.serve(root, device_slots(1, gpus=[]), echo=lambda m: None)  # returns once the command ended
    with Store.open(root, readonly=True) as store:
        crashed = [j for j in store.jobs() if j["status"] == JobStatus.FAILED]
    got = notified(root)
    assert len(crashed) == 2 and set(got) == {"run_failed-run", *(f"job_crashed-{j['hash'][:10]}" for j in crashed)}
    for job in crashed:
        crash = got[f"job_crashed-{job['hash'][:10]}"]
        assert crash["W2S_JOB"] == job["hash"] and crash["W2S_STATUS"] == "failed" and crash["W2S_RECIPE"] == "crashy"
        assert crash["W2S_RECIPE_PATH"] == str(path) and crash["W2S_RUN_ID"] == str(job["run_id"])
        assert job["hash"][:10] in crash["W2S_SUMMARY"] and job["model"] in crash["W2S_SUMMARY"]
        assert job["error"].splitlines()[0] in crash["W2S_SUMMARY"]
    assert "0 done, 2 failed, 1 skipped" in got["run_failed-run"]["W2S_SUMMARY"]
    assert got["run_failed-run"]["W2S_STATUS"] == "failed"


def test_only_the_events_the_config_names_run_it(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, f"[notify]\ncommand = {dump_command(tmp_path)}\non = ['failed', 'crashed']\n")
    root = tmp_path / "res"
    filled_with_open_run(root)
    with Store.open(root) as store:
        sup = Supervisor(store, [], echo=lambda m: None)
        timed_tick(sup)
        assert store.runs()[-1]["status"] == RunStatus.DONE and not sup.notifier.busy()
    assert notified(root) == {}


# -- the TUI ---------------------------------------------------------------------------------------


def test_the_tui_rings_and_toasts_only_what_ends_while_it_is_open(tmp_path, monkeypatch, settle):
    from tui_helpers import add_job

    from w2s_tui import app as app_module

    monkeypatch.setattr(app_module, "WATCH_S", 0.1)
    root = tmp_path / "res"
    old_crash = add_job(root, 1, status=JobStatus.FAILED, error="exited with code 1: an old crash")
    job = add_job(root, 2)  # running
    with Store.open(root) as store:
        store.finish_run(store.start_run("r" * 64, [], {}), RunStatus.FAILED)  # ended before the app opened
        run_id = store.start_run("r" * 64, [], {})
        store.upsert_job({"hash": job, "run_id": run_id})
    bells: list[int] = []
    toasts: list[tuple[str, str]] = []

    async def looks(pilot, n: int = 4) -> None:
        for _ in range(n):
            await pilot.pause(0.15)
            await settle(pilot)

    async def body():
        app = app_module.W2SApp(root, start="history")
        app.bell = lambda: bells.append(1)
        shown = app.notify
        app.notify = lambda message, **kw: (toasts.append((str(message), kw.get("severity"))), shown(message, **kw))
        async with app.run_test(size=(160, 40)) as pilot:
            await looks(pilot)
            assert bells == [] and toasts == []  # the first look only learns what had ended
            with Store.open(root) as store:
                store.set_job_status(job, JobStatus.FAILED, error="exited with code 3: boom\n--- log tail ---\nx")
                store.finish_run(run_id, RunStatus.FAILED)
            await looks(pilot)
            await looks(pilot)  # nothing new: no second bell
        return app

    asyncio.run(body())
    assert 1 <= len(bells) <= 2  # one per look that found something (the job and the run may land apart)
    assert (f"run {run_id} (tests) failed", "error") in toasts
    assert (f"job {job[:10]} (m-one) crashed: exited with code 3: boom", "error") in toasts
    assert len(toasts) == 2 and not any(old_crash[:10] in t for t, _ in toasts)


def test_the_readme_config_example_is_a_valid_config(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Tags, notes and notifications", 1)[1]
    write_config(tmp_path, monkeypatch, section.split("```toml\n", 1)[1].split("```", 1)[0])
    settings = notify_settings(load_config(), "lr-sweep")
    assert "ntfy.sh" in settings["command"] and settings["timeout"] == 30 and len(settings["on"]) == 3
