"""Routing domain service (no Flask): store engine outcomes, sessions, device reports, audit,
and wake the devices' long polls.

Every function takes the caller's SQLAlchemy session and does not commit: the caller
commits, *then* calls ``WatchHub.notify`` with the device IDs returned, so a woken watch
always reads the committed state.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kvm_protocol.results import ResultCode
from webadmin import engine
from webadmin import models as m
from webadmin.snapshot import Built, screens_of

R = ResultCode
LOGIN_WINDOW = dt.timedelta(minutes=1)
LOGIN_FAILURES = 5  # per user per seat per LOGIN_WINDOW


# --- long-poll wake-ups ------------------------------------------------------------------


class WatchHub:
    """In-process wake-ups for device watches, one event per device that somebody waits on.

    Uses ``threading`` primitives looked up at call time, so under gevent's monkey patching
    they are cooperative: a waiting watch costs a greenlet, not a thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def register(self, device_id: str) -> threading.Event:
        """The event to wait on for `device_id`; register *before* reading the generation."""
        with self._lock:
            ev = self._events.get(device_id)
            if ev is None:
                ev = self._events[device_id] = threading.Event()
            return ev

    def notify(self, device_ids: Iterable[str]) -> None:
        """Wake every watch of these devices (call after the commit)."""
        with self._lock:
            events = [self._events.pop(d, None) for d in set(device_ids)]
        for ev in events:
            if ev is not None:
                ev.set()

    def notify_all(self) -> None:
        with self._lock:
            events = list(self._events.values())
            self._events.clear()
        for ev in events:
            ev.set()


# --- audit -------------------------------------------------------------------------------


