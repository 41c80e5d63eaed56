"""The pure read model of the pages: paging, search and state filters, OSD colours."""

from __future__ import annotations

from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.webadmin.conftest import Room, db_of
from webadmin.ui import model
from webadmin.ui.model import RouteRow, filter_rows, paginate

SQLITE_SYNCHRONOUS = "normal"  # UI tests: see the conftest's app fixture


@settings(max_examples=200)
@given(n=st.integers(0, 500), size=st.integers(1, 60), page=st.integers(-5, 50))
def test_paging_shows_each_item_on_exactly_one_page(n: int, size: int, page: int) -> None:
    items = list(range(n))
    got = paginate(items, page, size)
    assert 1 <= got.page <= got.pages
    assert list(got.items) == items[(got.page - 1) * size: got.page * size]
    seen = [x for p in range(1, got.pages + 1) for x in paginate(items, p, size).items]
    assert seen == items
    assert got.first == (0 if n == 0 else (got.page - 1) * size + 1)
    assert got.last == min(n, got.page * size)


def row(rx: str, **kw: object) -> RouteRow:
    base: dict[str, object] = {"rx": rx, "rx_name": f"Desk {rx}", "head": 1, "heads": 1,
                               "seat": rx, "wall": "", "user": "", "rx_colour": "grey"}
    return RouteRow(**{**base, **kw})  # type: ignore[arg-type]


ROWS = [
    row("5001", tx="0001", tx_name="SCADA", tx_colour="yellow", rx_colour="yellow",
        set_by="hxfj", user="hxfj"),
    row("5002", tx="0002", tx_name="CCTV", pushed=True, rx_colour="yellow"),
    row("5003", rx_colour="red"),
    row("5004", tx="0009", tx_name="Gone", tx_colour="red", rx_colour="yellow"),
    row("5005"),
]


def ids(rows: list[RouteRow]) -> list[str]:
    return [r.rx for r in rows]


def test_filters() -> None:
    assert ids(filter_rows(ROWS, "", "connected")) == ["5001", "5002", "5004"]
    assert ids(filter_rows(ROWS, "", "idle")) == ["5005"]
    assert ids(filter_rows(ROWS, "", "pushed")) == ["5002"]
    assert ids(filter_rows(ROWS, "", "offline")) == ["5003", "5004"]   # Rx or its Tx
    assert ids(filter_rows(ROWS, "", "logged_in")) == ["5001"]
    assert ids(filter_rows(ROWS, "scada HXFJ", "all")) == ["5001"]       # every word
    assert ids(filter_rows(ROWS, "scada cctv", "all")) == []
    assert ids(filter_rows(ROWS, "desk", "all")) == ids(ROWS)


def test_colours_follow_the_osd(app: Flask, room: Room) -> None:
    client = app.test_client()
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    with db_of(app).session() as s:
        built = app.extensions["kvm"].cache.build(s)
    assert model.colour(built, "0001") == "yellow"      # shown somewhere
    assert model.colour(built, "0002") == "grey"
    assert model.colour(built, "0004") == "red"
    assert model.colour(built, "5001") == "yellow"      # shows something
    assert model.colour(built, "5002") == "grey"
    assert model.colour(built, "5005") == "red"
    assert model.colour(built, "9999") == "red"         # unknown: not reachable
    counts = model.counts(built, pending=2)
    assert (counts.seats, counts.seats_logged_in, counts.routes, counts.pending) == (4, 1, 1, 2)
    preview = model.preview(built, "viewer", "5001")
    assert preview is not None
    assert (preview.view_control, preview.view_only) == ((), ("0001", "0002"))
    assert [r.id for r in preview.rows["connect"]] == ["0001", "0002"]
    assert model.preview(built, "nobody", None) is None
