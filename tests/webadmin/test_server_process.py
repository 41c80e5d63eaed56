"""``kvm-server`` as a real process (gevent): one slow client must not hold up the others.

Every request is a greenlet of one process. SQLite's wait for the write lock is a sleep
inside the library that blocks the whole process, so a greenlet that paused inside a write
transaction (waiting for the rest of a request body, say) froze every other request until
the wait gave up after ``busy_timeout`` and answered 503.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from firmware_sim.lab.ports import free_port, http_answers, wait_until
from firmware_sim.lab.supervisor import Child
from tests.webadmin.conftest import PASSWORDS, Room, seed_room
from webadmin.lockcheck import MESSAGE as LOCK_HELD

ANSWER_TIMEOUT_S = 60.0   # a socket bound only: the assertions are on what is answered


@pytest.fixture
def server(tmp_path: Path, server_config: dict[str, Any], app: Flask
           ) -> Iterator[tuple[int, Room]]:
    """kvm-server on the seeded room's data directory; yields its port and the room."""
    room = seed_room(app)
    app.extensions["kvm"].db.dispose()
    port = free_port()
    cfg = tmp_path / "server.yaml"
    # check_lock_holds: the server reports a greenlet that yields holding the write lock.
    cfg.write_text(yaml.safe_dump({**server_config, "host": "127.0.0.1", "port": port,
                                   "check_lock_holds": True, "log_level": "info"}))
    log = tmp_path / "server.log"
    child = Child("server", [sys.executable, "-m", "webadmin", "--config", str(cfg)],
                  log_path=log)
    child.start()
    try:
        up = wait_until(lambda: http_answers(f"http://127.0.0.1:{port}/api/v1/openapi.json"),
                        30, alive=child.alive)
        assert up, f"kvm-server did not start:\n{log.read_text(errors='replace')}"
        yield port, room
    finally:
        child.stop(10)
    logged = log.read_text(errors="replace")
    assert LOCK_HELD not in logged, logged


def _head(path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {length}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _post(port: int, path: str, headers: dict[str, str], body: dict[str, Any]
          ) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(_head(path, headers, len(data)) + data)
        return _answer(sock)


def test_a_client_slow_to_send_its_body_does_not_hold_up_the_others(
        server: tuple[int, Room]) -> None:
    port, room = server
    login = {"user": "hxfj", "password": PASSWORDS["hxfj"]}
    assert _post(port, "/api/v1/seat/login", room.headers("5001"), login)[0] == 200

    # 5001 connects, but its body is late: the headers arrive, the body does not yet.
    body = json.dumps({"input": "1"}).encode()
    slow = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S)
    try:
        slow.sendall(_head("/api/v1/seat/connect", room.headers("5001"), len(body)))
        time.sleep(0.5)  # the server has the request and waits for its body
        # Meanwhile another seat logs in and connects: both are writes, both answered.
        status, answer = _post(port, "/api/v1/seat/login", room.headers("5004"), login)
        assert status == 200, answer
        status, answer = _post(port, "/api/v1/seat/connect", room.headers("5004"),
                               {"input": "2"})
        assert (status, answer["result"]) == (200, "CONNECTED"), answer
        # The late body arrives: that connect is done too.
        slow.sendall(body)
        status, answer = _answer(slow)
        assert (status, answer["result"]) == (200, "CONNECTED"), answer
    finally:
        slow.close()


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return _answer(sock)


def test_hashing_new_passwords_does_not_hold_up_the_room(server: tuple[int, Room]) -> None:
    # argon2 takes ~0.1 s a password: an import of 12 users with passwords is >1 s of
    # hashing, which used to stop every device's and seat's request meanwhile.
    port, room = server
    status, answer = _post(port, "/api/v1/admin/token", {},
                           {"user": "admin", "password": PASSWORDS["admin"]})
    assert status == 200, answer
    admin = {"Authorization": f"Bearer {answer['token']}"}
    users = "".join(f"  - {{name: new{i}, role: operator, password: 'secret-{i}'}}\n"
                    for i in range(12))
    doc = f"users:\n{users}".encode()
    done: dict[str, float] = {}

    def import_users() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S) as sock:
            head = _head("/api/v1/admin/config", admin, len(doc)).replace(
                b"application/json", b"application/yaml")
            sock.sendall(head + doc)
            done["import_status"] = _answer(sock)[0]
            done["import"] = time.monotonic()

    worker = threading.Thread(target=import_users)
    worker.start()
    time.sleep(0.3)   # the import is hashing
    assert _get(port, "/api/v1/device/watch?timeout=0", room.headers("5001"))[0] == 200
    answered = time.monotonic()
    worker.join(ANSWER_TIMEOUT_S)
    assert done["import_status"] == 200
    assert answered < done["import"], "a device's request waited for the passwords' hashing"
    # Each user got the hash of their own password.
    login = "/api/v1/seat/login"
    ok = _post(port, login, room.headers("5004"), {"user": "new3", "password": "secret-3"})
    assert (ok[0], ok[1]["result"]) == (200, "NETWORK_OK"), ok
    wrong = _post(port, login, room.headers("5002"), {"user": "new4", "password": "secret-3"})
    assert wrong[1]["result"] != "NETWORK_OK", wrong
