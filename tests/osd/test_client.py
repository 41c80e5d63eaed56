"""osd.client: typed outcomes for every answer and every failure, secret handling, long poll.

Failure modes (refused, timeout, 5xx, bad JSON) are exercised against a small fake server
that can misbehave on purpose; the documented answers also against the real server app
(see test_client_real_server below when webadmin is available).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from kvm_protocol.results import ResultCode
from osd.client import (
    ActionAnswer,
    Adopted,
    DeviceList,
    DeviceRow,
    LoginAnswer,
    Pending,
    Refused,
    Reported,
    RouteEntry,
    ServerClient,
    ServerUnreachable,
    SessionInfo,
    StateDirError,
    Watched,
    load_or_create_secret,
)

SECRET = "ab" * 32


class _KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class FakeServer:
    """The device/seat API of docs/API.md, just enough to test the client, plus faults."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, Any]] = {}   # serial → {secret, state, id}
        self.generation = 1
        self.routing: list[dict[str, Any]] = [{"head": 1, "source": None}]
        self.cond = threading.Condition()
        self.fault: str | None = None                  # "500", "badjson", "shape", "slow"
        self.peers: list[str] = []                     # client address:port per request
        self.states: list[dict[str, Any]] = []
        self.login_failures = 0

    def adopt(self, serial: str, rx_id: str = "5001") -> None:
        self.devices[serial].update(state="adopted", id=rx_id)

    def bump(self, routing: list[dict[str, Any]]) -> None:
        with self.cond:
            self.routing = routing
            self.generation += 1
            self.cond.notify_all()

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Any:
        req = Request(environ)
        self.peers.append(f"{environ['REMOTE_ADDR']}:{environ['REMOTE_PORT']}")
        resp = self.handle(req)
        return resp(environ, start)

    def _json(self, body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status, content_type="application/json")

    def _error(self, status: int, code: str) -> Response:
        return self._json({"error": {"code": code, "message": code.lower()}}, status)

    def handle(self, req: Request) -> Response:
        if self.fault == "500":
            return Response("<h1>oops</h1>", 500, content_type="text/html")
        if self.fault == "badjson":
            return Response("{not json", 200, content_type="application/json")
        if self.fault == "shape":
            return self._json(["a", "list"])
        if self.fault == "slow":
            time.sleep(1.5)
        body = req.get_json(silent=True) or {}
        if req.path == "/api/v1/device/announce":
            dev = self.devices.get(body["serial"])
            if dev is None:
                self.devices[body["serial"]] = {"secret": body["secret"], "state": "pending"}
                return self._json({"state": "pending"}, 202)
            if dev["secret"] != body["secret"]:
                return self._error(409, "CONFLICT")
            if dev["state"] == "pending":
                return self._json({"state": "pending"}, 202)
            return self._json({"state": "adopted", "id": dev["id"], "name": "Rx one",
                               "heads": 1})
        auth = req.headers.get("Authorization", "")
        serial, _, secret = auth.removeprefix("Device ").partition(":")
        dev = self.devices.get(serial)
        if dev is None or dev["secret"] != secret:
            return self._error(401, "UNAUTHORIZED")
        if dev["state"] == "pending":
            return self._error(403, "PENDING")
        if req.path == "/api/v1/device/state":
            self.states.append(body)
            return self._json({"generation": self.generation})
        if req.path == "/api/v1/device/watch":
            seen = int(req.args["generation"])
            timeout = int(req.args.get("timeout", 25))   # whole seconds, like the server
            with self.cond:
                self.cond.wait_for(lambda: self.generation > seen, timeout)
                return self._json({
                    "generation": self.generation, "routing": self.routing,
                    "session": {"user": "hxfj", "role": "operator", "lang": "en",
                                "keys_allowed": False},
                    "settings": {"chord": "Shift+O Shift+O", "chord_window_ms": 500,
                                 "lang": "zh_CN", "auto_close_ms": 1000, "idle_close_s": 60,
                                 "idle_logout_s": 0},
                    "seat": {"name": "seat-A", "screens": ["5001"]},
                    "id": dev["id"], "name": "Rx one"})
        if req.path == "/api/v1/seat/login":
            if body.get("password") != "123456":
                self.login_failures += 1
                if self.login_failures > 2:
                    return self._error(429, "RATE_LIMITED")
                return self._json({"result": "BAD_CREDENTIALS"})
            return self._json({"result": "NETWORK_OK", "user": body["user"],
                               "role": "operator", "lang": "zh_CN"})
        if req.path == "/api/v1/seat/devices":
            return self._json({"mode": req.args["mode"], "rows": [
                {"id": "0001", "name": "PC one", "colour": "yellow", "online": True},
                {"id": "0002", "name": "PC two", "colour": "red", "online": False}]})
        if req.path == "/api/v1/seat/push":
            return self._json({
                "result": "PUSH_PARTIAL", "text": {"zh_CN": "部分推送失败", "en": "x"},
                "targets": [{"id": "5002", "result": "PUSHED"},
                            {"id": "5003", "result": "OFFLINE"}],
                "summary": {"zh_CN": "5003:此设备不在线", "en": "5003: This device is offline"}})
        if req.path in ("/api/v1/seat/connect", "/api/v1/seat/fetch", "/api/v1/seat/logout"):
            return self._json({"result": "CONNECTED", "text": {"zh_CN": "连接成功"}})
        return self._error(404, "NOT_FOUND")


