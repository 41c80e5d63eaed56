"""The server's idle logout (webadmin.idle): the pure rule, one check on the database, what
the seat's controller sees afterwards, and the background loop's start and stop."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from tests.webadmin.conftest import Room, db_of, seed_room
from webadmin import models as m
from webadmin.app import create_app
from webadmin.idle import (
    MAX_PERIOD_S,
    MIN_PERIOD_S,
    IdleLogout,
    SeatActivity,
    check_period,
    idle_seats,
    log_out_idle,
)

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# --- the rule (pure) ---------------------------------------------------------------------


def test_idle_seats_table() -> None:
    seats = [SeatActivity("5001", "a", at(0)), SeatActivity("5002", "b", at(50)),
             SeatActivity("5004", "c", at(61))]
    assert idle_seats(seats, at(120), 60, since=at(-1000)) == seats[:2]
    assert idle_seats(seats, at(110), 60, since=at(-1000)) == seats[:2]    # exactly 60 s
    assert idle_seats(seats, at(109), 60, since=at(-1000)) == seats[:1]
    assert idle_seats(seats, at(10**6), 0, since=at(-1000)) == []          # 0 = never
    # The server started watching at 100: nobody is idle before 160, whatever they did.
    assert idle_seats(seats, at(159), 60, since=at(100)) == []
    assert idle_seats(seats, at(160), 60, since=at(100)) == seats


@settings(max_examples=150, deadline=None)
@given(last=st.lists(st.integers(0, 1000), max_size=6), now=st.integers(0, 2000),
       later=st.integers(0, 500), idle=st.integers(1, 600), since=st.integers(0, 1000))
def test_idle_seats_properties(last: list[int], now: int, later: int, idle: int,
                               since: int) -> None:
    seats = [SeatActivity(f"{5001 + i}", "u", at(t)) for i, t in enumerate(last)]
    gone = idle_seats(seats, at(now), idle, since=at(since))
    for seat in seats:   # idle exactly when its last sign of life (or the start) is old enough
        quiet = (at(now) - max(seat.last_active, at(since))).total_seconds()
        assert (seat in gone) == (quiet >= idle)
    # Time only adds idle seats.
    assert set(gone) <= set(idle_seats(seats, at(now + later), idle, since=at(since)))


@pytest.mark.parametrize(("idle", "period"), [
    (0, MAX_PERIOD_S), (1, MIN_PERIOD_S), (5, MIN_PERIOD_S), (60, 6.0), (300, 30.0),
    (86400, MAX_PERIOD_S)])
def test_check_period(idle: int, period: float) -> None:
    assert check_period(idle) == period


# --- one check on the database -----------------------------------------------------------


def set_idle(app: Flask, seconds: int) -> None:
    with db_of(app).begin() as s:
        settings_row = s.get(m.Settings, 1)
        assert settings_row is not None
        settings_row.idle_logout_s = seconds


def age(app: Flask, room: Room, seconds: float, *rx: str) -> None:
    """Make the sessions, operator calls and heartbeats of these Rx `seconds` old."""
    then = m.utcnow() - dt.timedelta(seconds=seconds)
    pks = [room.devices[r] for r in rx]
    with db_of(app).begin() as s:
        s.execute(update(m.SeatSession).where(m.SeatSession.rx_pk.in_(pks))
                  .values(since=then, last_active=then))
        s.execute(update(m.Device).where(m.Device.pk.in_(pks)).values(last_seen=then))


def check(app: Flask, now: dt.datetime | None = None,
          since: dt.datetime | None = None) -> list[str]:
    svc = app.extensions["kvm"]
    with db_of(app).session() as s:
        gone, _ = log_out_idle(s, svc.cache, svc.hub, now or m.utcnow(),
                               since or m.utcnow() - dt.timedelta(days=1))
    return [g.rx_id for g in gone]


def watch(client: FlaskClient, room: Room, rx: str) -> dict[str, Any]:
    resp = client.get("/api/v1/device/watch?timeout=0", headers=room.headers(rx))
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def test_an_idle_seat_is_logged_out_as_by_a_logout(client: FlaskClient, room: Room,
                                                   app: Flask) -> None:
    set_idle(app, 60)
    room.login(client, "5002", "hxfj")
    room.act(client, "5002", "connect", "1")
    room.act(client, "5003", "connect", "2")
    room.login(client, "5001", "guest")
    age(app, room, 61, "5002", "5003")          # seat-B: no call, no heartbeat for 61 s
    age(app, room, 59, "5001")
    before = watch(client, room, "5003")["generation"]

    assert check(app) == ["5002"]

    for rx in ("5002", "5003"):                 # what the controllers learn from the watch
        body = watch(client, room, rx)
        assert body["session"] is None
        assert [h["source"] for h in body["routing"]] == [None]
    assert watch(client, room, "5003")["generation"] > before
    # ... and from their next call.
    assert room.act(client, "5002", "connect", "1")["result"] == "NOT_LOGGED_IN"
    assert watch(client, room, "5001")["session"]["user"] == "guest"   # 59 s: still in
    with db_of(app).session() as s:
        entry = s.scalars(select(m.AuditEntry).where(m.AuditEntry.action == "logout")).one()
    assert (entry.actor, entry.seat, entry.result) == ("system", "seat-B", "LOGGED_OUT")
    assert entry.detail["user"] == "hxfj" and entry.detail["reason"] == "idle"
    assert entry.detail["idle_logout_s"] == 60 and entry.detail["idle_s"] >= 61
    assert check(app) == []                     # nothing left to do


def test_nothing_happens_while_idle_logout_is_off(client: FlaskClient, room: Room,
                                                  app: Flask) -> None:
    room.login(client, "5001", "hxfj")
    age(app, room, 10**6, "5001")
    assert check(app) == []
    assert watch(client, room, "5001")["session"]["user"] == "hxfj"


@pytest.mark.parametrize("call", ["devices", "connect", "push", "fetch", "heartbeat", "login"])
def test_every_sign_of_life_counts(client: FlaskClient, room: Room, app: Flask,
                                   call: str) -> None:
    set_idle(app, 60)
    room.login(client, "5002", "hxfj")
    room.act(client, "5002", "connect", "1")
    age(app, room, 1000, "5002", "5003")
    if call == "devices":
        resp = client.get("/api/v1/seat/devices?mode=push", headers=room.headers("5003"))
        assert resp.status_code == 200 and resp.get_json()["rows"]
    elif call == "heartbeat":   # the controller of 5003 is alive (its operator may be
        resp = client.post("/api/v1/device/state", headers=room.headers("5003"),   # typing
                           json={"online": True, "network_up": True,      # to the computer)
                                 "heads": [{"head": 1, "source": None, "video": False}]})
        assert resp.status_code == 200
    elif call == "login":
        room.login(client, "5003", "hxfj")
    else:
        room.act(client, "5003", call, {"connect": "2", "push": "1", "fetch": "2"}[call])
    assert check(app) == []
    assert check(app, now=m.utcnow() + dt.timedelta(seconds=30)) == []
    assert check(app, now=m.utcnow() + dt.timedelta(seconds=61)) == ["5002"]


def test_a_server_that_just_started_waits_a_full_idle_time(client: FlaskClient, room: Room,
                                                            app: Flask) -> None:
    set_idle(app, 60)
    room.login(client, "5001", "hxfj")
    age(app, room, 3600, "5001")                # the server was down for an hour
    started = m.utcnow()
    assert check(app, since=started) == []
    assert check(app, now=started + dt.timedelta(seconds=60), since=started) == ["5001"]


def test_a_device_list_writes_its_activity_at_most_every_few_seconds(
        client: FlaskClient, room: Room, app: Flask) -> None:
    room.login(client, "5001", "hxfj")
    age(app, room, 100, "5001")

    def last_active() -> dt.datetime | None:
        with db_of(app).session() as s:
            return s.scalar(select(m.SeatSession.last_active)
                            .where(m.SeatSession.rx_pk == room.devices["5001"]))

    client.get("/api/v1/seat/devices", headers=room.headers("5001"))
    first = last_active()
    assert first is not None and m.utcnow() - first < dt.timedelta(seconds=5)
    client.get("/api/v1/seat/devices", headers=room.headers("5001"))
    assert last_active() == first               # within the resolution: no write


# --- the loop ----------------------------------------------------------------------------


def test_test_apps_start_no_loop(app: Flask) -> None:
    assert app.extensions["kvm_idle"].running is False


def test_the_loop_logs_out_and_stops(server_config: dict[str, Any]) -> None:
    application = create_app(server_config, idle_logout=False)
    loop: IdleLogout = application.extensions["kvm_idle"]
    try:
        assert not loop.running
        room = seed_room(application)
        client = application.test_client()
        set_idle(application, 2)
        room.login(client, "5001", "hxfj")
        loop.start()
        assert loop.running
        # The loop counts from its own start, however old the session looks.
        deadline = time.monotonic() + 30
        while watch(client, room, "5001")["session"] is not None:
            assert time.monotonic() < deadline, "the loop did not log the idle seat out"
            age(application, room, 10, "5001")
            time.sleep(0.2)
        assert loop.logged_out == 1 and loop.checks >= 1
        assert loop.period == MIN_PERIOD_S
        # Stopping at server shutdown: the watch hub closes, the loop ends by itself.
        application.extensions["kvm"].hub.notify_all(wait_s=0)
        deadline = time.monotonic() + 10
        while loop.running:
            assert time.monotonic() < deadline, "the loop did not stop"
            time.sleep(0.05)
    finally:
        loop.stop()
        application.extensions["kvm"].db.dispose()
    assert not loop.running


def test_stop_ends_the_loop_at_once(server_config: dict[str, Any]) -> None:
    application = create_app(server_config, idle_logout=True)
    loop: IdleLogout = application.extensions["kvm_idle"]
    assert loop.running
    started = time.monotonic()
    loop.stop()
    application.extensions["kvm"].db.dispose()
    assert not loop.running and time.monotonic() - started < 3
