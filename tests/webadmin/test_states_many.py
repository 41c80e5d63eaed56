"""POST /api/v1/device/states: the heartbeats of many devices of one process in one request.

What a device host notices: each entry answers what POST /device/state answers its device
and has the same effect (checked against a twin server that gets the same reports one by
one), refusals of single devices next to applied ones, 400/413 for bad envelopes with
nothing applied, and that batch heartbeats keep devices online and seats alive."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update

from tests.webadmin.conftest import RX, TX, Room, db_of, device_auth, secret_of, seed_room
from tests.webadmin.test_api_admin import Admin, token
from tests.webadmin.test_durability import Server, data_dir  # noqa: F401 - fixture
from tests.webadmin.test_idle import age, check, set_idle
from tests.webadmin.test_openapi import Checker
from webadmin import models as m
from webadmin.api_device import WatchMiddleware
from webadmin.api_device_batch import MAX_BATCH
from webadmin.app import create_app

S = "/api/v1/device/states"
SQLITE_SYNCHRONOUS = "normal"  # the twin apps commit a lot; none of it must survive a crash


def serial(device: str) -> str:
    return f"SIM-{'TX' if device < '5000' else 'RX'}-{device}"


def entry(device: str, state: Any, secret: str | None = None) -> dict[str, Any]:
    return {"serial": serial(device), "secret": secret or secret_of(serial(device)),
            "state": state}


def rx_state(heads: int = 1, source: str | None = None, *, online: bool = True,
             network_up: bool = True) -> dict[str, Any]:
    return {"online": online, "network_up": network_up,
            "heads": [{"head": h, "source": source if h == 1 else None, "video": True}
                      for h in range(1, heads + 1)]}


def tx_state(heads: int = 1, *, video: bool = True, online: bool = True,
             stream_ok: bool = True) -> dict[str, Any]:
    return {"online": online, "stream_ok": stream_ok,
            "heads": [{"head": h, "video": video} for h in range(1, heads + 1)]}


def stored_state(device: str) -> dict[str, Any]:
    """The state each seeded device reports when nothing happened to it."""
    if device < "5000":
        _name, _heads, online, video, stream = TX[device]
        return {"online": online, "stream_ok": stream,
                "heads": [{"head": i + 1, "video": v} for i, v in enumerate(video)]}
    return rx_state(RX[device][1], online=RX[device][2])


def single(client: FlaskClient, room: Room, device: str, state: Any) -> Any:
    return client.post("/api/v1/device/state", headers=room.headers(device), json=state)


def batch(client: FlaskClient, entries: list[dict[str, Any]]) -> Any:
    return client.post(S, json={"devices": entries})


def answers(resp: Any) -> list[tuple[str, Any]]:
    """(serial, {"generation": N} or the error) per entry, in the answer's order."""
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert list(body) == ["answers"]
    out = []
    for a in body["answers"]:
        assert set(a) in ({"serial", "generation"}, {"serial", "error"}), a
        out.append((a["serial"], {"generation": a["generation"]} if "generation" in a
                    else a["error"]))
    return out


def single_answer(resp: Any) -> Any:
    """What a single post answered, as a batch entry would hold it."""
    body = resp.get_json()
    return body if resp.status_code == 200 else body["error"]


def effects(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """What anybody can see of the devices: the admin's device list (online as the server
    decides it), the stored actual state, the generations, the audit log."""
    rows = Admin(client, token(client)).get("/devices").get_json()["devices"]
    with db_of(app).session() as s:
        devs = {d.id: (d.online, d.network_up, d.stream_ok, d.reported_heads, d.generation,
                       d.last_seen is None) for d in s.scalars(select(m.Device))}
        audit = [(a.actor, a.action, a.result, a.device)
                 for a in s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.pk))
                 if a.action != "token"]
    return {"list": sorted((r["id"], r["online"]) for r in rows), "devices": devs,
            "audit": audit}


def device_version(app: Flask) -> int:
    """The cache counter a change of actual state moves (once per commit)."""
    with db_of(app).session() as s:
        state = s.get(m.ServerState, 1)
        assert state is not None
        return int(state.device_version)


