"""Read-only questions about a snapshot, shared by the engine's decisions and device lists.

Part of the permission engine (``webadmin.engine`` is the public entry). A *source* is
``(tx_id, tx_head)``; a *layout* is what each head of an Rx shows (``None`` = nothing);
a *signal* is the non-empty part of a layout in head order: what a push sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from webadmin.engine import Device, Snapshot, User, Wall

Source = tuple[str, int]
Layout = tuple[Source | None, ...]
Signal = tuple[Source, ...]


# --- who may do what -------------------------------------------------------------------

def active_user(snap: Snapshot, name: str | None) -> User | None:
    """The user called `name` if it exists and is enabled."""
    if name is None:
        return None
    user = snap.users.get(name)
    return user if user is not None and user.enabled else None


def may_view(user: User | None, tx_id: str) -> bool:
    """`tx_id` is in the user's view scope (admins: every device)."""
    return user is not None and (user.role == "admin" or tx_id in user.scopes.view)


def may_push_to(user: User, rx_id: str) -> bool:
    return user.role == "admin" or rx_id in user.scopes.push


def may_fetch_from(user: User, rx_id: str) -> bool:
    return user.role == "admin" or rx_id in user.scopes.fetch


def keys_for(user: User, tx_id: str) -> bool:
    """Keys may reach `tx_id`: admins always; operators for Tx in view scope, not view-only."""
    if user.role == "admin":
        return True
    return tx_id in user.scopes.view and tx_id not in user.scopes.view_only


# --- devices, seats, walls ---------------------------------------------------------------

def device_ids(snap: Snapshot, kind: Literal["tx", "rx"]) -> list[str]:
    """IDs of every device of `kind`, sorted."""
    return sorted(d.id for d in snap.devices.values() if d.kind == kind)


def heads(snap: Snapshot, device_id: str) -> int:
    """Number of heads of a device, clamped to 1..4 (unknown devices: 1)."""
    device = snap.devices.get(device_id)
    return 1 if device is None else min(max(device.heads, 1), 4)


def reachable(device: Device) -> bool:
    """An Rx that can be pushed to / fetched from: powered and on the network."""
    return device.online and device.network_up


def primary_video(device: Device) -> bool:
    """The Tx has a video signal on head 1 (an empty tuple means every head has video)."""
    return not device.video or device.video[0]


def seat_screens(snap: Snapshot, rx_id: str) -> tuple[str, ...]:
    """The screens of the seat `rx_id` belongs to; an Rx in no seat is a seat of its own."""
    for seat in snap.seats:
        if rx_id in seat.screens:
            return seat.screens
    return (rx_id,)


def seat_index(snap: Snapshot) -> dict[str, tuple[str, ...]]:
    """Screen -> the screens of its seat (the first seat naming it, as ``seat_screens``);
    Rx in no seat are absent. For decisions that look at many Rx of one snapshot."""
    index: dict[str, tuple[str, ...]] = {}
    for seat in snap.seats:
        for screen in seat.screens:
            index.setdefault(screen, seat.screens)
    return index


def splice_index(snap: Snapshot) -> dict[str, Wall]:
    """Tile -> the splicing wall it belongs to (the first, as ``splicing_wall``)."""
    index: dict[str, Wall] = {}
    for wall in snap.walls:
        if wall.splice:
            for tile in wall.tiles:
                index.setdefault(tile, wall)
    return index


def session_user(
    snap: Snapshot, rx_id: str, seats: Mapping[str, tuple[str, ...]] | None = None
) -> str | None:
    """Who is logged in at the seat of `rx_id` (a login serves every screen of the seat).

    `seats` is ``seat_index(snap)`` when the caller has it (same answer, no seat scan).
    """
    name = snap.sessions.get(rx_id)
    if name is not None:
        return name
    screens = seat_screens(snap, rx_id) if seats is None else seats.get(rx_id, (rx_id,))
    for screen in screens:
        name = snap.sessions.get(screen)
        if name is not None:
            return name
    return None


def splicing_wall(snap: Snapshot, rx_id: str) -> Wall | None:
    """The wall that `rx_id` is a tile of, if that wall is presenting a splice."""
    for wall in snap.walls:
        if wall.splice and rx_id in wall.tiles:
            return wall
    return None


# --- what is shown -----------------------------------------------------------------------

def layout(snap: Snapshot, rx_id: str) -> Layout:
    """What each head of `rx_id` shows, exactly `heads` long."""
    n = heads(snap, rx_id)
    shown = tuple(
        None if r is None else (r.tx_id, r.tx_head) for r in snap.routing.get(rx_id, ())[:n]
    )
    return shown + (None,) * (n - len(shown))


def shows(snap: Snapshot, rx_id: str, want: Layout) -> bool:
    """``layout(snap, rx_id) == want`` for a `want` of ``heads(snap, rx_id)`` heads, without
    building the layout (a push to ``all`` asks it of every Rx)."""
    routes = snap.routing.get(rx_id, ())
    for i, source in enumerate(want):
        route = routes[i] if i < len(routes) else None
        if route is None:
            if source is not None:
                return False
        elif source is None or (route.tx_id, route.tx_head) != source:
            return False
    return True


def signal(snap: Snapshot, rx_id: str) -> Signal:
    """What `rx_id` shows, empty heads left out (primary first)."""
    return tuple(source for source in layout(snap, rx_id) if source is not None)


def source_signal(snap: Snapshot, rx_id: str) -> Signal:
    """What fetching from `rx_id` gets: a splicing wall's tile gives the wall's signal."""
    wall = splicing_wall(snap, rx_id)
    if wall is None:
        return signal(snap, rx_id)
    # The wall's Tx: what its first tile that shows anything shows (the tiles agree).
    for tile in wall.tiles:
        shown = signal(snap, tile)
        if shown:
            return shown
    return ()


def spread(sig: Signal, n_heads: int) -> Layout:
    """Lay a signal on `n_heads` heads: primary first, the others in order, the rest empty."""
    taken: Layout = sig[:n_heads]
    return taken + (None,) * (n_heads - len(taken))


def push_targets(snap: Snapshot, rx_id: str) -> tuple[str, ...]:
    """The Rx a push to `rx_id` changes: the whole wall while it presents a splice."""
    wall = splicing_wall(snap, rx_id)
    return (rx_id,) if wall is None else wall.tiles


def push_is_same(snap: Snapshot, sig: Signal, rx_id: str) -> bool:
    """Every Rx that a push of `sig` to `rx_id` would change already shows it."""
    return all(
        layout(snap, rx) == spread(sig, heads(snap, rx)) for rx in push_targets(snap, rx_id)
    )

