"""POST /api/v1/device/watches: one long poll for many Rx of a controller host.

What a controller host notices: which devices are answered and when, that each answer is
exactly what GET /device/watch gives the device, refusals next to valid devices, 400s for
bad bodies, and that a waiting batch is answered when the server stops."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.webadmin.conftest import Room, db_of, secret_of
from tests.webadmin.test_api_admin import Admin, token
from tests.webadmin.test_durability import Server, data_dir  # noqa: F401 - fixture
from tests.webadmin.test_openapi import Checker
from tests.webadmin.test_watch_release import PUSH_TARGETS, _read_answer, pusher_ready
from webadmin import models as m
from webadmin.routing import WatchHub

W = "/api/v1/device/watches"


def serial(device: str) -> str:
    return f"SIM-{'TX' if device < '5000' else 'RX'}-{device}"


def entry(device: str, generation: int | None = None, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"serial": serial(device), "secret": secret or secret_of(serial(device))}
    if generation is not None:
        out["generation"] = generation
    return out


def watch_raw(client: FlaskClient, room: Room, device: str) -> bytes:
    resp = client.get("/api/v1/device/watch?timeout=0", headers=room.headers(device))
    assert resp.status_code == 200, resp.get_json()
    return resp.data


def gen_of(client: FlaskClient, room: Room, device: str) -> int:
    return int(json.loads(watch_raw(client, room, device))["generation"])


def answers(resp: Any) -> dict[str, Any]:
    """serial -> its entry's "watch" or "error" (and the order is the request's)."""
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert list(body) == ["answers"]
    return {a["serial"]: a.get("watch", a.get("error")) for a in body["answers"]}


def assert_same_bytes(raw: bytes, device: str, watch: bytes) -> None:
    """The batch's entry for `device` is GET /watch's body, byte for byte."""
    assert b'{"serial":"%s","watch":%s}' % (serial(device).encode(), watch) in raw


def batch_in_thread(app: Flask, body: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    got: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        resp = app.test_client().post(W, json=body)
        got["took"] = time.monotonic() - start
        got["resp"], got["raw"] = resp, resp.data

    thread = threading.Thread(target=run)
    thread.start()
    return thread, got


def wait_hooked(app: Flask, devices: list[str]) -> None:
    """Bounded polling until a batch waits on the waiters of every one of `devices`."""
    hub: WatchHub = app.extensions["kvm"].hub
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(d in hub._waiters and hub._waiters[d].wakers for d in devices):
            return
        time.sleep(0.01)
    raise AssertionError(f"no batch waits on {devices}")


def joined(thread: threading.Thread, got: dict[str, Any]) -> Any:
    thread.join(timeout=20)
    assert not thread.is_alive()
    return got["resp"]


# --- answers at once ---------------------------------------------------------------------


def test_timeout_zero_answers_every_device_with_its_watch_body(client: FlaskClient,
                                                               room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "2")
    devices = ["5001", "5004", "5002"]
    gens = {d: gen_of(client, room, d) for d in devices}
    resp = client.post(W, json={"timeout": 0,
                                "devices": [entry(d, gens[d]) for d in devices]})
    got = answers(resp)
    assert list(got) == [serial(d) for d in devices]   # every device, in the request's order
    for d in devices:
        assert_same_bytes(resp.data, d, watch_raw(client, room, d))
    assert got[serial("5001")]["routing"][0]["source"] == "0002:1"
    assert got[serial("5001")]["session"]["user"] == "hxfj"
    assert len(got[serial("5004")]["routing"]) == 2


def test_only_the_devices_behind_answer_at_once(client: FlaskClient, room: Room) -> None:
    gens = {d: gen_of(client, room, d) for d in ("5001", "5002", "5003")}
    room.login(client, "5001", "hxfj")                   # moves 5001 only
    start = time.monotonic()
    resp = client.post(W, json={"timeout": 30, "devices": [
        entry("5002", gens["5002"]), entry("5001", gens["5001"]), entry("5003", gens["5003"])]})
    assert time.monotonic() - start < 10
    got = answers(resp)
    assert list(got) == [serial("5001")]
    assert got[serial("5001")]["generation"] > gens["5001"]
    assert_same_bytes(resp.data, "5001", watch_raw(client, room, "5001"))
    # generation omitted = -1: that device is answered at once, the others are not.
    resp = client.post(W, json={"timeout": 30, "devices": [
        entry("5002", gens["5002"]), entry("5003")]})
    assert list(answers(resp)) == [serial("5003")]


# --- waiting -----------------------------------------------------------------------------


def test_push_wakes_the_batch_with_exactly_the_changed_devices(app: Flask, client: FlaskClient,
                                                               room: Room) -> None:
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    devices = ["5001", "5002", "5003", "5004", "5011"]
    gens = {d: gen_of(client, room, d) for d in devices}
    thread, got = batch_in_thread(app, {"timeout": 30,
                                        "devices": [entry(d, gens[d]) for d in devices]})
    wait_hooked(app, devices)
    pool = db_of(app).engine.pool  # type: ignore[union-attr]
    deadline = time.monotonic() + 10  # the view finishes (releases its session), then waits
    while pool.checkedout() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.checkedout() == 0 and thread.is_alive()
    room.act(client, "5001", "push", "ops")              # seat-B: 5002 and 5003
    resp = joined(thread, got)
    result = answers(resp)
    assert sorted(result) == [serial("5002"), serial("5003")]
    assert got["took"] < 15
    for d in ("5002", "5003"):
        assert result[serial(d)]["generation"] > gens[d]
        assert result[serial(d)]["routing"][0]["source"] == "0001:1"
        assert_same_bytes(got["raw"], d, watch_raw(client, room, d))
    assert not any(hub.wakers for hub in app.extensions["kvm"].hub._waiters.values())


def test_admin_change_wakes_the_batch(app: Flask, client: FlaskClient, room: Room) -> None:
    admin = Admin(client, token(client))
    devices = ["5001", "5011", "5012"]
    gens = {d: gen_of(client, room, d) for d in devices}
    thread, got = batch_in_thread(app, {"timeout": 30,
                                        "devices": [entry(d, gens[d]) for d in devices]})
    wait_hooked(app, devices)
    assert admin.patch("/devices/5011", json={"name": "Wall top left"}).status_code == 200
    result = answers(joined(thread, got))
    # An admin change wakes every watch (the room may have changed for all of them).
    moved = [d for d in devices if gen_of(client, room, d) > gens[d]]
    assert "5011" in moved and list(result) == [serial(d) for d in moved]
    assert result[serial("5011")]["name"] == "Wall top left"
    for d in moved:
        assert_same_bytes(got["raw"], d, watch_raw(client, room, d))


def test_a_change_from_another_process_is_read_from_the_database(
        app: Flask, client: FlaskClient, room: Room) -> None:
    """A wake-up without generations (another process, an admin script) reads the stored
    generations; a device removed meanwhile answers UNAUTHORIZED."""
    devices = ["5001", "5002", "5005"]
    gens = {d: gen_of(client, room, d) for d in devices}
    thread, got = batch_in_thread(app, {"timeout": 30,
                                        "devices": [entry(d, gens[d]) for d in devices]})
    wait_hooked(app, devices)
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5001"])
        assert dev is not None
        dev.name, dev.generation = "Renamed desk", dev.generation + 1
        gone = s.get(m.Device, room.devices["5005"])
        s.delete(gone)
    app.extensions["kvm"].hub.notify({"5002"})           # not the ones that changed
    result = answers(joined(thread, got))
    assert list(result) == [serial("5001"), serial("5005")]
    assert result[serial("5001")]["generation"] == gens["5001"] + 1
    assert result[serial("5001")]["name"] == "Renamed desk"
    assert result[serial("5005")] == {"code": "UNAUTHORIZED",
                                      "message": "this device was removed"}


def test_timeout_answers_no_device(client: FlaskClient, room: Room) -> None:
    gens = {d: gen_of(client, room, d) for d in ("5001", "5002")}
    start = time.monotonic()
    resp = client.post(W, json={"timeout": 1, "devices": [entry(d, g) for d, g in gens.items()]})
    assert 0.9 <= time.monotonic() - start < 10
    assert resp.status_code == 200 and resp.get_json() == {"answers": []}
    assert resp.data == b'{"answers":[]}'


def test_batch_waiting_while_the_server_stops_answers(app: Flask, client: FlaskClient,
                                                      room: Room) -> None:
    hub: WatchHub = app.extensions["kvm"].hub
    gens = {d: gen_of(client, room, d) for d in ("5001", "5002")}
    thread, got = batch_in_thread(app, {"timeout": 60,
                                        "devices": [entry(d, g) for d, g in gens.items()]})
    wait_hooked(app, list(gens))
    deadline = time.monotonic() + 10
    while not hub._active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hub._active == 1                      # notify_all waits for it
    start = time.monotonic()
    hub.notify_all(wait_s=20)
    assert time.monotonic() - start < 10 and hub._active == 0
    assert answers(joined(thread, got)) == {}
    assert got["took"] < 20


# --- refusals and validation -------------------------------------------------------------


def test_refused_devices_answer_at_once_next_to_the_valid_ones(app: Flask, client: FlaskClient,
                                                               room: Room) -> None:
    assert client.post("/api/v1/device/announce", json={
        "serial": "SIM-RX-5100", "kind": "rx", "secret": secret_of("SIM-RX-5100")},
    ).status_code == 202
    gens = {d: gen_of(client, room, d) for d in ("5001", "5002")}
    room.login(client, "5002", "hxfj")                   # 5002 is behind now
    body = {"timeout": 30, "devices": [
        entry("5001", gens["5001"]),                      # up to date: no entry
        {"serial": "SIM-RX-5100", "secret": secret_of("SIM-RX-5100")},
        entry("5003", secret="ab" * 32),
        {"serial": "NO-SUCH-1", "secret": "cd" * 32, "generation": 3},
        entry("5002", gens["5002"]),
        entry("0001"),                                    # a Tx
        entry("5004", secret="not hex at all"),
    ]}
    start = time.monotonic()
    resp = client.post(W, json=body)
    assert time.monotonic() - start < 10
    got = answers(resp)
    assert list(got) == ["SIM-RX-5100", serial("5003"), "NO-SUCH-1", serial("5002"),
                         serial("0001"), serial("5004")]
    assert got["SIM-RX-5100"]["code"] == "PENDING"
    for s in (serial("5003"), "NO-SUCH-1", serial("0001"), serial("5004")):
        assert got[s]["code"] == "UNAUTHORIZED", s
    assert got[serial("5002")]["session"]["user"] == "hxfj"
    assert_same_bytes(resp.data, "5002", watch_raw(client, room, "5002"))
    # With timeout 0 the valid ones are all answered next to the refusals.
    got = answers(client.post(W, json={**body, "timeout": 0}))
    assert got[serial("5001")]["generation"] == gens["5001"]
    assert got["SIM-RX-5100"]["code"] == "PENDING"


def _many(n: int) -> list[dict[str, Any]]:
    return [{"serial": f"S-{i}", "secret": "ab" * 32} for i in range(n)]


@pytest.mark.parametrize(("body", "code", "named"), [
    ({"devices": _many(257)}, "VALIDATION", "devices"),
    ({"devices": []}, "VALIDATION", "devices"),
    ({"timeout": 5}, "VALIDATION", "devices"),
    ({"devices": [entry("5001"), entry("5002"), entry("5001")]}, "VALIDATION",
     "devices[2].serial"),
    ({"devices": [entry("5001"), {**entry("5002"), "generation": "41"}]}, "VALIDATION",
     "devices[1].generation"),
    ({"devices": [{**entry("5001"), "generation": -2}]}, "VALIDATION", "devices[0].generation"),
    ({"devices": [{**entry("5001"), "generation": 2**62 + 1}]}, "VALIDATION",
     "devices[0].generation"),
    ({"devices": [{"secret": "ab" * 32}]}, "VALIDATION", "devices[0].serial"),
    ({"devices": [{"serial": 5001, "secret": "ab" * 32}]}, "VALIDATION", "devices[0].serial"),
    ({"devices": [{"serial": "S-1"}]}, "VALIDATION", "devices[0].secret"),
    ({"devices": ["SIM-RX-5001"]}, "VALIDATION", "devices[0]"),
    ({"devices": [entry("5001")], "timeout": 61}, "VALIDATION", "timeout"),
    ({"devices": [entry("5001")], "timeout": -1}, "VALIDATION", "timeout"),
    ({"devices": [entry("5001")], "timeout": True}, "VALIDATION", "timeout"),
    ({"devices": [entry("5001")], "since": 3}, "UNKNOWN_FIELD", "since"),
    ({"devices": [{**entry("5001"), "kind": "rx"}]}, "UNKNOWN_FIELD", "devices[0].kind"),
])
def test_bad_bodies_are_refused_and_change_nothing(app: Flask, client: FlaskClient, room: Room,
                                                   body: dict[str, Any], code: str,
                                                   named: str) -> None:
    gen = gen_of(client, room, "5001")
    hub: WatchHub = app.extensions["kvm"].hub
    waiting = dict(hub._waiters)
    resp = client.post(W, json=body)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == code and (
        error["message"].startswith(named + ":") if code == "VALIDATION"
        else error["message"].endswith(": " + named)), error
    assert hub._waiters == waiting and not any(w.wakers for w in waiting.values())
    assert gen_of(client, room, "5001") == gen


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"not json", 400, "BAD_JSON"),
    (b"[1, 2]", 400, "VALIDATION"),
    (b"", 400, "BAD_JSON"),
    (b'{"devices": [' + b",".join([b'{"serial": "S", "secret": "' + b"a" * 200 + b'"}'] * 400)
     + b"]}", 413, "TOO_LARGE"),
])
def test_bodies_that_are_not_json_objects(client: FlaskClient, room: Room, raw: bytes,
                                          status: int, code: str) -> None:
    resp = client.post(W, data=raw, content_type="application/json")
    assert resp.status_code == status
    assert resp.get_json()["error"]["code"] == code


def test_other_methods_are_refused(client: FlaskClient, room: Room) -> None:
    resp = client.get(W, headers=room.headers("5001"))
    assert resp.status_code == 405
    assert resp.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_answers_conform_to_the_served_openapi_document(client: FlaskClient,
                                                        room: Room) -> None:
    checker = Checker(client)
    body = {"timeout": 0, "devices": [entry("5001"), entry("0001"), entry("5002")]}
    got = checker.check(W, "post", client.post(W, json=body))
    assert [a["serial"] for a in got["answers"]] == [serial("5001"), serial("0001"),
                                                     serial("5002")]
    checker.check(W, "post", client.post(W, json={"devices": []}))
    checker.check(W, "post", client.post(W, data=b"x" * 70000,
                                         content_type="application/json"))
    assert {s for _, _, s in checker.seen} == {"200", "400", "413"}


# --- the hub -----------------------------------------------------------------------------


def test_a_waker_on_many_waiters_is_called_once_per_notify() -> None:
    hub = WatchHub()
    calls: dict[str, int] = {}

    class Batch:
        def __init__(self, name: str) -> None:
            self.name = name

        def wake(self) -> None:
            calls[self.name] = calls.get(self.name, 0) + 1

    a, b, c = Batch("a"), Batch("b"), Batch("c")
    waiters = {d: hub.register(d) for d in ("5001", "5002", "5003", "5004")}
    for d in ("5001", "5002", "5003"):
        hub.add_waker(waiters[d], a.wake)       # a batch of three devices
    hub.add_waker(waiters["5002"], b.wake)
    hub.add_waker(waiters["5004"], c.wake)
    hub.remove_waker(waiters["5001"], b.wake)   # never added: ignored
    hub.notify({"5001", "5002"}, {"5001": 3})
    assert calls == {"a": 1, "b": 1}            # once per notify, however many devices
    assert waiters["5001"].event.is_set() and waiters["5001"].generation == 3
    hub.remove_waker(waiters["5004"], c.wake)
    hub.notify_all(wait_s=0)                    # the server stops: the rest wake too
    assert calls == {"a": 2, "b": 1}
    assert all(w.event.is_set() for w in waiters.values())


# --- a real kvm-server -------------------------------------------------------------------


def _send_batch(port: int, body: dict[str, Any]) -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (W.encode(), len(data), data))
    return sock


@pytest.mark.slow
def test_batch_through_kvm_server(data_dir: tuple[Path, str]) -> None:  # noqa: F811
    server = Server(*data_dir)
    socks: list[socket.socket] = []
    try:
        port = pusher_ready(server)
        targets = PUSH_TARGETS
        gens = {rx: server.watch(rx)["generation"] for rx in ["5001", *targets]}
        sock = _send_batch(port, {"timeout": 30, "devices": [entry(d, gens[d])
                                                             for d in ["5001", *targets]]})
        socks.append(sock)
        server.watch("5001", "timeout=0")  # the server has read every request before it
        start = time.monotonic()
        assert server.post("/api/v1/seat/push", "5001", {"input": "all"})["result"] \
            == "PUSH_PARTIAL"                           # 5005 is offline
        status, headers, raw = _read_answer(sock, bytearray())
        assert time.monotonic() - start < 10
        assert status == "HTTP/1.1 200 OK" and headers["content-type"] == "application/json"
        result = {a["serial"]: a["watch"] for a in json.loads(raw)["answers"]}
        assert sorted(result) == sorted(serial(rx) for rx in targets)
        for rx in targets:
            assert result[serial(rx)] == server.watch(rx)
            assert result[serial(rx)]["routing"][0]["source"] == "0001:1"
        # A batch that waits while the server stops is answered (no device is behind).
        gens.update({rx: server.watch(rx)["generation"] for rx in targets})
        sock = _send_batch(port, {"timeout": 60, "devices": [entry(d, gens[d])
                                                             for d in targets]})
        socks.append(sock)
        server.watch("5001", "timeout=0")
    finally:
        rc = server.stop()
    try:
        assert rc == 0
        status, _, raw = _read_answer(sock, bytearray())
        assert status == "HTTP/1.1 200 OK" and json.loads(raw) == {"answers": []}
    finally:
        for s in socks:
            s.close()
