"""The lab state file: written atomically, found by other shells, stale files detected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.lab import statefile
from firmware_sim.lab.statefile import LabInfo, LabNotRunning


def info(pid: int) -> LabInfo:
    return LabInfo(
        pid=pid,
        data_dir="d",
        config="c.yaml",
        control_url="http://127.0.0.1:1",
        server_url="http://127.0.0.1:2",
        sim_control_url="http://127.0.0.1:3",
        runtime_urls=["http://127.0.0.1:4"],
        rx_host={"5001": 0},
        tx=["0001"],
        rx=["5001"],
        ready=True,
    )


def test_round_trip_and_remove(tmp_path: Path) -> None:
    statefile.write(tmp_path, info(os.getpid()))
    got = statefile.read(tmp_path)
    assert got == info(os.getpid())
    assert got.runtime_url_for("5001") == "http://127.0.0.1:4"
    with pytest.raises(KeyError):
        got.runtime_url_for("5002")
    statefile.remove(tmp_path, os.getpid() + 1)  # someone else's: kept
    assert statefile.state_path(tmp_path).exists()
    statefile.remove(tmp_path, os.getpid())
    assert not statefile.state_path(tmp_path).exists()


def test_no_lab_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(LabNotRunning, match="kvm-lab up --data"):
        statefile.read(tmp_path)


def test_a_dead_lab_is_not_running(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    statefile.write(tmp_path, info(int(proc.stdout)))
    with pytest.raises(LabNotRunning, match="not running any more"):
        statefile.read(tmp_path)
    assert statefile.read(tmp_path, require_alive=False).pid == int(proc.stdout)


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", '{"pid": 1}'])
def test_damaged_files_are_reported(tmp_path: Path, content: str) -> None:
    statefile.state_path(tmp_path).write_text(content)
    with pytest.raises(LabNotRunning):
        statefile.read(tmp_path)
