"""Device side of the API: announce/adoption, credentials, state reports, watch."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.webadmin.conftest import Room, db_of, device_auth, secret_of
from webadmin import models as m
from webadmin.app import create_app


def announce(client: FlaskClient, serial: str, kind: str = "rx", secret: str | None = None,
             **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"serial": serial, "kind": kind, "heads": 1, "firmware": "RX-FW 2.4.1",
            "secret": secret or secret_of(serial), **extra}
    resp = client.post("/api/v1/device/announce", json=body)
    return resp.status_code, resp.get_json()


def adopt(app: Flask, serial: str, device_id: str, name: str) -> None:
    with db_of(app).begin() as s:
        dev = s.scalar(select(m.Device).where(m.Device.serial == serial))
        assert dev is not None
        dev.id, dev.name, dev.adoption = device_id, name, "adopted"


# --- announce and adoption ---------------------------------------------------------------

def test_new_device_waits_pending_until_adopted(app: Flask, client: FlaskClient) -> None:
    assert announce(client, "SIM-RX-5100") == (202, {"state": "pending"})
    assert announce(client, "SIM-RX-5100") == (202, {"state": "pending"})
    state = client.post("/api/v1/device/state", headers=device_auth("SIM-RX-5100"),
                        json={"online": True})
    assert state.status_code == 403
    assert state.get_json()["error"]["code"] == "PENDING"
    adopt(app, "SIM-RX-5100", "5100", "New desk")
    assert announce(client, "SIM-RX-5100") == (
        200, {"state": "adopted", "id": "5100", "name": "New desk", "heads": 1})
    state = client.post("/api/v1/device/state", headers=device_auth("SIM-RX-5100"),
                        json={"online": True})
    assert state.status_code == 200


def test_secret_is_stored_only_as_sha256(app: Flask, client: FlaskClient) -> None:
    announce(client, "SIM-TX-0100", kind="tx")
    with db_of(app).session() as s:
        dev = s.scalar(select(m.Device).where(m.Device.serial == "SIM-TX-0100"))
        assert dev is not None
        assert dev.credential_hash is not None
        assert secret_of("SIM-TX-0100") not in dev.credential_hash
        assert len(dev.credential_hash) == 64


def test_other_secret_for_bound_serial_conflicts(client: FlaskClient, room: Room) -> None:
    status, body = announce(client, "SIM-RX-5001", secret="ab" * 32)
    assert status == 409
    assert body["error"]["code"] == "CONFLICT"
    status, _ = announce(client, "SIM-RX-5001", kind="tx")
    assert status == 409


def test_preprovisioned_serial_binds_on_first_announce(app: Flask, client: FlaskClient) -> None:
    with db_of(app).begin() as s:
        s.add(m.Device(id="5200", kind="rx", name="Imported", serial="SIM-RX-5200",
                       adoption="adopted"))
    first = announce(client, "SIM-RX-5200")
    assert first == (200, {"state": "adopted", "id": "5200", "name": "Imported", "heads": 1})
    assert announce(client, "SIM-RX-5200", secret="cd" * 32)[0] == 409
    assert announce(client, "SIM-RX-5200")[0] == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"secret": "xyz"}, "secret"),
        ({"secret": "g" * 64}, "secret"),
        ({"serial": ""}, "serial"),
        ({"serial": "has space"}, "serial"),
        ({"kind": "router"}, "kind"),
        ({"heads": 5}, "heads"),
        ({"heads": "1"}, "heads"),
        ({"heads": True}, "heads"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_announce_validation(client: FlaskClient, change: dict[str, Any], field: str) -> None:
    body = {"serial": "SIM-RX-5300", "kind": "rx", "heads": 1, "secret": "a" * 64, **change}
    resp = client.post("/api/v1/device/announce", json=body)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] in {"VALIDATION", "UNKNOWN_FIELD"}
    assert field in error["message"]


# --- state reports -----------------------------------------------------------------------

def test_state_report_answers_generation_and_drives_colours(client: FlaskClient,
                                                            room: Room) -> None:
    room.login(client, "5001", "hxfj")
    resp = client.post("/api/v1/device/state", headers=room.headers("0001"),
                       json={"online": True, "stream_ok": True,
                             "heads": [{"head": 1, "video": False}]})
    assert resp.status_code == 200
    assert isinstance(resp.get_json()["generation"], int)
    assert room.act(client, "5001", "connect", "1")["result"] == "NO_VIDEO"
    client.post("/api/v1/device/state", headers=room.headers("0001"),
                json={"online": False, "heads": [{"head": 1, "video": True}]})
    assert room.act(client, "5001", "connect", "1")["result"] == "OFFLINE"
    client.post("/api/v1/device/state", headers=room.headers("0004"), json={"online": True})
    assert room.act(client, "5001", "connect", "4")["result"] == "CONNECTED"


def test_rx_network_down_shows_red(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    client.post("/api/v1/device/state", headers=room.headers("5002"),
                json={"online": True, "network_up": False,
                      "heads": [{"head": 1, "source": None, "video": False}]})
    resp = client.get("/api/v1/seat/devices?mode=push", headers=room.headers("5001"))
    row = next(r for r in resp.get_json()["rows"] if r["id"] == "5002")
    assert row["colour"] == "red"


def test_silent_device_goes_offline_after_timeout(client: FlaskClient, room: Room) -> None:
    room.login(client, "5001", "hxfj")
    with db_of(room.app).begin() as s:
        dev = s.get(m.Device, room.devices["0001"])
        assert dev is not None
        timeout = room.app.config["KVM_CONFIG"].device_timeout_s
        dev.last_seen = m.utcnow() - dt.timedelta(seconds=2 * timeout)
    assert room.act(client, "5001", "connect", "1")["result"] == "OFFLINE"
    client.post("/api/v1/device/state", headers=room.headers("0001"), json={"online": True})
    assert room.act(client, "5001", "connect", "1")["result"] == "CONNECTED"


@pytest.mark.parametrize(
    ("device", "body", "code"),
    [
        ("0001", {"online": True, "network_up": True}, "UNKNOWN_FIELD"),  # Rx-only field
        ("5001", {"online": True, "stream_ok": True}, "UNKNOWN_FIELD"),   # Tx-only field
        ("0001", {"online": True, "heads": [{"head": 1, "source": "0001:1"}]}, "UNKNOWN_FIELD"),
        ("5001", {"online": "yes"}, "VALIDATION"),
        ("5001", {}, "VALIDATION"),
        ("5001", {"online": True, "heads": [{"head": 9}]}, "VALIDATION"),
        ("5001", {"online": True, "heads": [{"head": 1}, {"head": 1}]}, "VALIDATION"),
        ("5001", {"online": True, "heads": [{"head": 1, "source": "1:1"}]}, "VALIDATION"),
        ("5001", {"online": True, "heads": [1]}, "VALIDATION"),
        ("5001", {"online": True, "heads": [{}] * 5}, "VALIDATION"),
    ],
)
def test_state_validation(client: FlaskClient, room: Room, device: str, body: dict[str, Any],
                          code: str) -> None:
    resp = client.post("/api/v1/device/state", headers=room.headers(device), json=body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == code


# --- watch -------------------------------------------------------------------------------

def get_watch(client: FlaskClient, room: Room, rx: str, query: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/device/watch?{query}", headers=room.headers(rx))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def test_watch_without_generation_returns_at_once(client: FlaskClient, room: Room) -> None:
    body = get_watch(client, room, "5001", "timeout=60")
    assert body["id"] == "5001" and body["name"] == "Desk 1"
    assert body["routing"] == [{"head": 1, "source": None, "set_by": "", "pushed": False}]
    assert body["settings"]["chord"] == "Shift+O Shift+O"
    assert body["seat"] == {"name": "5001", "screens": ["5001"]}
    tx = get_watch(client, room, "0002", "timeout=0")
    assert tx["routing"] == [] and tx["seat"] is None and tx["session"] is None


def test_a_wall_tiles_watch_says_its_login_screen_stays_hidden(
        app: Flask, client: FlaskClient, room: Room) -> None:
    assert get_watch(client, room, "5012", "timeout=0")["settings"]["login_hidden"] is True
    assert "login_hidden" not in get_watch(client, room, "5001", "timeout=0")["settings"]
    with db_of(app).begin() as s:
        s.delete(s.query(m.Wall).filter_by(name="wall-1").one())
    assert "login_hidden" not in get_watch(client, room, "5012", "timeout=0")["settings"]


def test_watch_returns_at_timeout_with_same_generation(client: FlaskClient, room: Room) -> None:
    gen = get_watch(client, room, "5001", "timeout=0")["generation"]
    start = time.monotonic()
    body = get_watch(client, room, "5001", f"generation={gen}&timeout=1")
    assert 0.9 <= time.monotonic() - start < 10
    assert body["generation"] == gen


def test_watch_returns_promptly_on_change(app: Flask, client: FlaskClient, room: Room) -> None:
    gen = get_watch(client, room, "5002", "timeout=0")["generation"]
    got: dict[str, Any] = {}

    def wait() -> None:
        start = time.monotonic()
        got["body"] = get_watch(app.test_client(), room, "5002", f"generation={gen}&timeout=30")
        got["took"] = time.monotonic() - start

    waiter = threading.Thread(target=wait)
    waiter.start()
    room.login(client, "5001", "hxfj")   # another seat: no change for 5002
    room.act(client, "5001", "connect", "1")
    assert waiter.is_alive()
    room.act(client, "5001", "push", "2")
    waiter.join(timeout=20)
    assert not waiter.is_alive()
    assert got["took"] < 10
    assert got["body"]["generation"] > gen
    assert got["body"]["routing"][0]["source"] == "0001:1"


def test_watch_answers_at_once_when_behind(client: FlaskClient, room: Room) -> None:
    gen = get_watch(client, room, "5001", "timeout=0")["generation"]
    room.login(client, "5001", "hxfj")
    body = get_watch(client, room, "5001", f"generation={gen}&timeout=60")
    assert body["generation"] > gen
    assert body["session"]["user"] == "hxfj"


@pytest.mark.parametrize("query", ["timeout=61", "timeout=-1", "timeout=abc", "generation=x",
                                   "generation=1&since=2", "timeout=1e3"])
def test_watch_query_validation(client: FlaskClient, room: Room, query: str) -> None:
    resp = client.get(f"/api/v1/device/watch?{query}", headers=room.headers("5001"))
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] in {"VALIDATION", "UNKNOWN_FIELD"}


def test_generation_survives_restart(server_config: dict[str, Any], room: Room,
                                     client: FlaskClient) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    gen = get_watch(client, room, "5001", "timeout=0")["generation"]
    assert gen >= 2
    restarted = create_app(server_config)
    try:
        again = restarted.test_client()
        body = get_watch(again, room, "5001", "timeout=0")
        assert body["generation"] == gen
        assert body["routing"][0]["source"] == "0001:1"
        assert body["session"]["user"] == "hxfj"
        room.act(again, "5001", "connect", "2")
        assert get_watch(again, room, "5001", "timeout=0")["generation"] > gen
    finally:
        restarted.extensions["kvm"].db.dispose()


# --- watch answers: built once, never stale, released outside the request ----------------


def watch_in_thread(app: Flask, room: Room, device: str, query: str) -> tuple[
        threading.Thread, dict[str, Any]]:
    got: dict[str, Any] = {}

    def run() -> None:
        resp = app.test_client().get(f"/api/v1/device/watch?{query}",
                                     headers=room.headers(device))
        got["status"], got["body"] = resp.status_code, resp.get_json()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, got


def wait_registered(app: Flask, device: str) -> None:
    """Bounded polling until a watch of `device` waits in the hub."""
    hub = app.extensions["kvm"].hub
    deadline = time.monotonic() + 10
    while device not in hub._waiters and time.monotonic() < deadline:
        time.sleep(0.01)
    assert device in hub._waiters


def test_watch_answer_is_built_once_per_generation(app: Flask, client: FlaskClient,
                                                   room: Room) -> None:
    hub = app.extensions["kvm"].hub
    first = client.get("/api/v1/device/watch?timeout=0", headers=room.headers("5002"))
    built = hub.answers_built
    again = client.get("/api/v1/device/watch?timeout=0", headers=room.headers("5002"))
    assert again.data == first.data
    assert hub.answers_built == built           # same generation, same state: reused
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    room.act(client, "5001", "push", "5002")
    changed = client.get("/api/v1/device/watch?timeout=0", headers=room.headers("5002"))
    assert hub.answers_built == built + 1       # new generation: a new answer
    body = changed.get_json()
    assert body["generation"] > first.get_json()["generation"]
    assert body["routing"][0]["source"] == "0001:1"


def test_two_watches_of_one_device_get_the_same_new_answer(app: Flask, client: FlaskClient,
                                                           room: Room) -> None:
    gen = get_watch(client, room, "5002", "timeout=0")["generation"]
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "2")
    watches = [watch_in_thread(app, room, "5003", "timeout=30&generation="
                               + str(get_watch(client, room, "5003", "timeout=0")["generation"]))
               for _ in range(2)]
    wait_registered(app, "5003")
    room.act(client, "5001", "push", "ops")     # seat-B: 5002 and 5003
    for thread, _ in watches:
        thread.join(timeout=20)
        assert not thread.is_alive()
    a, b = (got["body"] for _, got in watches)
    assert a == b and a["routing"][0]["source"] == "0002:1"
    assert get_watch(client, room, "5002", "timeout=0")["generation"] > gen


def test_watch_woken_without_a_generation_reads_the_database(app: Flask, client: FlaskClient,
                                                             room: Room) -> None:
    """An admin change (or another process) wakes watches without handing a generation:
    the watch reads the stored state, not the cache."""
    gen = get_watch(client, room, "5001", "timeout=0")["generation"]
    thread, got = watch_in_thread(app, room, "5001", f"generation={gen}&timeout=30")
    wait_registered(app, "5001")
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5001"])
        assert dev is not None
        dev.name = "Renamed desk"
        dev.generation = dev.generation + 1
    app.extensions["kvm"].hub.notify({"5001"})
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert got["status"] == 200
    assert got["body"]["generation"] == gen + 1 and got["body"]["name"] == "Renamed desk"


def test_watch_of_a_device_removed_while_waiting_is_refused(app: Flask, client: FlaskClient,
                                                            room: Room) -> None:
    gen = get_watch(client, room, "5005", "timeout=0")["generation"]
    thread, got = watch_in_thread(app, room, "5005", f"generation={gen}&timeout=30")
    wait_registered(app, "5005")
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5005"])
        assert dev is not None
        s.delete(dev)
    app.extensions["kvm"].hub.notify({"5005"})
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert got["status"] == 401
    assert got["body"]["error"]["code"] == "UNAUTHORIZED"


def test_waiting_watches_hold_no_database_connection(app: Flask, client: FlaskClient,
                                                     room: Room) -> None:
    gens = {rx: get_watch(client, room, rx, "timeout=0")["generation"]
            for rx in ("5011", "5012", "5013", "5014")}
    pool = db_of(app).engine.pool  # type: ignore[union-attr]
    watches = [watch_in_thread(app, room, rx, f"generation={g}&timeout=30")
               for rx, g in gens.items()]
    for rx in gens:
        wait_registered(app, rx)
    deadline = time.monotonic() + 10  # the views finish (release their sessions), then wait
    while pool.checkedout() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.checkedout() == 0
    assert all(thread.is_alive() for thread, _ in watches)
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    room.act(client, "5001", "push", "wall")
    for thread, got in watches:
        thread.join(timeout=20)
        assert not thread.is_alive()
        assert got["body"]["routing"][0]["source"] == "0001:1"
