"""Restart durability with a real ``kvm-server`` process on 127.0.0.1: kill -9, start again,
routing, sessions and audit log are intact; SIGTERM stops cleanly and releases watches."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from tests.webadmin.conftest import PASSWORDS, device_auth, seed_room
from webadmin import models as m
from webadmin.app import create_app

pytestmark = pytest.mark.slow
HXFJ = {"user": "hxfj", "password": PASSWORDS["hxfj"]}


class Server:
    """A kvm-server subprocess; ``url`` once it logged that it listens."""

    def __init__(self, data: Path, db_url: str) -> None:
        env = {**os.environ, "KVM_SERVER_DEVICE_TIMEOUT_S": "3600",
               "KVM_SERVER_DATABASE_URL": db_url, "KVM_SERVER_LOG_LEVEL": "info"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webadmin", "--data", str(data), "--host", "127.0.0.1",
             "--port", "0"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        self.url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, "kvm-server exited early"
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == "listening":
                self.url = f"http://127.0.0.1:{rec['port']}"
                return
        self.stop(signal.SIGKILL)
        raise AssertionError("kvm-server did not start within 60 s")

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def post(self, path: str, device: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = "TX" if device < "5000" else "RX"
        resp = requests.post(self.url + path, json=body, timeout=30,
                             headers=device_auth(f"SIM-{kind}-{device}"))
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def watch(self, device: str, query: str = "timeout=0") -> dict[str, Any]:
        resp = requests.get(f"{self.url}/api/v1/device/watch?{query}", timeout=70,
                            headers=device_auth(f"SIM-RX-{device}"))
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.pump.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return rc


@pytest.fixture
def data_dir(server_config: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    app = create_app(server_config)
    seed_room(app)
    app.extensions["kvm"].db.dispose()
    yield Path(server_config["data_dir"]), server_config["database_url"]


def audit_count(server_config: dict[str, Any]) -> int:
    app = create_app(server_config)
    try:
        with app.extensions["kvm"].db.session() as s:
            return int(s.scalar(select(func.count()).select_from(m.AuditEntry)) or 0)
    finally:
        app.extensions["kvm"].db.dispose()


def test_kill_9_loses_nothing(data_dir: tuple[Path, str],
                              server_config: dict[str, Any]) -> None:
    server = Server(*data_dir)
    try:
        assert server.post("/api/v1/seat/login", "5001",
                           HXFJ)["result"] == "NETWORK_OK"
        assert server.post("/api/v1/seat/connect", "5001", {"input": "1"})["result"] == "CONNECTED"
        assert server.post("/api/v1/seat/push", "5001", {"input": "2"})["result"] == "PUSHED"
        assert server.post("/api/v1/seat/login", "5004",
                           HXFJ)["result"] == "NETWORK_OK"
        assert server.post("/api/v1/seat/connect", "5004", {"input": "2"})["result"] == "CONNECTED"
        before = {rx: server.watch(rx) for rx in ("5001", "5002", "5004")}
    finally:
        server.stop(signal.SIGKILL)
    audited = audit_count(server_config)
    assert audited >= 5

    server = Server(*data_dir)
    try:
        after = {rx: server.watch(rx) for rx in ("5001", "5002", "5004")}
        assert after == before
        assert after["5001"]["routing"][0]["source"] == "0001:1"
        assert after["5002"]["routing"][0] == {"head": 1, "source": "0001:1", "set_by": "hxfj",
                                               "pushed": True}
        assert [h["source"] for h in after["5004"]["routing"]] == ["0002:1", "0002:2"]
        assert after["5001"]["session"]["user"] == "hxfj"
        # The restarted server goes on from the stored generations.
        gen = after["5001"]["generation"]
        assert server.post("/api/v1/seat/connect", "5001", {"input": "2"})["result"] == "CONNECTED"
        assert server.watch("5001", f"generation={gen}&timeout=5")["generation"] > gen
    finally:
        assert server.stop() == 0
    assert audit_count(server_config) == audited + 1


def test_sigterm_releases_waiting_watches(data_dir: tuple[Path, str]) -> None:
    server = Server(*data_dir)
    try:
        gen = server.watch("5001")["generation"]
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    got: dict[str, Any] = {}

    def wait() -> None:
        start = time.monotonic()
        got["body"] = server.watch("5001", f"generation={gen}&timeout=60")
        got["took"] = time.monotonic() - start

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)  # let the long poll reach the server (a real socket; bounded)
    assert server.stop() == 0
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert got["took"] < 30
    assert got["body"]["generation"] == gen


def test_refuses_to_start_without_data_dir(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "webadmin", "--data", str(tmp_path / "none"), "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "kvm-admin init" in proc.stderr


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "server.yaml"
    cfg.write_text("port: 99999\nlog_level: loud\n")
    proc = subprocess.run(
        [sys.executable, "-m", "webadmin", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "port: 99999" in proc.stderr
    assert "log_level" in proc.stderr