@pytest.fixture
def fake() -> Iterator[tuple[FakeServer, str]]:
    app = FakeServer()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        with app.cond:
            app.generation += 1000   # release any long poll still waiting
            app.cond.notify_all()
        server.shutdown()
        server.server_close()
        thread.join(5)


def adopted_client(fake: tuple[FakeServer, str], **kw: Any) -> ServerClient:
    app, url = fake
    client = ServerClient(url, "SIM-RX-5001", SECRET, **kw)
    assert client.announce(heads=1, firmware="RX-FW 2.4.1") == Pending()
    app.adopt("SIM-RX-5001")
    return client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- secret -----------------------------------------------------------------------

def test_secret_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = load_or_create_secret(state)
    assert len(first) == 64 and int(first, 16) >= 0
    mode = stat.S_IMODE(os.stat(state / "device-secret").st_mode)
    assert mode == 0o600
    assert load_or_create_secret(state) == first
    assert load_or_create_secret(tmp_path / "other") != first


def test_corrupt_secret_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "device-secret").write_text("not a secret\n")
    with pytest.raises(StateDirError, match="64 hex digits"):
        load_or_create_secret(tmp_path)


def test_unusable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateDirError, match="cannot create state dir"):
        load_or_create_secret(blocker / "state")


# --- device side ----------------------------------------------------------------------

def test_announce_pending_then_adopted_and_conflict(fake: tuple[FakeServer, str]) -> None:
    app, url = fake
    client = ServerClient(url, "SIM-RX-5001", SECRET)
    assert client.announce(heads=1, firmware="RX-FW 2.4.1") == Pending()
    assert client.report_state(online=True, network_up=True, heads=[]) == Pending()
    app.adopt("SIM-RX-5001")
    assert client.announce(heads=1, firmware="RX-FW 2.4.1") == Adopted("5001", "Rx one", 1)
    thief = ServerClient(url, "SIM-RX-5001", "cd" * 32)
    out = thief.announce(heads=1, firmware="x")
    assert isinstance(out, Refused) and (out.status, out.code) == (409, "CONFLICT")
    report = thief.report_state(online=True, network_up=True, heads=[])
    assert isinstance(report, Refused) and report.code == "UNAUTHORIZED"
    client.close()
    thief.close()


def test_state_report_carries_heads(fake: tuple[FakeServer, str]) -> None:
    app, _ = fake
    client = adopted_client(fake)
    out = client.report_state(online=True, network_up=False,
                              heads=[(1, ("0001", 2), True), (2, None, False)])
    assert out == Reported(app.generation)
    assert app.states[-1] == {"online": True, "network_up": False, "heads": [
        {"head": 1, "source": "0001:2", "video": True},
        {"head": 2, "source": None, "video": False}]}
    client.close()


def test_watch_answers_at_once_when_behind_and_parses_everything(
        fake: tuple[FakeServer, str]) -> None:
    app, _ = fake
    client = adopted_client(fake)
    app.bump([{"head": 1, "source": "0007:1", "set_by": "hxfj", "pushed": True}])
    out = client.watch(0, timeout=5)
    assert isinstance(out, Watched)
    assert out.generation == app.generation
    assert out.routing == (RouteEntry(1, ("0007", 1), "hxfj", True),)
    assert out.session == SessionInfo("hxfj", "operator", "en", keys_allowed=False)
    assert out.settings["chord_window_ms"] == 500
    assert out.seat is not None and out.seat.screens == ("5001",)
    assert (out.id, out.name) == ("5001", "Rx one")
    client.close()


def test_watch_is_released_by_a_change(fake: tuple[FakeServer, str]) -> None:
    app, _ = fake
    client = adopted_client(fake)
    gen = app.generation
    timer = threading.Timer(0.2, app.bump, args=([{"head": 1, "source": "0002:1"}],))
    timer.start()
    t0 = time.monotonic()
    out = client.watch(gen, timeout=10)
    timer.join()
    assert isinstance(out, Watched) and out.generation == gen + 1
    assert out.routing[0].source == ("0002", 1)
    assert time.monotonic() - t0 < 5
    client.close()


