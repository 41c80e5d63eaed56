"""The admin REST API: auth (operators 403), CRUD, adoption, validation errors naming the
field, audit entries, routing actions, audit queries and CSV, config import/export."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.webadmin.conftest import ADMIN_PASSWORD, Room, db_of, secret_of
from webadmin import models as m

A = "/api/v1/admin"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def token(client: FlaskClient, user: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    resp = client.post(f"{A}/token", json={"user": user, "password": password})
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["token"])


class Admin:
    """A test client that sends an admin's bearer token."""

    def __init__(self, client: FlaskClient, tok: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {tok}"}

    def __getattr__(self, method: str) -> Any:
        def call(path: str, **kw: Any) -> TestResponse:
            return getattr(self.client, method)(f"{A}{path}", headers=self.headers, **kw)  # type: ignore[no-any-return]
        return call


@pytest.fixture
def admin(client: FlaskClient, room: Room) -> Admin:
    return Admin(client, token(client))


def ok(resp: TestResponse, status: int = 200) -> Any:
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def error(resp: TestResponse, status: int, code: str) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def audit_actions(app: Flask, actor: str = "admin") -> list[str]:
    with db_of(app).session() as s:
        return [e.action for e in s.query(m.AuditEntry).filter_by(actor=actor)
                .order_by(m.AuditEntry.pk)]


def watch(client: FlaskClient, room: Room, device_id: str) -> dict[str, Any]:
    resp = client.get("/api/v1/device/watch?timeout=0", headers=room.headers(device_id))
    return ok(resp)  # type: ignore[no-any-return]


# --- authentication ----------------------------------------------------------------------


def test_admin_api_needs_an_admin_token(client: FlaskClient, room: Room, app: Flask) -> None:
    assert "Bearer" in error(client.get(f"{A}/devices"), 401, "UNAUTHORIZED")
    error(client.get(f"{A}/users", headers={"Authorization": "Bearer nope"}), 401, "UNAUTHORIZED")
    error(client.get(f"{A}/users", headers=room.headers("5001")), 401, "UNAUTHORIZED")
    # Operators get no token, and a token whose user is no longer an admin stops working.
    error(client.post(f"{A}/token", json={"user": "hxfj", "password": "123456"}), 403,
          "FORBIDDEN")
    admin = Admin(client, token(client))
    ok(admin.post("/users", json={"name": "boss", "password": "boss-pass", "role": "admin"}),
       201)
    boss = Admin(client, token(client, "boss", "boss-pass"))
    ok(boss.get("/users"))
    ok(admin.patch("/users/boss", json={"role": "operator"}))
    assert error(boss.get("/users"), 403, "FORBIDDEN") == "admins only"
    assert error(boss.post("/devices", json={"id": "0099", "name": "x"}), 403,
                 "FORBIDDEN") == "admins only"


# --- devices -----------------------------------------------------------------------------


def test_device_list_filters_and_shows_online(admin: Admin, room: Room) -> None:
    devices = ok(admin.get("/devices"))["devices"]
    assert [d["id"] for d in devices][:3] == ["0001", "0002", "0003"]
    by_id = {d["id"]: d for d in devices}
    assert (by_id["0001"]["online"], by_id["0004"]["online"]) == (True, False)
    assert by_id["0002"]["heads"] == 2 and by_id["0002"]["bound"] is True
    assert {d["kind"] for d in ok(admin.get("/devices?kind=rx"))["devices"]} == {"rx"}
    assert ok(admin.get("/devices?state=pending"))["devices"] == []
    assert error(admin.get("/devices?kind=hdmi"), 400, "VALIDATION") == (
        "query parameter kind must be one of tx, rx, got 'hdmi'")
    error(admin.get("/devices?colour=red"), 400, "UNKNOWN_FIELD")
    assert ok(admin.get("/devices/5004"))["heads"] == 2
    assert error(admin.get("/devices/0999"), 404, "NOT_FOUND") == "no device '0999'"


def test_create_update_delete_a_device(admin: Admin, app: Flask) -> None:
    created = ok(admin.post("/devices", json={"id": "0007", "name": "Spare", "heads": 2,
                                              "serial": "HW-TX-7"}), 201)
    assert created == {"id": "0007", "kind": "tx", "name": "Spare", "heads": 2,
                       "serial": "HW-TX-7", "adoption": "adopted", "bound": False,
                       "firmware": "", "online": False, "last_seen": None}
    assert error(admin.post("/devices", json={"id": "0007", "name": "x"}), 409,
                 "CONFLICT") == "device '0007' exists already"
    changed = ok(admin.patch("/devices/0007", json={"id": "0008", "name": "Spare 8"}))
    assert (changed["id"], changed["name"], changed["heads"]) == ("0008", "Spare 8", 2)
    assert error(admin.patch("/devices/0008", json={"id": "5008"}), 400, "VALIDATION") == (
        "id: '5008' is not a Tx ID (0001-4999)")
    assert error(admin.patch("/devices/0008", json={"id": "0001"}), 409, "CONFLICT") == (
        "device '0001' exists already")
    assert ok(admin.patch("/devices/0008", json={"heads": 1}))["heads"] == 1
    ok(admin.delete("/devices/0008"))
    error(admin.get("/devices/0008"), 404, "NOT_FOUND")
    actions = audit_actions(app)
    assert actions.count("device.create") == 1 and actions.count("device.delete") == 1
    assert actions.count("device.update") == 2      # refused changes are not audited


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "message"),
    [
        ("post", "/devices", {"id": "abc", "name": "x"}, "VALIDATION",
         "id: 'abc' is not a device ID (Tx 0001-4999, Rx 5001-9999)"),
        ("post", "/devices", {"id": "0009", "name": "x", "heads": 9}, "VALIDATION",
         "heads: 9 is not in 1..4"),
        ("post", "/devices", {"id": "0009", "name": "x", "heads": "2"}, "VALIDATION",
         "heads: expected an integer, got '2'"),
        ("post", "/devices", {"id": "0009", "name": "x", "colour": "red"}, "UNKNOWN_FIELD",
         "colour: unknown key (known: id, name, heads, serial)"),
        ("post", "/devices", {"name": "x"}, "VALIDATION", "id: missing required key"),
        ("post", "/devices", {"id": "0009", "name": ""}, "VALIDATION",
         "name: '' is not a name of 1-64 characters"),
        ("post", "/devices", {"id": "0009", "name": "x", "serial": "SIM-TX-0001"}, "VALIDATION",
         "serial: 'SIM-TX-0001' is the serial of device 0001"),
        ("post", "/seats", {"name": "s", "screens": ["5001", "0001"]}, "VALIDATION",
         "screens[1]: '0001' is not an Rx ID (5001-9999)"),
        ("post", "/seats", {"name": "s", "screens": ["5099"]}, "VALIDATION",
         "screens[0]: no device 5099"),
        ("post", "/walls", {"name": "w", "rows": 2, "cols": 2, "tiles": ["5001"]},
         "VALIDATION", "tiles: needs rows × cols = 4 Rx IDs, got 1"),
        ("post", "/users", {"name": "x y", "password": "secret-1"}, "VALIDATION",
         "name: 'x y' is not a user name (1-64 of A-Z a-z 0-9 _ . @ -)"),
        ("post", "/users", {"name": "xy", "password": "123"}, "VALIDATION",
         "password: a password has 6-128 characters and no control characters (this one has 3)"),
        ("post", "/users", {"name": "xy", "password": "secret-1", "groups": ["nope"]},
         "VALIDATION", "groups[0]: no user group 'nope'"),
        ("post", "/users", {"name": "xy", "password": "secret-1", "role": "root"},
         "VALIDATION", "role: 'root' is not one of: admin, operator"),
        ("post", "/grants", {"user": "hxfj", "scope": "view", "devices": ["5001"]},
         "VALIDATION", "devices[0]: 5001 is not a Tx: view grants name Tx"),
        ("post", "/grants", {"user": "ghost", "scope": "view", "devices": ["0001"]},
         "VALIDATION", "user: no user 'ghost'"),
        ("post", "/grants", {"user": "hxfj", "scope": "push", "devices": ["5100-5200"]},
         "VALIDATION", "devices[0]: no device in 5100-5200"),
        ("put", "/hotkeys/B1", {"targets": ["0001", "5001"]}, "VALIDATION",
         "targets: mixes Tx and Rx; a hotkey names only Tx or only Rx"),
        ("put", "/hotkeys/B1", {"targets": ["0001", "0099"]}, "VALIDATION",
         "targets[1]: no device 0099"),
        ("put", "/hotkeys/12", {"targets": ["0001"]}, "VALIDATION",
         "key: '12' is all digits: the OSD reads it as a device ID; add a letter"),
        ("put", "/hotkeys/all", {"targets": ["5001"]}, "VALIDATION",
         "key: 'all' is reserved: it pushes to every Rx"),
        ("patch", "/settings", {"chord_window_ms": 50}, "VALIDATION",
         "chord_window_ms: 50 is not in 100..5000"),
        ("patch", "/walls/wall-1", {"rows": 3}, "VALIDATION",
         "tiles: needs rows × cols = 6 Rx IDs, got 4"),
        ("post", "/devices/HW-1/adopt", {"id": "5050", "name": 7}, "VALIDATION",
         "name: expected a string, got 7"),
        ("post", "/routing/5001/connect", {"input": "1", "text": "1"}, "UNKNOWN_FIELD",
         "text: unknown key (known: input)"),
    ],
)
def test_validation_errors_name_the_field(
    admin: Admin, app: Flask, method: str, path: str, body: dict[str, Any], code: str,
    message: str,
) -> None:
    before = audit_actions(app)
    assert error(getattr(admin, method)(path, json=body), 400, code) == message
    assert audit_actions(app) == before


