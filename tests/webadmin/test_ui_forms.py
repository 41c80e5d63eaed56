"""Every form of the web UI refuses bad input with a message next to the field (in the UI
language) and changes nothing; every form refuses a post without its CSRF token."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.webadmin.conftest import Room, db_of, secret_of
from tests.webadmin.test_ui_support import (
    UI,
    error_next_to,
    field_errors,
    state,
    table_text,
    text_of,
)
from webadmin import models as m

PENDING = "NEW-RX-1"


def announce(ui: UI, serial: str = PENDING, kind: str = "rx", heads: int = 1) -> None:
    resp = ui.client.post("/api/v1/device/announce", json={
        "serial": serial, "kind": kind, "heads": heads, "firmware": "RX-FW 9",
        "secret": secret_of(serial)})
    assert resp.status_code == 202, resp.get_json()


SQLITE_SYNCHRONOUS = "normal"  # UI tests: see the conftest's app fixture


@pytest.fixture
def ui(app: Flask, room: Room) -> UI:
    ui = UI.of(app)
    announce(ui)
    assert ui.login().status_code == 302
    return ui


def grant_pk(app: Flask) -> int:
    with db_of(app).session() as s:
        pk = s.scalar(select(m.Grant.pk).order_by(m.Grant.pk).limit(1))
    assert pk is not None
    return pk


# --- CSRF: every form ---------------------------------------------------------------------

GOOD_POSTS: list[tuple[str, dict[str, Any]]] = [
    ("/lang", {"lang": "en"}),
    ("/logout", {}),
    ("/routing", {"rx": "5001", "action": "connect", "text": "1"}),
    ("/devices/adopt", {"serial": PENDING, "id": "5020", "name": "New desk"}),
    ("/devices/forget", {"serial": PENDING}),
    ("/devices/new", {"id": "0007", "name": "Seven", "heads": "1", "serial": ""}),
    ("/devices/0001", {"id": "0001", "name": "Renamed", "heads": "1"}),
    ("/devices/0001/reset", {}),
    ("/devices/0006/delete", {}),
    ("/seats", {"name": "seat-C", "screens": "5001"}),
    ("/seats/seat-B", {"name": "seat-B", "screens": "5002"}),
    ("/seats/seat-B/delete", {}),
    ("/walls/new", {"name": "w2", "rows": "1", "cols": "1", "tiles": "5004"}),
    ("/walls/wall-1", {"name": "wall-1", "rows": "1", "cols": "4",
                       "tiles": "5011,5012,5013,5014"}),
    ("/walls/wall-1/splice", {"splice": "off"}),
    ("/walls/wall-1/delete", {}),
    ("/users", {"name": "newbie", "password": "secret-123", "role": "operator",
                "lang": "zh_CN", "enabled": "y"}),
    ("/users/hxfj", {"role": "operator", "lang": "en", "enabled": "y"}),
    ("/users/hxfj/password", {"password": "another-1", "again": "another-1"}),
    ("/users/guest/delete", {}),
    ("/users/hxfj/grants", {"scope": "view", "access": "control", "devices": "0006"}),
    ("/grants/{grant}/delete", {}),
    ("/groups/users", {"name": "g2", "members": "guest"}),
    ("/groups/users/operators", {"name": "operators", "members": ""}),
    ("/groups/users/operators/grants", {"scope": "view", "access": "control",
                                        "devices": "0006"}),
    ("/groups/users/operators/delete", {}),
    ("/groups/devices", {"name": "dg2", "devices": "0001"}),
    ("/groups/devices/ops-tx", {"name": "ops-tx", "devices": "0001"}),
    ("/groups/devices/ops-tx/delete", {}),
    ("/hotkeys", {"key": "B2", "targets": "0002"}),
    ("/hotkeys/A1", {"key": "A1", "targets": "0002"}),
    ("/hotkeys/A1/delete", {}),
    ("/settings", {"chord": "Ctrl+K Ctrl+K", "chord_window_ms": "600", "lang": "en",
                   "auto_close_ms": "1000", "idle_close_s": "60", "idle_logout_s": "0"}),
    ("/settings/restore", {"mode": "merge"}),
]


def test_the_csrf_table_covers_every_form(app: Flask) -> None:
    posts = {rule.rule for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("ui.") and "POST" in (rule.methods or ())}
    covered = {path.replace("{grant}", "<int:pk>") for path, _ in GOOD_POSTS} | {"/login"}
    normal = {p.replace("0001", "<device_id>").replace("0006", "<device_id>")
              .replace("seat-B", "<name>").replace("wall-1", "<name>")
              .replace("hxfj", "<name>").replace("guest", "<name>")
              .replace("operators", "<name>").replace("ops-tx", "<name>")
              .replace("/A1", "/<key>") for p in covered}
    assert posts <= normal, posts - normal


@pytest.mark.parametrize(("path", "data"), GOOD_POSTS, ids=[p for p, _ in GOOD_POSTS])
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        ui: UI, path: str, data: dict[str, Any]) -> None:
    path = path.replace("{grant}", str(grant_pk(ui.app)))
    before = state(ui.app)
    resp = ui.post(path, data, csrf=False)
    assert resp.status_code == 400
    assert "表单已失效" in text_of(resp)
    assert state(ui.app) == before
    assert ui.get("/").status_code == 200                  # still signed in, still zh_CN
    assert "实时切换状态" in text_of(ui.get("/"))
    wrong = ui.post(path, {**data, "csrf_token": "forged"}, csrf=False)
    assert wrong.status_code == 400
    assert state(ui.app) == before


# --- validation: message next to the field, nothing changed -------------------------------

ADOPT = {"serial": PENDING, "id": "5020", "name": "New desk"}
DEVICE = {"id": "0001", "name": "Server A", "heads": "1"}
NEW_DEVICE = {"id": "0007", "name": "Seven", "heads": "1", "serial": ""}
SEAT = {"name": "seat-C", "screens": "5001"}
WALL = {"name": "w2", "rows": "2", "cols": "2", "tiles": "5001,5002,5003,5004"}
USER = {"name": "newbie", "password": "secret-123", "role": "operator", "lang": "zh_CN",
        "enabled": "y"}
GRANT = {"scope": "view", "access": "control", "devices": "0006"}
HOTKEY = {"key": "B2", "targets": "0002"}
SETTINGS = {"chord": "Shift+O Shift+O", "chord_window_ms": "600", "lang": "zh_CN",
            "auto_close_ms": "1000", "idle_close_s": "60", "idle_logout_s": "0"}
ROUTE = {"rx": "5001", "action": "connect", "text": "1"}

CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    # (case id, path, data, field ("" = above the form), expected text)
    ("adopt-bad-id", "/devices/adopt", {**ADOPT, "id": "12"}, "id", "不是设备 ID"),
    ("adopt-tx-id-for-rx", "/devices/adopt", {**ADOPT, "id": "0009"}, "id", "不是 Rx ID"),
    ("adopt-id-taken", "/devices/adopt", {**ADOPT, "id": "5001"}, "id", "已被序列号为"),
    ("adopt-long-name", "/devices/adopt", {**ADOPT, "name": "x" * 65}, "name",
     "不是 1-64 个字符的名称"),
    ("device-wrong-kind", "/devices/0001", {**DEVICE, "id": "5009"}, "id", "不是 Tx ID"),
    ("device-id-taken", "/devices/0001", {**DEVICE, "id": "0002"}, "id", "已存在"),
    ("device-heads-5", "/devices/0001", {**DEVICE, "heads": "5"}, "heads", "5 不在 1–4 范围内"),
    ("device-heads-x", "/devices/0001", {**DEVICE, "heads": "x"}, "heads", "应为整数"),
    ("device-no-name", "/devices/0001", {**DEVICE, "name": ""}, "name", "1-64 个字符的名称"),
    ("new-device-bad-id", "/devices/new", {**NEW_DEVICE, "id": "abc"}, "id", "不是设备 ID"),
    ("new-device-exists", "/devices/new", {**NEW_DEVICE, "id": "0001"}, "id", "已存在"),
    ("new-device-bad-serial", "/devices/new", {**NEW_DEVICE, "serial": "has space"},
     "serial", "不是有效的序列号"),
    ("new-device-serial-taken", "/devices/new", {**NEW_DEVICE, "serial": "SIM-TX-0002"},
     "serial", "是设备 0002 的序列号"),
    ("seat-no-name", "/seats", {**SEAT, "name": ""}, "name", "1-64 个字符的名称"),
    ("seat-tx-screen", "/seats", {**SEAT, "screens": "0001"}, "screens", "不是 Rx ID"),
    ("seat-unknown-rx", "/seats", {**SEAT, "screens": "5099"}, "screens", "设备 5099 不存在"),
    ("seat-twice", "/seats", {**SEAT, "screens": "5001, 5001"}, "screens", "重复出现"),
    ("seat-nine-screens", "/seats", {**SEAT, "screens": ",".join(str(5001 + i)
                                                                  for i in range(9))},
     "screens", "最多 8 项"),
    ("seat-no-screens", "/seats", {**SEAT, "screens": ""}, "screens", "至少需要 1 项"),
    ("seat-exists", "/seats", {**SEAT, "name": "seat-B"}, "name", "已存在"),
    ("wall-rows-0", "/walls/new", {**WALL, "rows": "0"}, "rows", "0 不在 1–16 范围内"),
    ("wall-tile-count", "/walls/new", {**WALL, "tiles": "5001"}, "tiles",
     "需要 行×列 = 4 个 Rx ID"),
    ("wall-unknown-tile", "/walls/new", {**WALL, "tiles": "5001,5002,5003,5099"}, "tiles",
     "设备 5099 不存在"),
    ("wall-too-big", "/walls/new", {**WALL, "rows": "9", "cols": "9"}, "rows",
     "超过 64 个屏块"),
    ("wall-exists", "/walls/new", {**WALL, "name": "wall-1"}, "name", "已存在"),
    ("user-bad-name", "/users", {**USER, "name": "a b"}, "name", "不是有效的用户名"),
    ("user-short-password", "/users", {**USER, "password": "123"}, "password", "6-128 个字符"),
    ("user-bad-role", "/users", {**USER, "role": "root"}, "role", "不是以下之一"),
    ("user-bad-lang", "/users", {**USER, "lang": "fr"}, "lang", "不是以下之一"),
    ("user-exists", "/users", {**USER, "name": "hxfj"}, "name", "已存在"),
    ("user-unknown-group", "/users", {**USER, "groups": "nogroup"}, "",
     "用户组 'nogroup' 不存在"),
    ("user-demote-self", "/users/admin", {"role": "operator", "lang": "zh_CN",
                                          "enabled": "y"}, "role", "不能取消自己的管理员角色"),
    ("user-disable-self", "/users/admin", {"role": "admin", "lang": "zh_CN"}, "enabled",
     "不能停用自己"),
    ("password-mismatch", "/users/hxfj/password", {"password": "secret-1",
                                                   "again": "secret-2"}, "again", "不一致"),
    ("password-short", "/users/hxfj/password", {"password": "abc", "again": "abc"},
     "password", "6-128 个字符"),
    ("grant-rx-for-view", "/users/hxfj/grants", {**GRANT, "devices": "5001"}, "devices",
     "不是 Tx"),
    ("grant-tx-for-push", "/users/hxfj/grants", {**GRANT, "scope": "push", "devices": "0001"},
     "devices", "不是 Rx"),
    ("grant-nothing", "/users/hxfj/grants", {**GRANT, "devices": ""}, "devices",
     "请填写设备或选择设备组"),
    ("grant-unknown-device", "/users/hxfj/grants", {**GRANT, "devices": "0099"}, "devices",
     "设备 0099 不存在"),
    ("grant-bad-range", "/users/hxfj/grants", {**GRANT, "devices": "0001-5001"}, "devices",
     "不是 Tx 或 Rx 的 ID 范围"),
    ("grant-already", "/users/hxfj/grants", {"scope": "fetch", "access": "control",
                                             "devices": "", "device_groups": "all-rx"},
     "devices", "已有相同授权"),
    ("grant-bad-scope", "/users/hxfj/grants", {**GRANT, "scope": "bogus"}, "scope",
     "不是以下之一"),
    ("group-grant-rx-for-view", "/groups/users/operators/grants", {**GRANT, "devices": "5001"},
     "devices", "不是 Tx"),
    ("group-no-name", "/groups/users", {"name": "", "members": ""}, "name", "1-64 个字符"),
    ("group-unknown-member", "/groups/users", {"name": "g2", "members": "nobody"}, "members",
     "用户 'nobody' 不存在"),
    ("group-exists", "/groups/users", {"name": "operators", "members": ""}, "name", "已存在"),
    ("device-group-backwards", "/groups/devices", {"name": "dg", "devices": "0005-0001"},
     "devices", "起点大于终点"),
    ("device-group-empty-range", "/groups/devices", {"name": "dg", "devices": "0100-0200"},
     "devices", "范围内没有设备"),
    ("device-group-exists", "/groups/devices", {"name": "ops-tx", "devices": "0001"}, "name",
     "已存在"),
    ("hotkey-all-digits", "/hotkeys", {**HOTKEY, "key": "1234"}, "key", "全是数字"),
    ("hotkey-bad-chars", "/hotkeys", {**HOTKEY, "key": "a b!"}, "key",
     "含有 A-Z a-z 0-9 - _ 以外的字符"),
    ("hotkey-too-long", "/hotkeys", {**HOTKEY, "key": "k" * 17}, "key", "超过 16 个字符"),
    ("hotkey-all", "/hotkeys", {**HOTKEY, "key": "all"}, "key", "保留字"),
    ("hotkey-empty", "/hotkeys", {**HOTKEY, "key": ""}, "key", "请输入 1-16 个字符的热键"),
    ("hotkey-exists", "/hotkeys", {**HOTKEY, "key": "a1"}, "key", "热键 'A1' 已存在"),
    ("hotkey-unknown-device", "/hotkeys", {**HOTKEY, "targets": "0042"}, "targets",
     "设备 0042 不存在"),
    ("hotkey-mixed", "/hotkeys", {**HOTKEY, "targets": "0001, 5001"}, "targets",
     "混合了 Tx 和 Rx"),
    ("hotkey-no-targets", "/hotkeys", {**HOTKEY, "targets": ""}, "targets", "至少需要 1 项"),
    ("hotkey-short-id", "/hotkeys", {**HOTKEY, "targets": "1"}, "targets", "不是设备 ID"),
    ("hotkey-twice", "/hotkeys", {**HOTKEY, "targets": "0001,0001"}, "targets", "重复出现"),
    ("hotkey-rename-clash", "/hotkeys/A1", {"key": "DUO", "targets": "0001"}, "key",
     "已存在"),
    ("settings-chord", "/settings", {**SETTINGS, "chord": "Shift+"}, "chord",
     "不是有效的按键序列"),
    ("settings-window", "/settings", {**SETTINGS, "chord_window_ms": "50"},
     "chord_window_ms", "50 不在 100–5000 范围内"),
    ("settings-lang", "/settings", {**SETTINGS, "lang": "fr"}, "lang", "不是以下之一"),
    ("settings-auto-close", "/settings", {**SETTINGS, "auto_close_ms": "-1"}, "auto_close_ms",
     "应为整数"),
    ("settings-idle-close", "/settings", {**SETTINGS, "idle_close_s": "100000"},
     "idle_close_s", "不在 0–86400 范围内"),
    ("settings-idle-logout", "/settings", {**SETTINGS, "idle_logout_s": "x"}, "idle_logout_s",
     "应为整数"),
    ("route-unknown-rx", "/routing", {**ROUTE, "rx": "9999"}, "rx", "接收端 '9999' 不存在"),
    ("route-tx-as-rx", "/routing", {**ROUTE, "rx": "0001"}, "rx", "接收端 '0001' 不存在"),
    ("route-bad-action", "/routing", {**ROUTE, "action": "jump"}, "action",
     "请选择连接、推送、获取或断开"),
]


@pytest.mark.parametrize(("path", "data", "field", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_next_to_its_field(
        ui: UI, path: str, data: dict[str, Any], field: str, expected: str) -> None:
    before = state(ui.app)
    resp = ui.post(path, data)
    assert resp.status_code == 400, field_errors(resp)
    if field:
        assert expected in error_next_to(resp, field)
    else:
        assert any(expected in e for e in field_errors(resp)), field_errors(resp)
    assert state(ui.app) == before


def test_messages_are_english_in_the_english_ui(ui: UI) -> None:
    ui.post("/lang", {"lang": "en"})
    resp = ui.post("/hotkeys", {**HOTKEY, "key": "1234"})
    assert resp.status_code == 400
    assert "all digits: the OSD reads it as a device ID" in error_next_to(resp, "key")
    resp = ui.post("/devices/0001", {**DEVICE, "heads": "9"})
    assert error_next_to(resp, "heads") == "9 is not in 1..4"


def test_form_keeps_what_was_typed(ui: UI) -> None:
    resp = ui.post("/hotkeys", {"key": "bad key", "targets": "0001, 0002"})
    assert 'value="bad key"' in resp.text and 'value="0001, 0002"' in resp.text


# --- restore ------------------------------------------------------------------------------


def restore(ui: UI, content: bytes | None, mode: str = "merge",
            confirm: bool = False) -> Any:
    data: dict[str, Any] = {"mode": mode}
    if content is not None:
        data["file"] = (io.BytesIO(content), "room.yaml")
    if confirm:
        data["confirm"] = "y"
    return ui.post("/settings/restore", data, content_type="multipart/form-data")


@pytest.mark.parametrize(("content", "mode", "confirm", "field", "expected"), [
    (None, "merge", False, "file", "请选择一个 YAML 文件"),
    (b"tx: []\n", "replace", False, "confirm", "替换全部配置前请勾选确认"),
    (b"tx: []\n", "sideways", False, "mode", "请选择合并或替换"),
    (b"\xff\xfe\x00bad", "merge", False, "file", "不是 UTF-8"),
])
def test_restore_refuses_before_reading(ui: UI, content: bytes | None, mode: str,
                                        confirm: bool, field: str, expected: str) -> None:
    before = state(ui.app)
    resp = restore(ui, content, mode, confirm)
    assert resp.status_code == 400
    assert expected in error_next_to(resp, field)
    assert state(ui.app) == before


@pytest.mark.parametrize(("content", "mode", "expected"), [
    (b"tx: [\n", "merge", "line"),
    (b"hotkeys:\n  x1: ['0999']\n", "merge", "设备 0999 不存在"),
    (b"tx:\n  - {id: '0001', heads: 7}\n", "merge", "7 不在 1–4 范围内"),
    (b"users:\n  - {name: admin, role: operator}\n", "merge", "至少要保留一个启用的管理员"),
    (b"tx: []\nrx: []\n", "replace", "至少要保留一个启用的管理员"),
    (b"bogus: 1\n", "merge", "未知的键"),
])
def test_restore_lists_every_problem_and_changes_nothing(ui: UI, content: bytes, mode: str,
                                                         expected: str) -> None:
    before = state(ui.app)
    resp = restore(ui, content, mode, confirm=True)
    assert resp.status_code == 400
    problems = resp.text.split('id="restore-problems"', 1)
    assert len(problems) == 2, field_errors(resp)
    assert expected in text_of(resp)
    assert state(ui.app) == before


def test_a_restore_may_be_larger_than_a_form_but_other_forms_may_not(ui: UI) -> None:
    padding = b"# " + b"x" * 1000 + b"\n"
    big = padding * 2000 + b"hotkeys:\n  BIG: ['0001']\n"          # ~2 MiB of YAML
    # Encoded here: the test client would spool a large form to a file it never closes.
    boundary, body = encode_multipart({"csrf_token": ui.token, "mode": "merge",
                                       "file": FileStorage(io.BytesIO(big), "room.yaml")})
    resp = ui.client.post("/settings/restore", data=body,
                          content_type=f"multipart/form-data; boundary={boundary}")
    assert resp.status_code == 302
    assert "BIG" in table_text(ui.get("/hotkeys"), "hotkey-table")
    before = state(ui.app)
    resp = ui.post("/hotkeys", {"key": "Z8", "targets": "0001" + " " * 2_000_000})
    assert resp.status_code == 413
    assert state(ui.app) == before