def test_watch_timeout_returns_the_same_generation(fake: tuple[FakeServer, str]) -> None:
    app, _ = fake
    client = adopted_client(fake)
    out = client.watch(app.generation, timeout=0.4)   # rounded up to whole seconds
    assert isinstance(out, Watched) and out.generation == app.generation
    client.close()


def test_abort_releases_a_blocked_long_poll(fake: tuple[FakeServer, str]) -> None:
    app, _ = fake
    client = adopted_client(fake)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(client.watch(app.generation, 30)))
    thread.start()
    deadline = time.monotonic() + 5
    while len(app.peers) < 2 and time.monotonic() < deadline:   # announce + watch arrived
        time.sleep(0.01)
    t0 = time.monotonic()
    client.abort()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(results[0], ServerUnreachable)
    assert time.monotonic() - t0 < 2
    client.close()


def test_calls_reuse_one_kept_alive_connection() -> None:
    # werkzeug's dev server always closes; a raw HTTP/1.1 server that keeps connections.
    accepted: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    body = b'{"generation": 3}'

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    def answer(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(4096)
                buf = buf[length:]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ServerClient(f"http://127.0.0.1:{listener.getsockname()[1]}", "S", SECRET)
    for _ in range(5):
        assert client.report_state(online=True, network_up=True, heads=[]) == Reported(3)
    client.close()
    listener.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept()
    listener.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(accepted) == 1


# --- operator side -------------------------------------------------------------------------

def test_login_answers(fake: tuple[FakeServer, str]) -> None:
    client = adopted_client(fake)
    assert client.login("hxfj", "123456") == LoginAnswer(ResultCode.NETWORK_OK, "hxfj",
                                                         "operator", "zh_CN")
    assert client.login("hxfj", "bad") == LoginAnswer(ResultCode.BAD_CREDENTIALS)
    client.login("hxfj", "bad")
    # The server's 429 is an answer for the operator, not a fault.
    assert client.login("hxfj", "bad") == LoginAnswer(ResultCode.RATE_LIMITED)
    client.close()


def test_devices_and_actions(fake: tuple[FakeServer, str]) -> None:
    client = adopted_client(fake)
    assert client.devices("connect") == DeviceList("connect", (
        DeviceRow("0001", "PC one", "yellow", True), DeviceRow("0002", "PC two", "red", False)))
    out = client.push("2,3")
    assert isinstance(out, ActionAnswer) and out.result is ResultCode.PUSH_PARTIAL
    assert [t.result for t in out.targets] == [ResultCode.PUSHED, ResultCode.OFFLINE]
    assert out.feedback("zh_CN") == "5003:此设备不在线"
    out = client.connect("1")
    assert isinstance(out, ActionAnswer) and out.feedback("zh_CN") == "连接成功"
    assert isinstance(client.fetch("wall"), ActionAnswer)
    assert isinstance(client.logout(), ActionAnswer)
    client.close()


# --- failures: every one is a typed outcome -------------------------------------------------

@pytest.mark.parametrize("fault", ["500", "badjson", "shape"])
def test_server_faults_are_server_unreachable(fake: tuple[FakeServer, str], fault: str) -> None:
    app, _ = fake
    client = adopted_client(fake)
    app.fault = fault
    for outcome in (client.announce(heads=1, firmware="x"),
                    client.report_state(online=True, network_up=True, heads=[]),
                    client.watch(0, timeout=1), client.login("a", "b"), client.logout(),
                    client.devices("push"), client.connect("1"), client.push("all"),
                    client.fetch("1")):
        assert isinstance(outcome, ServerUnreachable), outcome
        assert outcome.reason
    client.close()


def test_connection_refused_is_server_unreachable() -> None:
    client = ServerClient(f"http://127.0.0.1:{free_port()}", "SIM-RX-5001", SECRET)
    assert client.announce(heads=1, firmware="x") == ServerUnreachable(
        "cannot connect to the server")
    assert isinstance(client.watch(3, timeout=1), ServerUnreachable)
    assert isinstance(client.login("hxfj", "123456"), ServerUnreachable)
    client.close()


def test_slow_server_times_out_within_the_call_timeout(fake: tuple[FakeServer, str]) -> None:
    app, _ = fake
    client = adopted_client(fake, call_timeout=0.3)
    app.fault = "slow"
    t0 = time.monotonic()
    assert client.connect("1") == ServerUnreachable("the server did not answer in time")
    assert time.monotonic() - t0 < 1.2
    client.close()


def test_unknown_result_code_and_bad_source_are_bad_answers(
        fake: tuple[FakeServer, str]) -> None:
    app, _ = fake
    client = adopted_client(fake)
    app.bump([{"head": 1, "source": "banana"}])
    assert isinstance(client.watch(0, timeout=1), ServerUnreachable)
    app.bump([{"head": 9, "source": None}])
    assert isinstance(client.watch(0, timeout=1), ServerUnreachable)
    client.close()