@pytest.fixture
def twin(server_config: dict[str, Any], _sqlite_template: Path,
         tmp_path: Path) -> Iterator[tuple[Flask, Room]]:
    """A second server with the same seeded room, which gets the reports one by one."""
    data = tmp_path / "twin"
    shutil.copytree(_sqlite_template, data)
    application = create_app({**server_config, "data_dir": str(data),
                              "database_url": f"sqlite:///{data / 'kvm.db'}",
                              "sqlite_synchronous": "normal"})
    application.config["TESTING"] = True
    yield application, seed_room(application)
    application.extensions["kvm"].db.dispose()


def make_silent(app: Flask, room: Room, seconds: float, *devices: str) -> None:
    then = m.utcnow() - dt.timedelta(seconds=seconds)
    with db_of(app).begin() as s:
        s.execute(update(m.Device).where(m.Device.pk.in_([room.devices[d] for d in devices]))
                  .values(last_seen=then))


# --- answers and effects -----------------------------------------------------------------


def test_heartbeats_answer_each_device_its_generation(client: FlaskClient, room: Room) -> None:
    devices = ["5002", "0001", "5004", "0002", "5011"]
    singles = {d: single_answer(single(client, room, d, stored_state(d))) for d in devices}
    got = answers(batch(client, [entry(d, stored_state(d)) for d in devices]))
    assert got == [(serial(d), singles[d]) for d in devices]   # the request's order
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    room.act(client, "5001", "push", "ops")                   # moves 5002 and 5003
    got = dict(answers(batch(client, [entry(d, stored_state(d)) for d in devices])))
    assert got[serial("5002")]["generation"] > singles["5002"]["generation"]
    for d in devices:
        assert got[serial(d)] == single_answer(single(client, room, d, stored_state(d)))


def test_changes_have_the_effect_of_single_reports(app: Flask, client: FlaskClient, room: Room,
                                                  twin: tuple[Flask, Room]) -> None:
    twin_app, twin_room = twin
    twin_client = twin_app.test_client()
    for c, r in ((client, room), (twin_client, twin_room)):
        r.login(c, "5001", "hxfj")
        r.act(c, "5001", "connect", "2")
        assert single(c, r, "5003", stored_state("5003")).status_code == 200
    reports = [
        ("0001", tx_state(video=False)),                     # Tx video off
        ("5004", {**rx_state(2), "heads": [{"head": 1, "source": "0002:1"},
                                           {"head": 2, "source": "0002:2"}]}),  # Rx source
        ("5011", rx_state(online=False)),                    # goes offline
        ("0005", tx_state(stream_ok=True)),                  # stream fault repaired
        ("5002", rx_state(network_up=False)),                # network down
        ("5003", stored_state("5003")),                      # unchanged
        ("0002", stored_state("0002")),                      # unchanged
    ]
    before, version = effects(app, client), device_version(app)
    got = answers(batch(client, [entry(d, st) for d, st in reports]))
    singles = [(serial(d), single_answer(single(twin_client, twin_room, d, st)))
               for d, st in reports]
    assert got == singles
    after = effects(app, client)
    assert after == effects(twin_app, twin_client)
    assert device_version(app) == version + 1     # one commit for the whole batch
    changed = {d for d in after["devices"] if after["devices"][d] != before["devices"][d]}
    assert changed == {"0001", "5004", "5011", "0005", "5002"}
    assert ("5011", False) in after["list"] and ("5011", True) in before["list"]
    assert after["devices"]["0001"][3] == [{"head": 1, "video": False}]
    # What an operator sees: 5002's network is down (red), 0005's stream works again.
    colours = {r["id"]: r["colour"] for r in client.get(
        "/api/v1/seat/devices?mode=push", headers=room.headers("5001")).get_json()["rows"]}
    assert colours["5002"] == "red"
    assert room.act(client, "5001", "connect", "5")["result"] == "CONNECTED"


