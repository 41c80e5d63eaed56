"""Build the permission engine's ``Snapshot`` from the database, cheaply.

A decision needs the whole control room (scopes, hotkeys, walls, seats, devices, routing,
sessions), but most of it changes rarely. The parts are cached by the version counters of
``server_state`` (moved in the same transaction as the change, see ``webadmin.db``):

- configuration (devices' IDs/names/heads, users + expanded scopes, hotkeys, walls, seats):
  rebuilt when ``config_version`` moves;
- reported device state: rebuilt when ``device_version`` moves;
- routing and sessions: rebuilt when ``routing_version`` moves;
- liveness: every decision asks only for the devices whose ``last_seen`` is older than
  ``device_timeout`` (an indexed query that returns the few offline ones).

So a decision costs one small version query, one index query and the engine call; the
versions live in the database, so this stays right with several server processes.

After a switch the server does not reload the routing: ``SnapshotCache.apply`` patches the
cached routing with the changes it just committed, when the versions prove that nothing
else changed in between (else the part is dropped and reloaded on next use). Stores only
move forward (a part is never replaced by one of older versions), so ``latest()`` — the
cached state without any query, used to answer woken device watches — is never older than
a commit this process made and announced.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from webadmin import engine
from webadmin import models as m
from webadmin.db import IMMEDIATE

Versions = tuple[int, int, int]   # (config_version, device_version, routing_version)

SETTINGS_KEYS = ("chord", "chord_window_ms", "lang", "auto_close_ms", "idle_close_s",
                 "idle_logout_s")


@dataclass(frozen=True, slots=True)
class Credential:
    """An adopted device's stored credential, for authenticating without a query."""

    credential_hash: str | None
    id: str
    pk: int
    kind: str


@dataclass(frozen=True)
class Config:
    """The slowly changing part of a snapshot, with the pk <-> ID maps the server needs."""

    version: int
    users: Mapping[str, engine.User]
    hotkeys: Mapping[str, engine.Hotkey]
    walls: tuple[engine.Wall, ...]
    seats: tuple[engine.Seat, ...]
    pk_of: Mapping[str, int]                 # device ID -> pk (adopted devices)
    id_of: Mapping[int, str]                 # pk -> device ID
    kinds: Mapping[str, str]
    names: Mapping[str, str]
    heads: Mapping[str, int]
    seat_of: Mapping[str, engine.Seat]       # rx ID -> its seat (an Rx alone is its own seat)
    user_pk: Mapping[str, int]
    langs: Mapping[str, str]
    settings: Mapping[str, Any] = field(default_factory=dict)        # the OSD settings row
    credentials: Mapping[str, Credential] = field(default_factory=dict)  # serial -> adopted
    # Values derived from this configuration alone, computed on first use (e.g. the encoded
    # parts of the devices' watch answers); a new configuration version starts empty.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Built:
    """A snapshot plus what the server needs to store decisions made on it."""

    snap: engine.Snapshot
    config: Config
    now: dt.datetime
    offline: frozenset[str] = field(default_factory=frozenset)
    versions: Versions = (-1, -1, -1)   # of the cache parts it was built from

    def seat(self, rx_id: str) -> engine.Seat:
        return self.config.seat_of.get(rx_id) or engine.Seat(rx_id, (rx_id,))

    def seat_key(self, rx_id: str) -> str:
        """A stable name for the seat of `rx_id` (seat name, or ``rx:<id>`` for a lone Rx)."""
        seat = self.config.seat_of.get(rx_id)
        return f"seat:{seat.name}" if seat else f"rx:{rx_id}"

    def session_user(self, rx_id: str) -> str | None:
        for screen in self.seat(rx_id).screens:
            name = self.snap.sessions.get(screen)
            if name is not None:
                return name
        return None

    def with_sessions(self, sessions: Mapping[str, str]) -> Built:
        return replace(self, snap=replace(self.snap, sessions=dict(sessions)))


def settings_body(row: Any) -> dict[str, Any]:
    """The settings part of a watch answer, from a ``settings`` row (or defaults)."""
    if row is None:
        row = m.Settings()
    defaults = {c.name: c.default.arg for c in m.Settings.__table__.c if c.default is not None}
    return {k: getattr(row, k) if getattr(row, k) is not None else defaults.get(k)
            for k in SETTINGS_KEYS}