@pytest.mark.parametrize(
    ("data", "content_type", "code", "message"),
    [
        ("{", "application/json", "BAD_JSON", "invalid JSON: Expecting property name enclosed "
                                              "in double quotes at position 1"),
        ("[]", "application/json", "VALIDATION", "the body must be a JSON object"),
        ("", "application/json", "BAD_JSON",
         "request body is empty; a JSON object is expected"),
    ],
)
def test_bad_bodies(admin: Admin, data: str, content_type: str, code: str, message: str) -> None:
    assert error(admin.post("/devices", data=data, content_type=content_type), 400,
                 code) == message


def test_delete_refusals_and_effects(admin: Admin, client: FlaskClient, room: Room) -> None:
    assert error(admin.delete("/devices/5011"), 409, "CONFLICT") == (
        "5011 is a tile of wall 'wall-1': change the wall first")
    room.login(client, "5001", "hxfj")
    assert room.act(client, "5001", "connect", "1")["result"] == "CONNECTED"
    ok(admin.delete("/devices/0001"))
    assert watch(client, room, "5001")["routing"][0]["source"] is None


# --- pending devices, adoption, credentials ----------------------------------------------


def announce(client: FlaskClient, serial: str, kind: str = "rx", secret: str | None = None,
             heads: int = 1) -> TestResponse:
    return client.post("/api/v1/device/announce", json={
        "serial": serial, "kind": kind, "heads": heads, "firmware": "RX-FW 2.4.1",
        "secret": secret or secret_of(serial)})


