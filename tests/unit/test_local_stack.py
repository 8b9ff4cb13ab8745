"""The local stack script's process bookkeeping (no servers: a child process stands in)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import stack as local_stack


def test_an_exited_child_is_not_alive(tmp_path: Path) -> None:
    """A server the test process started and stopped is a zombie until reaped: not alive."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    pidfile = tmp_path / "server.pid"
    pidfile.write_text(str(child.pid))
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    assert local_stack._pid_alive(pidfile) is None  # noqa: SLF001


def test_a_running_child_is_alive(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile = tmp_path / "server.pid"
        pidfile.write_text(str(child.pid))
        assert local_stack._pid_alive(pidfile) == child.pid  # noqa: SLF001
    finally:
        child.kill()
        child.wait()
