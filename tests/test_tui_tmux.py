"""A real terminal: `w2s tui` in an 80×24 tmux pane; keys go in, the captured pane must show the grid."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux) so no real terminal to drive"
)


def pane_showing(capture, text: str, wait_for, timeout: float = 30.0) -> str:
    """The pane once it shows `text`; the last pane in the error if it never does."""

    def shown() -> str | None:
        pane = capture()
        return pane if text in pane else None

    try:
        return wait_for(shown, timeout, f"{text!r} in the pane", 0.2)
    except AssertionError:
        raise AssertionError(f"{text!r} never appeared in the pane:\n{capture()}") from None


def test_grid_drawn_in_tmux(filled_results, wait_for):
    tmp_path = filled_results.root
    socket = f"w2s-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # its own server: parallel suites never meet
    tmux = ["tmux", "-L", socket]
    command = f"{sys.executable} -m w2s_core.cli tui {tmp_path}"
    subprocess.run([*tmux, "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command], check=True)
    try:

        def capture() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", "tui"], capture_output=True, text=True).stdout

        pane_showing(capture, "sorted by recent", wait_for)  # the runs screen, first
        subprocess.run([*tmux, "send-keys", "-t", "tui", "3"], check=True)
        pane = pane_showing(capture, "PGR grid · logconf", wait_for)
        assert "weak \\ strong" in pane and "m-small" in pane and "0.80" in pane
        assert all(len(line) <= 80 for line in pane.splitlines())
        subprocess.run([*tmux, "send-keys", "-t", "tui", "q"], check=True)

        def gone() -> bool:
            return subprocess.run([*tmux, "has-session", "-t", "tui"], capture_output=True).returncode != 0

        assert wait_for(gone, 10, "the app to quit after q", 0.2)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