def test_pending_device_is_adopted_then_works(admin: Admin, client: FlaskClient,
                                              app: Flask) -> None:
    assert announce(client, "HW-RX-9").status_code == 202
    pending = ok(admin.get("/devices?state=pending"))["devices"]
    assert [(d["serial"], d["id"], d["bound"]) for d in pending] == [("HW-RX-9", None, True)]
    assert error(admin.post("/devices/HW-RX-9/adopt", json={"id": "0050"}), 400,
                 "VALIDATION") == "id: 0050 is not an Rx ID (5001-9999); this device is a rx"
    assert error(admin.post("/devices/HW-RX-9/adopt", json={"id": "5001"}), 409,
                 "CONFLICT") == "id: 5001 belongs to the device with serial 'SIM-RX-5001'"
    assert error(admin.post("/devices/NOPE/adopt", json={"id": "5050"}), 404,
                 "NOT_FOUND") == "no device with serial 'NOPE'"
    adopted = ok(admin.post("/devices/HW-RX-9/adopt", json={"id": "5050", "name": "Desk 50"}))
    assert (adopted["id"], adopted["name"], adopted["adoption"]) == ("5050", "Desk 50", "adopted")
    again = ok(announce(client, "HW-RX-9"))
    assert (again["state"], again["id"], again["name"]) == ("adopted", "5050", "Desk 50")
    assert error(admin.post("/devices/HW-RX-9/adopt", json={"id": "5051"}), 409,
                 "CONFLICT") == "device 'HW-RX-9' is already adopted as 5050"
    # Reset: the old secret no longer works; the next announce binds a new one.
    assert ok(admin.post("/devices/5050/reset"))["bound"] is False
    assert announce(client, "HW-RX-9", secret="ab" * 32).status_code == 200
    assert announce(client, "HW-RX-9").status_code == 409
    assert {"adopt", "reset_device"} <= set(audit_actions(app))