def test_a_silent_device_goes_offline_and_a_batch_heartbeat_brings_it_back(
        app: Flask, client: FlaskClient, room: Room, twin: tuple[Flask, Room]) -> None:
    twin_app, twin_room = twin
    twin_client = twin_app.test_client()
    timeout = app.config["KVM_CONFIG"].device_timeout_s
    for a, c, r in ((app, client, room), (twin_app, twin_client, twin_room)):
        r.login(c, "5001", "hxfj")
        make_silent(a, r, 2 * timeout, "0001", "5002")
        assert r.act(c, "5001", "connect", "1")["result"] == "OFFLINE"
    before = effects(app, client)
    assert ("0001", False) in before["list"] and ("5002", False) in before["list"]
    reports = [("0001", stored_state("0001")), ("5002", stored_state("5002")),
               ("5003", stored_state("5003"))]
    got = answers(batch(client, [entry(d, st) for d, st in reports]))
    assert got == [(serial(d), single_answer(single(twin_client, twin_room, d, st)))
                   for d, st in reports]
    after = effects(app, client)
    assert after == effects(twin_app, twin_client)
    assert ("0001", True) in after["list"] and ("5002", True) in after["list"]
    assert room.act(client, "5001", "connect", "1")["result"] == "CONNECTED"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(
    st.sampled_from(["0001", "0002", "5002", "5004", "5011"]),
    st.booleans(), st.booleans(), st.booleans(), st.sampled_from([None, "0001:1", "0002:2"]),
    st.booleans()), min_size=1, max_size=6, unique_by=lambda op: op[0]))
def test_any_batch_does_what_the_same_single_reports_do(
        app: Flask, client: FlaskClient, room: Room, twin: tuple[Flask, Room],
        ops: list[tuple[str, bool, bool, bool, str | None, bool]]) -> None:
    """Both servers carry on from the previous example: they got the same reports."""
    twin_app, twin_room = twin
    twin_client = twin_app.test_client()
    reports = []
    for device, online, flag, video, source, silent in ops:
        if silent:   # not heard from for longer than device_timeout
            timeout = app.config["KVM_CONFIG"].device_timeout_s
            make_silent(app, room, 2 * timeout, device)
            make_silent(twin_app, twin_room, 2 * timeout, device)
        heads = (TX if device < "5000" else RX)[device][1]
        state = (tx_state(heads, video=video, online=online, stream_ok=flag) if device < "5000"
                 else rx_state(heads, source, online=online, network_up=flag))
        reports.append((device, state))
    got = answers(batch(client, [entry(d, st) for d, st in reports]))
    assert got == [(serial(d), single_answer(single(twin_client, twin_room, d, st)))
                   for d, st in reports]
    assert effects(app, client) == effects(twin_app, twin_client)


# --- refusals of single devices ------------------------------------------------------------


def test_refused_devices_next_to_applied_ones(app: Flask, client: FlaskClient,
                                             room: Room) -> None:
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5003"])
        assert dev is not None
        dev.adoption, dev.id = "pending", None
    bad_states = [{"online": "yes"}, {**rx_state(), "stream_ok": True}, {},
                  {"online": True, "heads": [{"head": 1}, {"head": 1}]}]
    singles = [single_answer(single(client, room, "5001", st)) for st in bad_states]
    body = [
        entry("5002", rx_state(network_up=False)),            # applied
        entry("5011", rx_state(), secret="ab" * 32),          # wrong secret
        entry("5012", rx_state(), secret="not hex"),          # malformed secret
        {"serial": "SIM-RX-9999", "secret": "cd" * 32, "state": rx_state()},  # unknown
        entry("5003", rx_state()),                            # pending
        *[entry("5001", st) for st in bad_states[:1]],
        entry("5013", bad_states[1]), entry("5014", bad_states[2]),
        entry("5004", bad_states[3]),
        entry("0001", tx_state(video=False)),                 # applied
    ]
    got = answers(batch(client, body))
    assert [s for s, _ in got] == [e["serial"] for e in body]
    codes = {s: a.get("code") for s, a in got}
    wrong = {"code": "UNAUTHORIZED", "message": "unknown device or wrong secret"}
    assert dict(got)[serial("5011")] == dict(got)[serial("5012")] == wrong
    assert dict(got)["SIM-RX-9999"] == wrong
    assert dict(got)[serial("5003")] == {
        "code": "PENDING", "message": "this device waits for an admin to adopt it"}
    # A bad state gets exactly the error POST /device/state gives it.
    assert [dict(got)[serial(d)] for d in ("5001", "5013", "5014", "5004")] == singles
    assert codes[serial("5002")] is None and codes[serial("0001")] is None
    rows = {r["id"]: r for r in Admin(client, token(client)).get("/devices").get_json()
            ["devices"]}
    with db_of(app).session() as s:
        got_state = {d: s.get(m.Device, room.devices[d]) for d in ("5002", "0001", "5011")}
        assert got_state["5002"].network_up is False                  # type: ignore[union-attr]
        assert got_state["0001"].reported_heads == [{"head": 1, "video": False}]  # type: ignore[union-attr]
        assert got_state["5011"].reported_heads == []                 # type: ignore[union-attr]
    assert rows["5011"]["online"] is True


