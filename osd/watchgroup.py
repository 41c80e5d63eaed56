"""One long poll for many controllers of one process (``POST /api/v1/device/watches``).

A controller host (``kvm-rx --many``) runs hundreds of controllers. When each held its own
``GET /device/watch``, a push to every Rx woke hundreds of threads at once in every host,
and the hosts spent as much CPU switching between them as on the answers (measured in the
1,000-Rx lab: ~45,000 context switches per host for one push, the last screen switching
after 0.7 s). A ``WatchGroup`` holds one poll for up to ``BATCH`` controllers on one
thread and hands each controller its own answer (docs/API.md, "watches").

A member is anything with ``watch_ticket()`` and ``watch_answer()`` (``osd.runtime``'s
``Controller``): the ticket says whether it wants to be watched now, with which
credential and generation, and whether it wants an answer at once (after a failure, to
resynchronise). When the set of ready members changes, ``poke`` ends the poll in flight
(after ``POKE_DELAY`` s, so that a host coming up restarts its poll a few times, not once
per controller) and the next one carries the new set.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from osd import client as api
from osd.hub import Backoff, Hub, TimerHandle

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH = 256          # devices per poll (the server's bound, MAX_BATCH)
POKE_DELAY = 0.05    # s: pokes within this window end the poll in flight once
PATH = "/api/v1/device/watches"
# s: backoff after a failed poll. Shorter than a lone controller's (0.25 ... 1 s): it is one
# request for a whole host, and it is what brings the host's screens back after a restart.
RETRY = (0.1, 0.5)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A member's wish to be watched: its credential, its last generation (-1: none yet),
    ``now`` when it wants an answer at once, and ``token`` handed back with the answer
    (the member uses it to drop answers meant for an older state of itself)."""

    serial: str
    secret: str
    generation: int
    now: bool
    token: object = None


class Member(Protocol):
    def watch_ticket(self) -> Ticket | None: ...

    def watch_answer(self, ticket: Ticket, outcome: api.WatchOutcome) -> None: ...


def parse_answers(body: Any) -> dict[str, api.WatchOutcome]:
    """serial → outcome of a ``watches`` answer (``api.BadAnswer`` if malformed)."""
    return answers_by_serial(body, lambda entry: api.parse_watch(entry.get("watch")))


def answers_by_serial(body: Any,
                      parse: Callable[[dict[str, Any]], T]) -> dict[str, T | api.Failure]:
    """serial → outcome of a batch answer ``{"answers": [{"serial": ..., ...}]}`` (the
    device calls for many devices, docs/API.md): an entry with ``error`` is that device's
    ``Pending``/``Refused``, any other is ``parse(entry)``; ``api.BadAnswer`` if malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("answers"), list):
        raise api.BadAnswer("'answers' is not a list")
    out: dict[str, T | api.Failure] = {}
    for entry in body["answers"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("serial"), str):
            raise api.BadAnswer("an answer has no serial")
        out[entry["serial"]] = (api.error_outcome(entry, 401) if "error" in entry
                                else parse(entry))
    return out


class WatchGroup:
    """The long polls of a process's controllers (one ``_Batch`` thread per ``BATCH``)."""

    def __init__(self, base_url: str, hub: Hub, *, watch_timeout: float = 25.0,
                 connect_timeout: float = 1.5, retry: tuple[float, float] = RETRY,
                 batch: int = BATCH) -> None:
        self.base_url = base_url.rstrip("/")
        self.hub = hub
        self.watch_timeout = watch_timeout
        self.connect_timeout = connect_timeout
        self.retry = retry
        self._size = batch
        self._lock = threading.Lock()
        self._batches: list[_Batch] = []
        self._where: dict[int, _Batch] = {}   # id(member) → its batch
        self._closed = False

    def add(self, member: Member) -> None:
        with self._lock:
            if self._closed or id(member) in self._where:
                return
            batch = next((b for b in self._batches if len(b.members) < self._size), None)
            if batch is None:
                batch = _Batch(self, len(self._batches) + 1)
                self._batches.append(batch)
                batch.start()
            self._where[id(member)] = batch
        batch.add(member)

    def remove(self, member: Member) -> None:
        with self._lock:
            batch = self._where.pop(id(member), None)
        if batch is not None:
            batch.remove(member)

    def poke(self, member: Member) -> None:
        """``member``'s ticket changed (it became ready, or wants an answer at once)."""
        with self._lock:
            batch = self._where.get(id(member))
        if batch is not None:
            batch.poke()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            batches, self._batches = self._batches, []
            self._where.clear()
        for batch in batches:
            batch.close()
        for batch in batches:
            batch.join(2.0)


