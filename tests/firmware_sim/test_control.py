"""The control server (HTTP JSON) and the kvm-sim CLI: good requests work, bad ones get a
clear error and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware_sim.__main__ import main
from firmware_sim.simulator import Simulator
from tests.firmware_sim.conftest import Host, room_config


@pytest.fixture
def served() -> Iterator[tuple[Simulator, str]]:
    with Simulator(room_config()) as sim:
        yield sim, sim.serve_control(0)


def call(url: str, method: str, path: str, body: Any = None, raw: bytes | None = None
         ) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload = resp.read()
            ctype = resp.headers.get_content_type()
            return resp.status, json.loads(payload) if ctype == "application/json" else payload
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_state_and_ports(served: tuple[Simulator, str]) -> None:
    _, url = served
    status, state = call(url, "GET", "/state")
    assert status == 200
    assert [d["id"] for d in state["tx"]] == ["0001", "0002", "0003"]
    assert state["rx"][0]["heads"] == [{"head": 1, "source": None, "video": False, "since": None},
                                       {"head": 2, "source": None, "video": False, "since": None}]
    assert state["rx"][0]["link"]["connected"] is False
    status, ports = call(url, "GET", "/ports")
    assert status == 200 and ports["5001"]["url"].startswith("socket://127.0.0.1:")
    # One kind alone: the same device entries, nothing else.
    status, only_tx = call(url, "GET", "/state?only=tx")
    assert status == 200 and only_tx == {"tx": state["tx"]}
    status, only_rx = call(url, "GET", "/state?only=rx")
    assert status == 200 and only_rx == {"rx": state["rx"]}


def test_keys_type_mouse_fault_splice(served: tuple[Simulator, str]) -> None:
    sim, url = served
    assert call(url, "POST", "/keys", {"rx": "5003", "keys": "Shift+O Shift+O"})[1][
        "delivered_to"] == ["5003"]
    events = [{"usage": 4, "mods": 0, "pressed": True}, {"usage": 4, "mods": 0, "pressed": False}]
    assert call(url, "POST", "/keys", {"seat": "seat-A", "events": events})[0] == 200
    assert call(url, "POST", "/type", {"rx": "5001", "text": "abc"})[1]["events"] == 6
    assert call(url, "POST", "/mouse", {"seat": "seat-A", "screen": 2})[1]["active_rx"] == "5002"
    assert call(url, "POST", "/fault", {"device": "0001", "kind": "video-off", "head": 2})[0] == 200
    assert call(url, "POST", "/fault", {"device": "5002", "fault": "network-down"})[0] == 200
    assert call(url, "POST", "/splice", {"wall": "wall-1", "on": False})[0] == 200
    state = sim.state()
    assert next(t for t in state["tx"] if t["id"] == "0001")["video"] == [True, False]
    assert next(r for r in state["rx"] if r["id"] == "5002")["network"] is False
    assert state["seats"][0]["active"] == 2 and state["walls"][0]["splice"] is False


def test_garbage_over_http(served: tuple[Simulator, str]) -> None:
    sim, url = served
    host = Host(sim.ports()["5003"]["url"])
    deadline = time.monotonic() + 5
    while not sim.state()["rx"][2]["link"]["connected"] and time.monotonic() < deadline:
        host.pump()
    assert call(url, "POST", "/garbage", {"device": "5003", "hex": "de ad be ef"})[1]["bytes"] == 4
    assert call(url, "POST", "/garbage", {"device": "5003", "count": 32})[1]["bytes"] == 32
    deadline = time.monotonic() + 5
    while host.session.stats["discarded_bytes"] < 36 and time.monotonic() < deadline:
        host.pump()
    assert host.session.stats["discarded_bytes"] >= 36


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/keys", {"rx": "5003", "keys": "Shift+Nope"}, 400, "unknown key name"),
        ("POST", "/keys", {"rx": "5003"}, 400, "either keys"),
        ("POST", "/keys", {"keys": "A"}, 400, "exactly one of rx, seat"),
        ("POST", "/keys", {"rx": "9999", "keys": "A"}, 400, "no seat or Rx '9999'"),
        ("POST", "/keys", {"rx": "5003", "events": [{"usage": 300, "pressed": True}]}, 400,
         "events[0].usage: expected an integer 0..255"),
        ("POST", "/keys", {"rx": "5003", "keys": "A", "colour": 1}, 400,
         "unknown field(s): colour"),
        ("POST", "/type", {"rx": "5003", "text": "日本"}, 400, "cannot type"),
        ("POST", "/type", {"rx": "5003", "text": 5}, 400, "text: expected a string"),
        ("POST", "/mouse", {"seat": "seat-A", "screen": 9}, 400,
         "screen: expected an integer 1..8"),
        ("POST", "/mouse", {"seat": "seat-A", "screen": 3}, 400, "screens 1..2, not 3"),
        ("POST", "/fault", {"device": "0001", "kind": "melt"}, 400, "unknown fault 'melt'"),
        ("POST", "/fault", {"device": "5001", "kind": "stream-fault"}, 400, "applies to a Tx"),
        ("POST", "/fault", {"device": "7777", "kind": "power-off"}, 400, "no device '7777'"),
        ("POST", "/garbage", {"device": "5001", "hex": "zz"}, 400, "not hex digits"),
        ("POST", "/garbage", {"device": "5001", "hex": "00"}, 400, "no host is connected"),
        ("POST", "/splice", {"wall": "nope", "on": True}, 400, "no wall 'nope'"),
        ("POST", "/splice", {"wall": "wall-1", "on": "yes"}, 400, "on: expected true or false"),
        ("POST", "/state", {}, 405, "takes GET"),
        ("GET", "/keys", None, 405, "takes POST"),
        ("GET", "/state?only=seats", None, 400, "only: tx or rx, not 'seats'"),
        ("GET", "/state?kind=tx", None, 400, "unknown parameter(s): kind"),
        ("GET", "/nothing", None, 404, "no such path"),
        ("GET", "/frame?rx=5001&head=3", None, 400, "heads 1..2, not 3"),
        ("GET", "/frame?head=1", None, 400, "rx: required"),
        ("GET", "/frame?rx=5001&w=10&h=10", None, 400, "w: expected an integer 64..3840"),
    ],
)
def test_bad_requests_get_clear_errors(
    served: tuple[Simulator, str], method: str, path: str, body: Any, status: int, message: str
) -> None:
    _, url = served
    got_status, got = call(url, method, path, body)
    assert got_status == status
    assert message in got["error"]["message"]


def test_bad_json_bodies(served: tuple[Simulator, str]) -> None:
    _, url = served
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b""):
        status, body = call(url, "POST", "/keys", raw=raw)
        assert status == 400 and body["error"]["code"] == "BAD_JSON"


def test_frame_png(served: tuple[Simulator, str]) -> None:
    _sim, url = served
    status, png = call(url, "GET", "/frame?rx=5003&head=1&w=320&h=180")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"


# --- the CLI ---------------------------------------------------------------------------


def test_ctl_commands(served: tuple[Simulator, str], capsys: pytest.CaptureFixture[str],
                      tmp_path: Path) -> None:
    sim, url = served
    assert main(["ctl", "--control", url, "state"]) == 0
    assert json.loads(capsys.readouterr().out)["rx"][0]["id"] == "5001"
    assert main(["ctl", "--control", url, "keys", "5003", "Shift+O Shift+O"]) == 0
    assert json.loads(capsys.readouterr().out)["delivered_to"] == ["5003"]
    assert main(["ctl", "--control", url, "type", "5003", "hello"]) == 0
    assert main(["ctl", "--control", url, "mouse", "seat-A", "2"]) == 0
    assert main(["ctl", "--control", url, "fault", "0002", "power-off"]) == 0
    assert main(["ctl", "--control", url, "splice", "wall-1", "off"]) == 0
    out = tmp_path / "f.png"
    assert main(["ctl", "--control", url, "frame", "5003", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert sim.state()["tx"][1]["power"] is False


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["ctl", "keys", "5003", "Shift+Nope"], 1, "unknown key name"),
        (["ctl", "fault", "0001", "melt"], 1, "unknown fault"),
        (["ctl", "garbage", "5001", "xyz"], 1, "not hex digits"),
        (["ctl", "garbage", "5001", "00ff"], 1, "no host is connected to 5001"),
        (["ctl", "mouse", "seat-A", "two"], 2, "invalid int value"),
        (["ctl", "explode"], 2, "invalid choice"),
        (["ctl", "keys", "5003"], 2, "required"),
        (["ctl", "frame", "5001", "--head", "7", "--out", "x.png"], 2, "--head must be 1..4"),
        ([], 2, "required"),
    ],
)
def test_ctl_bad_input(served: tuple[Simulator, str], capsys: pytest.CaptureFixture[str],
                       argv: list[str], code: int, message: str) -> None:
    _, url = served
    if argv and argv[0] == "ctl":
        argv = ["ctl", "--control", url, *argv[1:]]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_ctl_without_a_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["ctl", "--control", url, "state"]) == 1
    err = capsys.readouterr().err
    assert "no simulator answers at" in err and "kvm-sim run" in err
    assert main(["ctl", "--control", "ftp://x", "state"]) == 2


def test_run_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("tx:\n  - {id: '0001', heads: 9}\n", encoding="utf-8")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "tx[0].heads: 9 is not in 1..4" in err and "Traceback" not in err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_run_refuses_a_busy_or_bad_control_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("tx:\n  - {id: 0001}\n", encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["run", "--config", str(cfg), "--control-port", str(port)]) == 1
        assert f"cannot serve control on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["run", "--config", str(cfg), "--control-port", "70000"]) == 2
    assert "port must be 0..65535" in capsys.readouterr().err
    assert main(["run", "--config", str(cfg), "--control-port", "0",
                 "--ports-file", str(tmp_path / "no" / "dir.json")]) == 1
    assert "cannot write the ports file" in capsys.readouterr().err


def test_run_as_a_process(tmp_path: Path) -> None:
    """kvm-sim run: writes the ports file, answers ctl, stops cleanly on SIGTERM."""
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(yaml.safe_dump(room_config()), encoding="utf-8")
    ports_file = tmp_path / "ports.json"
    control = free_port()
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "run", "--config", str(cfg),
         "--control-port", str(control), "--ports-file", str(ports_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not ports_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        ports = json.loads(ports_file.read_text(encoding="utf-8"))
        assert ports["control_url"] == f"http://127.0.0.1:{control}"
        assert set(ports["devices"]) == {"0001", "0002", "0003", "5001", "5002", "5003",
                                         "5011", "5012"}
        done = subprocess.run(
            [sys.executable, "-m", "firmware_sim", "ctl", "--control", ports["control_url"],
             "fault", "0001", "stream-fault"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        host = Host(ports["devices"]["5001"]["url"])
        from kvm_protocol.session import LinkUp

        host.wait_for(lambda e: isinstance(e, LinkUp))
        host.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:   # never leave the child behind
            proc.kill()
            _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