# --- bad envelopes -------------------------------------------------------------------------


def _many(n: int) -> list[dict[str, Any]]:
    return [entry("5002", rx_state(network_up=False))] + [
        {"serial": f"SIM-RX-{9000 + i}", "secret": "ab" * 32, "state": rx_state()}
        for i in range(n - 1)]


BAD_BODIES: list[tuple[Any, int, str, str]] = [
    ({"devices": _many(MAX_BATCH + 1)}, 400, "VALIDATION", "devices: has more than 256"),
    ({"devices": []}, 400, "VALIDATION", "devices: must list 1-256"),
    ({}, 400, "VALIDATION", "devices: is required"),
    ({"devices": [entry("5002", rx_state(network_up=False)), entry("5002", rx_state())]},
     400, "VALIDATION", "devices[1].serial: 'SIM-RX-5002' is listed twice"),
    ({"devices": [entry("5002", rx_state(network_up=False))], "timeout": 5},
     400, "UNKNOWN_FIELD", "timeout"),
    ({"devices": [{**entry("5002", rx_state(network_up=False)), "generation": 3}]},
     400, "UNKNOWN_FIELD", "devices[0].generation"),
    ({"devices": [entry("5002", rx_state(network_up=False)),
                  {"serial": serial("5003"), "secret": secret_of(serial("5003"))}]},
     400, "VALIDATION", "devices[1].state: is required"),
    ({"devices": [entry("5002", rx_state(network_up=False)), entry("5003", [rx_state()])]},
     400, "VALIDATION", "devices[1].state: must be an object"),
    ({"devices": [entry("5002", rx_state(network_up=False)),
                  {**entry("5003", rx_state()), "serial": 5003}]},
     400, "VALIDATION", "devices[1].serial: must be a string"),
    ({"devices": [entry("5002", rx_state(network_up=False)),
                  {**entry("5003", rx_state()), "serial": "S" * 65}]},
     400, "VALIDATION", "devices[1].serial: longer than 64"),
    ({"devices": [entry("5002", rx_state(network_up=False)),
                  entry("5003", rx_state(), secret="a" * 300)]},
     400, "VALIDATION", "devices[1].secret: longer than 256"),
    ({"devices": [entry("5002", rx_state(network_up=False)),
                  {**entry("5003", rx_state()), "secret": None}]},
     400, "VALIDATION", "devices[1].secret: must be a string"),
    ({"devices": [entry("5002", rx_state(network_up=False)), "SIM-RX-5003"]},
     400, "VALIDATION", "devices[1]: must be an object"),
    ({"devices": {"serial": "SIM-RX-5002"}}, 400, "VALIDATION", "devices: must be a list"),
    ([entry("5002", rx_state(network_up=False))], 400, "VALIDATION", "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "status", "code", "names"), BAD_BODIES)
def test_bad_envelopes_apply_nothing(app: Flask, client: FlaskClient, room: Room, body: Any,
                                     status: int, code: str, names: str) -> None:
    before = effects(app, client)
    resp = client.post(S, json=body)
    assert resp.status_code == status
    error = resp.get_json()["error"]
    assert error["code"] == code and names in error["message"]
    assert effects(app, client) == before


@pytest.mark.parametrize(("raw", "code"), [(b"{not json", "BAD_JSON"), (b"", "BAD_JSON"),
                                           (b"\xff\xfe", "BAD_JSON")])
def test_bodies_that_are_not_json(client: FlaskClient, room: Room, raw: bytes,
                                  code: str) -> None:
    resp = client.post(S, data=raw, content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == code


def test_body_limit_is_256_kib_on_this_path_only(app: Flask, client: FlaskClient,
                                                 room: Room) -> None:
    full = {"devices": _many(MAX_BATCH)}
    for e in full["devices"][1:]:   # 256 dual-head states with the longest serials
        e["serial"] = e["serial"].ljust(64, "x")
        e["state"] = rx_state(2, "0001:1")
    raw = json.dumps(full).encode()
    assert 64 * 1024 < len(raw) < 256 * 1024
    got = answers(client.post(S, data=raw, content_type="application/json"))
    assert len(got) == MAX_BATCH and "generation" in got[0][1]
    before = effects(app, client)
    full["devices"][0]["state"] = rx_state()
    big = json.dumps(full).encode()
    big = big[:-1] + b" " * (256 * 1024 + 1 - len(big)) + b"}"  # 256 KiB + 1 byte
    assert len(big) == 256 * 1024 + 1
    resp = client.post(S, data=big, content_type="application/json")
    assert resp.status_code == 413
    error = resp.get_json()["error"]
    assert error["code"] == "TOO_LARGE" and str(256 * 1024) in error["message"]
    assert effects(app, client) == before
    # Elsewhere the limit stays 64 KiB.
    resp = client.post("/api/v1/device/state", headers=room.headers("5002"),
                       data=b'{"online": true' + b" " * (64 * 1024) + b"}",
                       content_type="application/json")
    assert resp.status_code == 413 and str(64 * 1024) in resp.get_json()["error"]["message"]


def test_other_methods_are_refused(client: FlaskClient, room: Room) -> None:
    resp = client.get(S)
    assert resp.status_code == 405
    assert resp.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# --- idle logout, the unchanged fast path, the document ------------------------------------


def test_idle_logout_counts_batch_heartbeats(app: Flask, client: FlaskClient,
                                             room: Room) -> None:
    set_idle(app, 60)
    room.login(client, "5002", "hxfj")
    room.act(client, "5002", "connect", "1")
    room.login(client, "5001", "guest")
    age(app, room, 1000, "5001", "5002", "5003")
    # The controller of 5003 (seat-B) is alive and says so in its host's batch; 5001's is not.
    got = answers(batch(client, [entry("5003", stored_state("5003")),
                                 entry("5011", stored_state("5011"))]))
    assert all("generation" in a for _, a in got)
    assert check(app) == ["5001"]
    assert check(app, now=m.utcnow() + dt.timedelta(seconds=30)) == []
    assert check(app, now=m.utcnow() + dt.timedelta(seconds=61)) == ["5002"]


def test_unchanged_heartbeats_read_once_and_write_nothing(app: Flask, client: FlaskClient,
                                                         room: Room) -> None:
    devices = [*TX, *RX]
    batch(client, [entry(d, stored_state(d)) for d in devices])   # last_seen fresh for all
    before, version = effects(app, client), device_version(app)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        statements.append(sql.split()[0].upper())

    engine = db_of(app).engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        got = answers(batch(client, [entry(d, stored_state(d)) for d in devices]))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [x for x in statements if x != "BEGIN"] == ["SELECT"]  # one query, no write
    assert got == [(serial(d), {"generation": before["devices"][d][4]}) for d in devices]
    assert effects(app, client) == before and device_version(app) == version


def test_a_due_refresh_waits_for_the_last_seen_batch_when_it_runs(app: Flask,
                                                                 client: FlaskClient,
                                                                 room: Room) -> None:
    paths: WatchMiddleware = app.extensions["kvm_device_paths"]
    assert paths.last_seen is not None
    timeout = app.config["KVM_CONFIG"].device_timeout_s
    batch(client, [entry(d, stored_state(d)) for d in ("5002", "0001")])
    make_silent(app, room, timeout / 4 + 1, "5002", "0001")
    old, version = effects(app, client), device_version(app)
    paths.last_seen.start()
    try:
        got = answers(batch(client, [entry("5002", stored_state("5002")),
                                     entry("0001", stored_state("0001"))]))
    finally:
        paths.last_seen.stop()   # writes what is pending
    assert paths.last_seen.flushes >= 1     # the refreshes went there, not to a write now
    assert got == [(serial(d), {"generation": old["devices"][d][4]}) for d in ("5002", "0001")]
    with db_of(app).session() as s:
        for d in ("5002", "0001"):
            dev = s.get(m.Device, room.devices[d])
            assert dev is not None and dev.last_seen is not None
            assert m.utcnow() - dev.last_seen < dt.timedelta(seconds=timeout / 4)
    assert device_version(app) == version


def test_answers_conform_to_the_served_openapi_document(client: FlaskClient,
                                                        room: Room) -> None:
    checker = Checker(client)
    checker.check(S, "post", batch(client, [
        entry("5002", rx_state(network_up=False)), entry("5011", rx_state(), "ab" * 32),
        entry("5012", {"online": 1}), entry("5013", {**rx_state(), "x": 1})]))
    checker.check(S, "post", client.post(S, json={"devices": []}))
    checker.check(S, "post", client.post(S, data=b"x" * (256 * 1024 + 1),
                                         content_type="application/json"))
    assert {status for _, _, status in checker.seen} == {"200", "400", "413"}


@pytest.mark.slow
def test_batches_through_kvm_server(data_dir: tuple[Path, str],  # noqa: F811
                                    server_config: dict[str, Any]) -> None:
    """The real server takes a batch larger than 64 KiB and answers each device; a change
    in it is stored; a body past 256 KiB is refused without breaking the server."""
    server = Server(*data_dir)

    def generation(device: str) -> int:
        resp = requests.get(f"{server.url}/api/v1/device/watch?timeout=0", timeout=30,
                            headers=device_auth(serial(device)))
        assert resp.status_code == 200, resp.text
        return int(resp.json()["generation"])

    try:
        devices = [*TX, *RX]
        padding = [{"serial": f"SIM-RX-{9000 + i}".ljust(64, "x"), "secret": "ab" * 32,
                    "state": rx_state(2, "0001:1")} for i in range(MAX_BATCH - len(devices))]
        body = {"devices": [entry(d, stored_state(d)) for d in devices] + padding}
        body["devices"][0]["state"] = tx_state(video=False)        # 0001: video off
        assert len(json.dumps(body)) > 64 * 1024
        for _ in range(2):                                          # a change, then unchanged
            resp = requests.post(server.url + S, json=body, timeout=30)
            assert resp.status_code == 200, resp.text
            got = [(a["serial"], a.get("generation"), a.get("error", {}).get("code"))
                   for a in resp.json()["answers"]]
            assert got[:len(devices)] == [(serial(d), generation(d), None) for d in devices]
            assert {code for _, _, code in got[len(devices):]} == {"UNAUTHORIZED"}
        big = json.dumps(body).encode()
        big = big[:-1] + b" " * (256 * 1024 + 1 - len(big)) + b"}"
        resp = requests.post(server.url + S, data=big, timeout=30,
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "TOO_LARGE"
        assert server.post("/api/v1/device/state", "0001", tx_state())["generation"] >= 0
    finally:
        assert server.stop() == 0
    app = create_app(server_config)
    try:
        with db_of(app).session() as s:
            dev = s.scalars(select(m.Device).where(m.Device.id == "0001")).one()
            assert dev.reported_heads == [{"head": 1, "video": True}]   # the last report
    finally:
        app.extensions["kvm"].db.dispose()


def test_a_silent_device_is_online_at_once_while_the_last_seen_batch_runs(
        app: Flask, client: FlaskClient, room: Room) -> None:
    """Back from silence with nothing changed: ``last_seen`` is written with the report,
    not left to the running ``LastSeenBatch`` (the device would count as offline until it
    writes)."""
    paths: WatchMiddleware = app.extensions["kvm_device_paths"]
    assert paths.last_seen is not None
    paths.last_seen.period_s = 3600
    timeout = app.config["KVM_CONFIG"].device_timeout_s
    room.login(client, "5001", "hxfj")
    batch(client, [entry("0001", stored_state("0001"))])
    make_silent(app, room, 2 * timeout, "0001")
    assert room.act(client, "5001", "connect", "1")["result"] == "OFFLINE"
    paths.last_seen.start()
    try:
        batch(client, [entry("0001", stored_state("0001"))])
        assert room.act(client, "5001", "connect", "1")["result"] == "CONNECTED"
    finally:
        paths.last_seen.stop()