def test_rejecting_a_pending_device(admin: Admin, client: FlaskClient) -> None:
    announce(client, "HW-RX-10")
    ok(admin.delete("/devices/pending/HW-RX-10"))
    assert ok(admin.get("/devices?state=pending"))["devices"] == []
    assert error(admin.delete("/devices/pending/SIM-RX-5001"), 409, "CONFLICT") == (
        "device 'SIM-RX-5001' is adopted, not pending")
    error(admin.delete("/devices/pending/NOPE"), 404, "NOT_FOUND")


# --- seats, walls ------------------------------------------------------------------------


def test_seats_crud(admin: Admin, client: FlaskClient, room: Room) -> None:
    assert ok(admin.get("/seats"))["seats"] == [{"name": "seat-B", "screens": ["5002", "5003"]}]
    ok(admin.post("/seats", json={"name": "desk", "screens": ["5001", "5004"]}), 201)
    assert watch(client, room, "5004")["seat"] == {"name": "desk", "screens": ["5001", "5004"]}
    error(admin.post("/seats", json={"name": "desk", "screens": ["5005"]}), 409, "CONFLICT")
    # An Rx listed in another seat leaves the one it was in.
    moved = ok(admin.patch("/seats/seat-B", json={"name": "seat-b2",
                                                  "screens": ["5002", "5004"]}))
    assert moved == {"name": "seat-b2", "screens": ["5002", "5004"]}
    assert ok(admin.get("/seats/desk"))["screens"] == ["5001"]
    ok(admin.delete("/seats/desk"))
    error(admin.get("/seats/desk"), 404, "NOT_FOUND")
    assert watch(client, room, "5001")["seat"] == {"name": "5001", "screens": ["5001"]}


def test_walls_and_splice(admin: Admin, client: FlaskClient, room: Room, app: Flask) -> None:
    wall = ok(admin.get("/walls/wall-1"))
    assert wall == {"name": "wall-1", "rows": 2, "cols": 2,
                    "tiles": ["5011", "5012", "5013", "5014"], "splice": True}
    generation = watch(client, room, "5013")["generation"]
    assert ok(admin.patch("/walls/wall-1", json={"splice": False}))["splice"] is False
    assert watch(client, room, "5013")["generation"] > generation
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    pushed = room.act(client, "5001", "push", "5011")
    assert pushed["result"] == "PUSHED"
    assert watch(client, room, "5012")["routing"][0]["source"] is None   # no splice: one tile
    ok(admin.patch("/walls/wall-1", json={"rows": 1, "cols": 4}))
    ok(admin.post("/walls", json={"name": "strip", "rows": 1, "cols": 1, "tiles": ["5005"]}),
       201)
    assert [w["name"] for w in ok(admin.get("/walls"))["walls"]] == ["strip", "wall-1"]
    ok(admin.delete("/walls/strip"))
    assert "wall.update" in audit_actions(app) and "wall.delete" in audit_actions(app)


# --- users and groups --------------------------------------------------------------------


