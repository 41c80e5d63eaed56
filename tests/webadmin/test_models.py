"""Storage: constraints, append-only audit, cache versions, init_data_dir, snapshot building."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import DatabaseError, IntegrityError

from tests.webadmin.conftest import Room, db_of
from webadmin import engine, routing
from webadmin import models as m
from webadmin.app import create_app
from webadmin.db import Database, DataDirError, check_ready, init_data_dir, sqlite_url
from webadmin.snapshot import Built, SnapshotCache


def test_audit_log_is_append_only(app: Flask) -> None:
    db = db_of(app)
    with db.session() as s:
        entry = s.scalars(select(m.AuditEntry)).first()
        assert entry is not None and entry.action == "init"
        entry.result = "forged"
        with pytest.raises(DatabaseError, match="append-only"):
            s.commit()
    with db.session() as s:
        entry = s.scalars(select(m.AuditEntry)).first()
        assert entry is not None
        s.delete(entry)
        with pytest.raises(DatabaseError, match="append-only"):
            s.commit()


@pytest.mark.parametrize(
    "device",
    [
        {"id": None, "kind": "rx", "adoption": "adopted"},   # adopted needs an ID
        {"id": "5001", "kind": "xx", "adoption": "adopted"},
        {"id": "5001", "kind": "rx", "adoption": "adopted", "heads": 5},
    ],
)
def test_device_constraints(app: Flask, device: dict[str, object]) -> None:
    with db_of(app).session() as s:
        s.add(m.Device(**device))
        with pytest.raises(IntegrityError):
            s.commit()


def test_grant_needs_one_subject_and_one_object(app: Flask, room: Room) -> None:
    with db_of(app).session() as s:
        s.add(m.Grant(scope="view", device_pk=room.devices["0001"]))
        with pytest.raises(IntegrityError):
            s.commit()


def test_versions_move_with_the_right_changes(app: Flask, room: Room) -> None:
    db = db_of(app)
    cache = SnapshotCache(30)

    def versions() -> tuple[int, int, int]:
        with db.session() as s:
            return cache.versions(s)

    c0, d0, r0 = versions()
    with db.begin() as s:
        dev = s.get(m.Device, room.devices["0001"])
        assert dev is not None
        dev.last_seen = m.utcnow()          # liveness alone: no version moves
    assert versions() == (c0, d0, r0)
    with db.begin() as s:
        dev = s.get(m.Device, room.devices["0001"])
        assert dev is not None
        dev.online = False
    assert versions() == (c0, d0 + 1, r0)
    with db.begin() as s:
        dev = s.get(m.Device, room.devices["0001"])
        assert dev is not None
        dev.name = "Renamed"
    c1, _, _ = versions()
    assert c1 == c0 + 1
    with db.session() as s:
        built = cache.build(s)
    assert built.snap.devices["0001"].name == "Renamed"
    assert built.snap.devices["0001"].online is False
    with db.session() as s:
        cache.build(s)
    assert cache.builds == {"config": 1, "devices": 1, "routing": 1, "patched": 0}


def test_snapshot_expands_groups_and_view_only(app: Flask, room: Room) -> None:
    with db_of(app).session() as s:
        snap = SnapshotCache(30).build(s).snap
    hxfj = snap.users["hxfj"].scopes
    assert hxfj.view == {"0001", "0002", "0003", "0004", "0005"}
    assert hxfj.view_only == frozenset()
    assert "5011" in hxfj.push and hxfj.login is None
    viewer = snap.users["viewer"].scopes
    assert viewer.view == viewer.view_only == {"0001", "0002"}
    assert snap.users["guest"].scopes.login == {"5001"}
    assert snap.hotkeys["ops"].targets == ("5002", "5003")
    assert snap.walls[0].tiles == ("5011", "5012", "5013", "5014") and snap.walls[0].splice
    assert snap.seats[0].screens == ("5002", "5003")
    assert snap.devices["0004"].online is False
    assert snap.devices["0003"].video == (False,)


def test_init_data_dir(tmp_path: Path) -> None:
    password = init_data_dir(tmp_path / "d")
    assert len(password) >= 12
    assert (tmp_path / "d" / "secret_key").stat().st_mode & 0o077 == 0
    db = Database(sqlite_url(tmp_path / "d"))
    check_ready(db)
    db.dispose()
    with pytest.raises(DataDirError, match="already initialised"):
        init_data_dir(tmp_path / "d", "another1")
    with pytest.raises(DataDirError, match="at least 6"):
        init_data_dir(tmp_path / "e", "short")


# --- the snapshot cache after commits ----------------------------------------------------


def fresh(app: Flask) -> Built:
    """The snapshot as a new process would load it."""
    with db_of(app).session() as s:
        return SnapshotCache(30).build(s)


def same_state(a: Built, b: Built) -> bool:
    routing = {rx: r for rx, r in a.snap.routing.items() if any(r)}
    other = {rx: r for rx, r in b.snap.routing.items() if any(r)}
    return (routing, dict(a.snap.sessions), a.config.settings, dict(a.config.names)) == (
        other, dict(b.snap.sessions), b.config.settings, dict(b.config.names))


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["5001", "5002", "5004", "5011"]),
        st.sampled_from(["connect", "push", "fetch", "logout", "login"]),
        st.sampled_from(["1", "2", "A1", "duo", "5002", "wall", "all", "0006", "5004"]),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_cached_state_always_equals_a_reload(app: Flask, room: Room,
                                             actions: list[tuple[str, str, str]]) -> None:
    """After every seat action the server's cache (patched in place or marked stale) gives
    exactly what a fresh load gives: a cached answer is never stale."""
    client = app.test_client()
    cache: SnapshotCache = app.extensions["kvm"].cache
    for rx, action, typed in actions:
        if action == "login":
            room.login(client, rx, "hxfj")
        elif action == "logout":
            client.post("/api/v1/seat/logout", headers=room.headers(rx))
        else:
            room.act(client, rx, action, typed)
        latest = cache.latest()
        reload = fresh(app)
        if latest is not None:
            assert same_state(latest, reload)
        with db_of(app).session() as s:
            assert same_state(cache.build(s), reload)


def test_a_switch_patches_the_routing_instead_of_reloading(app: Flask, room: Room) -> None:
    client = app.test_client()
    cache: SnapshotCache = app.extensions["kvm"].cache
    room.login(client, "5001", "hxfj")
    room.act(client, "5001", "connect", "1")    # loads the cache
    loads = cache.builds["routing"]
    patched = cache.builds["patched"]
    for typed in ("2", "1", "2"):
        room.act(client, "5001", "connect", typed)
    room.act(client, "5001", "push", "5002")
    assert cache.builds["routing"] == loads
    assert cache.builds["patched"] == patched + 4
    latest = cache.latest()
    assert latest is not None and same_state(latest, fresh(app))
    # Nobody is logged in at seat-B: the push is marked as one.
    assert latest.snap.routing["5002"][0] == engine.Route("0002", 1, "hxfj", True)


def test_a_patch_that_does_not_line_up_marks_the_routing_stale(app: Flask, room: Room) -> None:
    db = db_of(app)
    cache = SnapshotCache(30)
    with db.session() as s:
        before = cache.build(s)
    cv, dv, rv = before.versions
    change = engine.RouteChange("5001", 1, engine.Route("0001", 1, "hxfj"))
    # Another commit moved the routing too (rv + 2): the cache must not guess.
    assert not cache.apply(before, [change], "hxfj", (cv, dv, rv + 2))
    assert cache.latest() is None
    # A changed configuration: the same.
    with db.session() as s:
        before = cache.build(s)
    assert not cache.apply(before, [change], "hxfj", (cv + 1, dv, rv + 1))
    assert cache.latest() is None


def test_the_cache_never_goes_back_to_an_older_state(app: Flask, room: Room) -> None:
    """A reader whose transaction started before a commit must not put its older copy back
    into the cache after the commit announced a newer state."""
    db = db_of(app)
    cache: SnapshotCache = app.extensions["kvm"].cache
    client = app.test_client()
    room.login(client, "5001", "hxfj")
    with db.session() as old:
        cache.versions(old)  # the old transaction's snapshot starts here (SQLite)
        room.act(client, "5001", "connect", "1")
        newer = cache.latest()
        assert newer is not None
        cache._routing = (cache._routing[0], None) if cache._routing else None  # force a load
        stale_view = cache.build(old)
    if db.engine is not None and db.engine.dialect.name == "sqlite":
        assert stale_view.snap.routing.get("5001", (None,))[0] is None
    latest = cache.latest()
    assert latest is None or latest.snap.routing["5001"][0] == newer.snap.routing["5001"][0]
    with db.session() as s:
        assert cache.build(s).snap.routing["5001"][0] == engine.Route("0001", 1, "hxfj")


def test_settings_and_credentials_are_cached_with_the_config(app: Flask, room: Room) -> None:
    db = db_of(app)
    cache = SnapshotCache(30)
    with db.session() as s:
        first = cache.build(s)
    assert first.config.settings["chord"] == "Shift+O Shift+O"
    assert first.config.credentials["SIM-RX-5001"].id == "5001"
    with db.begin() as s:
        row = s.get(m.Settings, 1)
        assert row is not None
        row.chord_window_ms = 900
        dev = s.get(m.Device, room.devices["5001"])
        assert dev is not None
        dev.credential_hash = None
    with db.session() as s:
        second = cache.build(s)
    assert second.versions[0] > first.versions[0]
    assert second.config.settings["chord_window_ms"] == 900
    assert second.config.credentials["SIM-RX-5001"].credential_hash is None


def test_decisions_of_two_processes_queue_instead_of_failing(
        app: Flask, room: Room, server_config: dict[str, Any]) -> None:
    """A decision reads, then writes: with a second server on the same database, the second
    decision waits for the first one's commit (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
    version row FOR UPDATE) instead of failing or deciding on what it read before."""
    other = create_app(server_config)
    try:
        client = app.test_client()
        room.login(client, "5001", "hxfj")
        cache: SnapshotCache = app.extensions["kvm"].cache
        results: list[Any] = []
        with db_of(app).session() as s:
            cache.build(s, lock=True)   # our decision holds the write side from here

            def second() -> None:
                resp = other.test_client().post("/api/v1/seat/connect",
                                                 headers=room.headers("5001"),
                                                 json={"input": "2"})
                results.append((resp.status_code, resp.get_json()))

            t = threading.Thread(target=second)
            t.start()
            t.join(0.5)
            assert t.is_alive()        # it waits for our commit
            routing.audit(s, actor="test", action="probe", result="OK")
            s.commit()
        t.join(20)
        assert not t.is_alive()
        assert results == [(200, results[0][1])] and results[0][1]["result"] == "CONNECTED"
    finally:
        other.extensions["kvm"].db.dispose()
