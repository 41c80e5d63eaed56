"""Session-scoped labs, one per topology: started once with `Lab.start` (= kvm-lab up
--headless as a child process) and stopped at the end of the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_sim.lab import Lab, LabError
from tests.lab.driver import Seat, log_tails
from webadmin.lockcheck import MESSAGE as LOCK_HELD

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# The server reports every greenlet that lets the others run while it holds the database's
# write lock (webadmin.lockcheck); a lab's tests fail at its end if it reported one.
CHECKS = {"KVM_SERVER_CHECK_LOCK_HOLDS": "true"}


def _lab(config: Path, tmp: pytest.TempPathFactory) -> Iterator[Lab]:
    data = tmp.mktemp(config.stem)
    try:
        lab = Lab.start(config, data, timeout=150, env=CHECKS)
    except LabError as exc:
        pytest.fail(f"the lab of {config.name} did not start: {exc}")
    yield lab
    lab.stop()
    log = data / "logs" / "server.log"
    held = [line for line in log.read_text(errors="replace").splitlines() if LOCK_HELD in line]
    assert not held, f"{config.name}: the server yielded holding the write lock:\n" + "\n".join(
        held)


@pytest.fixture(scope="session")
def control_room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(EXAMPLES / "control-room.yaml", tmp_path_factory)


@pytest.fixture(scope="session")
def small_room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(EXAMPLES / "small-room.yaml", tmp_path_factory)


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
