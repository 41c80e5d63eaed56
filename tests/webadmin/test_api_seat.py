"""Operator side of the API: every SPEC outcome of login, connect, push, fetch, logout."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from kvm_protocol.results import ResultCode
from tests.webadmin.conftest import Room, db_of
from webadmin import models as m


def watch(client: FlaskClient, room: Room, rx: str) -> dict[str, Any]:
    resp = client.get("/api/v1/device/watch?timeout=0", headers=room.headers(rx))
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def sources(client: FlaskClient, room: Room, rx: str) -> list[str | None]:
    return [h["source"] for h in watch(client, room, rx)["routing"]]


# --- connect (F1) ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("1", "CONNECTED"),
        ("0001", "CONNECTED"),
        ("a1", "CONNECTED"),        # hotkeys are case-insensitive
        (" 2 ", "CONNECTED"),
        ("6", "OUT_OF_SCOPE"),
        ("4", "OFFLINE"),
        ("3", "NO_VIDEO"),
        ("5", "CONNECT_FAILED"),
        ("99", "UNKNOWN_TARGET"),
        ("1,2", "UNKNOWN_TARGET"),  # connect takes exactly one
        ("x y", "UNKNOWN_TARGET"),
        ("", "UNKNOWN_TARGET"),
        ("9" * 300, "UNKNOWN_TARGET"),
    ],
)
def test_connect_outcomes(client: FlaskClient, room: Room, typed: str, code: str) -> None:
    room.login(client, "5001", "hxfj")
    body = room.act(client, "5001", "connect", typed)
    assert body["result"] == code
    assert body["text"] == {"zh_CN": ResultCode(code).text("zh_CN"),
                            "en": ResultCode(code).text("en")}
    expected = {"1": "0001:1", "0001": "0001:1", "a1": "0001:1", " 2 ": "0002:1"}.get(typed)
    assert sources(client, room, "5001") == [expected]


def test_connect_same_source_and_texts(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    assert room.act(client, "5001", "connect", "1")["text"]["zh_CN"] == "连接成功"
    again = room.act(client, "5001", "connect", "A1")
    assert again["result"] == "SAME_SOURCE"
    assert again["text"]["zh_CN"] == "相同视频源"


def test_connect_multi_head_maps_heads_in_order(client: FlaskClient, room: Room) -> None:
    room.login(client, "5004", "hxfj")
    assert room.act(client, "5004", "connect", "2")["result"] == "CONNECTED"
    assert sources(client, room, "5004") == ["0002:1", "0002:2"]
    assert room.act(client, "5004", "connect", "1")["result"] == "CONNECTED"
    assert sources(client, room, "5004") == ["0001:1", None]
    # A hotkey naming several Tx fills the heads in order.
    assert room.act(client, "5004", "connect", "duo")["result"] == "CONNECTED"
    assert sources(client, room, "5004") == ["0001:1", "0002:1"]


def test_not_logged_in(client: FlaskClient, room: Room) -> None:
    for action in ("connect", "push", "fetch"):
        assert room.act(client, "5001", action, "1")["result"] == "NOT_LOGGED_IN"
    resp = client.get("/api/v1/seat/devices?mode=connect", headers=room.headers("5001"))
    assert resp.get_json()["result"] == "NOT_LOGGED_IN"
    assert resp.get_json()["rows"] == []


# --- push (F2) ---------------------------------------------------------------------------

def test_push_needs_a_source(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    body = room.act(client, "5001", "push", "2")
    assert body["result"] == "NOT_CONNECTED"
    assert body["text"]["zh_CN"] == "获取视频切换状态失败"


def test_push_outcomes(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    one = room.act(client, "5001", "push", "2")
    assert one["result"] == "PUSHED"
    assert one["targets"] == [{"id": "5002", "result": "PUSHED",
                               "text": {"zh_CN": "推送成功", "en": "Pushed"}}]
    assert "summary" not in one
    assert sources(client, room, "5002") == ["0001:1"]
    assert room.act(client, "5001", "push", "2")["result"] == "SAME_SOURCE"
    assert room.act(client, "5001", "push", "5")["result"] == "OFFLINE"
    assert room.act(client, "5001", "push", "2,2")["result"] == "UNKNOWN_TARGET"
    assert room.act(client, "5001", "push", "all,2")["result"] == "UNKNOWN_TARGET"
    assert room.act(client, "5001", "push", "1,x!")["result"] == "UNKNOWN_TARGET"


def test_push_partial_names_each_failed_target(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    body = room.act(client, "5001", "push", "3,5")
    assert body["result"] == "PUSH_PARTIAL"
    assert [(t["id"], t["result"]) for t in body["targets"]] == [
        ("5003", "PUSHED"), ("5005", "OFFLINE")]
    assert body["summary"] == {"zh_CN": "5005:此设备不在线", "en": "5005: This device is offline"}
    assert sources(client, room, "5003") == ["0001:1"]


def test_push_hotkey_and_wall_splice(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "2")
    body = room.act(client, "5001", "push", "ops")
    assert [(t["id"], t["result"]) for t in body["targets"]] == [
        ("5002", "PUSHED"), ("5003", "PUSHED")]
    # A push to one tile of a splicing wall puts the signal on the whole wall.
    assert room.act(client, "5001", "push", "wall")["result"] == "PUSHED"
    for tile in ("5011", "5012", "5013", "5014"):
        assert sources(client, room, tile) == ["0002:1"]


def test_push_all_reaches_every_rx_in_scope(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    body = room.act(client, "5001", "push", "all")
    results = {t["id"]: t["result"] for t in body["targets"]}
    assert "5001" not in results
    assert results["5005"] == "OFFLINE"
    assert body["result"] == "PUSH_PARTIAL"
    for rx in ("5002", "5003", "5011"):
        assert sources(client, room, rx) == ["0001:1"]
    assert sources(client, room, "5004") == ["0001:1", None]


def test_push_out_of_scope_and_no_laundering(client: FlaskClient, room: Room) -> None:
    with db_of(room.app).begin() as s:  # guest may push to 5002, but sees only 0001
        guest = s.scalar(select(m.User).where(m.User.name == "guest"))
        assert guest is not None
        s.add(m.Grant(scope="push", user_pk=guest.pk, device_pk=room.devices["5002"]))
    room.login(client, "5001", "guest")
    room.login(client, "5004", "hxfj")
    room.act(client, "5004", "connect", "2")
    assert room.act(client, "5004", "push", "1")["result"] == "PUSHED"
    # The receiver's permission does not follow the sender's (SPEC 1.4 rule 1) ...
    assert watch(client, room, "5001")["routing"][0] == {
        "head": 1, "source": "0002:1", "set_by": "hxfj", "pushed": True}
    # ... but guest cannot pass it on, nor push to an Rx outside the push scope.
    assert room.act(client, "5001", "push", "2")["result"] == "OUT_OF_SCOPE"
    # Once guest switches away, 0002 cannot be had back.
    assert room.act(client, "5001", "connect", "1")["result"] == "CONNECTED"
    assert room.act(client, "5001", "connect", "2")["result"] == "OUT_OF_SCOPE"
    assert room.act(client, "5001", "push", "3")["result"] == "OUT_OF_SCOPE"


# --- fetch (F3) --------------------------------------------------------------------------

def test_fetch_outcomes(client: FlaskClient, room: Room) -> None:
    room.login(client, "5004", "hxfj")
    room.act(client, "5004", "connect", "2")
    room.login(client, "5001", "hxfj")
    body = room.act(client, "5001", "fetch", "4")
    assert body["result"] == "FETCHED"
    assert body["text"]["zh_CN"] == "获取成功"
    assert sources(client, room, "5001") == ["0002:1"]
    assert room.act(client, "5001", "fetch", "4")["result"] == "SAME_SOURCE"
    assert room.act(client, "5001", "fetch", "5")["result"] == "OFFLINE"
    assert room.act(client, "5001", "fetch", "ops")["result"] == "UNKNOWN_TARGET"
    assert room.act(client, "5001", "fetch", "1,2")["result"] == "UNKNOWN_TARGET"
    assert room.act(client, "5001", "fetch", "7777")["result"] == "UNKNOWN_TARGET"


def test_fetch_checks_scopes(client: FlaskClient, room: Room) -> None:
    # An admin shows 0006 on 5004; hxfj may fetch from 5004 but may not view 0006.
    room.login(client, "5004", "admin")
    assert room.act(client, "5004", "connect", "6")["result"] == "CONNECTED"
    room.login(client, "5001", "hxfj")
    assert room.act(client, "5001", "fetch", "4")["result"] == "OUT_OF_SCOPE"
    room.login(client, "5001", "guest")  # no fetch scope at all
    assert room.act(client, "5001", "fetch", "4")["result"] == "OUT_OF_SCOPE"


def test_fetch_from_splicing_wall_gets_the_wall_tx(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "2")
    room.act(client, "5001", "push", "wall")
    room.login(client, "5004", "hxfj")
    assert room.act(client, "5004", "fetch", "14")["result"] == "FETCHED"
    assert sources(client, room, "5004") == ["0002:1", None]


# --- device lists ------------------------------------------------------------------------

def rows(client: FlaskClient, room: Room, rx: str, mode: str) -> list[tuple[str, str]]:
    resp = client.get(f"/api/v1/seat/devices?mode={mode}", headers=room.headers(rx))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["mode"] == mode
    return [(r["id"], r["colour"]) for r in body["rows"]]


def test_device_list_colours(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    assert rows(client, room, "5001", "connect") == [
        ("0001", "grey"), ("0002", "grey"), ("0003", "grey"), ("0004", "red"), ("0005", "grey")]
    room.act(client, "5001", "connect", "1")
    assert rows(client, room, "5001", "connect")[0] == ("0001", "yellow")
    room.act(client, "5001", "push", "2")
    push_rows = dict(rows(client, room, "5001", "push"))
    assert push_rows["5002"] == "yellow" and push_rows["5005"] == "red"
    assert "5001" not in push_rows
    assert dict(rows(client, room, "5001", "fetch"))["5002"] == "yellow"


def test_device_list_bad_mode(client: FlaskClient, room: Room) -> None:
    for query in ("mode=delete", "mode=connect&x=1"):
        resp = client.get(f"/api/v1/seat/devices?{query}", headers=room.headers("5001"))
        assert resp.status_code == 400
        assert resp.get_json()["error"]["code"] in {"VALIDATION", "UNKNOWN_FIELD"}


# --- login / logout ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("rx", "user", "password", "code"),
    [
        ("5001", "hxfj", "123456", "NETWORK_OK"),
        ("5001", "hxfj", "wrong", "BAD_CREDENTIALS"),
        ("5001", "nobody", "123456", "BAD_CREDENTIALS"),
        ("5001", "HXFJ", "123456", "BAD_CREDENTIALS"),
        ("5002", "guest", "guest123", "LOGIN_NOT_ALLOWED"),
        ("5001", "guest", "guest123", "NETWORK_OK"),
        ("5001", "admin", "admin123", "NETWORK_OK"),
    ],
)
def test_login_outcomes(client: FlaskClient, room: Room, rx: str, user: str, password: str,
                        code: str) -> None:
    body = room.login(client, rx, user, password)
    assert body["result"] == code
    session = watch(client, room, rx)["session"]
    if code == "NETWORK_OK":
        assert body["text"]["zh_CN"] == "网络正常"
        assert body["user"] == user
        assert session is not None and session["user"] == user
    else:
        assert session is None


def test_disabled_user(client: FlaskClient, room: Room) -> None:
    with db_of(room.app).begin() as s:
        user = s.scalar(select(m.User).where(m.User.name == "hxfj"))
        assert user is not None
        user.enabled = False
    assert room.login(client, "5001", "hxfj")["result"] == "ACCOUNT_DISABLED"
    assert room.login(client, "5001", "hxfj", "nope")["result"] == "BAD_CREDENTIALS"


def test_login_rate_limit_per_user_per_seat(client: FlaskClient, room: Room) -> None:
    for _ in range(5):
        assert room.login(client, "5001", "hxfj", "bad")["result"] == "BAD_CREDENTIALS"
    limited = room.login(client, "5001", "hxfj")
    assert limited["result"] == "RATE_LIMITED"
    assert watch(client, room, "5001")["session"] is None
    # Another seat, and another user at this seat, are not limited.
    assert room.login(client, "5002", "hxfj")["result"] == "NETWORK_OK"
    assert room.login(client, "5001", "guest")["result"] == "NETWORK_OK"


def test_login_serves_the_whole_seat(client: FlaskClient, room: Room) -> None:
    room.login(client, "5002", "hxfj")
    assert watch(client, room, "5003")["session"]["user"] == "hxfj"
    assert watch(client, room, "5003")["seat"] == {"name": "seat-B", "screens": ["5002", "5003"]}
    assert room.act(client, "5003", "connect", "1")["result"] == "CONNECTED"
    assert room.act(client, "5002", "connect", "2")["result"] == "CONNECTED"


def test_logout_disconnects_every_screen(client: FlaskClient, room: Room) -> None:
    room.login(client, "5002", "hxfj")
    room.act(client, "5002", "connect", "1")
    room.act(client, "5003", "connect", "2")
    resp = client.post("/api/v1/seat/logout", headers=room.headers("5003"))
    assert resp.get_json() == {"result": "LOGGED_OUT",
                               "text": {"zh_CN": "已注销", "en": "Logged out"}}
    for rx in ("5002", "5003"):
        body = watch(client, room, rx)
        assert body["session"] is None
        assert [h["source"] for h in body["routing"]] == [None]
    assert room.act(client, "5002", "connect", "1")["result"] == "NOT_LOGGED_IN"
    again = client.post("/api/v1/seat/logout", headers=room.headers("5002"), json={})
    assert again.get_json()["result"] == "NOT_LOGGED_IN"


def test_view_only_user_gets_picture_not_keys(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "viewer")
    assert room.act(client, "5001", "connect", "1")["result"] == "CONNECTED"
    session = watch(client, room, "5001")["session"]
    assert session == {"user": "viewer", "role": "operator", "lang": "zh_CN",
                       "keys_allowed": False}
    room.login(client, "5001", "hxfj")
    assert watch(client, room, "5001")["session"]["keys_allowed"] is True


def test_logging_in_drops_routes_the_new_user_may_not_see(client: FlaskClient,
                                                          room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "2")
    assert room.login(client, "5001", "guest")["result"] == "NETWORK_OK"
    assert sources(client, room, "5001") == [None]


# --- audit -------------------------------------------------------------------------------

def test_every_switch_and_login_is_audited(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj", "bad")
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    room.act(client, "5001", "connect", "6")
    room.act(client, "5001", "push", "2,5")
    room.act(client, "5001", "fetch", "2")
    client.post("/api/v1/seat/logout", headers=room.headers("5001"))
    with db_of(room.app).session() as s:
        entries = s.scalars(
            select(m.AuditEntry).where(m.AuditEntry.device == "5001").order_by(m.AuditEntry.pk)
        ).all()
    got = [(e.actor, e.action, e.target, e.result) for e in entries]
    assert got == [
        ("hxfj", "login", "", "BAD_CREDENTIALS"),
        ("hxfj", "login", "", "NETWORK_OK"),
        ("hxfj", "connect", "1", "CONNECTED"),
        ("hxfj", "connect", "6", "OUT_OF_SCOPE"),
        ("hxfj", "push", "2,5", "PUSH_PARTIAL"),
        ("hxfj", "fetch", "2", "SAME_SOURCE"),
        ("hxfj", "logout", "", "LOGGED_OUT"),
    ]
    assert all(e.seat == "5001" for e in entries)
    assert entries[2].detail["changes"] == [
        {"rx": "5001", "head": 1, "source": "0001:1", "pushed": False}]
    assert entries[4].detail["targets"] == [
        {"id": "5002", "result": "PUSHED"}, {"id": "5005", "result": "OFFLINE"}]


# --- authentication and bad requests -----------------------------------------------------

@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "UNAUTHORIZED"),
        ({"Authorization": "Bearer abc"}, 401, "UNAUTHORIZED"),
        ({"Authorization": "Device SIM-RX-5001:" + "0" * 64}, 401, "UNAUTHORIZED"),
        ({"Authorization": "Device SIM-RX-5001:short"}, 401, "UNAUTHORIZED"),
        ({"Authorization": "Device nobody:" + "0" * 64}, 401, "UNAUTHORIZED"),
    ],
)
def test_seat_calls_need_device_auth(client: FlaskClient, room: Room, headers: dict[str, str],
                                     status: int, code: str) -> None:
    resp = client.post("/api/v1/seat/connect", headers=headers, json={"input": "1"})
    assert resp.status_code == status
    assert resp.get_json()["error"]["code"] == code


def test_a_tx_cannot_act_for_a_seat(client: FlaskClient, room: Room) -> None:
    resp = client.post("/api/v1/seat/login", headers=room.headers("0001"),
                       json={"user": "hxfj", "password": "123456"})
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        (b"{", 400, "BAD_JSON", ""),
        (b"", 400, "BAD_JSON", ""),
        (b"\xff\xfe", 400, "BAD_JSON", ""),
        (b"[]", 400, "VALIDATION", ""),
        (b'{"user": "hxfj"}', 400, "VALIDATION", "password"),
        (b'{"user": 5, "password": "x"}', 400, "VALIDATION", "user"),
        (b'{"user": "hxfj", "password": "x", "remember": true}', 400, "UNKNOWN_FIELD",
         "remember"),
        (b'{"user": "' + b"a" * 70000 + b'", "password": "x"}', 413, "TOO_LARGE", ""),
        (b"[" * 100000, 413, "TOO_LARGE", ""),
        (b"[" * 60000, 400, "BAD_JSON", ""),
    ],
)
def test_bad_bodies_are_4xx_json(client: FlaskClient, room: Room, body: bytes, status: int,
                                 code: str, names: str) -> None:
    resp = client.post("/api/v1/seat/login", headers={**room.headers("5001"),
                                                      "Content-Type": "application/json"},
                       data=body)
    assert resp.status_code == status
    error = resp.get_json()["error"]
    assert error["code"] == code
    assert names in error["message"]


def test_wrong_method_and_unknown_path(client: FlaskClient) -> None:
    resp = client.get("/api/v1/seat/login")
    assert resp.status_code == 405
    assert resp.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    resp = client.get("/api/v1/nothing")
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "NOT_FOUND"