def test_users_create_login_disable_password(admin: Admin, client: FlaskClient,
                                             room: Room, app: Flask) -> None:
    ok(admin.post("/users", json={"name": "ops2", "password": "ops2-pass",
                                  "groups": ["operators"], "lang": "en"}), 201)
    user = ok(admin.get("/users/ops2"))
    assert {k: user[k] for k in ("role", "enabled", "lang", "groups", "logged_in_at")} == {
        "role": "operator", "enabled": True, "lang": "en", "groups": ["operators"],
        "logged_in_at": []}
    assert room.login(client, "5002", "ops2", "ops2-pass")["result"] == "NETWORK_OK"
    assert ok(admin.get("/users/ops2"))["logged_in_at"] == ["5002", "5003"]
    assert room.act(client, "5002", "connect", "1")["result"] == "CONNECTED"
    # Disabling ends the seat session and takes the picture away.
    ok(admin.patch("/users/ops2", json={"enabled": False}))
    w = watch(client, room, "5002")
    assert (w["session"], w["routing"][0]["source"]) == (None, None)
    assert room.login(client, "5002", "ops2", "ops2-pass")["result"] == "ACCOUNT_DISABLED"
    ok(admin.patch("/users/ops2", json={"enabled": True}))
    ok(admin.post("/users/ops2/password", json={"password": "new-pass-2"}))
    assert room.login(client, "5002", "ops2", "new-pass-2")["result"] == "NETWORK_OK"
    error(admin.post("/users", json={"name": "ops2", "password": "xxxxxxx"}), 409, "CONFLICT")
    ok(admin.delete("/users/ops2"))
    assert watch(client, room, "5002")["session"] is None
    error(admin.get("/users/ops2"), 404, "NOT_FOUND")
    actions = audit_actions(app)
    for action in ("user.create", "user.update", "set_password", "user.delete"):
        assert action in actions
    with db_of(app).session() as s:
        detail = s.query(m.AuditEntry).filter_by(action="user.create").one().detail
        assert "password" not in detail


def test_an_admin_cannot_lock_themselves_out(admin: Admin) -> None:
    assert error(admin.patch("/users/admin", json={"role": "operator"}), 400,
                 "VALIDATION") == "you cannot take the admin role from yourself"
    assert error(admin.patch("/users/admin", json={"enabled": False}), 400,
                 "VALIDATION") == "you cannot disable yourself"
    assert error(admin.delete("/users/admin"), 400, "VALIDATION") == "you cannot delete yourself"
    assert ok(admin.get("/users/admin"))["role"] == "admin"


def test_groups_and_grants_change_what_operators_may_do(
    admin: Admin, client: FlaskClient, room: Room
) -> None:
    room.login(client, "5001", "guest")
    assert room.act(client, "5001", "connect", "2")["result"] == "OUT_OF_SCOPE"
    ok(admin.post("/groups", json={"name": "night", "members": ["guest"]}), 201)
    ok(admin.post("/device-groups", json={"name": "dual", "devices": ["0002"]}), 201)
    added = ok(admin.post("/grants", json={"group": "night", "scope": "view",
                                           "device_groups": ["dual"]}), 201)["grants"]
    assert [(g["group"], g["scope"], g["device_group"]) for g in added] == [
        ("night", "view", "dual")]
    assert room.act(client, "5001", "connect", "2")["result"] == "CONNECTED"
    # Revoking drops what the logged-in user may no longer see.
    ok(admin.delete(f"/grants/{added[0]['id']}"))
    assert watch(client, room, "5001")["routing"][0]["source"] is None
    assert room.act(client, "5001", "connect", "2")["result"] == "OUT_OF_SCOPE"
    # Ranges become one grant per device; the same grant twice adds nothing.
    rows = ok(admin.post("/grants", json={"user": "guest", "scope": "view",
                                          "devices": ["0001-0003"]}), 201)["grants"]
    assert [g["device"] for g in rows] == ["0002", "0003"]          # 0001 was granted already
    assert error(admin.post("/grants", json={"user": "guest", "scope": "view",
                                             "devices": ["0002"]}), 409, "CONFLICT") == (
        "already granted: nothing new")
    assert {g["device"] for g in ok(admin.get("/grants?user=guest&scope=view"))["grants"]} == {
        "0001", "0002", "0003"}
    ok(admin.patch("/groups/night", json={"members": []}))
    assert ok(admin.get("/groups/night"))["members"] == []
    assert error(admin.patch("/groups/night", json={"members": ["nobody"]}), 400,
                 "VALIDATION") == "members: no user 'nobody'"
    ok(admin.patch("/device-groups/dual", json={"devices": ["0001-0003"]}))
    assert ok(admin.get("/device-groups/dual"))["devices"] == ["0001-0003"]
    ok(admin.delete("/device-groups/dual"))
    ok(admin.delete("/groups/night"))
    assert [g["name"] for g in ok(admin.get("/groups"))["groups"]] == ["operators"]


# --- hotkeys, settings -------------------------------------------------------------------


