"""The real `expd attach` in a real terminal (tmux), driven as a person would: look at the screen,
press q, read what is printed, and check that the daemon kept going."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.repos import expd, make_repo, results, start, wait_dead, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """A private tmux server (its own socket), killed afterwards."""
    socket = f"expd-test-{os.getpid()}-{tmp_path.name}"
    base = ["tmux", "-L", socket, "-f", "/dev/null"]
    yield base
    subprocess.run([*base, "kill-server"], capture_output=True, check=False)


def screen(tmux: list[str]) -> str:
    return subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", "expd"], capture_output=True, text=True, check=False
    ).stdout


def wait_screen(tmux: list[str], *texts: str, timeout: float = 20.0) -> str:
    wait_for(lambda: all(t in screen(tmux) for t in texts), timeout, f"{texts} on screen")
    return screen(tmux)


@pytest.mark.timeout(90)
def test_attach_in_a_terminal_and_detach(tmp_path: Path, tmux: list[str]) -> None:
    repo = make_repo(tmp_path / "repo", max_experiments=30)
    paths = start(repo, env={"AGENT_EXTRA": "sleep 0.5"})
    run_id = f"p/{paths.dir.name}"
    try:
        wait_for(lambda: results(paths), 30, "the baseline")
        env = {"EXPD_STATE_DIR": os.environ["EXPD_STATE_DIR"], "TERM": "xterm-256color"}
        command = " ".join(
            [
                "env",
                *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                shlex.quote(sys.executable),
                "-m",
                "shared.cli.main",
                "attach",
                shlex.quote(run_id),
                "; echo EXPD-EXITED=$?; sleep 60",
            ]
        )
        size = ["-x", "100", "-y", "30"]
        subprocess.run(
            [*tmux, "new-session", "-d", "-s", "expd", *size, "-c", str(repo), command], check=True
        )
        shown = wait_screen(tmux, paths.dir.name, "baseline")
        assert "Traceback" not in shown

        subprocess.run([*tmux, "send-keys", "-t", "expd", "q"], check=True)
        after = wait_screen(tmux, "EXPD-EXITED=0")
        assert "The run keeps going in the background." in after
        assert f"Reattach with: expd attach {run_id}" in after

        status = json.loads(expd("status", run_id, "--json", cwd=repo).stdout)
        assert status["daemon"] == "running"
    finally:
        expd("abort", run_id, cwd=repo)
        wait_dead(paths)
