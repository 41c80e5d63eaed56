"""Routing domain service (no Flask): store engine outcomes, sessions, device reports, audit,
and wake the devices' long polls.

Every function takes the caller's SQLAlchemy session and does not commit: the caller
commits, *then* calls ``WatchHub.notify`` with the device IDs returned, so a woken watch
always reads the committed state. ``commit`` does both and also updates the snapshot cache.

The hot paths write with SQL statements rather than ORM objects (one upsert for all route
changes, one UPDATE ... RETURNING for the generations, one INSERT for the audit entry):
a switch is a handful of statements and one commit, whatever its size.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kvm_protocol.results import ResultCode
from webadmin import db, engine
from webadmin import models as m
from webadmin.snapshot import Built, SnapshotCache, screens_of

R = ResultCode

# The statements of every switch, built once (building one costs more than running it).
_AUDIT = insert(m.Base.metadata.tables["audit_log"])
_DEVICES = m.Device.__table__.c
_TOUCH = (
    update(m.Base.metadata.tables["devices"])
    .where(_DEVICES.id.in_(bindparam("ids", expanding=True)))
    .values(generation=_DEVICES.generation + 1)
    .returning(_DEVICES.id, _DEVICES.generation)
)
_UPSERTS: dict[str, _Upsert] = {}

LOGIN_WINDOW = dt.timedelta(minutes=1)
LOGIN_FAILURES = 5  # per user per seat per LOGIN_WINDOW


# --- long-poll wake-ups ------------------------------------------------------------------


class Waiter:
    """What the watches of one device wait on until the next notify: an event, the device's
    new generation when the notifier knew it (else None), the watches' early releases
    (see ``WatchHub.release_woken``) and the wake callbacks of batch watches that wait on
    many devices at once (see ``WatchHub.add_waker``)."""

    __slots__ = ("event", "generation", "releases", "wakers")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.generation: int | None = None
        self.releases: list[Callable[[int], None]] = []
        self.wakers: list[Callable[[], None]] = []

    def wait(self, timeout: float | None) -> bool:
        return self.event.wait(timeout)


class WatchHub:
    """In-process wake-ups for device watches, and the encoded watch answers.

    One ``Waiter`` per device that somebody waits on; ``notify`` hands each the device's
    new generation (when the committing request knew it) so that a woken watch can answer
    from the in-memory snapshot without a query. ``answer`` keeps the last encoded answer
    per device, so an answer is built once per (device, generation, cache versions).

    Early release: a waiting watch may ``attach`` a release callback to its waiter. When a
    notify hands generations to such waiters, the first watch that wakes calls
    ``release_woken``, which runs every attached callback of that notify in one go (each
    writes its watch's answer straight to its socket). So after a push to 999 Rx the
    answers leave one after another within a few milliseconds, and each watch's own
    greenlet does its bookkeeping (access log, next request) afterwards instead of in
    front of the others' answers.

    Uses ``threading`` primitives looked up at call time, so under gevent's monkey patching
    they are cooperative: a waiting watch costs a greenlet, not a thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, Waiter] = {}
        self._answers: dict[str, tuple[Hashable, bytes]] = {}
        self._woken: list[Waiter] = []  # notified waiters whose releases have not run yet
        self.answers_built = 0  # for tests and benchmarks
        self.closed = False  # set by notify_all: the server stops, watches answer at once
        self._active = 0     # watches between their wait and their answer (see ``active``)
        self._idle = threading.Event()
        self._idle.set()

    def register(self, device_id: str) -> Waiter:
        """The waiter for `device_id`; register *before* reading the generation."""
        with self._lock:
            waiter = self._waiters.get(device_id)
            if waiter is None:
                waiter = self._waiters[device_id] = Waiter()
            return waiter

    def add_waker(self, waiter: Waiter, wake: Callable[[], None]) -> None:
        """Call `wake()` when `waiter` is notified (or ``notify_all`` runs): how a batch
        watch waits on the waiters of many devices with one event of its own. `wake` must
        not block; remove it when the wait ends (``remove_waker``)."""
        with self._lock:
            waiter.wakers.append(wake)

    def remove_waker(self, waiter: Waiter, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in waiter.wakers:
                waiter.wakers.remove(wake)

    def attach(self, waiter: Waiter, release: Callable[[int], None]) -> None:
        """Run `release(generation)` when `waiter` is notified with a generation (from
        ``release_woken``). The callback must not block; detach it when the wait ends."""
        with self._lock:
            waiter.releases.append(release)

    def detach(self, waiter: Waiter, release: Callable[[int], None]) -> None:
        with self._lock:
            if release in waiter.releases:
                waiter.releases.remove(release)

    def notify(self, device_ids: Iterable[str],
               generations: Mapping[str, int] | None = None) -> None:
        """Wake every watch of these devices (call after the commit). `generations`: the
        committed new generation of (some of) them."""
        gens = generations or {}
        woken: list[Waiter] = []
        with self._lock:
            for d in set(device_ids):
                waiter = self._waiters.pop(d, None)
                if waiter is not None:
                    waiter.generation = gens.get(d)
                    if waiter.releases and waiter.generation is not None:
                        self._woken.append(waiter)
                    woken.append(waiter)
            wakers = _wakers_of(woken)
        _wake(woken, wakers)

    def release_woken(self) -> None:
        """Run the early releases of the waiters notified since the last call (see the class
        docstring). Every woken watch calls it first; the first one does the work."""
        with self._lock:
            batch, self._woken = self._woken, []
        for waiter in batch:
            gen = waiter.generation
            if gen is None:
                continue
            for release in tuple(waiter.releases):
                release(gen)

    def notify_all(self, wait_s: float = 5.0) -> None:
        """Release every watch now (the server is stopping) and wait up to `wait_s` until
        they have answered (an answer may need a query, which yields under gevent)."""
        with self._lock:
            self.closed = True
            waiters = list(self._waiters.values())
            self._waiters.clear()
            wakers = _wakers_of(waiters)
        _wake(waiters, wakers)
        self._idle.wait(wait_s)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Wrap a watch's wait-and-answer, so that ``notify_all`` can wait for it."""
        with self._lock:
            self._active += 1
            self._idle.clear()
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._idle.set()

    def answer(self, device_id: str, key: Hashable, build: Callable[[], bytes]) -> bytes:
        """The encoded answer for `device_id` under `key` (built once, then reused)."""
        with self._lock:
            cached = self._answers.get(device_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        body = build()
        with self._lock:
            self._answers[device_id] = (key, body)
            self.answers_built += 1
        return body


def _wakers_of(waiters: Iterable[Waiter]) -> list[Callable[[], None]]:
    """The distinct wake callbacks of these waiters (call with the hub's lock held): a batch
    watch that waits on 250 of them is woken once, not 250 times."""
    out: dict[Callable[[], None], None] = {}
    for waiter in waiters:
        for wake in waiter.wakers:
            out[wake] = None
    return list(out)


def _wake(waiters: Iterable[Waiter], wakers: Iterable[Callable[[], None]]) -> None:
    for waiter in waiters:
        waiter.event.set()
    for wake in wakers:
        wake()


def commit(s: Session, cache: SnapshotCache, hub: WatchHub,
           notify: Iterable[str] = ()) -> None:
    """Commit the request's transaction, then bring the snapshot cache up to date with it
    (patch the routing in place when this commit alone moved it, else mark the changed parts
    out of date), then wake the watches of `notify` with their new generations.

    Nothing is announced before the commit is durable; the cache never serves a state older
    than a commit it announced.
    """
    s.flush()
    done = s.info.pop(db.PENDING, {})
    s.commit()
    after = done.get("versions")
    if after is not None:
        patches = done.get("routing", [])
        if len(patches) == 1:
            before, changes, actor = patches[0]
            patched = cache.apply(before, changes, actor, after)
        else:
            patched = False
        if not patched:
            cache.committed(after)
    ids = set(notify)
    if ids:
        hub.notify(ids, done.get("generations"))


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
    s.connection().execute(_AUDIT, {
        "at": at or m.utcnow(), "actor": actor[:64], "seat": seat[:64], "device": device[:64],
        "action": action[:32], "target": target[:4096], "detail": dict(detail or {}),
        "result": result[:32],
    })


# --- generations -------------------------------------------------------------------------


def touch_devices(s: Session, device_ids: Iterable[str]) -> set[str]:
    """Bump the watch generation of these devices; returns the IDs to notify after commit.

    Call it for any change a device's watch reports: its routing, the session of its seat,
    its name or seat, the settings (``touch_all``).
    """
    ids = sorted(set(device_ids))
    if ids:
        s.flush()  # devices added or renamed in this transaction are matched too
        rows = s.connection().execute(_TOUCH, {"ids": ids}).all()
        gens = db.pending(s).setdefault("generations", {})
        for did, gen in rows:
            gens[str(did)] = int(gen)
    return set(ids)


def touch_all(s: Session) -> set[str]:
    """Bump every adopted device (e.g. after a settings change)."""
    ids = set(s.scalars(select(m.Device.id).where(m.Device.id.is_not(None))).all())
    return touch_devices(s, ids)  # type: ignore[arg-type]


# --- routing -----------------------------------------------------------------------------


_ROUTE_COLUMNS = ("rx_pk", "head", "tx_pk", "tx_head", "set_by", "set_at", "pushed")


@dataclass(frozen=True)
class _Upsert:
    """The routes upsert of one dialect, compiled once to its driver SQL, with the bind
    processors of its columns (what ``Connection.execute`` would apply to every row)."""

    sql: str
    names: tuple[str, ...]                          # driver parameters, in SQL order
    order: tuple[int, ...]                          # their index in _ROUTE_COLUMNS
    positional: bool
    procs: tuple[Callable[[Any], Any] | None, ...]  # per _ROUTE_COLUMNS entry


def _compile_upsert(conn: Any) -> _Upsert:
    dialect = conn.dialect
    table = m.Base.metadata.tables["routes"]
    stmt: Any
    if dialect.name == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect.name == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database {dialect.name}")
    stmt = stmt.on_conflict_do_update(
        index_elements=["rx_pk", "head"],
        set_={c: stmt.excluded[c] for c in ("tx_pk", "tx_head", "set_by", "set_at", "pushed")},
    )
    compiled = stmt.compile(dialect=dialect, column_keys=list(_ROUTE_COLUMNS))
    names = tuple(compiled.positiontup or _ROUTE_COLUMNS)
    if sorted(names) != sorted(_ROUTE_COLUMNS) or set(compiled.binds) != set(_ROUTE_COLUMNS):
        raise RuntimeError(f"unexpected routes upsert parameters {sorted(compiled.binds)}")
    procs = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in _ROUTE_COLUMNS
    )
    order = tuple(_ROUTE_COLUMNS.index(name) for name in names)
    return _Upsert(compiled.string, names, order, bool(compiled.positional), procs)


def _processed(proc: Callable[[Any], Any], values: Iterable[Any]) -> list[Any]:
    """`proc` applied to every value, once per distinct value (every row of a write has the
    same ``set_at``, and a few distinct flags)."""
    memo: dict[tuple[type, Any], Any] = {}
    out = []
    for value in values:
        key = (type(value), value)
        try:
            done = memo[key]
        except KeyError:
            done = memo[key] = proc(value)
        out.append(done)
    return out


def _upsert_routes(s: Session, rows: list[tuple[Any, ...]]) -> None:
    """Insert or update routes rows (tuples in ``_ROUTE_COLUMNS`` order) in one executemany
    of a statement compiled once.

    The driver gets the rows as ``Connection.execute`` would pass them (same SQL, same bind
    processing), without SQLAlchemy's per-row parameter handling: a push to 1,000 Rx writes
    1,000 rows, and that handling cost more than the statement itself.
    """
    if not rows:
        return
    conn = s.connection()
    up = _UPSERTS.get(conn.dialect.name)
    if up is None:
        up = _UPSERTS[conn.dialect.name] = _compile_upsert(conn)
    columns: list[Iterable[Any]] = list(zip(*rows, strict=True))
    for i, proc in enumerate(up.procs):
        if proc is not None:
            columns[i] = _processed(proc, columns[i])
    ordered = zip(*(columns[i] for i in up.order), strict=True)
    params: list[Any] = (
        list(ordered) if up.positional else [dict(zip(up.names, r, strict=True)) for r in ordered]
    )
    conn.exec_driver_sql(up.sql, params)


def store_changes(
    s: Session, built: Built, changes: Iterable[engine.RouteChange], actor: str
) -> set[str]:
    """Write route changes; returns the Rx IDs whose desired routing changed.

    Moves ``routing_version`` first (on PostgreSQL that locks the version row, ordering
    concurrent writers) and records the changes so that ``commit`` can patch the snapshot
    cache instead of reloading it.
    """
    pk_of = built.config.pk_of
    changes = tuple(ch for ch in changes if ch.rx_id in pk_of)
    if not changes:
        return set()
    db.bump_versions(s, "routing_version")
    now = m.utcnow()
    rows: dict[tuple[int, int], tuple[Any, ...]] = {}   # in _ROUTE_COLUMNS order
    for ch in changes:
        rx_pk = pk_of[ch.rx_id]
        route = ch.route
        if route is None:
            rows[(rx_pk, ch.head)] = (rx_pk, ch.head, None, None, actor[:64], now, False)
        else:
            rows[(rx_pk, ch.head)] = (
                rx_pk, ch.head, pk_of.get(route.tx_id), route.tx_head,
                (route.set_by or actor)[:64], now, bool(route.pushed),
            )
    _upsert_routes(s, list(rows.values()))
    db.pending(s).setdefault("routing", []).append((built, changes, actor))
    return {ch.rx_id for ch in changes}


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
    # The bulk delete bypasses the flush hook: move the routing version by hand (first).
    db.bump_versions(s, "routing_version")
    s.execute(delete(m.SeatSession).where(m.SeatSession.rx_pk.in_(pks)))
    sessions = {k: v for k, v in built.snap.sessions.items() if k not in screens}
    if user is not None:
        upk = built.config.user_pk[user]
        now = m.utcnow()
        for pk in pks:
            s.add(m.SeatSession(rx_pk=pk, user_pk=upk, since=now, last_active=now))
        sessions.update(dict.fromkeys(screens, user))
    return sessions


_SESSIONS = m.SeatSession.__table__.c
_ACTIVE = (
    update(m.Base.metadata.tables["seat_sessions"])
    .where(_SESSIONS.rx_pk.in_(bindparam("pks", expanding=True)))
    .values(last_active=bindparam("now", type_=m.UTCDateTime))
)
_LAST_ACTIVE = select(func.max(_SESSIONS.last_active)).where(
    _SESSIONS.rx_pk.in_(bindparam("pks", expanding=True)))
ACTIVITY_RESOLUTION = dt.timedelta(seconds=5)  # a device list writes at most this often


def _seat_pks(built: Built, rx_id: str) -> list[int]:
    return [built.config.pk_of[r] for r in built.seat(rx_id).screens if r in built.config.pk_of]


def record_activity(s: Session, built: Built, rx_id: str, now: dt.datetime | None = None) -> None:
    """The seat of `rx_id` had an operator call now (for the server's idle logout).

    A plain UPDATE of ``seat_sessions.last_active``: no version moves, the snapshot does not
    hold it. Call inside the request's write transaction."""
    pks = _seat_pks(built, rx_id)
    if pks:
        s.connection().execute(_ACTIVE, {"pks": pks, "now": now or built.now})


def activity_is_recent(s: Session, built: Built, rx_id: str,
                       now: dt.datetime | None = None) -> bool:
    """True when the seat's stored last activity is within ``ACTIVITY_RESOLUTION`` of `now`
    (so a read-only call such as the device list need not write)."""
    pks = _seat_pks(built, rx_id)
    if not pks:
        return True
    last = s.connection().scalar(_LAST_ACTIVE, {"pks": pks})
    return last is not None and (now or built.now) - last < ACTIVITY_RESOLUTION


def _end_session(s: Session, built: Built, rx_id: str, user: str, *, actor: str,
                 reason: str, extra: Mapping[str, Any] | None = None) -> set[str]:
    """What a logout does (F12, a login replacing the session, idle, an admin): disconnect
    every screen of the seat, end its session, audit ``logout``. Returns the IDs to notify.

    The seat's pushed pictures go with it (SPEC 1.4 rule 1: the receiver logged out);
    what this user pushed to other seats stays there (their receivers did not log out)."""
    seat = built.seat(rx_id).name
    outcome = engine.disconnect(built.snap, user, rx_id)
    store_changes(s, built, outcome.changes, user)
    _set_sessions(s, built, rx_id, None)
    notify = touch_devices(s, built.seat(rx_id).screens)
    audit(
        s, actor=actor, action="logout", result=R.LOGGED_OUT.value, seat=seat, device=rx_id,
        detail={"user": user, "reason": reason, **(extra or {}),
                "changes": _change_detail(outcome.changes)},
    )
    return notify


def _without_seat(built: Built, rx_id: str) -> Built:
    """`built` after its seat was logged out: no session there, every screen dark."""
    screens = set(built.seat(rx_id).screens)
    routing = {rx: (tuple(None for _ in heads) if rx in screens else heads)
               for rx, heads in built.snap.routing.items()}
    sessions = {k: v for k, v in built.snap.sessions.items() if k not in screens}
    return replace(built, snap=replace(built.snap, routing=routing, sessions=sessions))


def login(
    s: Session, built: Built, *, user: str, password_ok: bool, rx_id: str
) -> LoginResult:
    """Log `user` in at the seat of `rx_id` (the password was checked by the caller).

    Order: rate limit (5 failures per user per seat per minute), credentials, then the
    engine's ``can_login`` (disabled, login scope). On success, when *another* user is still
    logged in at the seat (their controller never logged out), that user is first logged out
    exactly as ``logout`` does (screens dark, their pushed pictures gone, audited); a login
    of the same user again continues the session as it is. Then the seat's session is
    replaced, routes the user may not see are dropped (``engine.enforce_scopes``), and every
    screen of the seat is notified.
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
    notify: set[str] = set()
    if previous is not None and previous != user:
        notify |= _end_session(s, built, rx_id, previous, actor=user, reason="replaced",
                               extra={"by": user})
        built = _without_seat(built, rx_id)
    sessions = _set_sessions(s, built, rx_id, user)
    after = built.with_sessions(sessions)
    dropped = engine.enforce_scopes(after.snap)
    store_changes(s, built, dropped, "system")
    notify |= touch_devices(s, built.seat(rx_id).screens) | touch_devices(
        s, screens_of(built, {c.rx_id for c in dropped})
    )
    audit(
        s, actor=user, action="login", result=code.value, seat=seat, device=rx_id,
        detail={"replaced": previous, "dropped": _change_detail(dropped)},
    )
    return LoginResult(code, frozenset(notify))


def logout(s: Session, built: Built, *, rx_id: str, actor: str | None = None,
           reason: str = "logout", extra: Mapping[str, Any] | None = None) -> LoginResult:
    """F12: disconnect every screen of the seat and end its session.

    `actor` (default: the seat's user) and `reason` go to the audit entry: ``logout`` for
    F12, ``idle`` for the server's idle logout (actor ``system``), ``user_disabled`` etc."""
    user = built.session_user(rx_id)
    seat = built.seat(rx_id).name
    if user is None:
        audit(s, actor=actor or "", action="logout", result=R.NOT_LOGGED_IN.value, seat=seat,
              device=rx_id)
        return LoginResult(R.NOT_LOGGED_IN)
    notify = _end_session(s, built, rx_id, user, actor=actor or user, reason=reason,
                          extra=extra)
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


def state_changes(
    stored: Any,
    *,
    online: bool,
    network_up: bool | None,
    stream_ok: bool | None,
    heads: list[dict[str, Any]],
) -> dict[str, Any]:
    """The reported-state columns a report changes (empty: it changes nothing). `stored` is
    a ``Device`` or a row with its ``online``, ``network_up``, ``stream_ok`` and
    ``reported_heads``; None for `network_up` / `stream_ok` means not reported."""
    values: dict[str, Any] = {"online": online, "reported_heads": heads}
    if network_up is not None:
        values["network_up"] = network_up
    if stream_ok is not None:
        values["stream_ok"] = stream_ok
    return {key: value for key, value in values.items() if getattr(stored, key) != value}


def seen_due(last_seen: dt.datetime | None, now: dt.datetime, min_interval: dt.timedelta
             ) -> bool:
    """True when a heartbeat must refresh ``last_seen`` (never set, or `min_interval` old)."""
    return last_seen is None or now - last_seen >= min_interval


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
    changes = state_changes(device, online=online, network_up=network_up,
                            stream_ok=stream_ok, heads=heads)
    for key, value in changes.items():
        setattr(device, key, value)
    if changes or seen_due(device.last_seen, now, min_interval):
        device.last_seen = now
        return True
    return False
