"""What each web form does when the input is good: the change, its effect on seats (through
the device and seat APIs), and its audit entry."""

from __future__ import annotations

import io
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import select

from tests.webadmin.conftest import Room, db_of, device_auth, secret_of
from tests.webadmin.test_ui_support import (
    UI,
    audit_actions,
    state,
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


def device(app: Flask, **where: Any) -> m.Device | None:
    with db_of(app).session() as s:
        return s.scalar(select(m.Device).filter_by(**where))


def announce(ui: UI, serial: str, kind: str = "rx") -> int:
    return ui.client.post("/api/v1/device/announce", json={
        "serial": serial, "kind": kind, "heads": 1, "firmware": "FW 1",
        "secret": secret_of(serial)}).status_code


def watch(ui: UI, rx: str) -> dict[str, Any]:
    resp = ui.client.get("/api/v1/device/watch?timeout=0", headers=device_auth(f"SIM-RX-{rx}"))
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def routes(app: Flask, rx: str) -> list[str | None]:
    with db_of(app).session() as s:
        pk = s.scalar(select(m.Device.pk).where(m.Device.id == rx))
        out = []
        for r in s.scalars(select(m.Route).where(m.Route.rx_pk == pk).order_by(m.Route.head)):
            tx = s.get(m.Device, r.tx_pk) if r.tx_pk else None
            out.append(f"{tx.id}:{r.tx_head}" if tx else None)
        return out


# --- devices ------------------------------------------------------------------------------


def test_adopt_a_pending_device(ui: UI) -> None:
    assert announce(ui, "NEW-RX-1") == 202
    page = ui.get("/devices?kind=pending")
    assert "NEW-RX-1" in page.text and 'value="5006"' in page.text   # a free Rx ID suggested
    resp = ui.post("/devices/adopt", {"serial": "NEW-RX-1", "id": "5020", "name": "New desk"})
    assert resp.status_code == 302
    dev = device(ui.app, serial="NEW-RX-1")
    assert dev is not None and (dev.id, dev.name, dev.adoption) == ("5020", "New desk",
                                                                     "adopted")
    assert announce(ui, "NEW-RX-1") == 200                  # the device now learns its ID
    page = ui.get("/devices?kind=pending")
    assert "已接纳 NEW-RX-1,ID 为 5020" in text_of(page)               # the flash
    assert "NEW-RX-1" not in table_text(page, "pending-table")
    assert ("admin", "adopt", "OK") in audit_actions(ui.app)


def test_forget_a_pending_device(ui: UI) -> None:
    announce(ui, "NEW-TX-1", "tx")
    assert ui.post("/devices/forget", {"serial": "NEW-TX-1"}).status_code == 302
    assert device(ui.app, serial="NEW-TX-1") is None
    assert ("admin", "device.reject", "OK") in audit_actions(ui.app)
    assert ui.post("/devices/forget", {"serial": "SIM-TX-0001"}).status_code == 404


def test_provision_a_device_that_binds_on_announce(ui: UI) -> None:
    resp = ui.post("/devices/new", {"id": "0042", "name": "Spare", "heads": "2",
                                    "serial": "LAB-TX-42"})
    assert resp.status_code == 302
    dev = device(ui.app, id="0042")
    assert dev is not None and (dev.name, dev.heads, dev.credential_hash) == ("Spare", 2, None)
    assert announce(ui, "LAB-TX-42", "tx") == 200
    assert ("admin", "device.create", "OK") in audit_actions(ui.app)


def test_edit_a_device_renumbers_and_renames_it(ui: UI, room: Room) -> None:
    room.login(ui.client, "5002", "hxfj")
    resp = ui.post("/devices/5002", {"id": "5022", "name": "Left screen", "heads": "1"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/devices/5022"
    body = ui.client.get("/api/v1/device/watch?timeout=0",
                         headers=device_auth("SIM-RX-5002")).get_json()
    assert (body["id"], body["name"]) == ("5022", "Left screen")
    assert body["seat"] == {"name": "seat-B", "screens": ["5022", "5003"]}
    assert body["session"]["user"] == "hxfj"                    # still logged in
    assert ("admin", "device.update", "OK") in audit_actions(ui.app)


def test_fewer_heads_drop_their_routes(ui: UI, room: Room) -> None:
    room.login(ui.client, "5004", "hxfj")
    assert room.act(ui.client, "5004", "connect", "2")["result"] == "CONNECTED"
    assert routes(ui.app, "5004") == ["0002:1", "0002:2"]
    assert ui.post("/devices/5004", {"id": "5004", "name": "Dual desk",
                                     "heads": "1"}).status_code == 302
    assert routes(ui.app, "5004") == ["0002:1"]


def test_delete_a_device(ui: UI, room: Room) -> None:
    room.login(ui.client, "5001", "hxfj")
    room.act(ui.client, "5001", "connect", "1")
    assert ui.post("/devices/0001/delete").status_code == 302
    assert device(ui.app, id="0001") is None
    assert routes(ui.app, "5001") == [None]                      # went dark
    assert ("admin", "device.delete", "OK") in audit_actions(ui.app)
    hotkeys = table_text(ui.get("/hotkeys"), "hotkey-table")
    assert "A1" not in hotkeys and "duo" in hotkeys              # A1 named only 0001


def test_a_wall_tile_cannot_be_deleted(ui: UI) -> None:
    before = state(ui.app)
    resp = ui.post("/devices/5011/delete")
    assert resp.status_code == 409
    assert "是拼接屏 'wall-1' 的屏块" in text_of(resp)
    assert state(ui.app) == before


def test_reset_a_device_credential(ui: UI) -> None:
    assert ui.post("/devices/0002/reset").status_code == 302
    dev = device(ui.app, id="0002")
    assert dev is not None and dev.credential_hash is None
    assert ("admin", "reset_device", "OK") in audit_actions(ui.app)


def test_device_lists_are_searchable_and_coloured(ui: UI, room: Room) -> None:
    room.login(ui.client, "5001", "hxfj")
    room.act(ui.client, "5001", "connect", "1")
    tx = ui.get("/devices?kind=tx&q=server")
    assert "Server A" in tx.text and "Dual head B" not in tx.text
    assert 'class="status yellow"' in tx.text                    # 0001 is in use
    rx = text_of(ui.get("/devices?kind=rx&q=offline"))
    assert "Offline desk" in rx and "离线" in rx


# --- seats and walls ----------------------------------------------------------------------


def test_seat_create_edit_delete(ui: UI) -> None:
    assert ui.post("/seats", {"name": "seat-C", "screens": "5001, 5004"}).status_code == 302
    assert watch(ui, "5004")["seat"] == {"name": "seat-C", "screens": ["5001", "5004"]}
    assert ui.post("/seats/seat-C", {"name": "seat-D", "screens": "5004"}).status_code == 302
    assert watch(ui, "5004")["seat"] == {"name": "seat-D", "screens": ["5004"]}
    assert watch(ui, "5001")["seat"] == {"name": "5001", "screens": ["5001"]}
    assert ui.post("/seats/seat-D/delete").status_code == 302
    assert "seat-D" not in table_text(ui.get("/seats"), "seat-table")
    actions = [a for _, a, _ in audit_actions(ui.app)]
    seat_actions = [a for a in actions if a.startswith("seat.")]
    assert seat_actions == ["seat.create", "seat.update", "seat.delete"]


def test_wall_create_splice_and_delete(ui: UI, room: Room) -> None:
    resp = ui.post("/walls/new", {"name": "strip", "rows": "1", "cols": "2",
                                  "tiles": "5001 5004"})
    assert resp.status_code == 302
    page = ui.get("/walls")
    assert "strip" in page.text and "cols-2" in page.text
    assert ui.post("/walls/strip/splice", {"splice": "on"}).status_code == 302
    room.login(ui.client, "5002", "hxfj")
    room.act(ui.client, "5002", "connect", "1")
    assert room.act(ui.client, "5002", "push", "5001")["result"] == "PUSHED"
    assert routes(ui.app, "5004")[0] == "0001:1"                  # the whole wall
    assert ui.post("/walls/strip/splice", {"splice": "off"}).status_code == 302
    assert ui.post("/walls/strip", {"name": "strip", "rows": "2", "cols": "1",
                                    "tiles": "5004,5001"}).status_code == 302
    assert ui.post("/walls/strip/delete").status_code == 302
    page = ui.get("/walls")
    assert "已删除拼接屏 strip" in text_of(page) and 'data-wall="strip"' not in page.text


# --- users, groups, grants, preview ---------------------------------------------------------


def test_create_a_user_who_logs_in_at_a_seat(ui: UI, room: Room) -> None:
    resp = ui.post("/users", {"name": "ops2", "password": "ops2-pass", "role": "operator",
                              "lang": "en", "enabled": "y", "groups": "operators"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/users/ops2"
    login = room.login(ui.client, "5001", "ops2", "ops2-pass")
    assert (login["result"], login["lang"]) == ("NETWORK_OK", "en")
    assert room.act(ui.client, "5001", "connect", "1")["result"] == "CONNECTED"   # via group
    assert ("admin", "user.create", "OK") in audit_actions(ui.app)


def test_disabling_a_user_logs_out_their_seat(ui: UI, room: Room) -> None:
    room.login(ui.client, "5002", "hxfj")
    room.act(ui.client, "5002", "connect", "1")
    assert ui.post("/users/hxfj", {"role": "operator", "lang": "zh_CN",
                                   "groups": "operators"}).status_code == 302
    assert watch(ui, "5002")["session"] is None
    assert routes(ui.app, "5002") == [None]
    assert "已停用" in table_text(ui.get("/users"), "user-table")


def test_reset_password_and_delete_user(ui: UI, room: Room) -> None:
    assert ui.post("/users/guest/password", {"password": "fresh-pass",
                                             "again": "fresh-pass"}).status_code == 302
    assert room.login(ui.client, "5001", "guest", "fresh-pass")["result"] == "NETWORK_OK"
    assert ui.post("/users/guest/delete").status_code == 302
    assert watch(ui, "5001")["session"] is None
    assert "guest" not in table_text(ui.get("/users"), "user-table")
    resp = ui.post("/users/admin/delete")
    assert resp.status_code == 400 and "不能删除自己" in text_of(resp)


def test_grants_change_what_the_engine_allows(ui: UI, room: Room) -> None:
    room.login(ui.client, "5001", "hxfj")
    assert room.act(ui.client, "5001", "connect", "6")["result"] == "OUT_OF_SCOPE"
    resp = ui.post("/users/hxfj/grants", {"scope": "view", "access": "control",
                                          "devices": "0006"})
    assert resp.status_code == 302
    assert room.act(ui.client, "5001", "connect", "6")["result"] == "CONNECTED"
    preview = text_of(ui.get("/users/hxfj?at=5001"))
    assert "0006" in preview and "在 5001 登录" in preview
    with db_of(ui.app).session() as s:
        pk = s.scalar(select(m.Grant.pk).join(m.Device, m.Device.pk == m.Grant.device_pk)
                      .where(m.Device.id == "0006"))
    assert ui.post(f"/grants/{pk}/delete", {"next": "/users/hxfj#grants"}).headers[
        "Location"] == "/users/hxfj#grants"
    assert routes(ui.app, "5001") == [None]                     # no longer in scope
    assert ("admin", "grant.create", "OK") in audit_actions(ui.app)
    assert ("admin", "grant.delete", "OK") in audit_actions(ui.app)


def test_view_only_grant_by_group_and_device_group(ui: UI, room: Room) -> None:
    assert ui.post("/groups/devices", {"name": "secret", "devices": "0006"}).status_code == 302
    assert ui.post("/groups/users", {"name": "viewers", "members": "guest"}).status_code == 302
    assert ui.post("/groups/users/viewers/grants", {
        "scope": "view", "access": "view-only", "devices": "",
        "device_groups": "secret"}).status_code == 302
    room.login(ui.client, "5001", "guest")
    assert room.act(ui.client, "5001", "connect", "6")["result"] == "CONNECTED"
    assert watch(ui, "5001")["session"]["keys_allowed"] is False
    page = text_of(ui.get("/users/guest"))
    assert "可连接(仅查看)" in page and "viewers" in page
    assert ui.post("/groups/users/viewers/delete").status_code == 302
    assert routes(ui.app, "5001") == [None]
    assert ui.post("/groups/devices/secret", {"name": "secret2",
                                              "devices": "0005-0006"}).status_code == 302
    assert ui.post("/groups/devices/secret2/delete").status_code == 302


def test_preview_shows_the_osd_lists(ui: UI) -> None:
    page = ui.get("/users/viewer?at=5001")
    text = text_of(page)
    assert "可连接(仅查看) 2" in text and "可推送到 0" in text
    assert 'data-mode="connect"' in page.text and "0001 Server A" in text
    refused = text_of(ui.get("/users/guest?at=5004"))
    assert "此用户不能在本坐席登录" in refused                  # guest may log in at 5001 only


# --- hotkeys and settings -------------------------------------------------------------------


def test_hotkey_create_rename_delete(ui: UI, room: Room) -> None:
    assert ui.post("/hotkeys", {"key": "B2", "targets": "0002, 0001"}).status_code == 302
    room.login(ui.client, "5004", "hxfj")
    assert room.act(ui.client, "5004", "connect", "b2")["result"] == "CONNECTED"
    assert routes(ui.app, "5004") == ["0002:1", "0001:1"]
    assert ui.post("/hotkeys/B2", {"key": "C3", "targets": "0003"}).status_code == 302
    text = table_text(ui.get("/hotkeys"), "hotkey-table")
    assert "C3" in text and "B2" not in text
    assert ui.post("/hotkeys/C3/delete").status_code == 302
    assert room.act(ui.client, "5004", "connect", "c3")["result"] == "UNKNOWN_TARGET"
    actions = [a for _, a, _ in audit_actions(ui.app)]
    assert actions.count("hotkey.save") == 2 and "hotkey.delete" in actions


def test_settings_reach_every_rx(ui: UI) -> None:
    resp = ui.post("/settings", {"chord": "Ctrl+K Ctrl+K", "chord_window_ms": "800",
                                 "lang": "en", "auto_close_ms": "0", "idle_close_s": "30",
                                 "idle_logout_s": "900"})
    assert resp.status_code == 302
    assert watch(ui, "5003")["settings"] == {
        "chord": "Ctrl+K Ctrl+K", "chord_window_ms": 800, "lang": "en", "auto_close_ms": 0,
        "idle_close_s": 30, "idle_logout_s": 900}
    assert ("admin", "settings.update", "OK") in audit_actions(ui.app)


# --- routing from the web -------------------------------------------------------------------


def test_admin_switches_through_the_engine(ui: UI, room: Room) -> None:
    resp = ui.post("/routing", {"rx": "5001", "action": "connect", "text": "1"})
    assert resp.status_code == 302
    assert "5001 · 连接: 连接成功" in text_of(ui.get(resp.headers["Location"]))
    assert routes(ui.app, "5001") == ["0001:1"]
    ui.post("/routing", {"rx": "5001", "action": "push", "text": "2,5"})
    assert routes(ui.app, "5002") == ["0001:1"]
    page = text_of(ui.get("/"))
    assert "5005:此设备不在线" in page                               # partial push summary
    ui.post("/routing", {"rx": "5001", "action": "connect", "text": "4"})
    assert "此设备不在线" in text_of(ui.get("/"))
    assert routes(ui.app, "5001") == ["0001:1"]                     # refused: unchanged
    ui.post("/routing", {"rx": "5001", "action": "disconnect", "text": ""})
    assert routes(ui.app, "5001") == [None]
    got = [(a, r) for who, a, r in audit_actions(ui.app) if who == "admin"
           and a.startswith("admin_")]
    assert got == [("admin_connect", "CONNECTED"), ("admin_push", "PUSH_PARTIAL"),
                   ("admin_connect", "OFFLINE"), ("admin_disconnect", "DISCONNECTED")]


# --- backup and restore ---------------------------------------------------------------------


def restore(ui: UI, text: str, mode: str) -> Any:
    return ui.post("/settings/restore", {"mode": mode, "confirm": "y",
                                         "file": (io.BytesIO(text.encode()), "b.yaml")},
                   content_type="multipart/form-data")


def test_backup_and_restore_round_trip(ui: UI) -> None:
    resp = ui.get("/settings/backup.yaml")
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=kvm-config-")
    backup = resp.text
    doc = yaml.safe_load(backup)
    assert doc["hotkeys"]["A1"] == ["0001"] and doc["walls"][0]["name"] == "wall-1"
    before = state(ui.app)["config"]
    ui.post("/hotkeys/A1/delete")
    ui.post("/users/guest/delete")
    assert state(ui.app)["config"] != before
    resp = restore(ui, backup, "replace")
    assert resp.status_code == 302
    assert "已替换全部配置" in text_of(ui.get("/settings"))
    assert state(ui.app)["config"] == before
    merged = restore(ui, "hotkeys:\n  Z9: ['0002']\n", "merge")
    assert merged.status_code == 302
    assert "Z9" in table_text(ui.get("/hotkeys"), "hotkey-table")
    actions = [a for _, a, _ in audit_actions(ui.app)]
    assert "export" in actions and actions.count("import") == 2
