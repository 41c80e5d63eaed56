"""The server's idle logout (setting ``idle_logout_s``; 0 = never).

The controller of a seat logs its operator out after ``idle_logout_s`` without keys. When the
controller is dead (crashed, powered off, cut off) nobody would, and the seat would stay
logged in for ever; so the server logs out a seat that shows no sign of life for that long:

- *signs of life* of a seat: its login, every operator call of the seat (device list,
  connect, push, fetch; ``seat_sessions.last_active``) and the heartbeat of the controller of
  any of its screens (``devices.last_seen``). A live controller heartbeats every few seconds,
  so a seat whose operator works on the computer (keys the server never sees) is never
  logged out by the server: there the controller's own, key-based idle logout applies.
- the server counts only time it was watching: the loop's start is a floor, so a server
  that was down for longer than ``idle_logout_s`` does not log out every seat when it
  starts again (SPEC 2.3: a server restart changes no screen).

Pure core: ``idle_seats(activity, now, idle_logout_s, since)``. Database part:
``load_activity`` and ``log_out_idle`` (one transaction). Shell: ``IdleLogout``, a loop on a
``threading`` thread (a greenlet under ``kvm-server``'s gevent monkey patching) started by
``create_app`` and stopped by ``stop()`` or when the watch hub closes (server shutdown).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from webadmin import models as m
from webadmin import routing
from webadmin.db import Database
from webadmin.routing import WatchHub
from webadmin.snapshot import Built, SnapshotCache

log = logging.getLogger("webadmin.idle")

TICK_S = 1.0        # the loop looks at its stop flag this often
MIN_PERIOD_S = 1.0  # checks are idle_logout_s / 10 apart, within these bounds
MAX_PERIOD_S = 30.0


@dataclass(frozen=True, slots=True)
class SeatActivity:
    """One logged-in seat: a screen of it, its user, and its newest sign of life."""

    rx_id: str
    user: str
    last_active: dt.datetime


def idle_seats(activity: Iterable[SeatActivity], now: dt.datetime, idle_logout_s: int,
               since: dt.datetime) -> list[SeatActivity]:
    """The seats to log out at `now`: no sign of life for `idle_logout_s` seconds, counting
    from `since` at the earliest (when the server started watching). 0 = never."""
    if idle_logout_s <= 0:
        return []
    cutoff = now - dt.timedelta(seconds=idle_logout_s)
    return [a for a in activity if max(a.last_active, since) <= cutoff]


def check_period(idle_logout_s: int) -> float:
    """Seconds between two checks: a tenth of the idle time, 1-30 s (30 s while off)."""
    if idle_logout_s <= 0:
        return MAX_PERIOD_S
    return min(MAX_PERIOD_S, max(MIN_PERIOD_S, idle_logout_s / 10))


_ACTIVITY = (
    select(m.Device.id, m.SeatSession.user_pk, m.SeatSession.since,
           m.SeatSession.last_active, m.Device.last_seen)
    .join(m.Device, m.Device.pk == m.SeatSession.rx_pk)
    .where(m.Device.id.is_not(None))
)
_HEARTBEATS = select(m.Device.id, m.Device.last_seen).where(m.Device.kind == "rx",
                                                           m.Device.id.is_not(None))


def load_activity(s: Session, built: Built) -> list[SeatActivity]:
    """Every logged-in seat (one entry per seat) with its newest sign of life."""
    names = {pk: name for name, pk in built.config.user_pk.items()}
    heartbeat = {str(did): seen for did, seen in s.execute(_HEARTBEATS)}
    seats: dict[str, SeatActivity] = {}
    for rx_id, user_pk, since, last_active, _ in s.execute(_ACTIVITY):
        user = names.get(user_pk)
        if user is None:
            continue
        times = [since, last_active] + [heartbeat.get(screen)
                                        for screen in built.seat(str(rx_id)).screens]
        newest = max(t for t in times if t is not None)
        key = built.seat_key(str(rx_id))
        old = seats.get(key)
        if old is None or newest > old.last_active:
            seats[key] = SeatActivity(str(rx_id), user, newest)
    return sorted(seats.values(), key=lambda a: a.rx_id)


def log_out_idle(s: Session, cache: SnapshotCache, hub: WatchHub, now: dt.datetime,
                 since: dt.datetime) -> tuple[list[SeatActivity], int]:
    """One check: log out every idle seat (as a logout does, audited with actor ``system``
    and reason ``idle``), commit, wake the seats' watches. Returns the seats logged out and
    the ``idle_logout_s`` setting it applied.

    Reads without a lock first (nothing to do is the common case), then decides again under
    the writers' lock, so a seat that became active meanwhile stays logged in."""
    built = cache.build(s, now, live=False)
    idle_s = int(built.config.settings.get("idle_logout_s") or 0)
    if idle_s <= 0 or not built.snap.sessions or not idle_seats(
            load_activity(s, built), now, idle_s, since):
        s.rollback()
        return [], idle_s
    s.rollback()
    built = cache.build(s, now, live=False, lock=True)
    idle_s = int(built.config.settings.get("idle_logout_s") or 0)
    gone = idle_seats(load_activity(s, built), now, idle_s, since)
    notify: set[str] = set()
    for seat in gone:
        idle_for = int((now - seat.last_active).total_seconds())
        notify |= routing.logout(s, built, rx_id=seat.rx_id, actor="system", reason="idle",
                                 extra={"idle_logout_s": idle_s, "idle_s": idle_for}).notify
    routing.commit(s, cache, hub, notify)
    return gone, idle_s


class IdleLogout:
    """The background loop: a check every ``check_period`` seconds until ``stop()`` or the
    watch hub closes (``WatchHub.notify_all`` at server shutdown). A failed check is logged
    and retried at the next period; the loop never dies of one."""

    def __init__(self, db: Database, cache: SnapshotCache, hub: WatchHub, *,
                 clock: Callable[[], dt.datetime] = m.utcnow) -> None:
        self._db, self._cache, self._hub, self._clock = db, cache, hub, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: dt.datetime | None = None
        self.checks = 0          # for tests: checks run
        self.period = MIN_PERIOD_S  # the first check learns the setting
        self.logged_out = 0      # for tests: seats logged out

    def start(self) -> None:
        if self._thread is not None:
            return
        self.started_at = self._clock()
        self._thread = threading.Thread(target=self._run, name="kvm-idle-logout", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def check(self) -> list[SeatActivity]:
        """Run one check now (also used by the loop)."""
        assert self.started_at is not None, "start() first"
        with self._db.session() as s:
            gone, idle_s = log_out_idle(s, self._cache, self._hub, self._clock(),
                                        self.started_at)
        self.period = check_period(idle_s)
        self.checks += 1
        self.logged_out += len(gone)
        for seat in gone:
            log.info("idle logout", extra={"rx": seat.rx_id, "user": seat.user})
        return gone

    def _closed(self) -> bool:
        return self._stop.is_set() or bool(getattr(self._hub, "closed", False))

    def _run(self) -> None:
        waited = 0.0
        while not self._closed():
            if waited >= self.period:
                waited = 0.0
                try:
                    self.check()
                except Exception:  # logged; tried again a period later
                    log.exception("idle logout check failed")
                    self.period = MAX_PERIOD_S
            self._stop.wait(TICK_S)
            waited += TICK_S
