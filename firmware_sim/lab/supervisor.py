"""Child processes of the lab: own process group; stopped with terminate → wait → kill.

Every child runs in a new process group (so a stop reaches whatever it spawned) and
gets ``PR_SET_PDEATHSIG`` = SIGTERM, so it is told to stop even if the lab's own
process dies without cleaning up. Linux delivers that signal when the *thread*
that forked the child exits, so the lab starts children from its main thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def child_setup(nice: int = 0) -> None:  # pragma: no cover - runs in the forked child
    # Runs between fork and exec: ask the kernel to SIGTERM us when the lab dies.
    if nice:
        os.nice(nice)   # before exec: every thread the child starts inherits it
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The parent may have died between fork and prctl: then nobody would signal us.
    if os.getppid() == 1:
        os._exit(1)


class Child:
    """One supervised process, restartable: ``start``, ``stop``, ``kill``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        nice: int = 0,
    ) -> None:
        """`nice`: added to the child's niceness (>= 0: a lower scheduling priority)."""
        if nice < 0:
            raise ValueError("a child's priority can only be lowered (nice >= 0)")
        self.nice = nice
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """True while the process runs (it may still be starting up)."""
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def start(self) -> None:
        """Start the process unless it is running; output is appended to its log file."""
        if self.alive():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n--- lab: starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            env = dict(os.environ if self.env is None else self.env)
            env.setdefault("PYTHONUNBUFFERED", "1")
            self.proc = subprocess.Popen(  # noqa: S603 - argv built by the lab, no shell
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                process_group=0,
                preexec_fn=partial(child_setup, self.nice),
            )
        self.starts += 1

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, wait up to `timeout` s, then SIGKILL it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(5.0)
        # Whatever the leader left behind in its group goes too.
        self._signal_group(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash, for fault tests)."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)


class Supervisor:
    """The lab's children by name; stops them all in reverse start order."""

    def __init__(self) -> None:
        self.children: dict[str, Child] = {}

    def add(self, child: Child) -> Child:
        if child.name in self.children:
            raise ValueError(f"duplicate child {child.name!r}")
        self.children[child.name] = child
        return child

    def __getitem__(self, name: str) -> Child:
        return self.children[name]

    def stop_all(self, timeout: float = 5.0) -> None:
        """Terminate every child at once, wait for all (bounded), then kill the rest."""
        order = list(reversed(self.children.values()))
        for child in order:
            if child.alive():
                child._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in order:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"lab: {child.name} did not stop in {timeout:g} s; killing it", file=sys.stderr
                )
            child.stop(timeout=0.1)

    def dead(self) -> list[Child]:
        """Children that were started and have exited."""
        return [c for c in self.children.values() if c.proc is not None and not c.alive()]
