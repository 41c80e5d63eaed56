"""The up process's control endpoint: requests become commands run by the main thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from firmware_sim.lab.control import Command, CommandError, ControlServer, parse_command


@pytest.mark.parametrize(
    ("method", "path", "body", "name", "args"),
    [
        ("GET", "/status", {}, "status", {}),
        ("POST", "/down", {}, "down", {}),
        ("POST", "/server", {"action": "kill"}, "server", {"action": "kill"}),
        ("POST", "/server/", {"action": "start"}, "server", {"action": "start"}),
        (
            "POST",
            "/controller",
            {"rx": "5001", "action": "kill"},
            "controller",
            {"rx": "5001", "action": "kill"},
        ),
    ],
)
def test_parse_ok(
    method: str, path: str, body: dict[str, Any], name: str, args: dict[str, Any]
) -> None:
    cmd = parse_command(method, path, body)
    assert (cmd.name, cmd.args) == (name, args)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/nope", {}, 404, "no such endpoint"),
        ("GET", "/down", {}, 404, "no such endpoint"),
        ("POST", "/server", {"action": "restart"}, 400, "stop, start, kill"),
        ("POST", "/server", {}, 400, "not None"),
        ("POST", "/controller", {"rx": "5001", "action": "stop"}, 400, "kill, start"),
        ("POST", "/controller", {"action": "kill"}, 400, "Rx ID"),
        ("POST", "/controller", {"rx": 5001, "action": "kill"}, 400, "Rx ID"),
    ],
)
def test_parse_errors(
    method: str, path: str, body: dict[str, Any], status: int, words: str
) -> None:
    with pytest.raises(CommandError, match=words) as err:
        parse_command(method, path, body)
    assert err.value.status == status


def _executor(cmd: Command) -> dict[str, Any]:
    if cmd.name == "server" and cmd.args["action"] == "stop":
        raise CommandError("cannot", 409)
    if cmd.name == "controller":
        raise RuntimeError("boom")
    return {"ran": cmd.name, **cmd.args}


def _call(
    server: ControlServer, method: str, path: str, body: Any = None, data: bytes | None = None
) -> requests.Response:
    """Make one request in a thread while this thread runs the queued command."""
    out: dict[str, requests.Response] = {}

    def go() -> None:
        out["r"] = requests.request(method, server.url + path, json=body, data=data, timeout=10)

    t = threading.Thread(target=go)
    t.start()
    for _ in range(100):
        server.drain(_executor, timeout=0.1)
        if not t.is_alive():
            break
    t.join(10)
    return out["r"]


def test_requests_are_executed_by_the_draining_thread() -> None:
    server = ControlServer()
    server.start()
    try:
        r = _call(server, "POST", "/server", {"action": "kill"})
        assert (r.status_code, r.json()) == (200, {"ran": "server", "action": "kill"})
        r = _call(server, "POST", "/server", {"action": "stop"})
        assert (r.status_code, r.json()) == (409, {"error": "cannot"})
        r = _call(server, "POST", "/controller", {"rx": "5001", "action": "kill"})
        assert r.status_code == 500 and "boom" in r.json()["error"]
        r = _call(server, "POST", "/server", data=b"[1]")
        assert r.status_code == 400 and "object" in r.json()["error"]
        r = _call(server, "POST", "/server", data=b"{nope")
        assert r.status_code == 400 and "JSON" in r.json()["error"]
        r = _call(server, "GET", "/status")
        assert r.json() == {"ran": "status"}
    finally:
        server.close()


def test_nobody_draining_times_out_with_a_clear_answer() -> None:
    server = ControlServer(reply_timeout=0.3)
    server.start()
    try:
        r = requests.get(server.url + "/status", timeout=10)
        assert r.status_code == 504 and "in time" in r.json()["error"]
    finally:
        server.close()