class _Batch(threading.Thread):
    """One thread, one keep-alive connection, one poll at a time for up to BATCH members."""

    def __init__(self, group: WatchGroup, number: int) -> None:
        super().__init__(name=f"kvm-rx-watches-{number}", daemon=True)
        self.group = group
        self.members: list[Member] = []
        self._cond = threading.Condition()
        self._channel = api._Channel(group.base_url)
        # Never above the cap: the group's bound is what the docs promise.
        self._backoff = Backoff(group.retry, random.Random(), jitter=(0.8, 1.0))
        self._closed = False
        self._dirty = False           # the tickets changed since the poll in flight began
        self._long = False            # a poll that may wait is in flight
        self._aborted = False         # ... and was ended by a poke: not a server failure
        self._poke_timer: TimerHandle | None = None

    def add(self, member: Member) -> None:
        with self._cond:
            self.members.append(member)
        self.poke()

    def remove(self, member: Member) -> None:
        with self._cond:
            if member in self.members:
                self.members.remove(member)

    def poke(self) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify_all()
            if self._long and self._poke_timer is None and not self._closed:
                self._poke_timer = self.group.hub.call_later(POKE_DELAY, self._end_poll)

    def _end_poll(self) -> None:
        with self._cond:
            self._poke_timer = None
            if not self._long:
                return
            self._aborted = True
        self._channel.abort()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._channel.close()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._dirty and not self.members:
                    self._cond.wait()
                if self._closed:
                    return
                self._dirty = False
                members = list(self.members)
            tickets = [(m, t) for m in members if (t := _ticket(m)) is not None]
            if not tickets:
                with self._cond:
                    while not self._closed and not self._dirty:
                        self._cond.wait()
                continue
            now = any(t.now for _, t in tickets)
            with self._cond:
                self._long = not now
                self._aborted = False
            out = self._poll([t for _, t in tickets], 0.0 if now else self.group.watch_timeout)
            with self._cond:
                self._long = False
                aborted, self._aborted = self._aborted, False
                if self._poke_timer is not None:
                    self._poke_timer.cancel()
                    self._poke_timer = None
            if isinstance(out, dict):
                self._backoff.reset()
                for member, ticket in tickets:
                    outcome = out.get(ticket.serial)
                    if outcome is not None:
                        _deliver(member, ticket, outcome)
                continue
            if aborted:
                continue
            for member, ticket in tickets:
                _deliver(member, ticket, out)
            delay = self._backoff.next()
            with self._cond:
                if not self._closed:
                    self._cond.wait(delay)

    def _poll(self, tickets: list[Ticket],
              wait: float) -> dict[str, api.WatchOutcome] | api.ServerUnreachable:
        wait_s = max(0, math.ceil(wait))   # the server takes whole seconds
        body = {"timeout": wait_s, "devices": [
            {"serial": t.serial, "secret": t.secret, "generation": t.generation}
            for t in tickets]}
        return batch_call(self._channel, PATH, body, self.group.connect_timeout,
                          wait_s + 5.0, parse_answers, "watches")


def batch_call(channel: api._Channel, path: str, body: dict[str, Any],
               connect_timeout: float, read_timeout: float,
               parse: Callable[[Any], dict[str, T]],
               what: str) -> dict[str, T] | api.ServerUnreachable:
    """One device call for many devices (``watches``, ``states``): serial → that device's
    outcome (``parse`` of the answer), or why the call as a whole gave nothing."""
    res = api.exchange(channel, "POST", path, body, {}, connect_timeout, read_timeout)
    if isinstance(res, api.ServerUnreachable):
        return res
    if isinstance(res, (api.Pending, api.Refused)):
        # The whole call was refused (a server without this path, a body it rejects):
        # nothing about any one device, so the controllers keep their adoption.
        return api.ServerUnreachable(f"{what} refused: {_reason(res)}")
    try:
        return parse(res[1])
    except api.BadAnswer as exc:
        return api.ServerUnreachable(f"bad answer from server: {exc}")


def _ticket(member: Member) -> Ticket | None:
    try:
        return member.watch_ticket()
    except Exception:   # one controller's bug must not stop the others' watches
        log.exception("watch ticket failed")
        return None


def _deliver(member: Member, ticket: Ticket, outcome: api.WatchOutcome) -> None:
    try:
        member.watch_answer(ticket, outcome)
    except Exception:
        log.exception("watch answer failed")


def _reason(res: api.Pending | api.Refused) -> str:
    return "PENDING" if isinstance(res, api.Pending) else f"HTTP {res.status} {res.code}"
