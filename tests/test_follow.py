"""`w2s run` in the foreground is a client of the background supervisor (issue 16): it follows the run
from the store, so losing the terminal, Ctrl-C or a closed pipe stop only the following.

The terminal is real: `w2s run` runs on a pseudo-terminal of its own (its controlling terminal, as under
an SSH session); closing the terminal's master side hangs it up (SIGHUP, as when the connection drops),
and Ctrl-C is the byte the terminal turns into SIGINT. The trainer is test_supervision.py's stand-in,
run by the same supervisor process `w2s run` starts (`supervisor.ENTRY`), which keeps this file to seconds.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import termios
import threading
from pathlib import Path

import psutil
import pytest
import test_supervision
from conftest import ROOT, poll_until
from test_supervision import SUPERVISE, gone, jobs, recipe, recipe_text, start_supervisor

from w2s_core import cli
from w2s_core.errors import InputError
from w2s_core.status import JobStatus, RunStatus
from w2s_core.store import Store
from w2s_core.supervision import follow, requests, supervisor
from w2s_core.supervision.requests import Submit

fake = test_supervision.fake  # the fixture: the stand-in trainer, for supervisors started here and by `w2s run`

# `w2s` itself, with its supervisor running the stand-in trainer
W2S = """
import sys
from w2s_core.supervision import supervisor
supervisor.ENTRY = ["-c", {supervise!r}]
from w2s_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def w2s_command(script: Path, root: Path, *args: str) -> list[str]:
    code = W2S.format(supervise=SUPERVISE.format(fake=str(script)))
    return [sys.executable, "-c", code, "--results-dir", str(root), *args]


class Terminal:
    """A command on a pseudo-terminal of its own: its controlling terminal, stdin, stdout and stderr."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.master, self.out, self.stop = master, bytearray(), threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)  # a full terminal would block the writer
        self.reader.start()

    def _read(self) -> None:
        while not self.stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: the command and its terminal are gone
                    return
                if not data:
                    return
                self.out += data

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace").replace("\r\n", "\n")

    def wait_for_text(self, text: str, timeout: float = 60.0) -> str:
        try:
            return poll_until(lambda: text in self.text and self.text, timeout, repr(text))
        except AssertionError:
            raise AssertionError(f"{text!r} never appeared on the terminal:\n{self.text}") from None

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")  # the terminal sends SIGINT to its foreground process group

    def hang_up(self) -> None:
        """Close the terminal, as when the SSH connection drops: the kernel sends SIGHUP to its session."""
        self.stop.set()
        self.reader.join()
        os.close(self.master)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.stop.is_set():
            self.hang_up()


@pytest.fixture
def terminal():
    opened: list[Terminal] = []

    def open_terminal(argv: list[str]) -> Terminal:
        opened.append(Terminal(argv))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def statuses(root: Path) -> dict[str, str]:
    return {key: job["status"] for key, job in jobs(root).items()}


def all_done(root: Path) -> bool:
    found = statuses(root)
    return len(found) == 3 and set(found.values()) == {JobStatus.DONE}


def fake_processes(script: Path) -> list[psutil.Process]:
    """Live processes of the stand-in trainer (trainers, and launchers where it runs as one): none may outlive
    a cancel."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and (proc.info["cmdline"] or [])[1:2] == [str(script)]:
            found.append(proc)
    return found


def test_terminal_closed_after_the_first_job_the_run_goes_on_and_follow_shows_the_end(
    tmp_path, fake, monkeypatch, terminal, capsys
):
    monkeypatch.setenv("FAKE_EVENTS", "10")
    root = tmp_path / "res"
    term = terminal(w2s_command(fake, root, "run", str(recipe(tmp_path))))  # GT a, GT b, then transfer a>b
    term.wait_for_text("sup: 3 jobs, 0 already done, 3 to run")
    poll_until(lambda: JobStatus.DONE in statuses(root).values(), what="the first job done")
    term.wait_for_text("[1/3] done")  # progress, as the supervisor says it
    term.hang_up()
    assert term.proc.wait(timeout=30) == -signal.SIGHUP  # the follower ended with its terminal...
    left = statuses(root)
    assert sum(s == JobStatus.DONE for s in left.values()) < 3, left  # ...with work left to do

    poll_until(lambda: all_done(root), what="every job done with no further command")
    with Store.open(root, readonly=True) as store:
        assert [r["status"] for r in store.runs()] == [RunStatus.DONE]

    assert cli.main(["--results-dir", str(root), "follow", "sup"]) == 0  # re-attach: the view that was lost
    out = capsys.readouterr().out
    assert "sup: 3 jobs, 0 already done, 3 to run" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("[")] == ["[1/3]", "[2/3]", "[3/3]"]
    assert "transfer  b seed=0" in out and "test acc 1.000" in out
    table = out[out.index("metric: acc") :]
    assert "a" in table and "xent" in table  # the PGR table of the finished run


