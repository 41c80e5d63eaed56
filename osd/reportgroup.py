"""The state reports of many controllers of one process, posted together
(``POST /api/v1/device/states``).

A controller host (``kvm-rx --many``) of 250 controllers sends a heartbeat about every
4 s per controller and a report after every change: as single requests that is 60 a second
at rest and 250 within half a second after a push to every Rx, each a full HTTP exchange
for the server. A ``ReportGroup`` collects the reports handed to it for ``WINDOW`` s (a
report waits at most that long) and posts them as one request of up to ``BATCH`` devices;
each controller gets its own entry of the answer (docs/API.md, "states").

A member is anything with ``report_answer()`` (``osd.runtime``'s ``Controller``). A member
that submits again before its report left replaces it: a report is the whole state, so the
newest is the only one worth sending.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from osd import client as api
from osd.watchgroup import BATCH, answers_by_serial, batch_call

log = logging.getLogger(__name__)

WINDOW = 0.25   # s: how long a report waits for others to go with it
PATH = "/api/v1/device/states"


@dataclass(frozen=True, slots=True)
class Report:
    """One device's report: its credential, the ``device/state`` body, and ``token`` handed
    back with the outcome."""

    serial: str
    secret: str
    state: dict[str, Any]
    token: object = None


class Member(Protocol):
    def report_answer(self, report: Report, outcome: api.ReportOutcome) -> None: ...


def parse_reported(body: Any) -> dict[str, api.ReportOutcome]:
    """serial → outcome of a ``states`` answer (``api.BadAnswer`` if malformed)."""
    def reported(entry: dict[str, Any]) -> api.Reported:
        gen = entry.get("generation")
        if not isinstance(gen, int) or isinstance(gen, bool):
            raise api.BadAnswer("'generation' is not an integer")
        return api.Reported(gen)
    return answers_by_serial(body, reported)


class ReportGroup(threading.Thread):
    """One thread and one keep-alive connection that post the reports handed to it."""

    def __init__(self, base_url: str, *, window: float = WINDOW, call_timeout: float = 3.0,
                 connect_timeout: float = 1.5, batch: int = BATCH) -> None:
        super().__init__(name="kvm-rx-reports", daemon=True)
        self.window = window
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self._size = batch
        self._channel = api._Channel(base_url.rstrip("/"))
        self._cond = threading.Condition()
        self._queue: dict[str, tuple[Member, Report]] = {}   # serial → newest report
        self._closed = False
        self.posts = 0    # requests made (tests, benchmarks)

    def submit(self, member: Member, report: Report) -> None:
        with self._cond:
            if self._closed:
                return
            self._queue.pop(report.serial, None)   # the newest goes last, in its turn
            self._queue[report.serial] = (member, report)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._channel.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(2.0)

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._queue:
                    self._cond.wait()
                # Let the others of this moment join: every submit notifies, so wait out
                # the window from the first report (a bare wait(window) ended at the next
                # submit and sent batches of one or two).
                until = time.monotonic() + self.window
                while len(self._queue) < self._size and not self._closed:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._closed:
                    return
                taken = list(self._queue.values())[:self._size]
                for _, report in taken:
                    del self._queue[report.serial]
            outcomes = self._post([report for _, report in taken])
            for member, report in taken:
                outcome = (outcomes.get(report.serial) if isinstance(outcomes, dict)
                           else outcomes)
                if outcome is None:
                    outcome = api.ServerUnreachable("no answer for this device")
                try:
                    member.report_answer(report, outcome)
                except Exception:   # one controller's bug must not stop the others' reports
                    log.exception("report answer failed")

    def _post(self, reports: list[Report]) -> dict[str, api.ReportOutcome] | api.Failure:
        self.posts += 1
        body = {"devices": [{"serial": r.serial, "secret": r.secret, "state": r.state}
                            for r in reports]}
        return batch_call(self._channel, PATH, body, self.connect_timeout, self.call_timeout,
                          parse_reported, "state reports")
