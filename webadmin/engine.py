"""The permission engine: pure decisions over a snapshot of the control room (SPEC 1.3-2.3).

No Flask, no database session: the server builds a ``Snapshot`` from its storage,
calls a decision function, then stores the ``RouteChange``s of the ``Outcome`` and
audits it. Everything here is deterministic and side-effect free.

INTERFACE CONTRACT (shared by the server and the engine): the dataclasses and the
signatures of the public functions below are used by ``webadmin`` views and by the
tests; change them only together with their callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from kvm_protocol.results import ResultCode
from webadmin import engine_facts as facts
from webadmin.engine_input import ALL, MAX_INPUT, InputError, resolve_tokens, valid_hotkey_key

__all__ = [
    "MAX_INPUT", "Colour", "Device", "Hotkey", "InputError", "Kind", "Mode", "Outcome",
    "Role", "Route", "RouteChange", "Row", "Scopes", "Seat", "Snapshot", "TargetResult",
    "User", "Wall", "can_login", "connect", "device_rows", "disconnect", "enforce_scopes",
    "fetch", "keys_allowed", "push", "resolve", "valid_hotkey_key",
]

Kind = Literal["tx", "rx"]
Role = Literal["admin", "operator"]
Mode = Literal["connect", "push", "fetch"]
Colour = Literal["grey", "yellow", "red"]


@dataclass(frozen=True, slots=True)
class Device:
    id: str                        # 4 digits: Tx 0001-4999, Rx 5001-9999
    kind: Kind
    name: str
    heads: int = 1                 # 1..4
    online: bool = True            # powered and reachable (red row when False)
    video: tuple[bool, ...] = ()   # Tx: video signal present, per head (empty = all present)
    stream_ok: bool = True         # Tx: can stream (False: online but streaming fails)
    network_up: bool = True        # Rx: its network link is up


@dataclass(frozen=True, slots=True)
class Scopes:
    """Effective scopes of a user, groups already expanded into device IDs by the server."""

    view: frozenset[str] = frozenset()        # Tx they may connect to / whose signal they may fetch
    view_only: frozenset[str] = frozenset()   # subset of view: picture yes, keys never forwarded
    push: frozenset[str] = frozenset()        # Rx they may push to
    fetch: frozenset[str] = frozenset()       # Rx they may fetch from
    login: frozenset[str] | None = None       # Rx where they may log in; None = everywhere


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role = "operator"
    enabled: bool = True
    scopes: Scopes = field(default_factory=Scopes)   # ignored for admins: they have everything


@dataclass(frozen=True, slots=True)
class Hotkey:
    key: str                        # 1-16 of A-Z a-z 0-9 - _, at least one non-digit
    targets: tuple[str, ...]        # ordered device IDs (all Tx or all Rx)


@dataclass(frozen=True, slots=True)
class Wall:
    name: str
    rows: int
    cols: int
    tiles: tuple[str, ...]          # Rx IDs, row-major, len == rows * cols
    splice: bool = False            # presenting a splice: all tiles show one Tx together


@dataclass(frozen=True, slots=True)
class Seat:
    name: str
    screens: tuple[str, ...]        # 1..8 Rx IDs; screen n is screens[n-1]


@dataclass(frozen=True, slots=True)
class Route:
    """What one Rx head should show."""

    tx_id: str
    tx_head: int                    # 1-based
    set_by: str = ""                # user name
    pushed: bool = False            # came from a push into a scope that does not include tx_id


@dataclass(frozen=True, slots=True)
class Snapshot:
    devices: Mapping[str, Device]
    users: Mapping[str, User]
    hotkeys: Mapping[str, Hotkey]                  # keyed by key.lower()
    walls: tuple[Wall, ...] = ()
    seats: tuple[Seat, ...] = ()                   # an Rx in no seat is a seat of its own
    routing: Mapping[str, tuple[Route | None, ...]] = field(default_factory=dict)  # rx -> per head
    sessions: Mapping[str, str] = field(default_factory=dict)  # rx id -> logged-in user name


@dataclass(frozen=True, slots=True)
class RouteChange:
    rx_id: str
    head: int                       # 1-based
    route: Route | None             # None = show nothing


@dataclass(frozen=True, slots=True)
class TargetResult:
    target: str                     # device ID as resolved (e.g. "5002")
    code: ResultCode


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one operator action: the code for the OSD, and the routing to store."""

    code: ResultCode
    changes: tuple[RouteChange, ...] = ()
    targets: tuple[TargetResult, ...] = ()   # push: one per target, in order


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the OSD device list."""

    id: str
    name: str
    colour: Colour
    online: bool


R = ResultCode


def resolve(snap: Snapshot, text: str, context: Kind, *, many: bool) -> tuple[str, ...]:
    """Resolve typed input to device IDs per SPEC 2.1 (short IDs, hotkeys, ``all`` only by caller).

    Raises ``InputError`` for every format error, unknown ID or hotkey, hotkey of the
    wrong kind, duplicate, and for ``all`` (which only ``push`` understands).
    """
    return resolve_tokens(snap, text, context, many=many)


def can_login(snap: Snapshot, user: str, rx_id: str) -> ResultCode:
    """NETWORK_OK if `user` may log in at `rx_id`, else the reason (disabled, login scope).

    The password is the server's check; an unknown user answers BAD_CREDENTIALS so that
    a login attempt never tells which user names exist.
    """
    who = snap.users.get(user)
    if who is None:
        return R.BAD_CREDENTIALS
    if not who.enabled:
        return R.ACCOUNT_DISABLED
    device = snap.devices.get(rx_id)
    if device is None or device.kind != "rx":
        return R.LOGIN_NOT_ALLOWED
    allowed = who.scopes.login
    if who.role == "admin" or allowed is None:
        return R.NETWORK_OK
    # One login serves the whole seat: a grant for any of its screens is a grant for the seat.
    if allowed.isdisjoint(facts.seat_screens(snap, rx_id)):
        return R.LOGIN_NOT_ALLOWED
    return R.NETWORK_OK


def _actor(snap: Snapshot, user: str, rx_id: str) -> User | ResultCode:
    """The user acting at `rx_id`, or why they may not act at all."""
    who = snap.users.get(user)
    if who is None:
        return R.NOT_LOGGED_IN
    if not who.enabled:
        return R.ACCOUNT_DISABLED
    device = snap.devices.get(rx_id)
    if device is None or device.kind != "rx":
        return R.NOT_LOGGED_IN     # no session can exist at a device that is not an Rx
    return who


def _set(
    snap: Snapshot, rx_id: str, want: facts.Layout, set_by: str, *, push: bool,
    seats: Mapping[str, tuple[str, ...]] | None = None,
    made: dict[tuple[facts.Source, bool], Route] | None = None,
) -> list[RouteChange]:
    """Changes that make every head of `rx_id` show `want`.

    A push marks a route ``pushed`` unless the user logged in at that seat has the Tx in
    their own view scope; with nobody logged in it is marked too, so whoever logs in
    there later sees it only as a push (SPEC 1.4 rule 1). `seats`: ``facts.seat_index``;
    `made`: routes already made by this decision, shared (they are immutable).
    """
    viewer = facts.active_user(snap, facts.session_user(snap, rx_id, seats)) if push else None
    changes = []
    for head, source in enumerate(want, start=1):
        route = None
        if source is not None:
            marked = push and not facts.may_view(viewer, source[0])
            route = None if made is None else made.get((source, marked))
            if route is None:
                route = Route(source[0], source[1], set_by, marked)
                if made is not None:
                    made[(source, marked)] = route
        changes.append(RouteChange(rx_id, head, route))
    return changes


def connect(snap: Snapshot, user: str, rx_id: str, text: str) -> Outcome:
    """F1: switch `rx_id` to the Tx (or hotkey) typed in `text` (SPEC 1.3).

    Only the screen `rx_id` (the one the OSD is on) switches, not the rest of its seat.
    Checks in order: user,
    input (UNKNOWN_TARGET), view scope, OFFLINE, NO_VIDEO (primary head), CONNECT_FAILED
    (stream fault), SAME_SOURCE; each over every Tx that will be shown.
    """
    who = _actor(snap, user, rx_id)
    if isinstance(who, ResultCode):
        return Outcome(who)
    try:
        named = resolve(snap, text, "tx", many=False)
    except InputError:
        return Outcome(R.UNKNOWN_TARGET)
    n_heads = facts.heads(snap, rx_id)
    used: tuple[str, ...] = named
    if len(named) == 1:
        sig: facts.Signal = tuple(
            (named[0], head) for head in range(1, facts.heads(snap, named[0]) + 1)
        )
    else:
        # A hotkey of several Tx: Rx head i shows the i-th Tx's primary head; Tx past the
        # last Rx head are not used (and so not checked).
        used = named[:n_heads]
        sig = tuple((tx, 1) for tx in used)
    devices = [snap.devices[tx] for tx in used]
    want = facts.spread(sig, n_heads)
    if not all(facts.may_view(who, tx) for tx in used):
        return Outcome(R.OUT_OF_SCOPE)
    if not all(d.online for d in devices):
        return Outcome(R.OFFLINE)
    if not all(facts.primary_video(d) for d in devices):
        return Outcome(R.NO_VIDEO)
    if not all(d.stream_ok for d in devices):
        return Outcome(R.CONNECT_FAILED)
    if facts.layout(snap, rx_id) == want:
        return Outcome(R.SAME_SOURCE)
    return Outcome(R.CONNECTED, tuple(_set(snap, rx_id, want, user, push=False)))


def _push_code(codes: list[ResultCode]) -> ResultCode:
    """The overall answer of a push from its per-target answers (SPEC 2.3).

    Several targets and not all pushed: PUSH_PARTIAL even when every one failed, so that
    the feedback names each failed target with its reason.
    """
    if all(code is R.PUSHED for code in codes):
        return R.PUSHED
    if len(codes) == 1:
        return codes[0]
    return R.PUSH_PARTIAL


def push(snap: Snapshot, user: str, rx_id: str, text: str) -> Outcome:
    """F2: send what `rx_id` shows to the Rx typed in `text` (IDs, hotkeys or ``all``; SPEC 1.4).

    Order: user, input, NOT_CONNECTED, the source in the user's own view scope (else
    OUT_OF_SCOPE, nothing pushed), then per target OUT_OF_SCOPE, OFFLINE, SAME_SOURCE,
    PUSHED. Any input error refuses the whole push.
    """
    who = _actor(snap, user, rx_id)
    if isinstance(who, ResultCode):
        return Outcome(who)
    if len(text) <= MAX_INPUT and text.strip().lower() == ALL:
        own_seat = facts.seat_screens(snap, rx_id)
        targets = tuple(
            rx
            for rx in facts.device_ids(snap, "rx")
            if facts.may_push_to(who, rx) and rx not in own_seat
        )
        if not targets:
            return Outcome(R.OUT_OF_SCOPE)
    else:
        try:
            targets = resolve(snap, text, "rx", many=True)
        except InputError:
            return Outcome(R.UNKNOWN_TARGET)
    sig = facts.signal(snap, rx_id)
    if not sig:
        return Outcome(R.NOT_CONNECTED)
    if not all(facts.may_view(who, tx) for tx, _ in sig):
        return Outcome(R.OUT_OF_SCOPE)   # no passing on a signal pushed from outside
    # A push to `all` looks at every Rx: the per-Rx lookups (splicing wall, seat, the
    # signal spread on 1-4 heads) are built once here, with the same answers as
    # ``facts.push_targets``/``push_is_same``/``session_user`` give one Rx at a time.
    walls = facts.splice_index(snap)
    seats = facts.seat_index(snap)
    spreads = {n: facts.spread(sig, n) for n in range(1, 5)}   # facts.heads is 1..4
    made: dict[tuple[facts.Source, bool], Route] = {}
    results: list[TargetResult] = []
    changes: dict[tuple[str, int], RouteChange] = {}
    for target in targets:
        if not facts.may_push_to(who, target):
            code = R.OUT_OF_SCOPE
        elif not facts.reachable(snap.devices[target]):
            code = R.OFFLINE
        else:
            wall = walls.get(target)
            group = (target,) if wall is None else wall.tiles
            wants = [(rx, spreads[facts.heads(snap, rx)]) for rx in group]
            if all(facts.shows(snap, rx, want) for rx, want in wants):
                code = R.SAME_SOURCE
            else:
                code = R.PUSHED
                for rx, want in wants:
                    for change in _set(snap, rx, want, user, push=True, seats=seats, made=made):
                        changes.setdefault((change.rx_id, change.head), change)
        results.append(TargetResult(target, code))
    code = _push_code([r.code for r in results])
    return Outcome(code, tuple(changes.values()), tuple(results))


def fetch(snap: Snapshot, user: str, rx_id: str, text: str) -> Outcome:
    """F3: switch `rx_id` to what the typed Rx shows (SPEC 1.5).

    Order: user, input (exactly one Rx), fetch scope, OFFLINE, NOT_CONNECTED (the Rx
    shows nothing), what it shows in the user's view scope, SAME_SOURCE, FETCHED.
    """
    who = _actor(snap, user, rx_id)
    if isinstance(who, ResultCode):
        return Outcome(who)
    try:
        named = resolve(snap, text, "rx", many=False)
    except InputError:
        return Outcome(R.UNKNOWN_TARGET)
    if len(named) != 1:
        return Outcome(R.UNKNOWN_TARGET)     # a hotkey naming several Rx: which one?
    target = named[0]
    if not facts.may_fetch_from(who, target):
        return Outcome(R.OUT_OF_SCOPE)
    if not facts.reachable(snap.devices[target]):
        return Outcome(R.OFFLINE)
    sig = facts.source_signal(snap, target)
    if not sig:
        return Outcome(R.NOT_CONNECTED)
    if not all(facts.may_view(who, tx) for tx, _ in sig):
        return Outcome(R.OUT_OF_SCOPE)
    want = facts.spread(sig, facts.heads(snap, rx_id))
    if facts.layout(snap, rx_id) == want:
        return Outcome(R.SAME_SOURCE)
    return Outcome(R.FETCHED, tuple(_set(snap, rx_id, want, user, push=False)))


def disconnect(snap: Snapshot, user: str, rx_id: str) -> Outcome:
    """Disconnect every screen of the seat of `rx_id` (F12 logout).

    Never refused, whoever asks: it only takes pictures away.
    """
    changes = [
        RouteChange(screen, head, None)
        for screen in facts.seat_screens(snap, rx_id)
        if screen in snap.devices
        for head in range(1, facts.heads(snap, screen) + 1)
    ]
    return Outcome(R.DISCONNECTED, tuple(changes))


def enforce_scopes(snap: Snapshot) -> tuple[RouteChange, ...]:
    """Routes that must go because their seat's user may not see them (call after a login,
    a logout, and any change of users, groups or grants).

    A route stays if the logged-in user has its Tx in view scope, or it is a live push
    (``pushed``). Seats where nobody is logged in are left alone.
    """
    changes: list[RouteChange] = []
    for rx_id in facts.device_ids(snap, "rx"):
        name = facts.session_user(snap, rx_id)
        if name is None:
            continue
        viewer = facts.active_user(snap, name)
        for head, route in enumerate(snap.routing.get(rx_id, ()), start=1):
            if route is not None and not route.pushed and not facts.may_view(viewer, route.tx_id):
                changes.append(RouteChange(rx_id, head, None))
    return tuple(changes)


def device_rows(snap: Snapshot, user: str, rx_id: str, mode: Mode) -> tuple[Row, ...]:
    """The OSD device list for `mode`, sorted by ID, with grey/yellow/red colours (SPEC 1.2, 2.2).

    connect: the Tx in view scope plus what this Rx shows; yellow = shown here.
    push: the Rx in push scope but this one; yellow = a push to it would be SAME_SOURCE.
    fetch: the Rx in fetch scope but this one; yellow = a fetch from it would be SAME_SOURCE.
    Red (offline; an Rx also when its network is down) wins over yellow.
    """
    who = _actor(snap, user, rx_id)
    if isinstance(who, ResultCode):
        return ()
    sig = facts.signal(snap, rx_id)
    rows: list[Row] = []
    if mode == "connect":
        shown = {tx for tx, _ in sig}
        for tx in facts.device_ids(snap, "tx"):
            if facts.may_view(who, tx) or tx in shown:
                device = snap.devices[tx]
                colour: Colour = "red" if not device.online else (
                    "yellow" if tx in shown else "grey"
                )
                rows.append(Row(tx, device.name, colour, device.online))
        return tuple(rows)
    here = facts.layout(snap, rx_id)
    n_heads = facts.heads(snap, rx_id)
    for rx in facts.device_ids(snap, "rx"):
        in_scope = facts.may_push_to(who, rx) if mode == "push" else facts.may_fetch_from(who, rx)
        if rx == rx_id or not in_scope:
            continue
        device = snap.devices[rx]
        if mode == "push":
            same = bool(sig) and facts.push_is_same(snap, sig, rx)
        else:
            theirs = facts.source_signal(snap, rx)
            same = bool(theirs) and facts.spread(theirs, n_heads) == here
        online = facts.reachable(device)
        colour = "red" if not online else ("yellow" if same else "grey")
        rows.append(Row(rx, device.name, colour, online))
    return tuple(rows)


def keys_allowed(snap: Snapshot, user: str, rx_id: str) -> bool:
    """False when what `rx_id` shows is view-only for `user` (keys must not reach that computer).

    The keys go to the Tx of the primary head (or of the first head that shows anything).
    An operator's keys reach it only if it is in their view scope and not view-only: a
    push from outside their scope gives the picture, never the keyboard.
    """
    who = _actor(snap, user, rx_id)
    if isinstance(who, ResultCode):
        return False
    sig = facts.signal(snap, rx_id)
    return not sig or facts.keys_for(who, sig[0][0])