def test_ctrl_c_stops_following_and_the_jobs_finish(tmp_path, fake, monkeypatch, terminal):
    monkeypatch.setenv("FAKE_EVENTS", "10")
    root = tmp_path / "res"
    term = terminal(w2s_command(fake, root, "run", str(recipe(tmp_path))))
    poll_until(lambda: JobStatus.RUNNING in statuses(root).values(), what="a job running")
    term.wait_for_text("sup: 3 jobs")
    term.ctrl_c()
    term.wait_for_text("stopped following: jobs continue; `w2s cancel sup` stops them; `w2s queue` shows them")
    assert term.proc.wait(timeout=30) == follow.INTERRUPTED_EXIT
    assert "Traceback" not in term.text
    poll_until(lambda: all_done(root), what="every job done after Ctrl-C")


@pytest.mark.parametrize("how", ["twice", "--cancel-on-interrupt"])
def test_ctrl_c_twice_or_with_cancel_on_interrupt_cancels_the_run(tmp_path, fake, monkeypatch, terminal, how):
    monkeypatch.setenv("FAKE_EVENTS", "2000")  # minutes: only a cancel ends it
    root = tmp_path / "res"
    extra = ["--cancel-on-interrupt"] if how != "twice" else []
    term = terminal(w2s_command(fake, root, "run", str(recipe(tmp_path)), *extra))
    running = poll_until(
        lambda: next(
            (
                j
                for j in jobs(root).values()
                if j["status"] == JobStatus.RUNNING and (Path(j["dir"]) / "tree.json").is_file()
            ),
            None,
        ),
        what="a job running",
    )
    tree = [running["pid"], *json.loads((Path(running["dir"]) / "tree.json").read_text())]
    assert not any(gone(pid) for pid in tree)  # wrapper, trainer (its child: started directly), its helper
    term.wait_for_text("sup: 3 jobs")
    term.ctrl_c()
    if how == "twice":
        term.wait_for_text("press Ctrl-C again")
        term.ctrl_c()
    term.wait_for_text("their process trees are gone")
    assert term.proc.wait(timeout=60) == follow.INTERRUPTED_EXIT
    assert all(gone(pid) for pid in tree)
    assert fake_processes(fake) == []  # no trainer (or launcher) left anywhere
    final = statuses(root)
    assert len(final) == 3 and set(final.values()) == {JobStatus.CANCELLED}, final  # running and queued alike


