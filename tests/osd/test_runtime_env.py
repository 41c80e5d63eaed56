"""A small control room for controller tests and the benchmark (no tests in this module).

``RxEnv`` builds, on 127.0.0.1 only:
- a data directory seeded from a control-room document (``webadmin.topology_db``),
  served by the real ``kvm-server`` subprocess (so a server outage is a real one: the
  process dies and its sockets with it) on a port that survives restarts;
- the simulator (``firmware_sim.Simulator``) built from the same document;
- the Tx gateway that reports the simulated Tx to the server;
- controllers (``osd.runtime.Controller``) on one shared hub, each with a long poll of its
  own or (``grouped``) sharing one (``osd.watchgroup.WatchGroup``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from firmware_sim.simulator import Simulator
from firmware_sim.tx_gateway import TxGateway, load_secrets, reports_from_sim_state
from osd.hub import Hub
from osd.reportgroup import ReportGroup
from osd.runtime import Controller, ControllerConfig
from osd.watchgroup import WatchGroup
from webadmin import topology
from webadmin.db import Database, init_data_dir, sqlite_url
from webadmin.topology_db import import_config

BIN = Path(sys.executable).parent
PASSWORD = "123456"

ROOM: dict[str, Any] = {
    "tx": [
        {"id": "0001", "name": "PC one", "serial": "SIM-TX-0001"},
        {"id": "0002", "name": "PC two", "serial": "SIM-TX-0002"},
    ],
    "rx": [
        {"id": "5001", "name": "Desk 1", "serial": "SIM-RX-5001"},
        {"id": "5002", "name": "Desk 2", "serial": "SIM-RX-5002"},
    ],
    "users": [{"name": "hxfj", "password": PASSWORD}],
    "grants": [
        {"user": "hxfj", "scope": "view", "devices": ["0001-0002"]},
        {"user": "hxfj", "scope": "push", "devices": ["5001-5002"]},
        {"user": "hxfj", "scope": "fetch", "devices": ["5001-5002"]},
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition",
               interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class RxEnv:
    """Server + simulator + Tx gateway + controllers; ``close()`` stops everything."""

    def __init__(self, tmp: Path, room: dict[str, Any] | None = None, *,
                 sim_overrides: dict[str, Any] | None = None,
                 device_timeout_s: int = 30, grouped: bool = False) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.room = room or ROOM
        self.cfg = topology.parse(self.room)
        self.data = tmp / "server-data"
        init_data_dir(self.data, "admin-pass-1")
        db = Database(sqlite_url(self.data))
        try:
            with db.begin() as s:
                import_config(s, self.cfg, replace=False)
        finally:
            db.dispose()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.device_timeout_s = device_timeout_s
        self.server: subprocess.Popen[bytes] | None = None
        self.start_server()
        doc = topology.sim_document(self.cfg) | (sim_overrides or {})
        self.sim = Simulator(doc)
        self.sim.start()
        self.ports = self.sim.ports()
        tx_serials = [d.serial for d in self.cfg.tx if d.serial]
        self.gateway = TxGateway(
            self.url, lambda: reports_from_sim_state(self.sim.state()),
            load_secrets(tmp / "tx-secrets.json", tx_serials), poll_s=0.1, heartbeat_s=8.0)
        self.gateway.start()
        self.hub = Hub(workers=4)
        # grouped: the controllers share one long poll and post their reports together,
        # as in ``kvm-rx --many``.
        self.watches = WatchGroup(self.url, self.hub, retry=(0.1, 0.5)) if grouped else None
        self.reports = ReportGroup(self.url) if grouped else None
        if self.reports is not None:
            self.reports.start()
        self.controllers: dict[str, Controller] = {}

    # --- server ---------------------------------------------------------------------------
    def start_server(self) -> None:
        env = dict(os.environ, KVM_SERVER_DEVICE_TIMEOUT_S=str(self.device_timeout_s),
                   KVM_SERVER_LOG_LEVEL="warning", KVM_SERVER_LOG_FORMAT="text")
        with open(self.tmp / "server.log", "ab") as log:   # the child keeps its own copy
            self.server = subprocess.Popen(
                [str(BIN / "kvm-server"), "--data", str(self.data), "--port", str(self.port)],
                env=env, stdout=subprocess.DEVNULL, stderr=log)

        def ready() -> bool:
            assert self.server is not None
            if self.server.poll() is not None:
                log = (self.tmp / "server.log").read_text(errors="replace")
                raise AssertionError(f"kvm-server exited: {log[-2000:]}")
            try:
                return requests.get(self.url + "/api/v1/openapi.json", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(ready, 30, "kvm-server to listen", interval=0.05)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGKILL)   # an outage, not a polite shutdown
            self.server.wait(10)
            self.server = None

    # --- controllers -------------------------------------------------------------------------
    def controller(self, rx: str, **kw: Any) -> Controller:
        """Start the controller of simulated Rx ``rx`` (test timings: short retries)."""
        kw.setdefault("server_retry", (0.1, 0.5))
        kw.setdefault("announce_retry", (0.1, 0.5))
        # Slow heartbeats: kvm-server (SQLite, deferred BEGIN) answers 503 to a login when any
        # other write lands during its argon2 check; fewer writes keep the tests deterministic.
        kw.setdefault("heartbeat", (8.0, 9.0))
        config = ControllerConfig(serial_url=self.ports[rx]["url"], server_url=self.url,
                                  state_dir=self.tmp / f"rx-{rx}", name=rx, **kw)
        ctrl = Controller(config, hub=self.hub, watches=self.watches, reports=self.reports)
        ctrl.start()
        self.controllers[rx] = ctrl
        return ctrl

    def rx_state(self, rx: str) -> dict[str, Any]:
        return next(d for d in self.sim.state()["rx"] if d["id"] == rx)

    def close(self) -> None:
        for ctrl in self.controllers.values():
            ctrl.stop()
        if self.watches is not None:
            self.watches.close()
        if self.reports is not None:
            self.reports.close()
        self.hub.close()
        self.gateway.stop()
        self.sim.stop()
        self.stop_server()
