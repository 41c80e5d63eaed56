"""A small control room shared by the engine's table tests, and helpers to change it.

Operator ``hxfj`` sits at Rx 5001. Tx: 0001 (1 head), 0002 (2 heads), 0003 offline,
0004 no video, 0005 stream fault, 0006 (2 heads, no video on head 2), 0007 out of
hxfj's scope, 0012 view-only for hxfj, 4999. Rx: 5001 (hxfj's), 5002 (2 heads),
5003 offline, 5004 network down, 5005 out of hxfj's push/fetch scope, 5012, 9999,
wall tiles 5021/5022 (presenting a splice), seat B = 5031 + 5032 (cross-screen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from webadmin.engine import (
    Device,
    Hotkey,
    Outcome,
    Route,
    Scopes,
    Seat,
    Snapshot,
    User,
    Wall,
    valid_hotkey_key,
)

ME = "hxfj"
HERE = "5001"


def tx(device_id: str, **kw: object) -> Device:
    return Device(device_id, "tx", f"PC {device_id}", **kw)  # type: ignore[arg-type]


def rx(device_id: str, **kw: object) -> Device:
    return Device(device_id, "rx", f"Seat {device_id}", **kw)  # type: ignore[arg-type]


DEVICES = [
    tx("0001"),
    tx("0002", heads=2),
    tx("0003", online=False),
    tx("0004", video=(False,)),
    tx("0005", stream_ok=False),
    tx("0006", heads=2, video=(True, False)),
    tx("0007"),
    tx("0012"),
    tx("4999"),
    rx("5001"),
    rx("5002", heads=2),
    rx("5003", online=False),
    rx("5004", network_up=False),
    rx("5005"),
    rx("5012"),
    rx("5021"),
    rx("5022"),
    rx("5031"),
    rx("5032"),
    rx("9999"),
]

ALL_TX = frozenset(d.id for d in DEVICES if d.kind == "tx")
ALL_RX = frozenset(d.id for d in DEVICES if d.kind == "rx")

HXFJ_SCOPES = Scopes(
    view=ALL_TX - {"0007"},
    view_only=frozenset({"0012"}),
    push=ALL_RX - {"5005"},
    fetch=ALL_RX - {"5005"},
)

USERS = [
    User(ME, scopes=HXFJ_SCOPES),
    User("boss", role="admin"),
    User("gone", enabled=False, scopes=HXFJ_SCOPES),
    User("low", scopes=Scopes(view=frozenset({"0001"}), push=frozenset({"5002"}))),
    User("seatb", scopes=Scopes(view=frozenset({"0001", "0002"}), login=frozenset({"5031"}))),
]

HOTKEYS = [
    Hotkey("pc", ("0001",)),
    Hotkey("Both", ("0001", "0002")),
    Hotkey("three", ("0001", "0012", "0002")),
    Hotkey("dark", ("0001", "0004")),
    Hotkey("secret", ("0007",)),
    Hotkey("Row_1", ("5002", "5012")),
    Hotkey("rx2", ("5002",)),
    Hotkey("wall", ("5021",)),
    Hotkey("mixed", ("0001", "5002")),
    Hotkey("ghost", ("0999",)),
    Hotkey("a-16-characters_", ("0001",)),
]


def room(**changes: object) -> Snapshot:
    """The room, with fields of the Snapshot replaced by `changes`."""
    snap = Snapshot(
        devices={d.id: d for d in DEVICES},
        users={u.name: u for u in USERS},
        hotkeys={h.key.lower(): h for h in HOTKEYS},
        walls=(Wall("big", 1, 2, ("5021", "5022"), splice=True),),
        seats=(Seat("seat-B", ("5031", "5032")),),
        sessions={HERE: ME},
    )
    return dataclasses.replace(snap, **changes)  # type: ignore[arg-type]


def show(
    snap: Snapshot, rx_id: str, *sources: str, by: str = "x", pushed: bool = False
) -> Snapshot:
    """`rx_id` shows `sources` (``"0002:1"`` per head, ``"-"`` = nothing)."""
    routes = tuple(
        None
        if s == "-"
        else Route(s.split(":")[0], int(s.split(":")[1]), set_by=by, pushed=pushed)
        for s in sources
    )
    return dataclasses.replace(snap, routing={**snap.routing, rx_id: routes})


def with_device(snap: Snapshot, device_id: str, **kw: object) -> Snapshot:
    device = dataclasses.replace(snap.devices[device_id], **kw)  # type: ignore[arg-type]
    return dataclasses.replace(snap, devices={**snap.devices, device_id: device})


def apply(snap: Snapshot, outcome: Outcome) -> Snapshot:
    """Store the outcome's route changes, as the server does."""
    routing: dict[str, list[Route | None]] = {k: list(v) for k, v in snap.routing.items()}
    for change in outcome.changes:
        heads = routing.setdefault(change.rx_id, [])
        heads.extend([None] * (change.head - len(heads)))
        heads[change.head - 1] = change.route
    return dataclasses.replace(snap, routing={k: tuple(v) for k, v in routing.items()})


def sources(snap: Snapshot, rx_id: str) -> list[str]:
    """What `rx_id` shows, as ``"tx:head"`` per head (``"-"`` = nothing)."""
    heads = snap.devices[rx_id].heads
    routes: Mapping[int, Route | None] = dict(enumerate(snap.routing.get(rx_id, ()), start=1))
    out = []
    for head in range(1, heads + 1):
        route = routes.get(head)
        out.append("-" if route is None else f"{route.tx_id}:{route.tx_head}")
    return out


def test_room_is_consistent() -> None:
    snap = room()
    for hotkey in HOTKEYS:
        assert valid_hotkey_key(hotkey.key), hotkey
    for wall in snap.walls:
        assert len(wall.tiles) == wall.rows * wall.cols
        assert all(snap.devices[t].kind == "rx" for t in wall.tiles)
    for device in DEVICES:
        assert (device.kind == "tx") == ("0001" <= device.id <= "4999")


def test_helpers_round_trip() -> None:
    snap = show(room(), "5002", "0002:1", "-")
    assert sources(snap, "5002") == ["0002:1", "-"]
    assert sources(snap, "5001") == ["-"]
