"""Session-scoped labs, one per topology: started once with `Lab.start` (= kvm-lab up
--headless as a child process) and stopped at the end of the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_sim.lab import Lab, LabError
from tests.lab.driver import Seat, log_tails

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _start(config: Path, tmp: pytest.TempPathFactory) -> Lab:
    data = tmp.mktemp(config.stem)
    try:
        return Lab.start(config, data, timeout=150)
    except LabError as exc:
        pytest.fail(f"the lab of {config.name} did not start: {exc}")


@pytest.fixture(scope="session")
def control_room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = _start(EXAMPLES / "control-room.yaml", tmp_path_factory)
    yield lab
    lab.stop()


@pytest.fixture(scope="session")
def small_room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = _start(EXAMPLES / "small-room.yaml", tmp_path_factory)
    yield lab
    lab.stop()


def _seat_factory(lab: Lab, lang: str, chord: str) -> Iterator[Callable[[str], Seat]]:
    """Seats for one test; each is logged out again afterwards (which also disconnects it)."""
    used: list[Seat] = []

    def make(rx: str) -> Seat:
        seat = Seat(lab, rx, lang=lang, chord=chord)
        used.append(seat)
        return seat

    yield make
    for seat in used:
        try:
            seat.logout()
        except (AssertionError, LabError) as exc:
            print(f"cleanup of {seat.rx}: {exc}\n{log_tails(lab, 15)}")


@pytest.fixture
def seats(control_room: Lab) -> Iterator[Callable[[str], Seat]]:
    yield from _seat_factory(control_room, "zh_CN", "Shift+O Shift+O")


@pytest.fixture
def small_seats(small_room: Lab) -> Iterator[Callable[[str], Seat]]:
    yield from _seat_factory(small_room, "en", "Ctrl+K Ctrl+K")
