"""Storage: constraints, append-only audit, cache versions, init_data_dir, snapshot building."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import DatabaseError, IntegrityError

from tests.webadmin.conftest import Room, db_of
from webadmin import models as m
from webadmin.db import Database, DataDirError, check_ready, init_data_dir, sqlite_url
from webadmin.snapshot import SnapshotCache


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
