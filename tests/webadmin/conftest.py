"""Fixtures for the management server: an app on a temporary database, a test client,
a seeded control room, and device credentials.

- ``app`` / ``client``: a fresh, initialised data directory (admin ``admin`` / ``admin123``)
  on SQLite; also on PostgreSQL when ``KVM_TEST_POSTGRES_URL`` is set (the ``db_url``
  fixture is parametrised).
- ``room``: the seeded control room (see ``seed_room``); ``room.headers("5001")`` gives
  the ``Authorization`` header of a device, ``room.login(client, "5001", "hxfj")`` logs in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from webadmin import models as m
from webadmin.app import create_app
from webadmin.auth import hash_secret
from webadmin.db import Database, init_data_dir, normalise_url

ADMIN_PASSWORD = "admin123"
PASSWORDS = {"hxfj": "123456", "guest": "guest123", "viewer": "viewer123", "admin": ADMIN_PASSWORD}
_HASHES: dict[str, str] = {}


# argon2 is slow on purpose; a verify uses the parameters stored in the hash, so the seeded
# users get cheap (but real argon2id) hashes to keep the suite fast.
_FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def password_hash(user: str) -> str:
    if user not in _HASHES:
        _HASHES[user] = _FAST.hash(PASSWORDS[user])
    return _HASHES[user]


def secret_of(serial: str) -> str:
    """A device's deterministic test secret (64 hex chars)."""
    return hashlib.sha256(f"test-secret:{serial}".encode()).hexdigest()


def device_auth(serial: str) -> dict[str, str]:
    return {"Authorization": f"Device {serial}:{secret_of(serial)}"}


POSTGRES_URL = os.environ.get("KVM_TEST_POSTGRES_URL")
DB_KINDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