def _load_config(s: Session, version: int) -> Config:
    devs = s.execute(
        select(m.Device.pk, m.Device.id, m.Device.kind, m.Device.name, m.Device.heads,
               m.Device.serial, m.Device.credential_hash).where(
            m.Device.adoption == "adopted", m.Device.id.is_not(None)
        )
    ).all()
    id_of: dict[int, str] = {pk: str(did) for pk, did, *_ in devs}
    pk_of: dict[str, int] = {str(did): pk for pk, did, *_ in devs}

    # Group memberships, expanded.
    dgroup: dict[int, list[str]] = defaultdict(list)
    for gpk, dpk in s.execute(select(m.device_group_members)).all():
        if dpk in id_of:
            dgroup[gpk].append(id_of[dpk])
    ugroup: dict[int, list[int]] = defaultdict(list)
    for gpk, upk in s.execute(select(m.user_group_members)).all():
        ugroup[gpk].append(upk)

    scope: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for g in s.execute(select(m.Grant)).scalars():
        objs = [id_of[g.device_pk]] if g.device_pk in id_of else dgroup.get(
            g.device_group_pk or -1, []
        )
        subjects = [g.user_pk] if g.user_pk is not None else ugroup.get(g.user_group_pk or -1, [])
        key = g.scope
        if g.scope == "view":
            key = "view_only" if g.access == "view-only" else "view_control"
        for upk in subjects:
            scope[upk][key].update(objs)
            if g.scope == "login":
                scope[upk]["login_given"].add("")

    users: dict[str, engine.User] = {}
    user_pk: dict[str, int] = {}
    langs: dict[str, str] = {}
    for u in s.execute(select(m.User.pk, m.User.name, m.User.role, m.User.enabled, m.User.lang)):
        sc = scope.get(u.pk, {})
        control = sc.get("view_control", set())
        view_only = sc.get("view_only", set()) - control  # a control grant wins
        scopes = engine.Scopes(
            view=frozenset(control | view_only),
            view_only=frozenset(view_only),
            push=frozenset(sc.get("push", ())),
            fetch=frozenset(sc.get("fetch", ())),
            login=frozenset(sc.get("login", ())) if "login_given" in sc else None,
        )
        users[u.name] = engine.User(u.name, u.role, bool(u.enabled), scopes)
        user_pk[u.name] = u.pk
        langs[u.name] = u.lang

    hotkeys: dict[str, list[str]] = defaultdict(list)
    keys: dict[int, str] = {pk: k for pk, k in s.execute(select(m.Hotkey.pk, m.Hotkey.key))}
    for hpk, dpk in s.execute(
        select(m.HotkeyTarget.hotkey_pk, m.HotkeyTarget.device_pk).order_by(
            m.HotkeyTarget.hotkey_pk, m.HotkeyTarget.position
        )
    ):
        if dpk in id_of:
            hotkeys[keys[hpk]].append(id_of[dpk])
    hk = {k.lower(): engine.Hotkey(k, tuple(t)) for k, t in hotkeys.items() if t}

    walls = []
    for w in s.execute(select(m.Wall).order_by(m.Wall.name)).scalars():
        tiles = tuple(id_of[t.device_pk] for t in w.tiles if t.device_pk in id_of)
        walls.append(engine.Wall(w.name, w.rows, w.cols, tiles, bool(w.splice)))
    seats = []
    seat_of: dict[str, engine.Seat] = {}
    for st in s.execute(select(m.Seat).order_by(m.Seat.name)).scalars():
        screens = tuple(id_of[sc.device_pk] for sc in st.screens if sc.device_pk in id_of)
        if screens:
            seat = engine.Seat(st.name, screens)
            seats.append(seat)
            for rx in screens:
                seat_of[rx] = seat
    settings_row = s.execute(
        select(*(getattr(m.Settings, k) for k in SETTINGS_KEYS)).where(m.Settings.pk == 1)
    ).first()
    credentials = {
        str(serial): Credential(cred, str(did), pk, kind)
        for pk, did, kind, _, _, serial, cred in devs if serial is not None
    }
    return Config(
        version=version,
        users=users,
        hotkeys=hk,
        walls=tuple(walls),
        seats=tuple(seats),
        pk_of=pk_of,
        id_of=id_of,
        kinds={str(did): kind for _, did, kind, *_ in devs},
        names={str(did): name for _, did, _, name, *_ in devs},
        heads={str(did): heads for _, did, _, _, heads, *_ in devs},
        seat_of=seat_of,
        user_pk=user_pk,
        langs=langs,
        settings=settings_body(settings_row),
        credentials=credentials,
    )


