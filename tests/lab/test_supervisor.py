"""The lab's child processes: stopped cleanly, killed when stubborn, never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from firmware_sim.lab.statefile import pid_alive
from firmware_sim.lab.supervisor import Child, Supervisor

SLEEPER = [sys.executable, "-c", "import time\nfor _ in range(600): time.sleep(0.1)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('rea' + 'dy-now', flush=True)\n"
    "for _ in range(600): time.sleep(0.1)",
]


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def wait_file_text(path: Path, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_stop_terminates_and_logs(tmp_path: Path) -> None:
    child = Child("sleeper", SLEEPER, log_path=tmp_path / "logs" / "sleeper.log")
    child.start()
    assert child.alive()
    pid = child.pid
    assert pid is not None
    child.stop(timeout=5)
    assert not child.alive()
    assert child.returncode() == -signal.SIGTERM
    assert "starting sleeper" in (tmp_path / "logs" / "sleeper.log").read_text()


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    child = Child("stubborn", STUBBORN, log_path=log)
    child.start()
    wait_file_text(log, "ready-now")
    started = time.monotonic()
    child.stop(timeout=0.5)
    assert not child.alive()
    assert child.returncode() == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_kill_is_sigkill_and_start_restarts(tmp_path: Path) -> None:
    child = Child("sleeper", SLEEPER, log_path=tmp_path / "s.log")
    child.start()
    first = child.pid
    child.kill()
    assert child.returncode() == -signal.SIGKILL
    child.start()
    assert child.alive() and child.pid != first and child.starts == 2
    child.start()  # already running: no second process
    assert child.starts == 2
    child.stop()


def test_stop_reaches_grandchildren_in_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen({SLEEPER!r})
        open({str(pidfile)!r}, "w").write(str(p.pid))
        for _ in range(600): time.sleep(0.1)
    """)
    child = Child("parent", [sys.executable, "-c", script], log_path=tmp_path / "p.log")
    child.start()
    grandchild = 0
    deadline = time.monotonic() + 10
    while not grandchild and time.monotonic() < deadline:
        text = pidfile.read_text() if pidfile.exists() else ""
        grandchild = int(text) if text.strip() else 0
        time.sleep(0.02)
    assert grandchild and pid_alive(grandchild)
    child.stop(timeout=5)
    assert wait_gone(grandchild)


def test_children_die_with_the_lab_process(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: if the up process dies without cleaning up, its children still stop."""
    pidfile = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from firmware_sim.lab.supervisor import Child
        c = Child("sleeper", {SLEEPER!r}, log_path=Path({str(tmp_path / "c.log")!r}))
        c.start()
        Path({str(pidfile)!r}).write_text(str(c.pid))
        os._exit(0)   # no cleanup at all, like a SIGKILL
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert done.returncode == 0
    pid = int(pidfile.read_text())
    assert wait_gone(pid), "the orphaned child is still running"


def test_supervisor_stop_all_and_dead(tmp_path: Path) -> None:
    sup = Supervisor()
    a = sup.add(Child("a", SLEEPER, log_path=tmp_path / "a.log"))
    b = sup.add(
        Child("b", [sys.executable, "-c", "raise SystemExit(3)"], log_path=tmp_path / "b.log")
    )
    with pytest.raises(ValueError, match="duplicate"):
        sup.add(Child("a", SLEEPER, log_path=tmp_path / "a2.log"))
    a.start()
    b.start()
    assert b.proc is not None
    b.proc.wait(10)
    assert [c.name for c in sup.dead()] == ["b"]
    sup.stop_all(timeout=5)
    assert not a.alive()
    assert os.path.exists(tmp_path / "b.log")


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_a_child_can_run_at_a_lower_priority(tmp_path: Path) -> None:
    """The lab starts its controller hosts with ``nice``: the child and every thread it
    starts run that much below the lab (capped at 19, as the kernel does)."""
    script = ("import threading, time, os\n"
              "t = threading.Thread(target=lambda: print('thread', os.nice(0), flush=True))\n"
              "t.start(); t.join()\n"
              "for _ in range(600): time.sleep(0.1)")
    low = Child("low", [sys.executable, "-c", script], log_path=tmp_path / "low.log", nice=5)
    normal = Child("normal", SLEEPER, log_path=tmp_path / "normal.log")
    low.start()
    normal.start()
    try:
        assert low.pid is not None and normal.pid is not None
        mine = os.nice(0)
        assert niceness(low.pid) == min(19, mine + 5)
        assert niceness(normal.pid) == mine
        assert f"thread {min(19, mine + 5)}" in wait_file_text(tmp_path / "low.log", "thread ")
    finally:
        low.stop(timeout=5)
        normal.stop(timeout=5)
    with pytest.raises(ValueError, match="only be lowered"):
        Child("bad", SLEEPER, log_path=tmp_path / "bad.log", nice=-1)
