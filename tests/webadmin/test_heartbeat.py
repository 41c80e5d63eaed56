"""Heartbeats that change nothing (``POST /api/v1/device/state``): answered without a write
and without Flask, byte for byte what the ordinary path answers; every other report still
goes the ordinary way, with its writes and its exact errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.webadmin.conftest import Room, db_of
from webadmin import models as m
from webadmin.api_device import WatchMiddleware

RX_STATE = {"online": True, "network_up": True, "heads": [{"head": 1, "source": None}]}
TX_STATE = {"online": True, "stream_ok": True, "heads": [{"head": 1, "video": True}]}


def fast(app: Flask) -> WatchMiddleware:
    return app.extensions["kvm_device_paths"]  # type: ignore[no-any-return]


def stored(app: Flask, room: Room, device: str) -> tuple[Any, ...]:
    with db_of(app).session() as s:
        dev = s.get(m.Device, room.devices[device])
        assert dev is not None
        state = s.scalar(select(m.ServerState).where(m.ServerState.pk == 1))
        assert state is not None
        return (dev.last_seen, dev.online, dev.reported_heads, dev.network_up, dev.stream_ok,
                state.device_version)


def report(client: FlaskClient, room: Room, device: str, body: Any) -> Any:
    return client.post("/api/v1/device/state", headers=room.headers(device), json=body)


@pytest.mark.parametrize(("device", "body"), [("5002", RX_STATE), ("0001", TX_STATE)])
def test_unchanged_heartbeat_is_answered_without_a_write(app: Flask, client: FlaskClient,
                                                        room: Room, device: str,
                                                        body: dict[str, Any]) -> None:
    report(client, room, device, {"online": False})  # a change
    first = report(client, room, device, body)  # stores the heads: the ordinary path
    assert first.status_code == 200 and fast(app).heartbeats_unchanged == 0
    before = stored(app, room, device)
    again = report(client, room, device, body)
    assert fast(app).heartbeats_unchanged == 1
    assert stored(app, room, device) == before   # nothing written, no version moved
    assert again.status_code == 200
    assert again.data == first.data and again.data.endswith(b"\n")
    assert again.headers["Content-Type"] == first.headers["Content-Type"] == "application/json"
    assert again.headers["Content-Length"] == first.headers["Content-Length"]
    assert list(again.headers.items()) == list(first.headers.items())


def test_unchanged_heartbeat_answers_the_current_generation(app: Flask, client: FlaskClient,
                                                           room: Room) -> None:
    first = report(client, room, "5002", RX_STATE).get_json()["generation"]
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    room.act(client, "5001", "push", "5002")
    again = report(client, room, "5002", RX_STATE)
    assert fast(app).heartbeats_unchanged == 1
    assert again.get_json()["generation"] > first


def test_a_due_refresh_or_a_change_goes_the_ordinary_way(app: Flask, client: FlaskClient,
                                                        room: Room) -> None:
    report(client, room, "5002", RX_STATE)
    timeout = app.config["KVM_CONFIG"].device_timeout_s
    old = m.utcnow() - dt.timedelta(seconds=timeout / 4 + 1)
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5002"])
        assert dev is not None
        dev.last_seen = old
    report(client, room, "5002", RX_STATE)  # same state, last_seen due: refreshed
    assert fast(app).heartbeats_unchanged == 0
    assert stored(app, room, "5002")[0] > old
    changed = {**RX_STATE, "network_up": False}
    version = stored(app, room, "5002")[-1]
    assert report(client, room, "5002", changed).status_code == 200
    assert fast(app).heartbeats_unchanged == 0
    after = stored(app, room, "5002")
    assert after[3] is False and after[-1] == version + 1


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Authorization": "Device SIM-RX-5002:" + "ab" * 32}, RX_STATE, 401, "UNAUTHORIZED"),
        ({"Authorization": "Bearer x"}, RX_STATE, 401, "UNAUTHORIZED"),
        (None, {**RX_STATE, "stream_ok": True}, 400, "UNKNOWN_FIELD"),
        (None, {**RX_STATE, "online": "yes"}, 400, "VALIDATION"),
        (None, [RX_STATE], 400, "VALIDATION"),
    ],
)
def test_bad_reports_get_their_exact_errors(app: Flask, client: FlaskClient, room: Room,
                                            headers: dict[str, str] | None, body: Any,
                                            status: int, code: str) -> None:
    report(client, room, "5002", RX_STATE)  # the same state is stored already
    resp = client.post("/api/v1/device/state", headers=headers or room.headers("5002"),
                       json=body)
    assert resp.status_code == status
    assert resp.get_json()["error"]["code"] == code
    assert fast(app).heartbeats_unchanged == 0


def test_bad_json_and_pending_devices(app: Flask, client: FlaskClient, room: Room) -> None:
    report(client, room, "5002", RX_STATE)
    resp = client.post("/api/v1/device/state", headers=room.headers("5002"),
                       data=b"{not json", content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "BAD_JSON"
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5003"])
        assert dev is not None
        dev.adoption, dev.id = "pending", None
    resp = report(client, room, "5003", RX_STATE)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "PENDING"
    assert fast(app).heartbeats_unchanged == 0


def test_due_refreshes_are_written_together_when_the_batch_runs(app: Flask,
                                                                client: FlaskClient,
                                                                room: Room) -> None:
    batch = fast(app).last_seen
    assert batch is not None
    batch.period_s = 3600  # the test writes with flush(), not the loop
    for device, body in (("5002", RX_STATE), ("0001", TX_STATE)):
        report(client, room, device, {"online": False})
        report(client, room, device, body)
    timeout = app.config["KVM_CONFIG"].device_timeout_s
    old = m.utcnow() - dt.timedelta(seconds=timeout / 4 + 1)
    with db_of(app).begin() as s:
        for device in ("5002", "0001"):
            dev = s.get(m.Device, room.devices[device])
            assert dev is not None
            dev.last_seen = old
    before = {d: stored(app, room, d) for d in ("5002", "0001")}
    batch.start()
    try:
        sent = m.utcnow()
        assert report(client, room, "5002", RX_STATE).status_code == 200
        assert report(client, room, "0001", TX_STATE).status_code == 200
        assert fast(app).heartbeats_unchanged == 2
        assert {d: stored(app, room, d) for d in before} == before  # not written yet
        assert batch.flush() == 2 and batch.flush() == 0
        for device in before:
            after = stored(app, room, device)
            assert after[0] >= sent - dt.timedelta(seconds=1)
            assert after[1:] == before[device][1:]  # state and versions untouched
        report(client, room, "5002", RX_STATE)  # fresh now: nothing to write
        assert batch.flush() == 0
    finally:
        batch.stop()
    assert not batch.running
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5002"])
        assert dev is not None
        dev.last_seen = old
    report(client, room, "5002", RX_STATE)  # not running: the ordinary path writes
    assert fast(app).heartbeats_unchanged == 3
    assert stored(app, room, "5002")[0] > old


@pytest.mark.parametrize("silent", [None, "timeout"])
def test_a_device_back_from_offline_is_online_at_once(app: Flask, client: FlaskClient,
                                                      room: Room, silent: str | None) -> None:
    """A report that changes nothing from a device that counts as offline (never heard
    from, or silent for its timeout) writes ``last_seen`` at once: left to the batch, the
    device would stay offline up to a period longer and a push to it be refused."""
    batch = fast(app).last_seen
    assert batch is not None
    batch.period_s = 3600   # the batch would write it only on flush()
    report(client, room, "5002", RX_STATE)
    timeout = app.config["KVM_CONFIG"].device_timeout_s
    with db_of(app).begin() as s:
        dev = s.get(m.Device, room.devices["5002"])
        assert dev is not None
        dev.last_seen = None if silent is None else m.utcnow() - dt.timedelta(
            seconds=timeout + 1)
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")
    refused = room.act(client, "5001", "push", "5002")
    assert refused["targets"][0]["result"] == "OFFLINE"
    batch.start()
    try:
        assert report(client, room, "5002", RX_STATE).status_code == 200
        assert fast(app).heartbeats_unchanged == 0      # not left to the batch
        assert stored(app, room, "5002")[0] is not None
        pushed = room.act(client, "5001", "push", "5002")
        assert pushed["targets"][0]["result"] == "PUSHED"
    finally:
        batch.stop()
