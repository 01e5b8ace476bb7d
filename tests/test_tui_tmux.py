"""A real terminal: `w2s tui` in an 80×24 tmux pane; keys go in, the captured pane must show the grid."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from test_tui_support import fill

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux) so no real terminal to drive")


def wait_for(capture, text: str, timeout: float = 30.0) -> str:
    deadline = time.time() + timeout
    pane = ""
    while time.time() < deadline:
        pane = capture()
        if text in pane:
            return pane
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in the pane:\n{pane}")


def test_grid_drawn_in_tmux(tmp_path):
    fill(tmp_path)
    socket = f"w2s-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # its own server: parallel suites never meet
    tmux = ["tmux", "-L", socket]
    command = f"{sys.executable} -m w2s_core.cli tui {tmp_path}"
    subprocess.run([*tmux, "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command], check=True)
    try:
        def capture() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", "tui"], capture_output=True, text=True).stdout

        wait_for(capture, "sorted by recent")  # the runs screen, first
        subprocess.run([*tmux, "send-keys", "-t", "tui", "3"], check=True)
        pane = wait_for(capture, "PGR grid · logconf")
        assert "weak \\ strong" in pane and "m-small" in pane and "0.80" in pane
        assert all(len(line) <= 80 for line in pane.splitlines())
        subprocess.run([*tmux, "send-keys", "-t", "tui", "q"], check=True)
        deadline = time.time() + 10
        while time.time() < deadline and subprocess.run([*tmux, "has-session", "-t", "tui"],
                                                        capture_output=True).returncode == 0:
            time.sleep(0.2)
        assert subprocess.run([*tmux, "has-session", "-t", "tui"], capture_output=True).returncode != 0
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