def _video(reported: Any) -> tuple[bool, ...]:
    """Video per head from a Tx's last report; () (= all present) when it never said."""
    if not isinstance(reported, list):
        return ()
    by_head = {
        h["head"]: bool(h.get("video", True))
        for h in reported
        if isinstance(h, dict) and isinstance(h.get("head"), int)
    }
    if not by_head:
        return ()
    return tuple(by_head.get(i, True) for i in range(1, max(by_head) + 1))


def _load_devices(s: Session, cfg: Config) -> dict[str, engine.Device]:
    rows = s.execute(
        select(
            m.Device.id, m.Device.online, m.Device.network_up, m.Device.stream_ok,
            m.Device.reported_heads,
        ).where(m.Device.adoption == "adopted", m.Device.id.is_not(None))
    ).all()
    out = {}
    for did, online, net, stream, reported in rows:
        if did not in cfg.kinds:
            continue
        out[did] = engine.Device(
            id=did,
            kind=cfg.kinds[did],  # type: ignore[arg-type]
            name=cfg.names[did],
            heads=cfg.heads[did],
            online=bool(online),
            video=_video(reported) if cfg.kinds[did] == "tx" else (),
            stream_ok=bool(stream),
            network_up=bool(net),
        )
    return out


def _load_routing(
    s: Session, cfg: Config
) -> tuple[dict[str, tuple[engine.Route | None, ...]], dict[str, str]]:
    per_rx: dict[str, dict[int, engine.Route | None]] = defaultdict(dict)
    for r in s.execute(
        select(m.Route.rx_pk, m.Route.head, m.Route.tx_pk, m.Route.tx_head, m.Route.set_by,
               m.Route.pushed)
    ):
        rx = cfg.id_of.get(r.rx_pk)
        if rx is None:
            continue
        tx = cfg.id_of.get(r.tx_pk) if r.tx_pk is not None else None
        per_rx[rx][r.head] = (
            engine.Route(tx, r.tx_head or 1, r.set_by, bool(r.pushed)) if tx else None
        )
    routing = {
        rx: tuple(heads.get(h) for h in range(1, max(cfg.heads.get(rx, 1), max(heads)) + 1))
        for rx, heads in per_rx.items()
    }
    names = {pk: n for n, pk in cfg.user_pk.items()}
    sessions = {}
    for rx_pk, upk in s.execute(select(m.SeatSession.rx_pk, m.SeatSession.user_pk)):
        rx = cfg.id_of.get(rx_pk)
        if rx is not None and upk in names:
            sessions[rx] = names[upk]
    return routing, sessions


# The statements of every request, built once (building one costs more than running it).
_STATE = m.ServerState.__table__.c
_VERSIONS = select(_STATE.config_version, _STATE.device_version, _STATE.routing_version).where(
    _STATE.pk == 1)
_VERSIONS_LOCKED = _VERSIONS.with_for_update()
_DEV = m.Device.__table__.c
_STALE = select(_DEV.id).where(
    _DEV.adoption == "adopted",
    _DEV.id.is_not(None),
    or_(_DEV.last_seen.is_(None), _DEV.last_seen < bindparam("cutoff", type_=m.UTCDateTime)),
)


def _at_least(new: tuple[int, ...], old: tuple[int, ...]) -> bool:
    """Versions only grow: `new` is not older than `old` in any component."""
    return all(a >= b for a, b in zip(new, old, strict=True))


Routing = tuple[dict[str, tuple[engine.Route | None, ...]], dict[str, str]]