def reset_postgres(url: str) -> None:
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised data directory, copied for each test (migrations + argon2 once)."""
    path = tmp_path_factory.mktemp("template")
    init_data_dir(path, ADMIN_PASSWORD)
    return path


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path) -> str:
    data = tmp_path / "data"
    if request.param == "sqlite":
        shutil.copytree(_sqlite_template, data)
        return f"sqlite:///{data / 'kvm.db'}"
    assert POSTGRES_URL is not None
    reset_postgres(POSTGRES_URL)
    init_data_dir(data, ADMIN_PASSWORD, database_url=POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def server_config(tmp_path: Path, db_url: str) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "data"), "database_url": db_url, "device_timeout_s": 30,
            "long_poll_max_s": 60, "log_level": "warning"}


@pytest.fixture
def app(request: pytest.FixtureRequest, server_config: dict[str, Any]) -> Iterator[Flask]:
    """The server app. A test module may set ``SQLITE_SYNCHRONOUS = "normal"`` when its
    commits need not survive a power cut (far fewer fsyncs on a busy test machine)."""
    sync = getattr(request.module, "SQLITE_SYNCHRONOUS", None)
    application = create_app({**server_config, **({"sqlite_synchronous": sync} if sync else {})})
    application.config["TESTING"] = True
    yield application
    application.extensions["kvm"].db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def db_of(app: Flask) -> Database:
    return app.extensions["kvm"].db  # type: ignore[no-any-return]


# --- the seeded control room -------------------------------------------------------------

TX = {
    # id: (name, heads, online, video per head, stream_ok)
    "0001": ("Server A", 1, True, [True], True),
    "0002": ("Dual head B", 2, True, [True, True], True),
    "0003": ("No video C", 1, True, [False], True),
    "0004": ("Offline D", 1, False, [True], True),
    "0005": ("Stream fault E", 1, True, [True], False),
    "0006": ("Secret F", 1, True, [True], True),
}
RX = {
    # id: (name, heads, online)
    "5001": ("Desk 1", 1, True),
    "5002": ("Seat B left", 1, True),
    "5003": ("Seat B right", 1, True),
    "5004": ("Dual desk", 2, True),
    "5005": ("Offline desk", 1, False),
    "5011": ("Wall 1-1", 1, True),
    "5012": ("Wall 1-2", 1, True),
    "5013": ("Wall 2-1", 1, True),
    "5014": ("Wall 2-2", 1, True),
}


@dataclass
class Room:
    app: Flask
    devices: dict[str, int] = field(default_factory=dict)   # id -> pk

    def headers(self, device_id: str) -> dict[str, str]:
        kind = "TX" if device_id < "5000" else "RX"
        return device_auth(f"SIM-{kind}-{device_id}")

    def login(self, client: FlaskClient, rx: str, user: str,
              password: str | None = None) -> dict[str, Any]:
        resp = client.post("/api/v1/seat/login", headers=self.headers(rx),
                           json={"user": user, "password": password or PASSWORDS[user]})
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()  # type: ignore[no-any-return]

    def act(self, client: FlaskClient, rx: str, action: str, typed: str) -> dict[str, Any]:
        resp = client.post(f"/api/v1/seat/{action}", headers=self.headers(rx),
                           json={"input": typed})
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()  # type: ignore[no-any-return]

    def set_online(self, device_id: str, online: bool) -> None:
        with db_of(self.app).begin() as s:
            dev = s.get(m.Device, self.devices[device_id])
            assert dev is not None
            dev.online = online
            dev.last_seen = m.utcnow() if online else None


def seed_room(app: Flask) -> Room:
    """A small control room:

    - Tx 0001 (1 head), 0002 (dual head), 0003 (no video), 0004 (offline), 0005 (stream
      fault), 0006 (outside hxfj's scope);
    - Rx 5001 (a seat of its own), seat-B = 5002 + 5003 (cross-screen), 5004 (dual head),
      5005 (offline), wall-1 = 5011..5014 (2x2, presenting a splice);
    - users: hxfj (operator via group "operators": view 0001-0005 through device group
      "ops-tx", push + fetch every Rx), guest (view 0001, login only at 5001), viewer
      (view-only 0001 and 0002, push/fetch none), admin;
    - hotkeys: A1 -> 0001, wall -> 5011, ops -> 5002, 5003, duo -> 0001, 0002.
    """
    room = Room(app)
    now = m.utcnow()
    with db_of(app).begin() as s:
        admin = s.query(m.User).filter_by(name="admin").one()
        devs: dict[str, m.Device] = {}
        for did, (name, heads, online, video, stream) in TX.items():
            devs[did] = m.Device(
                id=did, kind="tx", name=name, heads=heads, serial=f"SIM-TX-{did}",
                adoption="adopted", credential_hash=hash_secret(secret_of(f"SIM-TX-{did}")),
                online=online, last_seen=now if online else None, stream_ok=stream,
                reported_heads=[{"head": i + 1, "video": v} for i, v in enumerate(video)],
            )
        for did, (name, heads, online) in RX.items():
            devs[did] = m.Device(
                id=did, kind="rx", name=name, heads=heads, serial=f"SIM-RX-{did}",
                adoption="adopted", credential_hash=hash_secret(secret_of(f"SIM-RX-{did}")),
                online=online, last_seen=now if online else None,
            )
        s.add_all(devs.values())
        seat_b = m.Seat(name="seat-B")
        seat_b.screens = [m.SeatScreen(position=1, device=devs["5002"]),
                          m.SeatScreen(position=2, device=devs["5003"])]
        wall = m.Wall(name="wall-1", rows=2, cols=2, splice=True)
        wall.tiles = [m.WallTile(position=i, device=devs[d])
                      for i, d in enumerate(["5011", "5012", "5013", "5014"])]
        s.add_all([seat_b, wall])

        hxfj = m.User(name="hxfj", role="operator", password_hash=password_hash("hxfj"))
        guest = m.User(name="guest", role="operator", password_hash=password_hash("guest"),
                       lang="en")
        viewer = m.User(name="viewer", role="operator", password_hash=password_hash("viewer"))
        admin.password_hash = password_hash("admin")
        operators = m.UserGroup(name="operators", members=[hxfj])
        ops_tx = m.DeviceGroup(name="ops-tx", members=[devs[d] for d in
                                                       ("0001", "0002", "0003", "0004", "0005")])
        all_rx = m.DeviceGroup(name="all-rx", members=[devs[d] for d in RX])
        s.add_all([hxfj, guest, viewer, operators, ops_tx, all_rx])
        s.add_all([
            m.Grant(scope="view", user_group=operators, device_group=ops_tx),
            m.Grant(scope="push", user=hxfj, device_group=all_rx),
            m.Grant(scope="fetch", user=hxfj, device_group=all_rx),
            m.Grant(scope="view", user=guest, device=devs["0001"]),
            m.Grant(scope="login", user=guest, device=devs["5001"]),
            m.Grant(scope="view", access="view-only", user=viewer, device=devs["0001"]),
            m.Grant(scope="view", access="view-only", user=viewer, device=devs["0002"]),
        ])
        for key, targets in {"A1": ["0001"], "wall": ["5011"], "ops": ["5002", "5003"],
                             "duo": ["0001", "0002"]}.items():
            hk = m.Hotkey(key=key, key_lower=key.lower())
            hk.targets = [m.HotkeyTarget(position=i, device=devs[d])
                          for i, d in enumerate(targets)]
            s.add(hk)
        s.flush()
        room.devices = {did: d.pk for did, d in devs.items()}
    return room


@pytest.fixture
def room(app: Flask) -> Room:
    return seed_room(app)


def utc(seconds_ago: float = 0) -> dt.datetime:
    return m.utcnow() - dt.timedelta(seconds=seconds_ago)