def test_hotkeys(admin: Admin, client: FlaskClient, room: Room) -> None:
    assert ok(admin.put("/hotkeys/B2", json={"targets": ["0002"]}), 201) == {
        "key": "B2", "targets": ["0002"]}
    assert ok(admin.put("/hotkeys/b2", json={"targets": ["0003", "0001"]}), 200) == {
        "key": "b2", "targets": ["0003", "0001"]}
    assert ok(admin.get("/hotkeys/B2"))["targets"] == ["0003", "0001"]
    room.login(client, "5004", "hxfj")
    assert room.act(client, "5004", "connect", "B2")["result"] == "NO_VIDEO"   # 0003 first
    ok(admin.delete("/hotkeys/B2"))
    assert room.act(client, "5004", "connect", "b2")["result"] == "UNKNOWN_TARGET"
    error(admin.delete("/hotkeys/B2"), 404, "NOT_FOUND")


def test_settings_reach_every_watch(admin: Admin, client: FlaskClient, room: Room) -> None:
    before = watch(client, room, "5001")
    settings = ok(admin.patch("/settings", json={"lang": "en", "idle_logout_s": 300}))
    assert (settings["lang"], settings["idle_logout_s"], settings["chord_window_ms"]) == (
        "en", 300, 600)
    after = watch(client, room, "5001")
    assert after["generation"] > before["generation"]
    assert after["settings"]["lang"] == "en" and after["settings"]["idle_logout_s"] == 300
    assert ok(admin.get("/settings")) == settings


# --- routing -----------------------------------------------------------------------------


def test_admin_routing_actions(admin: Admin, client: FlaskClient, room: Room,
                               app: Flask) -> None:
    connected = ok(admin.post("/routing/5004/connect", json={"input": "2"}))
    assert connected["result"] == "CONNECTED" and connected["text"]["zh_CN"] == "连接成功"
    rows = {r["rx"]: r for r in ok(admin.get("/routing"))["routing"]}
    # Nobody is logged in at 5004: the admin's switch is a push (picture only for whoever
    # logs in there later), as docs/PERMISSIONS.md "Admin routing" says.
    assert rows["5004"]["heads"] == [
        {"head": 1, "source": "0002:1", "set_by": "admin", "pushed": True},
        {"head": 2, "source": "0002:2", "set_by": "admin", "pushed": True}]
    assert ok(admin.post("/routing/5004/connect", json={"input": "4"}))["result"] == "OFFLINE"
    pushed = ok(admin.post("/routing/5004/push", json={"input": "1,5"}))
    assert pushed["result"] == "PUSH_PARTIAL"
    assert [(t["id"], t["result"]) for t in pushed["targets"]] == [
        ("5001", "PUSHED"), ("5005", "OFFLINE")]
    assert watch(client, room, "5001")["routing"][0]["source"] == "0002:1"
    ok(admin.post("/routing/5004/disconnect"))
    assert [h["source"] for h in watch(client, room, "5004")["routing"]] == [None, None]
    error(admin.post("/routing/0001/connect", json={"input": "1"}), 404, "NOT_FOUND")
    error(admin.post("/routing/5004/teleport", json={"input": "1"}), 404, "NOT_FOUND")
    with db_of(app).session() as s:
        entries = s.query(m.AuditEntry).filter(m.AuditEntry.action.like("admin_%")).all()
        assert [(e.action, e.device, e.result) for e in entries] == [
            ("admin_connect", "5004", "CONNECTED"), ("admin_connect", "5004", "OFFLINE"),
            ("admin_push", "5004", "PUSH_PARTIAL"), ("admin_disconnect", "5004", "DISCONNECTED")]


# --- audit -------------------------------------------------------------------------------


