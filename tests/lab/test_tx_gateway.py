"""The Tx gateway: announces each reachable Tx, posts its state on change and as heartbeat."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.tx_gateway import (
    GatewayCore,
    TxGateway,
    TxReport,
    load_secrets,
    reports_from_sim_state,
)

SECRETS = {"SIM-TX-0001": "a" * 64, "SIM-TX-0002": "b" * 64}


def report(
    serial: str = "SIM-TX-0001",
    *,
    reachable: bool = True,
    video: tuple[bool, ...] = (True,),
    stream_ok: bool = True,
) -> TxReport:
    return TxReport(serial, len(video), "TX-FW 1", reachable, stream_ok, video)


def ok_all(core: GatewayCore, now: float, reports: list[TxReport]) -> list[str]:
    sends = core.plan(now, reports)
    for s in sends:
        core.result(now, s, "ok")
    return [f"{s.kind}:{s.serial}" for s in sends]


# --- the pure core ---------------------------------------------------------------------


def test_announce_first_then_state_then_quiet_until_heartbeat() -> None:
    core = GatewayCore(SECRETS, heartbeat_s=2.0)
    r = [report()]
    assert ok_all(core, 0.0, r) == ["announce:SIM-TX-0001"]
    assert ok_all(core, 0.1, r) == ["state:SIM-TX-0001"]
    assert ok_all(core, 1.0, r) == []
    assert ok_all(core, 2.2, r) == ["state:SIM-TX-0001"]
    assert core.reporting() == {"SIM-TX-0001"}


def test_a_change_is_posted_at_once_with_the_new_video() -> None:
    core = GatewayCore(SECRETS, heartbeat_s=10.0)
    ok_all(core, 0.0, [report()])
    ok_all(core, 0.1, [report()])
    sends = core.plan(0.2, [report(video=(False,))])
    assert [s.kind for s in sends] == ["state"]
    assert sends[0].body == {
        "online": True,
        "stream_ok": True,
        "heads": [{"head": 1, "video": False}],
    }


def test_unreachable_tx_says_nothing_and_announces_again_when_back() -> None:
    core = GatewayCore(SECRETS)
    ok_all(core, 0.0, [report()])
    ok_all(core, 0.1, [report()])
    assert ok_all(core, 5.0, [report(reachable=False)]) == []
    assert core.reporting() == set()
    assert ok_all(core, 6.0, [report()]) == ["announce:SIM-TX-0001"]
    assert ok_all(core, 6.1, [report()]) == ["state:SIM-TX-0001"]


def test_failures_back_off_and_conflict_gives_up() -> None:
    core = GatewayCore(SECRETS)
    r = [report(), report("SIM-TX-0002")]
    sends = core.plan(0.0, r)
    core.result(0.0, sends[0], "failed")
    core.result(0.0, sends[1], "conflict")
    assert core.plan(0.1, r) == []  # 0001 waits, 0002 gave up
    assert [s.serial for s in core.plan(1.0, r)] == ["SIM-TX-0001"]
    assert core.given_up() == {"SIM-TX-0002"}


def test_unauthorized_state_post_announces_again() -> None:
    core = GatewayCore(SECRETS)
    ok_all(core, 0.0, [report()])
    (send,) = core.plan(0.1, [report()])
    core.result(0.1, send, "unauthorized")
    assert [s.kind for s in core.plan(5.0, [report()])] == ["announce"]


def test_serial_without_secret_is_ignored() -> None:
    assert GatewayCore({}).plan(0.0, [report()]) == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.booleans(),
            st.sampled_from(["ok", "failed", "unauthorized", "pending"]),
            st.floats(0, 3),
        ),
        max_size=40,
    )
)
def test_never_posts_state_without_an_accepted_announce(
    steps: list[tuple[bool, bool, str, float]],
) -> None:
    core = GatewayCore(SECRETS, heartbeat_s=1.0)
    now = 0.0
    announced = False
    for reachable, video, outcome, dt in steps:
        now += dt
        for send in core.plan(now, [report(reachable=reachable, video=(video,))]):
            if send.kind == "state":
                assert announced
            core.result(now, send, outcome)  # type: ignore[arg-type]
            if send.kind == "announce":
                announced = outcome == "ok"
            elif outcome == "unauthorized":
                announced = False
        if not reachable:
            announced = False


def test_reports_from_sim_state() -> None:
    state = {
        "tx": [
            {
                "id": "0001",
                "serial": "S1",
                "firmware": "F",
                "power": True,
                "network": True,
                "stream_ok": True,
                "video": [True, False],
            },
            {
                "id": "0012",
                "serial": "S12",
                "firmware": "F",
                "power": False,
                "network": True,
                "stream_ok": True,
                "video": [True],
            },
        ]
    }
    r1, r2 = reports_from_sim_state(state)
    assert (r1.serial, r1.heads, r1.video, r1.reachable) == ("S1", 2, (True, False), True)
    assert not r2.reachable
    for bad in (
        None,
        {},
        {"tx": [1]},
        {"tx": [{"serial": ""}]},
        {"tx": [{"serial": "S", "video": []}]},
    ):
        with pytest.raises(ValueError):
            reports_from_sim_state(bad)


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "lab" / "tx-secrets.json"
    first = load_secrets(path, ["S1", "S2"])
    assert len(first["S1"]) == 64 and first["S1"] != first["S2"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secrets(path, ["S1", "S2"]) == first
    more = load_secrets(path, ["S1", "S3"])
    assert more["S1"] == first["S1"] and "S3" in more
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_secrets(path, ["S1"])


# --- the thread against a fake server ----------------------------------------------------


class FakeServer:
    """Records device calls; answers like docs/API.md."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, Any]] = []
        self.bound: dict[str, str] = {}
        self.event = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization")
                fake.calls.append((self.path, auth, body))
                status = 200
                answer: dict[str, Any] = {"generation": 1}
                if self.path == "/api/v1/device/announce":
                    fake.bound.setdefault(body["serial"], body["secret"])
                    if fake.bound[body["serial"]] != body["secret"]:
                        status, answer = 409, {"error": {"code": "CONFLICT", "message": "x"}}
                    else:
                        answer = {"state": "adopted"}
                elif self.path == "/api/v1/device/states":
                    answer = {"answers": [
                        {"serial": d["serial"], "generation": 1}
                        if fake.bound.get(d["serial"]) == d["secret"] else
                        {"serial": d["serial"],
                         "error": {"code": "UNAUTHORIZED", "message": "wrong secret"}}
                        for d in body["devices"]]}
                elif auth is None or auth.removeprefix("Device ").split(":")[1] != fake.bound.get(
                    auth.removeprefix("Device ").split(":")[0]
                ):
                    status = 401
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                fake.event.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def test_gateway_rounds_against_a_server(fake_server: FakeServer) -> None:
    reports = [report(), report("SIM-TX-0002", reachable=False)]
    gw = TxGateway(fake_server.url, lambda: reports, SECRETS)
    with requests.Session() as session:
        gw.tick(session)
        gw.tick(session)
    paths = [(p, a) for p, a, _ in fake_server.calls]
    assert paths == [("/api/v1/device/announce", None), ("/api/v1/device/states", None)]
    assert fake_server.calls[0][2]["kind"] == "tx"
    assert fake_server.calls[1][2] == {"devices": [
        {"serial": "SIM-TX-0001", "secret": "a" * 64, "state": report().state_body()}]}
    assert gw.reporting() == {"SIM-TX-0001"}


