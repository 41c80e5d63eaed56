"""The report group of a controller host: reports handed to it in one window go in one
``POST /device/states`` (the Tx gateway tests' stand-in server on 127.0.0.1 records each
request)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from osd import client as api
from osd.reportgroup import Report, ReportGroup
from tests.lab.test_tx_gateway import FakeServer


class Member:
    def __init__(self) -> None:
        self.answers: dict[str, api.ReportOutcome] = {}
        self.done = threading.Event()
        self.expected = 0

    def report_answer(self, report: Report, outcome: api.ReportOutcome) -> None:
        self.answers[report.serial] = outcome
        if len(self.answers) >= self.expected:
            self.done.set()


SECRET = "s" * 43
STATES = "/api/v1/device/states"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """The stand-in device API of the Tx gateway's tests; it knows the reports' secret."""
    srv = FakeServer()
    srv.bound.update({f"SIM-RX-{n:04d}": SECRET for n in range(20)})
    try:
        yield srv
    finally:
        srv.close()


def posted(server: FakeServer) -> list[list[str]]:
    """The serials of each ``POST /device/states``, in order."""
    return [[d["serial"] for d in body["devices"]]
            for path, _, body in server.calls if path == STATES]


def report(n: int) -> Report:
    return Report(f"SIM-RX-{n:04d}", SECRET, {"online": True, "heads": []})


def test_reports_handed_in_one_after_another_go_in_one_request(server: FakeServer) -> None:
    """Every submit wakes the group's thread; the batch must still wait out its window
    (from the first report) instead of leaving at the next submit."""
    group = ReportGroup(server.url, window=1.0)
    group.start()
    member = Member()
    member.expected = 20
    try:
        for n in range(20):   # ~0.2 s of reports, well inside the 1 s window
            group.submit(member, report(n))
            time.sleep(0.01)
        assert member.done.wait(10), "every report answered"
    finally:
        group.close()
    assert posted(server) == [[report(n).serial for n in range(20)]]
    assert all(isinstance(o, api.Reported) and o.generation == 1
               for o in member.answers.values())
    assert group.posts == 1


def test_a_full_batch_leaves_without_waiting_and_the_rest_follows(
        server: FakeServer) -> None:
    group = ReportGroup(server.url, window=30.0, batch=8)
    member = Member()
    member.expected = 8
    for n in range(10):
        group.submit(member, report(n))
    group.start()
    try:
        # A full batch does not wait for the (long) window.
        assert member.done.wait(10), "the first batch answered"
        assert posted(server) == [[report(n).serial for n in range(8)]]
    finally:
        group.close()


def test_a_newer_report_replaces_the_waiting_one(server: FakeServer) -> None:
    group = ReportGroup(server.url, window=0.5)
    member = Member()
    member.expected = 2
    older = Report("SIM-RX-0001", SECRET, {"online": True, "heads": []})
    newer = Report("SIM-RX-0001", SECRET, {"online": False, "heads": []})
    group.submit(member, older)
    group.submit(member, report(2))
    group.submit(member, newer)
    group.start()
    try:
        assert member.done.wait(10)
    finally:
        group.close()
    assert posted(server) == [["SIM-RX-0002", "SIM-RX-0001"]]
    assert server.calls[-1][2]["devices"][1]["state"]["online"] is False
