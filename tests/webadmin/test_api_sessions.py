"""Seat sessions through the HTTP API: a login over a session that was never logged out, and
admin switches that later scope enforcement must not undo (docs/PERMISSIONS.md)."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.webadmin.conftest import Room, db_of
from tests.webadmin.test_api_admin import Admin, ok, token
from webadmin import models as m

ANN_PASSWORD = "ann-secret"


def watch(client: FlaskClient, room: Room, rx: str) -> dict[str, Any]:
    resp = client.get("/api/v1/device/watch?timeout=0", headers=room.headers(rx))
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def shown(client: FlaskClient, room: Room, rx: str) -> list[tuple[str, str, bool] | None]:
    """What the Rx's watch tells its controller to show: (source, set_by, pushed) per head."""
    return [None if h["source"] is None else (h["source"], h["set_by"], h["pushed"])
            for h in watch(client, room, rx)["routing"]]


def add_ann(app: Flask) -> None:
    """An operator who may view only Tx 0006 and push only to 5004 (logs in anywhere)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with db_of(app).begin() as s:
        ann = m.User(name="ann", role="operator", password_hash=hasher.hash(ANN_PASSWORD))
        tx6 = s.scalar(select(m.Device).where(m.Device.id == "0006"))
        rx4 = s.scalar(select(m.Device).where(m.Device.id == "5004"))
        s.add_all([ann, m.Grant(scope="view", user=ann, device=tx6),
                   m.Grant(scope="push", user=ann, device=rx4)])


def audit(app: Flask, device: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    with db_of(app).session() as s:
        entries = s.scalars(select(m.AuditEntry).where(m.AuditEntry.device == device)
                            .order_by(m.AuditEntry.pk)).all()
        return [(e.actor, e.action, e.result, e.detail) for e in entries]


# --- a login over a session that was never logged out ------------------------------------


def test_a_login_logs_out_the_previous_user_first(client: FlaskClient, room: Room,
                                                  app: Flask) -> None:
    add_ann(app)
    admin = Admin(client, token(client))
    # A = ann at 5001. She shows Tx 0006 and pushes it to viewer's 5004, outside viewer's
    # scope: there the push is the grant (rule 1.4.1).
    assert room.login(client, "5001", "ann", ANN_PASSWORD)["result"] == "NETWORK_OK"
    room.login(client, "5004", "viewer")
    assert room.act(client, "5001", "connect", "6")["result"] == "CONNECTED"
    assert room.act(client, "5001", "push", "4")["result"] == "PUSHED"
    assert shown(client, room, "5004") == [("0006:1", "ann", True), None]
    # A supervisor pushes Tx 0002 to ann's screen: a grant ann holds as receiver.
    room.login(client, "5002", "admin")
    assert room.act(client, "5002", "connect", "2")["result"] == "CONNECTED"
    assert room.act(client, "5002", "push", "1")["result"] == "PUSHED"
    assert shown(client, room, "5001") == [("0002:1", "admin", True)]
    assert watch(client, room, "5001")["session"]["keys_allowed"] is False
    before = watch(client, room, "5001")["generation"]

    # ann's controller died without logging out; guest logs in at her seat.
    assert room.login(client, "5001", "guest")["result"] == "NETWORK_OK"

    seat = watch(client, room, "5001")
    assert seat["generation"] > before                         # the controller is told
    assert seat["session"]["user"] == "guest"
    assert shown(client, room, "5001") == [None]               # ann's pushed picture ended:
    # guest did not inherit it (enforce_scopes alone would have kept a pushed route).
    assert room.act(client, "5001", "connect", "2")["result"] == "OUT_OF_SCOPE"
    assert [r["id"] for r in client.get("/api/v1/seat/devices?mode=connect",
                                        headers=room.headers("5001")).get_json()["rows"]] == [
        "0001"]
    # What ann pushed to viewer stays: that grant ends when 5004 switches or viewer logs out.
    assert shown(client, room, "5004") == [("0006:1", "ann", True), None]
    assert watch(client, room, "5004")["session"]["keys_allowed"] is False
    # The admin's view agrees with what the devices see.
    rows = {r["rx"]: r for r in ok(admin.get("/routing"))["routing"]}
    assert (rows["5001"]["user"], rows["5001"]["heads"][0]["source"]) == ("guest", None)

    entries = [e for e in audit(app, "5001") if e[1] in ("login", "logout")]
    logout, login = entries[-2], entries[-1]
    assert logout[:3] == ("guest", "logout", "LOGGED_OUT")
    assert (logout[3]["user"], logout[3]["reason"], logout[3]["by"]) == ("ann", "replaced",
                                                                         "guest")
    assert logout[3]["changes"] == [{"rx": "5001", "head": 1, "source": None, "pushed": False}]
    assert login[:3] == ("guest", "login", "NETWORK_OK")
    assert login[3]["replaced"] == "ann"


def test_a_replacing_login_clears_every_screen_of_the_seat(client: FlaskClient,
                                                           room: Room) -> None:
    room.login(client, "5002", "hxfj")
    room.act(client, "5002", "connect", "1")
    room.act(client, "5003", "connect", "2")
    room.login(client, "5003", "viewer")          # viewer may view 0001 and 0002 too
    for rx in ("5002", "5003"):
        assert watch(client, room, rx)["session"]["user"] == "viewer"
        assert shown(client, room, rx) == [None]


def test_the_same_user_logging_in_again_keeps_the_session(client: FlaskClient, room: Room,
                                                          app: Flask) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    assert room.login(client, "5001", "hxfj")["result"] == "NETWORK_OK"
    assert shown(client, room, "5001") == [("0001:1", "hxfj", False)]
    assert [a[1] for a in audit(app, "5001")] == ["login", "connect", "login"]


def test_a_refused_login_leaves_the_previous_session(client: FlaskClient, room: Room) -> None:
    room.login(client, "5004", "hxfj")
    room.act(client, "5004", "connect", "2")
    assert room.login(client, "5004", "guest")["result"] == "LOGIN_NOT_ALLOWED"
    assert room.login(client, "5004", "viewer", "wrong")["result"] == "BAD_CREDENTIALS"
    assert watch(client, room, "5004")["session"]["user"] == "hxfj"
    assert shown(client, room, "5004") == [("0002:1", "hxfj", False), ("0002:2", "hxfj", False)]


# --- admin switches are pushes by the admin ------------------------------------------------


def test_an_admin_switch_is_not_undone_by_scope_enforcement(client: FlaskClient, room: Room,
                                                            app: Flask) -> None:
    admin = Admin(client, token(client))
    room.login(client, "5001", "hxfj")                  # hxfj may not view Tx 0006
    assert ok(admin.post("/routing/5001/connect", json={"input": "6"}))["result"] == "CONNECTED"
    assert shown(client, room, "5001") == [("0006:1", "admin", True)]
    # Any change of grants makes the server enforce scopes on every logged-in seat.
    ok(admin.post("/grants", json={"scope": "view", "user": "guest", "devices": ["0002"]}),
       201)
    assert shown(client, room, "5001") == [("0006:1", "admin", True)]
    session = watch(client, room, "5001")["session"]
    assert (session["user"], session["keys_allowed"]) == ("hxfj", False)   # picture only
    assert room.act(client, "5001", "connect", "6")["result"] == "OUT_OF_SCOPE"
    assert room.act(client, "5001", "push", "2")["result"] == "OUT_OF_SCOPE"  # no passing on

    # A Tx inside the user's scope is an ordinary route, as a push would be.
    assert ok(admin.post("/routing/5001/connect", json={"input": "1"}))["result"] == "CONNECTED"
    assert shown(client, room, "5001") == [("0001:1", "admin", False)]
    assert watch(client, room, "5001")["session"]["keys_allowed"] is True

    # Fetch: 5004 shows 0006 (set by the admin, nobody logged in there); fetched to 5001.
    assert ok(admin.post("/routing/5004/connect", json={"input": "6"}))["result"] == "CONNECTED"
    assert ok(admin.post("/routing/5001/fetch", json={"input": "4"}))["result"] == "FETCHED"
    assert shown(client, room, "5001") == [("0006:1", "admin", True)]
    ok(admin.patch("/users/guest", json={"lang": "zh_CN"}))   # another enforcement
    assert shown(client, room, "5001") == [("0006:1", "admin", True)]

    # It ends when the seat switches away: hxfj cannot get it back.
    assert room.act(client, "5001", "connect", "1")["result"] == "CONNECTED"
    assert room.act(client, "5001", "connect", "6")["result"] == "OUT_OF_SCOPE"


def test_an_admin_switch_ends_when_the_seat_logs_out(client: FlaskClient, room: Room) -> None:
    admin = Admin(client, token(client))
    room.login(client, "5001", "hxfj")
    ok(admin.post("/routing/5001/connect", json={"input": "6"}))
    assert client.post("/api/v1/seat/logout",
                       headers=room.headers("5001")).get_json()["result"] == "LOGGED_OUT"
    assert shown(client, room, "5001") == [None]


def test_an_admin_switch_at_an_unattended_screen_is_picture_only_after_a_login(
        client: FlaskClient, room: Room) -> None:
    admin = Admin(client, token(client))
    ok(admin.post("/routing/5001/connect", json={"input": "6"}))
    room.login(client, "5001", "guest")                # guest may view 0001 only
    assert shown(client, room, "5001") == [("0006:1", "admin", True)]
    assert watch(client, room, "5001")["session"]["keys_allowed"] is False
