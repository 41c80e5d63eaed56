"""``kvm-rx``: clear errors and exit codes, ``--many`` with the control endpoint, SIGTERM."""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from osd.__main__ import main
from tests.osd.test_runtime_env import RxEnv, free_port, wait_until

KVM_RX = str(Path(sys.executable).parent / "kvm-rx")


@pytest.mark.parametrize(("argv", "message"), [
    ([], "missing --serial, --server, --state-dir"),
    (["--serial", "bad url", "--server", "http://h:1", "--state-dir", "{tmp}/s"],
     "'bad url' is not a serial port URL"),
    (["--serial", "socket://127.0.0.1:{closed}", "--server", "ftp://h", "--state-dir", "{tmp}/s"],
     "'ftp://h' is not an http:// or https:// URL"),
    (["--serial", "socket://127.0.0.1:{closed}", "--server", "http://h:99999",
      "--state-dir", "{tmp}/s"], "bad port number"),
    (["--serial", "nosuch://x", "--server", "http://h:1", "--state-dir", "{tmp}/s"],
     "cannot open serial port 'nosuch://x': invalid URL, protocol 'nosuch' not known"),
    (["--serial", "socket://127.0.0.1:{closed}", "--server", "http://h:1",
      "--state-dir", "{tmp}/s"], "Connection refused"),
    (["--serial", "socket://127.0.0.1:{closed}", "--server", "http://h:1",
      "--state-dir", "{tmp}/file/s"], "cannot create state dir"),
    (["--many", "{tmp}/missing.yaml"], "cannot read: No such file or directory"),
    (["--many", "{tmp}/bad.yaml"], "controllers[1].bogus: unknown key"),
    (["--many", "{tmp}/noserver.yaml"], "controllers[0].server: no server URL"),
    (["--many", "{tmp}/bad.yaml", "--serial", "x"], "--many cannot be combined"),
    (["--lang", "fr"], "invalid choice: 'fr'"),
    (["--many", "{tmp}/bad.yaml", "--control-port", "70000"], "not a port number"),
])
def test_bad_input_is_a_clear_error_with_exit_code_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "bad.yaml").write_text(
        "server: http://127.0.0.1:1\ncontrollers:\n  - {serial: socket://h:1, state_dir: a}\n"
        "  - {serial: socket://h:2, state_dir: b, bogus: 1}\n")
    (tmp_path / "noserver.yaml").write_text("- {serial: socket://h:1, state_dir: a}\n")
    fill = {"tmp": str(tmp_path), "closed": str(free_port())}
    args = [a.format(**fill) for a in argv]
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RxEnv]:
    environment = RxEnv(tmp_path)
    try:
        yield environment
    finally:
        environment.close()