def test_gateway_posts_the_states_together_and_handles_each_answer(
        fake_server: FakeServer) -> None:
    """300 Tx: two state requests (256 + 44), not 300; a Tx whose secret the server does not
    accept announces again while the others keep reporting."""
    serials = [f"SIM-TX-{i:04d}" for i in range(1, 301)]
    secrets = {s: f"{i:064x}" for i, s in enumerate(serials)}
    gw = TxGateway(fake_server.url, lambda: [report(s) for s in serials], secrets)
    with requests.Session() as session:
        gw.tick(session)   # 300 announces
        fake_server.bound["SIM-TX-0007"] = "f" * 64   # an admin reset it meanwhile
        gw.tick(session)
    states = [body for path, _, body in fake_server.calls if path == "/api/v1/device/states"]
    assert [len(b["devices"]) for b in states] == [256, 44]
    assert gw.reporting() == set(serials) - {"SIM-TX-0007"}


def test_gateway_survives_a_dead_server_and_a_broken_simulator() -> None:
    def broken() -> list[TxReport]:
        raise ValueError("bad state")

    gw = TxGateway("http://127.0.0.1:9", broken, SECRETS, timeout_s=0.5)
    with requests.Session() as session:
        gw.tick(session)
        assert gw.last_error and "simulator" in gw.last_error
        gw.read_reports = lambda: [report()]
        gw.tick(session)
    assert gw.last_error and "announce SIM-TX-0001" in gw.last_error
    assert gw.reporting() == set()


def test_gateway_thread_starts_and_stops(fake_server: FakeServer) -> None:
    gw = TxGateway(fake_server.url, lambda: [report()], SECRETS, poll_s=0.05)
    gw.start()
    try:
        assert fake_server.event.wait(10)
    finally:
        gw.stop()
    assert gw._thread is not None and not gw._thread.is_alive()