def test_a_closed_pipe_ends_only_the_follower(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAKE_EVENTS", "10")
    root = tmp_path / "res"
    proc = subprocess.Popen(
        w2s_command(fake, root, "run", str(recipe(tmp_path))), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout.readline().startswith(b"run ")  # `w2s run ... | head -1`
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0  # EPIPE on its next line: it stops quietly
    assert b"Traceback" not in proc.stderr.read()
    poll_until(lambda: all_done(root), what="every job done after the pipe closed")


def test_failed_job_is_named_and_follow_replays_the_run(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_FAIL_MODEL", "a")
    root = tmp_path / "res"
    other = tmp_path / "other.toml"  # models of sizes no model of `sup` has: no job in common
    other.write_text(
        recipe_text("other", ())
        + "".join(
            f'[[models]]\nname = "{m}"\npath = "tiny-random-bert"\ntiny = {{ hidden_size = {size} }}\n'
            for m, size in (("c", 80), ("d", 96))
        )
    )
    monkeypatch.setenv("FAKE_EVENTS", "60")  # 3 s a job: `w2s run` comes while the other job runs
    requests.post(root, Submit(recipe_path=str(other), recipe_text=other.read_text(), argv=["test"], provenance={}))
    busy = start_supervisor(root, fake, parallel=2)  # a supervisor already at work on another recipe
    poll_until(lambda: statuses(root).get("gt:>c") == JobStatus.RUNNING, what="the other recipe's job running")
    assert cli.main(["--results-dir", str(root), "run", str(recipe(tmp_path)), "--parallel", "2"]) == 1
    out, err = capsys.readouterr()
    assert f"queued behind supervisor pid {busy.pid}" in out  # the foreground run queued behind it
    assert "sup: 3 jobs, 0 already done, 3 to run" in out and "FAILED" in out and "skipped" in out
    assert "some job(s) failed or were skipped; see `w2s show 2`" in err
    named = err.splitlines()[1:]  # which jobs, and why
    assert len(named) == 2 and named[0].split()[0] == "failed" and "fake trainer told to fail" in named[0]
    assert named[1].split()[0] == "skipped" and "transfer  b" in named[1]
    assert busy.wait(timeout=60) == 0

    assert cli.main(["--results-dir", str(root), "follow", "2"]) == 1  # replayed from the store
    again, again_err = capsys.readouterr()
    assert [line for line in again.splitlines() if line.startswith("[")] == [
        line for line in out.splitlines() if line.startswith("[")
    ]
    assert again_err.splitlines()[1:] == named
    assert cli.main(["--results-dir", str(root), "follow"]) == 1  # no target: the latest run


def test_a_killed_supervisor_is_started_again_while_following(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setattr(follow, "LOOK_S", 0.2)
    monkeypatch.setattr(follow, "GRACE_S", 1.0)
    monkeypatch.setenv("FAKE_EVENTS", "10")
    root = tmp_path / "res"

    def kill_supervisor():
        poll_until(lambda: JobStatus.DONE in statuses(root).values(), what="the first job done")
        os.kill(supervisor.holder(root)["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_supervisor)
    killer.start()
    assert cli.main(["--results-dir", str(root), "run", str(recipe(tmp_path))]) == 0
    killer.join()
    assert "no supervisor was running: started pid" in capsys.readouterr().out
    assert all_done(root)


def test_a_request_the_supervisor_sets_aside_is_reported(tmp_path):
    root = tmp_path / "res"
    bad = Submit(recipe_path="r.toml", recipe_text="seeds = [", argv=["test"], provenance={})
    requests.post(root, bad)
    supervisor.ensure_running(root)
    with pytest.raises(InputError, match="not valid TOML"):
        follow.attach(root, request_id=bad.id, echo=lambda line: None)


def test_follow_starts_a_supervisor_when_the_run_lost_its_own(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_EVENTS", "10")
    root = tmp_path / "res"
    assert cli.main(["--results-dir", str(root), "run", str(recipe(tmp_path)), "--detach"]) == 0
    poll_until(lambda: JobStatus.DONE in statuses(root).values(), what="the first job done")
    os.kill(supervisor.holder(root)["pid"], signal.SIGKILL)  # as a reboot or an OOM kill would
    assert cli.main(["--results-dir", str(root), "follow"]) == 0  # reconnected: it picks the run up again
    out = capsys.readouterr().out
    assert "no supervisor was running: started pid" in out and "[3/3] done" in out
    assert all_done(root)


def test_running_a_queued_recipe_again_follows_the_jobs_it_already_queued(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_EVENTS", "10")
    root = tmp_path / "res"
    path = str(recipe(tmp_path))
    assert cli.main(["--results-dir", str(root), "run", path, "--detach"]) == 0  # run 1 queues all three
    poll_until(lambda: JobStatus.RUNNING in statuses(root).values(), what="a job of run 1 running")
    assert cli.main(["--results-dir", str(root), "run", path]) == 0  # run 2: the same jobs, queued for run 1
    out = capsys.readouterr().out
    assert "sup: 3 jobs, 0 already done, 3 to run" in out  # as the supervisor counts them
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("[")] == [
        ["[1/3]", "done"],
        ["[2/3]", "done"],
        ["[3/3]", "done"],
    ]
    assert "metric: acc" in out and all_done(root)


def test_a_run_is_told_retry_from_its_command_line():
    assert follow.run_kind({"argv": ["/bin/w2s", "--results-dir", "res", "retry", "1"]}) == follow.RETRY
    assert follow.run_kind({"argv": ["/bin/w2s", "run", "retry"]}) == follow.SUBMIT  # a recipe named retry
    assert follow.run_kind({"argv": None}) == follow.SUBMIT
