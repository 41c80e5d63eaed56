"""The lab state file (DATA/lab.json): every endpoint of a running lab, so other shells find it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "lab.json"
DEFAULT_DATA = Path("lab-data")


class LabNotRunning(RuntimeError):
    """No lab is up for this data dir (no state file, or its process is gone)."""


@dataclass
class LabInfo:
    """What `kvm-lab up` publishes about itself once everything is up."""

    pid: int  # the `kvm-lab up` process
    data_dir: str
    config: str  # topology file it was started from
    control_url: str  # the up process's own control endpoint
    server_url: str  # management server (web UI + REST API)
    sim_control_url: str  # simulator JSON control server
    runtime_urls: list[str]  # one control endpoint per `kvm-rx --many` process
    rx_host: dict[str, int]  # Rx ID -> index into runtime_urls
    tx: list[str] = field(default_factory=list)
    rx: list[str] = field(default_factory=list)
    serial_ports: dict[str, str] = field(default_factory=dict)  # device ID -> serial URL
    ready: bool = False  # everything was up and in sync at least once
    headless: bool = True

    def runtime_url_for(self, rx: str) -> str:
        try:
            return self.runtime_urls[self.rx_host[rx]]
        except (KeyError, IndexError):
            raise KeyError(rx) from None


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def write(data_dir: Path, info: LabInfo) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    path = state_path(data_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def remove(data_dir: Path, pid: int) -> None:
    """Remove the state file if it still belongs to process `pid`."""
    path = state_path(data_dir)
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(current, dict) and current.get("pid") == pid:
        path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(raw: Any, path: Path) -> LabInfo:
    if not isinstance(raw, dict):
        raise LabNotRunning(f"{path} is not a lab state file")
    try:
        return LabInfo(**raw)
    except TypeError as exc:
        raise LabNotRunning(f"{path} is not a lab state file of this version ({exc})") from None


def read(data_dir: Path, *, require_alive: bool = True) -> LabInfo:
    """The running lab of `data_dir`, or LabNotRunning with a message saying what to do."""
    path = state_path(data_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabNotRunning(
            f"no lab is up for data dir {data_dir} (no {path}); "
            f"start one with: kvm-lab up --data {data_dir}"
        ) from None
    except (OSError, ValueError) as exc:
        raise LabNotRunning(f"cannot read {path}: {exc}") from None
    info = _parse(raw, path)
    if require_alive and not pid_alive(info.pid):
        raise LabNotRunning(
            f"the lab of {data_dir} (pid {info.pid}) is not running any more; "
            f"start it with: kvm-lab up --data {data_dir}"
        )
    return info
