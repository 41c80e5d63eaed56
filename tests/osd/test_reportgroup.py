"""The report group of a controller host: reports handed to it in one window go in one
``POST /device/states`` (a stand-in server on 127.0.0.1 records each request)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from osd import client as api
from osd.reportgroup import Report, ReportGroup


class StatesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[list[str]] = []   # the serials of each POST, in order
        self.states: dict[str, Any] = {}      # serial -> the last state posted for it


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StatesServer

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        serials = [d["serial"] for d in body["devices"]]
        self.server.requests.append(serials)
        self.server.states.update((d["serial"], d["state"]) for d in body["devices"])
        out = json.dumps({"answers": [{"serial": s, "generation": 7} for s in serials]})
        data = out.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Member:
    def __init__(self) -> None:
        self.answers: dict[str, api.ReportOutcome] = {}
        self.done = threading.Event()
        self.expected = 0

    def report_answer(self, report: Report, outcome: api.ReportOutcome) -> None:
        self.answers[report.serial] = outcome
        if len(self.answers) >= self.expected:
            self.done.set()


@pytest.fixture
def server() -> Iterator[StatesServer]:
    srv = StatesServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def report(n: int) -> Report:
    return Report(f"SIM-RX-{n:04d}", "s" * 43, {"online": True, "heads": []})


def test_reports_handed_in_one_after_another_go_in_one_request(server: StatesServer) -> None:
    """Every submit wakes the group's thread; the batch must still wait out its window
    (from the first report) instead of leaving at the next submit."""
    group = ReportGroup(f"http://127.0.0.1:{server.server_port}", window=1.0)
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
    assert server.requests == [[report(n).serial for n in range(20)]]
    assert all(isinstance(o, api.Reported) and o.generation == 7
               for o in member.answers.values())
    assert group.posts == 1


def test_a_full_batch_leaves_without_waiting_and_the_rest_follows(
        server: StatesServer) -> None:
    group = ReportGroup(f"http://127.0.0.1:{server.server_port}", window=30.0, batch=8)
    member = Member()
    member.expected = 8
    for n in range(10):
        group.submit(member, report(n))
    group.start()
    try:
        # A full batch does not wait for the (long) window.
        assert member.done.wait(10), "the first batch answered"
        assert server.requests == [[report(n).serial for n in range(8)]]
    finally:
        group.close()


def test_a_newer_report_replaces_the_waiting_one(server: StatesServer) -> None:
    group = ReportGroup(f"http://127.0.0.1:{server.server_port}", window=0.5)
    member = Member()
    member.expected = 2
    older = Report("SIM-RX-0001", "s" * 43, {"online": True, "heads": []})
    newer = Report("SIM-RX-0001", "s" * 43, {"online": False, "heads": []})
    group.submit(member, older)
    group.submit(member, report(2))
    group.submit(member, newer)
    group.start()
    try:
        assert member.done.wait(10)
    finally:
        group.close()
    assert server.requests == [["SIM-RX-0002", "SIM-RX-0001"]]
    assert server.states["SIM-RX-0001"]["online"] is False
