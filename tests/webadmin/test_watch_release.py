"""Releasing device watches cheaply: the answer encoded from cached parts is the reference
encoding byte for byte, and kvm-server's early release (the first woken watch writes every
woken watch's answer) puts exactly one well-formed answer on each connection."""

from __future__ import annotations

import json
import queue
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings

from tests.webadmin.conftest import Room, db_of, device_auth
from tests.webadmin.test_durability import HXFJ, Server, data_dir  # noqa: F401 - fixture
from tests.webadmin.test_models import ACTIONS
from webadmin.api_device import encode, encode_answer, watch_body
from webadmin.routing import WatchHub
from webadmin.snapshot import SnapshotCache

ALL = ("0001", "0002", "0003", "0004", "0005", "0006", "5001", "5002", "5003", "5004", "5005",
       "5011", "5012", "5013", "5014")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_encoded_answer_is_the_reference_encoding(app: Flask, room: Room,
                                                  actions: list[tuple[str, str, str]]) -> None:
    client = app.test_client()
    cache: SnapshotCache = app.extensions["kvm"].cache
    for rx, action, typed in actions:
        if action == "login":
            room.login(client, rx, "hxfj")
        elif action == "logout":
            client.post("/api/v1/seat/logout", headers=room.headers(rx))
        else:
            room.act(client, rx, action, typed)
        with db_of(app).session() as s:
            built = cache.build(s, live=False)
        for dev in ALL:
            for gen in (0, 7):  # twice: the second comes from the cached parts
                assert encode_answer(built, dev, gen) == encode(watch_body(built, dev, gen))


def test_latest_is_assembled_once_per_state(app: Flask, room: Room) -> None:
    client = app.test_client()
    cache: SnapshotCache = app.extensions["kvm"].cache
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    first = cache.latest()
    assert first is not None and cache.latest() is first
    room.act(client, "5001", "connect", "2")
    second = cache.latest()
    assert second is not None and second is not first
    assert second.snap.routing["5001"][0] is not None
    assert second.snap.routing["5001"][0].tx_id == "0002"


def test_release_woken_runs_the_releases_of_one_notify_once() -> None:
    hub = WatchHub()
    released: list[tuple[str, int]] = []
    waiters = {d: hub.register(d) for d in ("5001", "5002", "5003")}

    def releaser(device: str) -> Callable[[int], None]:
        return lambda gen: released.append((device, gen))

    for d, w in waiters.items():
        hub.attach(w, releaser(d))
    hub.detach(waiters["5003"], releaser("5003"))  # never attached: ignored
    hub.notify({"5001", "5002"}, {"5001": 4})   # 5002 without a generation: no release
    assert all(waiters[d].event.is_set() for d in ("5001", "5002"))
    hub.release_woken()
    hub.release_woken()
    assert released == [("5001", 4)]
    hub.notify({"5003"}, {"5003": 9})
    hub.release_woken()
    assert released == [("5001", 4), ("5003", 9)]


# --- a real kvm-server -------------------------------------------------------------------


def _request(port: int, device: str, query: str, version: str = "HTTP/1.1") -> socket.socket:
    kind = "TX" if device < "5000" else "RX"
    auth = device_auth(f"SIM-{kind}-{device}")["Authorization"]
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /api/v1/device/watch?{query} {version}\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: {auth}\r\n\r\n".encode())
    return sock


def _read_answer(sock: socket.socket, buf: bytearray) -> tuple[str, dict[str, str], bytes]:
    """One response (status line, headers, body by Content-Length); the rest stays in buf."""
    for _ in range(1000):  # bounded: each round reads what arrived
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in head[1:])}
            size = int(headers["content-length"])
            if len(buf) >= end + 4 + size:
                body = bytes(buf[end + 4:end + 4 + size])
                del buf[:end + 4 + size]
                return head[0], headers, body
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buf += chunk
    raise AssertionError("no complete answer")


# The Rx a push to all reaches in the seeded room (5005 is offline), besides 5001.
PUSH_TARGETS = ["5002", "5003", "5004", "5011", "5012", "5013", "5014"]


def pusher_ready(server: Server) -> int:
    """hxfj logged in at 5001 and connected to Tx 0001 (what a push sends); the port."""
    assert server.post("/api/v1/seat/login", "5001", HXFJ)["result"] == "NETWORK_OK"
    assert server.post("/api/v1/seat/connect", "5001", {"input": "1"})["result"] \
        == "CONNECTED"
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.slow
def test_push_releases_every_watch_with_one_well_formed_answer(
        data_dir: tuple[Path, str]) -> None:  # noqa: F811 - the imported fixture
    server = Server(*data_dir)
    socks: list[socket.socket] = []
    try:
        port = pusher_ready(server)
        targets = PUSH_TARGETS
        gens = {rx: server.watch(rx)["generation"] for rx in targets}
        # Two watches of one device, and one HTTP/1.0 client (answered the ordinary way).
        watches = [(rx, _request(port, rx, f"generation={gens[rx]}&timeout=30"))
                   for rx in [*targets, "5002"]]
        old = _request(port, "5003", f"generation={gens['5003']}&timeout=30", "HTTP/1.0")
        socks += [sock for _, sock in watches] + [old]
        server.watch("5001", "timeout=0")  # the server has read every request before it
        # 5005 is offline: the push reaches every other Rx.
        assert server.post("/api/v1/seat/push", "5001", {"input": "all"})["result"] \
            == "PUSH_PARTIAL"
        for rx, sock in watches:
            buf = bytearray()
            status, headers, body = _read_answer(sock, buf)
            assert status == "HTTP/1.1 200 OK"
            assert headers["content-type"] == "application/json" and "date" in headers
            answer = json.loads(body)
            assert answer["generation"] > gens[rx]
            assert answer["routing"][0]["source"] == "0001:1"
            assert answer == server.watch(rx)  # what a fresh watch of the device says
            # Keep-alive goes on: the next request on the connection gets its own answer
            # (a refusal, so that a second copy of the first answer would show).
            sock.sendall(f"GET /api/v1/device/watch?colour=red HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: {device_auth('SIM-RX-' + rx)['Authorization']}"
                         f"\r\n\r\n".encode())
            status, _, again = _read_answer(sock, buf)
            assert status.startswith("HTTP/1.1 400"), (status, again)
            assert not buf
        status, headers, body = _read_answer(old, bytearray())
        assert status == "HTTP/1.1 200 OK" and json.loads(body)["generation"] > gens["5003"]
    finally:
        for sock in socks:
            sock.close()
        assert server.stop() == 0
    # At log level info every request is in the access log, early releases included.
    lines: list[str] = []
    while True:
        try:
            lines.append(server.lines.get_nowait())
        except queue.Empty:
            break
    released = [ln for ln in lines if "GET /api/v1/device/watch?generation=" in ln]
    assert len(released) == len(targets) + 2
    assert all('" 200 ' in ln for ln in released)
