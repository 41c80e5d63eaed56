"""What the pages show, computed from a snapshot (pure: no Flask, no database).

Status colours are the OSD's (SPEC 1.2): grey = online and free, yellow = in use (a Tx some
Rx shows; an Rx that shows something), red = offline (an Rx also when its network is down).
Permission questions are asked of the engine, never answered here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, Literal, TypeVar

from kvm_protocol.results import ResultCode
from webadmin import engine
from webadmin.snapshot import Built

Colour = Literal["grey", "yellow", "red"]
STATES = ("all", "connected", "idle", "pushed", "offline", "logged_in")
MODES: tuple[engine.Mode, ...] = ("connect", "push", "fetch")
T = TypeVar("T")


def shown_by(built: Built) -> dict[str, list[str]]:
    """Tx ID → the Rx that show it (desired routing), sorted."""
    out: dict[str, set[str]] = defaultdict(set)
    for rx, routes in built.snap.routing.items():
        for route in routes:
            if route is not None:
                out[route.tx_id].add(rx)
    return {tx: sorted(rxs) for tx, rxs in out.items()}


def reachable(dev: engine.Device | None) -> bool:
    return dev is not None and dev.online and (dev.kind == "tx" or dev.network_up)


def colour(built: Built, device_id: str, shown: dict[str, list[str]] | None = None) -> Colour:
    dev = built.snap.devices.get(device_id)
    if not reachable(dev):
        return "red"
    assert dev is not None
    if dev.kind == "rx":
        return "yellow" if any(r is not None for r in built.snap.routing.get(device_id, ())) \
            else "grey"
    return "yellow" if (shown if shown is not None else shown_by(built)).get(device_id) \
        else "grey"


def wall_of(built: Built) -> dict[str, str]:
    return {tile: w.name for w in built.snap.walls for tile in w.tiles}


@dataclass(frozen=True)
class Counts:
    tx_online: int
    tx_offline: int
    rx_online: int
    rx_offline: int
    seats: int
    seats_logged_in: int
    pending: int
    routes: int             # Rx heads that show something


def counts(built: Built, pending: int) -> Counts:
    snap = built.snap
    tx = [d for d in snap.devices.values() if d.kind == "tx"]
    rx = [d for d in snap.devices.values() if d.kind == "rx"]
    tiles = set(wall_of(built))
    seats = {built.seat(d.id).name for d in rx if d.id not in tiles}
    logged = {built.seat(r).name for r in snap.sessions if r in snap.devices}
    return Counts(
        tx_online=sum(1 for d in tx if reachable(d)),
        tx_offline=sum(1 for d in tx if not reachable(d)),
        rx_online=sum(1 for d in rx if reachable(d)),
        rx_offline=sum(1 for d in rx if not reachable(d)),
        seats=len(seats),
        seats_logged_in=len(logged & seats),
        pending=pending,
        routes=sum(1 for routes in snap.routing.values() for r in routes if r is not None),
    )


@dataclass(frozen=True)
class RouteRow:
    """One Rx head and what it should show."""

    rx: str
    rx_name: str
    head: int
    heads: int
    seat: str
    wall: str
    user: str
    rx_colour: Colour
    tx: str = ""
    tx_name: str = ""
    tx_head: int = 0
    tx_colour: Colour = "grey"
    set_by: str = ""
    pushed: bool = False

    def text(self) -> str:
        return " ".join((self.rx, self.rx_name, self.seat, self.wall, self.user, self.tx,
                         self.tx_name, self.set_by)).lower()


def route_rows(built: Built) -> list[RouteRow]:
    """Every head of every Rx, by Rx ID then head."""
    snap = built.snap
    shown = shown_by(built)
    walls = wall_of(built)
    rows: list[RouteRow] = []
    for rx in sorted(d for d, dev in snap.devices.items() if dev.kind == "rx"):
        dev = snap.devices[rx]
        routes = snap.routing.get(rx, ())
        base = {
            "rx": rx, "rx_name": dev.name, "heads": dev.heads, "seat": built.seat(rx).name,
            "wall": walls.get(rx, ""), "user": built.session_user(rx) or "",
            "rx_colour": colour(built, rx, shown),
        }
        for head in range(1, max(dev.heads, len(routes)) + 1):
            route = routes[head - 1] if head <= len(routes) else None
            if route is None:
                rows.append(RouteRow(head=head, **base))  # type: ignore[arg-type]
                continue
            tx = snap.devices.get(route.tx_id)
            rows.append(RouteRow(
                head=head, tx=route.tx_id, tx_name=tx.name if tx else "",
                tx_head=route.tx_head, tx_colour=colour(built, route.tx_id, shown),
                set_by=route.set_by, pushed=route.pushed, **base,  # type: ignore[arg-type]
            ))
    return rows


def filter_rows(rows: Iterable[RouteRow], query: str, state: str) -> list[RouteRow]:
    """Rows whose text contains every word of `query`, in `state` (see STATES)."""
    words = query.lower().split()
    out = []
    for row in rows:
        if state == "connected" and not row.tx:
            continue
        if state == "idle" and (row.tx or row.rx_colour == "red"):
            continue
        if state == "pushed" and not row.pushed:
            continue
        if state == "offline" and row.rx_colour != "red" and not (row.tx and
                                                                  row.tx_colour == "red"):
            continue
        if state == "logged_in" and not row.user:
            continue
        if words:
            text = row.text()
            if not all(w in text for w in words):
                continue
        out.append(row)
    return out


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    page: int
    pages: int
    total: int
    size: int

    @property
    def first(self) -> int:
        return 0 if not self.total else (self.page - 1) * self.size + 1

    @property
    def last(self) -> int:
        return min(self.total, self.page * self.size)


def paginate(items: Sequence[T], page: int, size: int) -> Page[T]:
    """Page `page` (1-based, clamped into range) of `items`."""
    pages = max(1, math.ceil(len(items) / size))
    page = min(max(1, page), pages)
    return Page(items[(page - 1) * size: page * size], page, pages, len(items), size)


# --- what a user can see and do ----------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """A user's effective scopes (groups expanded) and, at one Rx, the engine's answers."""

    user: str
    role: str
    enabled: bool
    view_control: tuple[str, ...] = ()
    view_only: tuple[str, ...] = ()
    push: tuple[str, ...] = ()
    fetch: tuple[str, ...] = ()
    login: tuple[str, ...] | None = None      # None: may log in everywhere
    at: str | None = None
    login_result: ResultCode | None = None
    rows: Mapping[str, tuple[engine.Row, ...]] = field(default_factory=dict)


def preview(built: Built, user: str, at: str | None) -> Preview | None:
    who = built.snap.users.get(user)
    if who is None:
        return None
    sc = who.scopes
    existing = built.snap.devices

    def ids(xs: frozenset[str]) -> tuple[str, ...]:
        return tuple(sorted(x for x in xs if x in existing))

    base = Preview(user=user, role=who.role, enabled=who.enabled,
                   view_control=ids(sc.view - sc.view_only), view_only=ids(sc.view_only),
                   push=ids(sc.push), fetch=ids(sc.fetch),
                   login=None if sc.login is None else ids(sc.login))
    dev = existing.get(at or "")
    if dev is None or dev.kind != "rx":
        return base
    assert at is not None
    rows: dict[str, tuple[engine.Row, ...]] = {
        mode: engine.device_rows(built.snap, user, at, mode) for mode in MODES}
    return replace(base, at=at, login_result=engine.can_login(built.snap, user, at), rows=rows)


def rx_ids(built: Built) -> list[str]:
    return sorted(d for d, dev in built.snap.devices.items() if dev.kind == "rx")
