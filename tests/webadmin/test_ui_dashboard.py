"""The dashboard's live routing view (JSON polled every 2 s) and the audit log pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import pytest
from flask import Flask

from tests.webadmin.conftest import Room, db_of
from tests.webadmin.test_ui_support import (
    UI,
    field_errors,
    table_text,
    text_of,
)
from webadmin import models as m

SQLITE_SYNCHRONOUS = "normal"  # UI tests: see the conftest's app fixture


@pytest.fixture
def ui(app: Flask, room: Room) -> UI:
    ui = UI.of(app)
    assert ui.login().status_code == 302
    return ui


def live(ui: UI, **query: str) -> dict:  # type: ignore[type-arg]
    resp = ui.get("/dashboard/live.json", query_string=query)
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def test_counts_of_the_seeded_room(ui: UI) -> None:
    data = live(ui)
    assert data["counts"] == {"tx_online": 5, "tx_offline": 1, "rx_online": 8,
                              "rx_offline": 1, "seats": 4, "seats_logged_in": 0,
                              "pending": 0, "routes": 0}
    # one row per Rx head: 9 Rx, 5004 has two heads
    assert data["total"] == 10 and [r["rx"] for r in data["rows"]][:5] == [
        "5001", "5002", "5003", "5004", "5004"]
    offline = next(r for r in data["rows"] if r["rx"] == "5005")
    assert offline["rx_colour"] == "red"


def test_the_view_follows_a_seat_switch(ui: UI, room: Room) -> None:
    room.login(ui.client, "5002", "hxfj")
    assert room.act(ui.client, "5002", "connect", "2")["result"] == "CONNECTED"
    data = live(ui, q="5002")
    assert data["counts"]["seats_logged_in"] == 1 and data["counts"]["routes"] == 1
    (row,) = data["rows"]
    assert (row["tx"], row["tx_head"], row["tx_name"], row["set_by"], row["user"],
            row["seat"], row["pushed"], row["rx_colour"], row["tx_colour"]) == (
        "0002", 1, "Dual head B", "hxfj", "hxfj", "seat-B", False, "yellow", "yellow")
    room.act(ui.client, "5002", "push", "1")
    pushed = live(ui, state="pushed")["rows"]
    assert [(r["rx"], r["tx"], r["pushed"]) for r in pushed] == [("5001", "0002", True)]
    # the page itself shows the same rows before any poll
    assert "Dual head B" in table_text(ui.get("/?q=5002"), "routing-table")


@pytest.mark.parametrize(("query", "expected"), [
    ({"q": "desk"}, ["5001", "5004", "5004", "5005"]),
    ({"q": "wall 2-"}, ["5013", "5014"]),
    ({"q": "seat-b"}, ["5002", "5003"]),
    ({"state": "offline"}, ["5005"]),
    ({"state": "idle"}, ["5001", "5002", "5003", "5004", "5004", "5011", "5012", "5013",
                         "5014"]),
    ({"state": "connected"}, []),
    ({"state": "nonsense"}, ["5001", "5002", "5003", "5004", "5004", "5005", "5011", "5012",
                             "5013", "5014"]),
    ({"size": "25", "page": "9"}, ["5001", "5002", "5003", "5004", "5004", "5005", "5011",
                                   "5012", "5013", "5014"]),
])
def test_search_and_filters(ui: UI, query: dict[str, str], expected: list[str]) -> None:
    assert [r["rx"] for r in live(ui, **query)["rows"]] == expected


def many_devices(app: Flask, n: int) -> None:
    now = m.utcnow()
    with db_of(app).begin() as s:
        s.add_all(m.Device(id=f"{100 + i:04d}", kind="tx", name=f"Console {i}",
                           adoption="adopted", online=True, last_seen=now) for i in range(n))
        s.add_all(m.Device(id=f"{6000 + i:04d}", kind="rx", name=f"Desk {i}",
                           adoption="adopted", online=i % 10 != 0, last_seen=now)
                  for i in range(n))


def test_a_thousand_devices_page_and_search_quickly(ui: UI, room: Room) -> None:
    many_devices(ui.app, 1000)
    ui.get("/dashboard/live.json")                              # warm the snapshot cache
    started = time.perf_counter()
    data = live(ui, size="50", page="3")
    first = time.perf_counter() - started
    assert data["total"] == 1010 and data["pages"] == 21 and len(data["rows"]) == 50
    assert data["first"] == 101 and data["last"] == 150
    started = time.perf_counter()
    found = live(ui, q="desk 999")
    search = time.perf_counter() - started
    assert [r["rx"] for r in found["rows"]] == ["6999"]
    assert live(ui, state="offline")["total"] == 101             # 100 of ours + 5005
    assert data["counts"]["rx_offline"] == 101
    print(f"\nlive.json with 2,000 devices: page {first * 1000:.0f} ms, "
          f"search {search * 1000:.0f} ms")
    assert first < 2.0 and search < 2.0                          # polled every 2 s
    page = ui.get("/devices?kind=rx&page=3")
    assert page.status_code == 200 and "6091" in page.text and "6090" not in page.text


# --- audit ---------------------------------------------------------------------------------


def test_a_switch_is_in_the_audit_log(ui: UI, room: Room) -> None:
    room.login(ui.client, "5002", "hxfj")
    room.act(ui.client, "5002", "connect", "1")
    page = ui.get("/audit", query_string={"user": "hxfj", "kind": "switch"})
    rows = table_text(page, "audit-table")
    assert "hxfj seat-B 5002 连接 1 连接成功 5002:1←0001:1" in rows
    assert "坐席登录" not in rows                                  # only switches
    # by the Tx it switched to, though the operator typed "1"
    assert "连接成功" in table_text(ui.get("/audit", query_string={"device": "0001"}),
                                   "audit-table")
    assert "没有符合条件的记录" in table_text(
        ui.get("/audit", query_string={"device": "0006"}), "audit-table")


def test_config_changes_and_refusals_filters(ui: UI, room: Room) -> None:
    ui.post("/hotkeys", {"key": "B2", "targets": "0002"})
    room.login(ui.client, "5001", "hxfj")
    room.act(ui.client, "5001", "connect", "6")                  # OUT_OF_SCOPE
    config = table_text(ui.get("/audit?kind=config"), "audit-table")
    assert "保存热键" in config and "连接" not in config
    refused = table_text(ui.get("/audit?refused=1"), "audit-table")
    assert "超出范围" in refused and "保存热键" not in refused
    sessions = table_text(ui.get("/audit?kind=session"), "audit-table")
    assert "网页登录" in sessions and "坐席登录" in sessions


def test_time_filter_in_the_browser_zone(ui: UI) -> None:
    ui.client.set_cookie("kvm_tz", "480")                       # UTC+08:00
    now = m.utcnow().astimezone(dt.timezone(dt.timedelta(hours=8)))
    later = (now + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    earlier = (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page = ui.get("/audit", query_string={"since": earlier})
    assert "网页登录" in table_text(page, "audit-table")
    assert "UTC+08:00" in text_of(page)
    assert now.strftime("%Y-%m-%d %H") in table_text(page, "audit-table")
    assert "没有符合条件的记录" in table_text(
        ui.get("/audit", query_string={"since": later}), "audit-table")
    assert "网页登录" in table_text(ui.get("/audit", query_string={"until": later}),
                                    "audit-table")


def test_bad_time_is_refused_with_a_message(ui: UI) -> None:
    resp = ui.get("/audit", query_string={"since": "yesterday"})
    assert resp.status_code == 400
    assert any("时间格式无效" in e for e in field_errors(resp))


def test_csv_export_with_the_same_filters(ui: UI, room: Room) -> None:
    room.login(ui.client, "5001", "hxfj")
    room.act(ui.client, "5001", "connect", "=HYPERLINK(1)")      # typed garbage, audited
    room.act(ui.client, "5001", "connect", "1")
    resp = ui.get("/audit.csv", query_string={"user": "hxfj"})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=kvm-audit-")
    text = resp.data.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0][:8] == ["id", "time (UTC+00:00)", "actor", "seat", "device", "action",
                           "target", "result"]
    body = rows[1:]
    assert {r[2] for r in body} == {"hxfj"}
    assert [r[5] for r in body] == ["connect", "connect", "login"]          # newest first
    assert body[1][6] == "'=HYPERLINK(1)"                     # never a spreadsheet formula
    assert body[0][7:9] == ["CONNECTED", "连接成功"]
    assert any(a == "audit_export" for a in
               [e.action for e in _entries(ui.app)])


def _entries(app: Flask) -> list[m.AuditEntry]:
    from sqlalchemy import select

    with db_of(app).session() as s:
        return list(s.scalars(select(m.AuditEntry)))


def test_audit_pages(ui: UI) -> None:
    with db_of(ui.app).begin() as s:
        s.add_all(m.AuditEntry(actor="bot", action="connect", target=str(i), result="OK")
                  for i in range(250))
    first = ui.get("/audit?user=bot")
    assert "第 1–100 条,共 250 条" in text_of(first)
    last = ui.get("/audit?user=bot&page=3")
    assert "第 201–250 条,共 250 条" in text_of(last)
    assert 'href="/audit?page=2&amp;user=bot"' in last.text