class SnapshotCache:
    """Per-process cache of the snapshot parts, keyed by the database's version counters.

    Each part is ``(key, value)``; a value of None marks a part known to be out of date up
    to that key (after a commit that could not patch it), so that a slower reader can not
    put back an older copy.
    """

    def __init__(self, device_timeout_s: float) -> None:
        self.device_timeout = dt.timedelta(seconds=device_timeout_s)
        self._lock = threading.Lock()
        self._config: tuple[tuple[int], Config | None] | None = None
        self._devices: tuple[tuple[int, int], dict[str, engine.Device] | None] | None = None
        self._routing: tuple[tuple[int, int], Routing | None] | None = None
        self._live: tuple[Any, frozenset[str], dict[str, engine.Device]] | None = None
        self._latest: tuple[tuple[Any, Any, Any], Built] | None = None
        # For tests and benchmarks: loads from the database, and in-place patches.
        self.builds = {"config": 0, "devices": 0, "routing": 0, "patched": 0}

    # --- queries ------------------------------------------------------------------------

    def versions(self, s: Session, *, lock: bool = False) -> Versions:
        """The version counters. ``lock`` (for decisions that will write): on PostgreSQL the
        row is locked FOR UPDATE, which serialises writers like SQLite's single writer does;
        on SQLite a transaction that starts here starts as a writer (BEGIN IMMEDIATE)."""
        if lock and not s.in_transaction():
            # SQLite: BEGIN IMMEDIATE, so that a decision queues behind another process's
            # commit instead of failing when it writes after reading (WAL busy snapshot).
            s.connection(execution_options={IMMEDIATE: True})
        row = s.connection().execute(_VERSIONS_LOCKED if lock else _VERSIONS).one()
        return int(row[0]), int(row[1]), int(row[2])

    def stale(self, s: Session, now: dt.datetime) -> frozenset[str]:
        """Adopted devices not heard from within the timeout (never heard from included)."""
        cutoff = now - self.device_timeout
        return frozenset(
            str(did) for did in s.connection().scalars(_STALE, {"cutoff": cutoff})
        )

    # --- building -----------------------------------------------------------------------

    def _store(self, name: str, key: tuple[int, ...], value: Any) -> None:
        """Keep `value` unless the cache already holds a part at least as new (lock held)."""
        cur = getattr(self, name)
        if cur is None or (_at_least(key, cur[0]) and (key != cur[0] or cur[1] is None)):
            setattr(self, name, (key, value))

    def build(self, s: Session, now: dt.datetime | None = None, *, live: bool = True,
              lock: bool = False) -> Built:
        """The snapshot as of the session's transaction.

        ``live=False`` skips the liveness query (every device counts as online): for
        answers that do not depend on it, such as a device's watch. ``lock``: see
        ``versions``.
        """
        now = now or m.utcnow()
        cv, dv, rv = self.versions(s, lock=lock)
        stale = self.stale(s, now) if live else frozenset()
        with self._lock:
            part = self._config
            cfg = part[1] if part is not None and part[0] == (cv,) else None
        if cfg is None:
            cfg = _load_config(s, cv)
            with self._lock:
                self._store("_config", (cv,), cfg)
                self.builds["config"] += 1
        with self._lock:
            dpart = self._devices
            devices = dpart[1] if dpart is not None and dpart[0] == (cv, dv) else None
            rpart = self._routing
            routed = rpart[1] if rpart is not None and rpart[0] == (cv, rv) else None
        if devices is None:
            devices = _load_devices(s, cfg)
            with self._lock:
                self._store("_devices", (cv, dv), devices)
                self.builds["devices"] += 1
        if routed is None:
            routed = _load_routing(s, cfg)
            with self._lock:
                self._store("_routing", (cv, rv), routed)
                self.builds["routing"] += 1
        merged = devices
        if stale & devices.keys():
            with self._lock:
                live_part = self._live
                if live_part is not None and live_part[0] == (cv, dv) and live_part[1] == stale:
                    merged = live_part[2]
                else:
                    merged = dict(devices)
                    for did in stale & merged.keys():
                        merged[did] = replace(merged[did], online=False)
                    self._live = ((cv, dv), stale, merged)
        return self._built(cfg, merged, routed, now, stale, (cv, dv, rv))

    @staticmethod
    def _built(cfg: Config, devices: Mapping[str, engine.Device], routed: Routing,
               now: dt.datetime, offline: frozenset[str], versions: Versions) -> Built:
        routing, sessions = routed
        snap = engine.Snapshot(
            devices=devices,
            users=cfg.users,
            hotkeys=cfg.hotkeys,
            walls=cfg.walls,
            seats=cfg.seats,
            routing=routing,
            sessions=sessions,
        )
        return Built(snap, cfg, now, offline, versions)

    def latest(self) -> Built | None:
        """The newest cached state, without a query, or None when a part is missing or out
        of date. Liveness is not included (every device counts as online): for watch
        answers, never for decisions. The same parts give the same ``Built`` (its ``now`` is
        when it was first assembled): releasing 1,000 watches assembles it once."""
        with self._lock:
            cpart, dpart, rpart = self._config, self._devices, self._routing
            memo = self._latest
        if memo is not None and memo[0][0] is cpart and memo[0][1] is dpart \
                and memo[0][2] is rpart:
            return memo[1]
        if cpart is None or dpart is None or rpart is None:
            return None
        cfg, devices, routed = cpart[1], dpart[1], rpart[1]
        if cfg is None or devices is None or routed is None:
            return None
        if not (cpart[0][0] == dpart[0][0] == rpart[0][0]):
            return None
        versions = (cpart[0][0], dpart[0][1], rpart[0][1])
        built = self._built(cfg, devices, routed, m.utcnow(), frozenset(), versions)
        with self._lock:
            self._latest = ((cpart, dpart, rpart), built)
        return built

    # --- after a commit -----------------------------------------------------------------

    def apply(self, before: Built, changes: Iterable[engine.RouteChange], actor: str,
              after: Versions) -> bool:
        """Patch the cached routing with `changes`, just committed on top of `before`.

        Only when the committed versions show that this commit alone moved the routing
        (``after`` = same config, routing version + 1) and the cache still holds exactly
        `before`'s routing; otherwise the routing part is marked out of date. Returns True
        if patched. The result equals what a reload would give (``routing.store_changes``
        writes the same values).
        """
        cv, _, rv = before.versions
        with self._lock:
            part = self._routing
            if (after[0] != cv or after[2] != rv + 1 or part is None or part[0] != (cv, rv)
                    or part[1] is None):
                self._mark_stale(after)
                return False
            routing, sessions = part[1]
            cfg = before.config
            patched = dict(routing)
            for ch in changes:
                if ch.rx_id not in cfg.pk_of:
                    continue
                heads = list(patched.get(ch.rx_id, ()))
                size = max(len(heads), ch.head, cfg.heads.get(ch.rx_id, 1))
                heads += [None] * (size - len(heads))
                route = ch.route
                if route is None or route.tx_id not in cfg.pk_of:
                    heads[ch.head - 1] = None
                elif route.tx_head and route.set_by and type(route.pushed) is bool:
                    heads[ch.head - 1] = route   # already what the rebuild below would give
                else:
                    heads[ch.head - 1] = engine.Route(
                        route.tx_id, route.tx_head or 1, route.set_by or actor, bool(route.pushed)
                    )
                patched[ch.rx_id] = tuple(heads)
            self._routing = ((cv, after[2]), (patched, sessions))
            self.builds["patched"] += 1
            return True

    def committed(self, after: Versions) -> None:
        """A commit moved the versions to `after` without patching: mark every part older
        than that as out of date (it is reloaded on next use; ``latest()`` gives None)."""
        with self._lock:
            self._mark_stale(after)

    def _mark_stale(self, after: Versions) -> None:
        cv, dv, rv = after
        for name, key in (("_config", (cv,)), ("_devices", (cv, dv)), ("_routing", (cv, rv))):
            cur = getattr(self, name)
            if cur is None or (cur[0] != key and _at_least(key, cur[0])):
                setattr(self, name, (key, None))
            elif not _at_least(key, cur[0]) and not _at_least(cur[0], key):
                setattr(self, name, (tuple(max(a, b) for a, b in zip(key, cur[0],
                                                                     strict=True)), None))


def screens_of(built: Built, rx_ids: Iterable[str]) -> set[str]:
    """Every screen of the seats of `rx_ids`."""
    out: set[str] = set()
    seat_of = built.config.seat_of
    for rx in rx_ids:
        seat = seat_of.get(rx)
        if seat is None:
            out.add(rx)     # an Rx in no seat is a seat of its own (``Built.seat``)
        else:
            out.update(seat.screens)
    return out
