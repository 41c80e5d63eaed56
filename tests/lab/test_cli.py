"""`kvm-lab` commands against a lab made of a real simulator and stand-in controller/control
endpoints: clear errors on bad input or no lab, and the right calls otherwise."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pygame
import pytest

from firmware_sim.lab import Lab, LabError, main, statefile
from firmware_sim.lab.cli import EXIT_FAILED, EXIT_NO_LAB, EXIT_USAGE
from firmware_sim.lab.control import Command, ControlServer
from firmware_sim.lab.statefile import LabInfo
from firmware_sim.simulator import Simulator

SIM_CONFIG = {
    "tx": [{"id": "0001", "name": "PC-1"}, {"id": "0002", "name": "PC-2", "video": False}],
    "rx": [{"id": "5001"}, {"id": "5002"}],
    "seats": [{"name": "seat-A", "screens": ["5001"]}],
}
OSD: dict[str, Any] = {
    "screen": "login",
    "mode": "connect",
    "input": "",
    "feedback": "",
    "status": "网络正常",
    "user": None,
    "rows": [],
}


def _overlay_png() -> bytes:
    surface = pygame.Surface((960, 540), pygame.SRCALPHA, 32)
    surface.fill((0, 0, 0, 0))
    surface.fill((255, 0, 0, 255), pygame.Rect(0, 0, 100, 100))
    buf = io.BytesIO()
    pygame.image.save(surface, buf, "o.png")
    return buf.getvalue()


class FakeRuntime:
    """Answers GET /osd and /osd.png like a controller host."""

    def __init__(self) -> None:
        png = _overlay_png()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                rx = parse_qs(url.query).get("rx", [""])[0]
                if url.path == "/osd":
                    body, ctype = json.dumps({**OSD, "rx": rx}).encode(), "application/json"
                elif url.path == "/osd.png":
                    body, ctype = png, "image/png"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeLab:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.sim = Simulator(SIM_CONFIG)
        self.sim.start()
        self.sim_url = self.sim.serve_control(0)
        self.runtime = FakeRuntime()
        self.control = ControlServer()
        self.control.start()
        self.commands: list[Command] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()
        statefile.write(
            data,
            LabInfo(
                pid=os.getpid(),
                data_dir=str(data),
                config="x.yaml",
                control_url=self.control.url,
                server_url="http://127.0.0.1:9",
                sim_control_url=self.sim_url,
                runtime_urls=[self.runtime.url],
                rx_host={"5001": 0, "5002": 0},
                tx=["0001", "0002"],
                rx=["5001", "5002"],
                ready=True,
            ),
        )

    def _execute(self, cmd: Command) -> dict[str, Any]:
        self.commands.append(cmd)
        if cmd.name == "down":
            self.stop.set()
        return {"ok": True}

    def _drain(self) -> None:
        while not self.stop.is_set():
            self.control.drain(self._execute, timeout=0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.control.close()
        self.runtime.close()
        self.sim.stop()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[FakeLab]:
    fake = FakeLab(tmp_path)
    yield fake
    fake.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_no_lab_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["state"], ["keys", "5001", "F1"], ["down"], ["server", "kill"]):
        code, _, err = run(capsys, "--data", str(tmp_path / "none"), *argv)
        assert code == EXIT_NO_LAB, argv
        assert "no lab is up" in err and "kvm-lab up --data" in err


def test_data_flag_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "state", "--data", str(tmp_path / "none"))
    assert code == EXIT_NO_LAB and str(tmp_path / "none") in err


@pytest.mark.parametrize(
    "argv",
    [
        ["fault", "0001", "melt"],
        ["server", "restart"],
        ["controller", "5001", "stop"],
        ["keys"],
        ["frobnicate"],
        [],
        ["garbage", "5001", "--bytes", "x"],
    ],
)
def test_bad_command_lines(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert "usage:" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["keys", "5001", "Shift+Q+"], "bad keys"),
        (["keys", "5001", "Hyper"], "unknown key name"),
        (["keys", "5009", "F1"], "no Rx '5009'"),
        (["keys", "0001", "F1"], "no Rx '0001'"),
        (["type", "5001", "中文"], "cannot type"),
        (["type", "5001", ""], "nothing to type"),
        (["fault", "5003", "power-off"], "no device '5003'"),
        (["fault", "5001", "video-off"], "applies to a Tx"),
        (["garbage", "5001", "--bytes", "0"], "1..65536"),
        (["screenshot", "5007", "x.png"], "no Rx"),
        (["controller", "5003", "kill"], "no Rx"),
    ],
)
def test_bad_input_with_a_lab(
    lab: FakeLab, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, _, err = run(capsys, "--data", str(lab.data), *argv)
    assert code == EXIT_FAILED
    assert words in err
    assert "Traceback" not in err


def test_state_json_and_table(lab: FakeLab, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--data", str(lab.data), "state", "--json")
    assert code == 0
    state = json.loads(out)
    kinds = {d["id"]: d["kind"] for d in state["devices"]}
    assert kinds == {"0001": "tx", "0002": "tx", "5001": "rx", "5002": "rx"}
    rx = next(d for d in state["devices"] if d["id"] == "5001")
    assert rx["heads"][0]["source"] is None and rx["heads"][0]["osd"]["status"] == "网络正常"
    tx2 = next(d for d in state["devices"] if d["id"] == "0002")
    assert tx2["video"] is False and tx2["received"] == ""
    code, out, _ = run(capsys, "--data", str(lab.data), "state")
    assert code == 0 and "5001" in out and "status=网络正常" in out


def test_faults_and_garbage_reach_the_simulator(
    lab: FakeLab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--data", str(lab.data), "fault", "0001", "power-off")[0] == 0
    assert run(capsys, "--data", str(lab.data), "fault", "5002", "network-down")[0] == 0
    state = lab.sim.state()
    assert state["tx"][0]["power"] is False and state["rx"][1]["network"] is False
    # No controller is connected to the serial link of 5001 in this stand-in lab.
    code, _, err = run(capsys, "--data", str(lab.data), "garbage", "5001", "--bytes", "16")
    assert code == EXIT_FAILED and "no host is connected to 5001" in err
    code, _, err = run(capsys, "--data", str(lab.data), "garbage", "0001")
    assert code == EXIT_FAILED and "Tx gateway" in err


def test_keys_reach_the_seat(lab: FakeLab) -> None:
    client = Lab.attach(lab.data)
    client.keys("5001", "Shift+O Shift+O F1 1 Enter")
    client.type("5001", "hxfj")
    with pytest.raises(LabError, match="unknown key name"):
        client.keys("5001", "Shift+Hyper")
    client.close()


def test_supervision_commands_go_to_the_control_endpoint(
    lab: FakeLab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--data", str(lab.data), "server", "kill")[0] == 0
    assert run(capsys, "--data", str(lab.data), "controller", "5002", "start")[0] == 0
    assert [(c.name, c.args) for c in lab.commands] == [
        ("server", {"action": "kill"}),
        ("controller", {"rx": "5002", "action": "start"}),
    ]


def test_screenshot_composes_the_osd_over_the_frame(
    lab: FakeLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shots" / "5001.png"
    # The overlay plane shows only while the controller has told the Rx to show it (not here).
    code, text, _ = run(capsys, "--data", str(lab.data), "screenshot", "5001", str(out))
    assert code == 0 and str(out) in text
    image = pygame.image.load(str(out))
    assert image.get_size() == (960, 540)
    plain = pygame.image.load(io.BytesIO(lab.sim.frame_png("5001")), "f.png")
    assert image.get_at((10, 10))[:3] == plain.get_at((10, 10))[:3]  # overlay hidden: frame only


def test_down_stops_the_lab(lab: FakeLab, capsys: pytest.CaptureFixture[str]) -> None:
    # A lab whose process is this test: `down` asks it to stop; then the state file is removed
    # by the up process in real life; here we only check that the request arrived.
    client = Lab.attach(lab.data)
    client._control("POST", "/down", {})
    assert lab.stop.wait(5)
    client.close()
