"""The permission engine: pure decisions over a snapshot of the control room (SPEC 1.3-1.5, 2.1-2.3).

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


class InputError(ValueError):
    """Typed text that is not a valid ID/hotkey list (shown as UNKNOWN_TARGET)."""


def resolve(snap: Snapshot, text: str, context: Kind, *, many: bool) -> tuple[str, ...]:
    """Resolve typed input to device IDs per SPEC 2.1 (short IDs, hotkeys, ``all`` only by caller)."""
    raise NotImplementedError


def can_login(snap: Snapshot, user: str, rx_id: str) -> ResultCode:
    """NETWORK_OK if `user` may log in at `rx_id`, else the reason (disabled, login scope)."""
    raise NotImplementedError


def connect(snap: Snapshot, user: str, rx_id: str, text: str) -> Outcome:
    """F1: switch the seat of `rx_id` to the Tx (or hotkey) typed in `text` (SPEC 1.3)."""
    raise NotImplementedError


def push(snap: Snapshot, user: str, rx_id: str, text: str) -> Outcome:
    """F2: send what `rx_id` shows to the Rx typed in `text` (IDs, hotkeys or ``all``; SPEC 1.4)."""
    raise NotImplementedError


def fetch(snap: Snapshot, user: str, rx_id: str, text: str) -> Outcome:
    """F3: switch `rx_id` to what the typed Rx shows (SPEC 1.5)."""
    raise NotImplementedError


def disconnect(snap: Snapshot, user: str, rx_id: str) -> Outcome:
    """Disconnect every screen of the seat of `rx_id` (F12 logout)."""
    raise NotImplementedError


def device_rows(snap: Snapshot, user: str, rx_id: str, mode: Mode) -> tuple[Row, ...]:
    """The OSD device list for `mode`, sorted by ID, with grey/yellow/red colours (SPEC 1.2, 2.2)."""
    raise NotImplementedError


def keys_allowed(snap: Snapshot, user: str, rx_id: str) -> bool:
    """False when what `rx_id` shows is view-only for `user` (keys must not reach that computer)."""
    raise NotImplementedError