def start(argv: list[str], tmp: Path) -> tuple[subprocess.Popen[str], str]:
    """Start kvm-rx; returns the process and its control endpoint URL (from stdout)."""
    with open(tmp / "rx.log", "w") as log:   # the child keeps its own descriptor
        proc = subprocess.Popen([KVM_RX, *argv, "--log-level", "warning"], text=True,
                                stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    line = proc.stdout.readline()   # bounded: the process prints it or exits (EOF)
    if not line.startswith("kvm-rx: control endpoint http://127.0.0.1:"):
        _reap(proc)   # never leave a child behind (its ResourceWarning hits a later test)
        raise AssertionError((line, (tmp / "rx.log").read_text()))
    return proc, line.split()[-1]


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(15)
    if proc.stdout is not None:
        proc.stdout.close()


def stop(proc: subprocess.Popen[str], tmp: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(15) == 0
    finally:
        _reap(proc)
    log = (tmp / "rx.log").read_text()
    assert "Traceback" not in log, log


def get(url: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params, timeout=5)


def test_many_controllers_with_the_control_endpoint(env: RxEnv, tmp_path: Path) -> None:
    many = tmp_path / "many.yaml"
    many.write_text(
        f"server: {env.url}\n"
        "controllers:\n"
        f"  - {{serial: '{env.ports['5001']['url']}', state_dir: '{tmp_path}/a', name: a}}\n"
        f"  - {{serial: '{env.ports['5002']['url']}', state_dir: '{tmp_path}/b', lang: en}}\n")
    proc, url = start(["--many", str(many), "--control-port", "0"], tmp_path)
    try:
        wait_until(lambda: len([c for c in get(url + "/controllers").json()["controllers"]
                                if c["adopted"]]) == 2, 20, "both adopted")
        rows = get(url + "/controllers").json()["controllers"]
        assert {(r["rx"], r["serial"]) for r in rows} == {("5001", "SIM-RX-5001"),
                                                           ("5002", "SIM-RX-5002")}
        wait_until(lambda: get(url + "/osd", rx="5001").json().get("status") == "网络正常", 20,
                   "status 网络正常")
        snap = get(url + "/osd", rx="5001").json()
        assert (snap["screen"], snap["user"], snap["feedback"]) == ("login", None, None)
        # the summary of every controller says as much (the lab's readiness check uses it),
        # once its first watch answer came (the status line may be back a moment earlier,
        # from a state report's answer)
        def summary() -> tuple[Any, ...]:
            row = next(r for r in get(url + "/controllers").json()["controllers"]
                       if r["name"] == "a")
            return row["status"], row["converged"], row["server_ok"]
        wait_until(lambda: summary() == ("网络正常", True, True), 20, "a's summary in sync")
        assert get(url + "/osd", rx="a").json()["rx"] == "5001"   # by name too
        # the server's say (zh_CN) wins over the file's `lang: en` once its watch answered
        wait_until(lambda: get(url + "/osd", rx="SIM-RX-5002").json()["lang"] == "zh_CN", 20,
                   "the server's language")

        env.sim.type_text("5001", "hxfj")
        env.sim.press("5001", "Tab")
        env.sim.type_text("5001", "123456")
        env.sim.press("5001", "Enter")
        wait_until(lambda: get(url + "/osd", rx="5001").json()["rows"], 15, "the menu")
        env.sim.press("5001", "1 Enter")
        wait_until(lambda: get(url + "/osd", rx="5001").json()["feedback"] == "连接成功", 15,
                   "连接成功")
        snap = get(url + "/osd", rx="5001").json()
        assert snap["user"] == "hxfj" and snap["mode"] == "connect"
        assert snap["rows"][0] == {"id": "0001", "name": "PC one", "colour": "bright_yellow"}

        import pygame

        png = get(url + "/osd.png", rx="5002", w="640", h="360")
        assert png.headers["Content-Type"] == "image/png"
        image = pygame.image.load(io.BytesIO(png.content), "x.png")
        assert image.get_size() == (640, 360)
        assert image.get_at((0, 0)).a == 0 and image.get_at((320, 180)).a > 0

        for params, status, code in [({}, 400, "VALIDATION"), ({"rx": "9999"}, 404, "NOT_FOUND"),
                                     ({"rx": "5001", "w": "5"}, 400, "VALIDATION"),
                                     ({"rx": "5001", "h": "x"}, 400, "VALIDATION")]:
            resp = get(url + "/osd.png", **params)
            assert (resp.status_code, resp.json()["error"]["code"]) == (status, code)
        assert get(url + "/nope").status_code == 404
    finally:
        stop(proc, tmp_path)
    secret = tmp_path / "a" / "device-secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_single_controller_stops_cleanly_on_sigterm(env: RxEnv, tmp_path: Path) -> None:
    proc, url = start(["--serial", env.ports["5001"]["url"], "--server", env.url,
                       "--state-dir", str(tmp_path / "one"), "--lang", "en",
                       "--control-port", "0"], tmp_path)
    try:
        wait_until(lambda: get(url + "/osd", rx="5001").json().get("status") == "网络正常", 20,
                   "adopted, status from the server's settings (zh_CN)")
        wait_until(lambda: env.rx_state("5001")["overlay"], 10, "the login screen's overlay")
    finally:
        stop(proc, tmp_path)
    assert env.rx_state("5001")["overlay"], "stopping leaves the screen as it is"


def test_window_mode_runs_headless_and_stops_on_sigterm(env: RxEnv, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")   # a window without a display
    proc, url = start(["--serial", env.ports["5001"]["url"], "--server", env.url,
                       "--state-dir", str(tmp_path / "win"), "--window",
                       "--control-port", "0"], tmp_path)
    try:
        wait_until(lambda: get(url + "/osd", rx="5001").json().get("screen") == "login", 20,
                   "the login screen")
        assert proc.poll() is None
    finally:
        stop(proc, tmp_path)