def test_audit_queries_and_csv(admin: Admin, client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    for typed in ("1", "2", "=cmd|' /C calc'!A0"):
        room.act(client, "5001", "connect", typed)
    everything = ok(admin.get("/audit"))
    assert everything["total"] == len(everything["entries"]) >= 5
    mine = ok(admin.get("/audit?user=hxfj&action=connect"))
    assert [e["target"] for e in mine["entries"]] == ["=cmd|' /C calc'!A0", "2", "1"]
    page = ok(admin.get("/audit?user=hxfj&action=connect&limit=1&offset=1"))
    assert (page["total"], [e["target"] for e in page["entries"]]) == (3, ["2"])
    assert ok(admin.get("/audit?device=5001&action=login"))["total"] == 1
    first = mine["entries"][-1]["at"]
    since = {"user": "hxfj", "action": "connect", "since": first}
    assert ok(admin.get("/audit", query_string=since))["total"] == 3
    assert ok(admin.get("/audit", query_string={**since, "until": first}))["total"] == 0
    assert ok(admin.get("/audit?user=hxfj&until=2000-01-01T00:00:00Z"))["total"] == 0
    assert ok(admin.get("/audit?since=2999-01-01"))["entries"] == []
    assert error(admin.get("/audit?since=yesterday"), 400, "VALIDATION").startswith(
        "query parameter since must be an ISO 8601 time")
    error(admin.get("/audit?limit=0"), 400, "VALIDATION")
    error(admin.get("/audit?who=x"), 400, "UNKNOWN_FIELD")
    resp = admin.get("/audit.csv?user=hxfj&action=connect")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    text = resp.get_data(as_text=True)
    assert text.startswith("\ufeffid,at,actor,seat,device,action,target,result,detail\r\n")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r["target"] for r in rows] == ["1", "2", "'=cmd|' /C calc'!A0"]   # oldest first
    assert rows[0]["result"] == "CONNECTED" and rows[0]["device"] == "5001"


# --- whole configuration -----------------------------------------------------------------


def test_config_export_import_round_trip(admin: Admin, app: Flask) -> None:
    resp = admin.get("/config")
    assert resp.status_code == 200 and resp.mimetype == "application/yaml"
    exported = resp.get_data(as_text=True)
    assert "$argon2id$" in exported and "123456" not in exported
    as_json = ok(admin.get("/config?format=json"))
    assert [u["name"] for u in as_json["users"]] == ["admin", "guest", "hxfj", "viewer"]
    room_text = (EXAMPLES / "control-room.yaml").read_text()
    result = ok(admin.post("/config?mode=replace", data=room_text,
                           content_type="application/yaml"))
    assert result["mode"] == "replace" and result["counts"]["tx"] == 12
    assert ok(admin.get("/devices/0006"))["name"] == "Radio-Console"
    error(admin.get("/devices/5013"), 404, "NOT_FOUND")
    ok(admin.post("/config?mode=replace", data=exported, content_type="application/yaml"))
    assert admin.get("/config").get_data(as_text=True) == exported
    assert audit_actions(app).count("import") == 2


def test_config_import_refusals(admin: Admin) -> None:
    before = admin.get("/config").get_data(as_text=True)
    message = error(admin.post("/config", data="tx: [{id: '0001', heads: 9}]\nfoo: 1\n",
                               content_type="application/yaml"), 400, "VALIDATION")
    assert message == ("foo: unknown key (known: tx, rx, seats, walls, user_groups, "
                       "device_groups, users, grants, hotkeys, settings); "
                       "tx[0].heads: 9 is not in 1..4")
    assert error(admin.post("/config", data="a: [", content_type="application/yaml"),
                 400, "VALIDATION").startswith("body: line 1, column 5:")
    assert error(admin.post("/config?mode=replace", data="tx: [{id: '0001'}]",
                            content_type="application/yaml"), 409, "CONFLICT") == (
        "no enabled admin would remain; keep at least one")
    assert error(admin.post("/config?mode=swap", data="{}"), 400, "VALIDATION").startswith(
        "query parameter mode must be one of merge, replace")
    assert admin.get("/config").get_data(as_text=True) == before


def test_config_import_takes_more_than_the_api_body_limit(admin: Admin) -> None:
    padding = "# " + "x" * 1000 + "\n"
    text = padding * 100 + "hotkeys: {BIG: ['0001']}\n"            # ~100 KiB
    ok(admin.post("/config", data=text, content_type="application/yaml"))
    assert ok(admin.get("/hotkeys/big"))["targets"] == ["0001"]


# --- the OpenAPI document ----------------------------------------------------------------


def test_every_admin_route_is_in_the_openapi_document(app: Flask, client: FlaskClient) -> None:
    doc = ok(client.get("/api/v1/openapi.json"))
    documented = {(path, method) for path, ops in doc["paths"].items()
                  for method in ops if method != "parameters"}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(A) or rule.rule == f"{A}/token":
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    refs = {v for v in _walk(doc["paths"]) if isinstance(v, str) and v.startswith("#/")}
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(doc["components"]["schemas"])


def _walk(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [x for v in node.values() for x in _walk(v)]
    if isinstance(node, list):
        return [x for v in node for x in _walk(v)]
    return [node]