def audit(
    s: Session,
    *,
    actor: str,
    action: str,
    result: str,
    seat: str = "",
    device: str = "",
    target: str = "",
    detail: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Append one audit entry (never updated, never deleted)."""
    s.add(
        m.AuditEntry(
            at=at or m.utcnow(), actor=actor[:64], seat=seat[:64], device=device[:64],
            action=action[:32], target=target[:4096], detail=dict(detail or {}),
            result=result[:32],
        )
    )


# --- generations -------------------------------------------------------------------------


def touch_devices(s: Session, device_ids: Iterable[str]) -> set[str]:
    """Bump the watch generation of these devices; returns the IDs to notify after commit.

    Call it for any change a device's watch reports: its routing, the session of its seat,
    its name or seat, the settings (``touch_all``).
    """
    ids = sorted(set(device_ids))
    if ids:
        s.execute(
            update(m.Device)
            .where(m.Device.id.in_(ids))
            .values(generation=m.Device.generation + 1)
            .execution_options(synchronize_session=False)
        )
    return set(ids)


def touch_all(s: Session) -> set[str]:
    """Bump every adopted device (e.g. after a settings change)."""
    ids = set(s.scalars(select(m.Device.id).where(m.Device.id.is_not(None))).all())
    return touch_devices(s, ids)  # type: ignore[arg-type]


# --- routing -----------------------------------------------------------------------------


def store_changes(
    s: Session, built: Built, changes: Iterable[engine.RouteChange], actor: str
) -> set[str]:
    """Write route changes; returns the Rx IDs whose desired routing changed."""
    pk_of = built.config.pk_of
    now = m.utcnow()
    changes = [ch for ch in changes if ch.rx_id in pk_of]
    pks = sorted({pk_of[ch.rx_id] for ch in changes})
    existing = {
        (r.rx_pk, r.head): r
        for r in (s.scalars(select(m.Route).where(m.Route.rx_pk.in_(pks))) if pks else ())
    }
    touched: set[str] = set()
    for ch in changes:
        rx_pk = pk_of[ch.rx_id]
        row = existing.get((rx_pk, ch.head))
        if row is None:
            row = m.Route(rx_pk=rx_pk, head=ch.head)
            s.add(row)
        if ch.route is None:
            row.tx_pk, row.tx_head, row.set_by, row.pushed = None, None, actor, False
        else:
            row.tx_pk = pk_of.get(ch.route.tx_id)
            row.tx_head = ch.route.tx_head
            row.set_by = ch.route.set_by or actor
            row.pushed = ch.route.pushed
        row.set_at = now
        touched.add(ch.rx_id)
    return touched


def _change_detail(changes: Iterable[engine.RouteChange]) -> list[dict[str, Any]]:
    return [
        {
            "rx": c.rx_id,
            "head": c.head,
            "source": None if c.route is None else f"{c.route.tx_id}:{c.route.tx_head}",
            "pushed": bool(c.route and c.route.pushed),
        }
        for c in changes
    ]


def apply_outcome(
    s: Session,
    built: Built,
    outcome: engine.Outcome,
    *,
    actor: str,
    rx_id: str,
    action: str,
    text: str,
) -> set[str]:
    """Store an operator action's routing, bump generations (the affected Rx and every screen
    of their seats), audit it. Returns the device IDs to notify after commit."""
    touched = store_changes(s, built, outcome.changes, actor)
    notify = touch_devices(s, screens_of(built, touched)) if touched else set()
    detail: dict[str, Any] = {"changes": _change_detail(outcome.changes)}
    if outcome.targets:
        detail["targets"] = [{"id": t.target, "result": t.code.value} for t in outcome.targets]
    audit(
        s, actor=actor, action=action, result=outcome.code.value,
        seat=built.seat(rx_id).name, device=rx_id, target=text, detail=detail,
    )
    return notify


# --- sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    code: ResultCode
    notify: frozenset[str] = frozenset()


def recent_failures(s: Session, user: str, place: str, now: dt.datetime) -> int:
    return int(
        s.scalar(
            select(func.count()).select_from(m.LoginAttempt).where(
                m.LoginAttempt.user_name == user,
                m.LoginAttempt.place == place,
                m.LoginAttempt.at > now - LOGIN_WINDOW,
            )
        )
        or 0
    )


def rate_limited(s: Session, user: str, place: str, now: dt.datetime) -> bool:
    return recent_failures(s, user, place, now) >= LOGIN_FAILURES


def record_failure(s: Session, user: str, place: str, now: dt.datetime) -> None:
    s.add(m.LoginAttempt(user_name=user[:64], place=place[:80], at=now))
    # Old attempts are of no use to the rate limit; keep the table small.
    s.execute(delete(m.LoginAttempt).where(m.LoginAttempt.at < now - 10 * LOGIN_WINDOW))


def _set_sessions(s: Session, built: Built, rx_id: str, user: str | None) -> dict[str, str]:
    """Replace the session of the seat of `rx_id`; returns the new rx -> user map."""
    screens = built.seat(rx_id).screens
    pks = [built.config.pk_of[r] for r in screens if r in built.config.pk_of]
    s.execute(delete(m.SeatSession).where(m.SeatSession.rx_pk.in_(pks)))
    sessions = {k: v for k, v in built.snap.sessions.items() if k not in screens}
    if user is not None:
        upk = built.config.user_pk[user]
        now = m.utcnow()
        for pk in pks:
            s.add(m.SeatSession(rx_pk=pk, user_pk=upk, since=now))
        sessions.update(dict.fromkeys(screens, user))
    # The bulk delete bypasses the flush hook: move the routing version by hand.
    s.execute(
        update(m.ServerState).where(m.ServerState.pk == 1)
        .values(routing_version=m.ServerState.routing_version + 1)
    )
    return sessions


def login(
    s: Session, built: Built, *, user: str, password_ok: bool, rx_id: str
) -> LoginResult:
    """Log `user` in at the seat of `rx_id` (the password was checked by the caller).

    Order: rate limit (5 failures per user per seat per minute), credentials, then the
    engine's ``can_login`` (disabled, login scope). On success the seat's session is
    replaced, routes the user may not see are dropped (``engine.enforce_scopes``), and
    every screen of the seat is notified.
    """
    place = built.seat_key(rx_id)
    seat = built.seat(rx_id).name
    now = built.now
    if rate_limited(s, user, place, now):
        code = R.RATE_LIMITED
    elif not password_ok or user not in built.snap.users:
        record_failure(s, user, place, now)
        code = R.BAD_CREDENTIALS
    else:
        code = engine.can_login(built.snap, user, rx_id)
    if code is not R.NETWORK_OK:
        audit(s, actor=user, action="login", result=code.value, seat=seat, device=rx_id)
        return LoginResult(code)
    previous = built.session_user(rx_id)
    sessions = _set_sessions(s, built, rx_id, user)
    after = built.with_sessions(sessions)
    dropped = engine.enforce_scopes(after.snap)
    store_changes(s, built, dropped, "system")
    notify = touch_devices(s, built.seat(rx_id).screens) | touch_devices(
        s, screens_of(built, {c.rx_id for c in dropped})
    )
    audit(
        s, actor=user, action="login", result=code.value, seat=seat, device=rx_id,
        detail={"replaced": previous, "dropped": _change_detail(dropped)},
    )
    return LoginResult(code, frozenset(notify))


def logout(s: Session, built: Built, *, rx_id: str) -> LoginResult:
    """F12: disconnect every screen of the seat and end its session."""
    user = built.session_user(rx_id)
    seat = built.seat(rx_id).name
    if user is None:
        audit(s, actor="", action="logout", result=R.NOT_LOGGED_IN.value, seat=seat,
              device=rx_id)
        return LoginResult(R.NOT_LOGGED_IN)
    outcome = engine.disconnect(built.snap, user, rx_id)
    store_changes(s, built, outcome.changes, user)
    _set_sessions(s, built, rx_id, None)
    notify = touch_devices(s, built.seat(rx_id).screens)
    audit(
        s, actor=user, action="logout", result=R.LOGGED_OUT.value, seat=seat, device=rx_id,
        detail={"changes": _change_detail(outcome.changes)},
    )
    return LoginResult(R.LOGGED_OUT, frozenset(notify))


def enforce_scopes(s: Session, built: Built, actor: str = "system") -> set[str]:
    """Drop routes that logged-in users may no longer see (after grant/group/user edits).

    Returns the device IDs to notify after commit. For the admin API.
    """
    dropped = engine.enforce_scopes(built.snap)
    touched = store_changes(s, built, dropped, actor)
    if dropped:
        audit(s, actor=actor, action="enforce_scopes", result="OK",
              detail={"changes": _change_detail(dropped)})
    return touch_devices(s, screens_of(built, touched))


# --- device reports ----------------------------------------------------------------------


def report_state(
    s: Session,
    device: m.Device,
    *,
    online: bool,
    network_up: bool | None,
    stream_ok: bool | None,
    heads: list[dict[str, Any]],
    min_interval: dt.timedelta,
    now: dt.datetime | None = None,
) -> bool:
    """Store a heartbeat/state report. Returns True if anything was written.

    A report that changes nothing only refreshes ``last_seen`` when it is older than
    `min_interval`, which bounds the write rate of idle heartbeats.
    """
    now = now or m.utcnow()
    changed = False
    values: dict[str, Any] = {"online": online, "reported_heads": heads}
    if network_up is not None:
        values["network_up"] = network_up
    if stream_ok is not None:
        values["stream_ok"] = stream_ok
    for key, value in values.items():
        if getattr(device, key) != value:
            setattr(device, key, value)
            changed = True
    if changed or device.last_seen is None or now - device.last_seen >= min_interval:
        device.last_seen = now
        return True
    return False
