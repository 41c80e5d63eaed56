"""Admin tokens and the admin_required decorator (used by the admin API)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Flask, g, jsonify
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.webadmin.conftest import ADMIN_PASSWORD, Room, db_of
from webadmin import models as m
from webadmin.auth import admin_required, token_hash, verify_password


def token(client: FlaskClient, user: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    resp = client.post("/api/v1/admin/token", json={"user": user, "password": password})
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["token"])


def with_probe(app: Flask) -> FlaskClient:
    bp = Blueprint("probe", __name__)

    @bp.get("/api/v1/admin/probe")
    @admin_required
    def probe():  # type: ignore[no-untyped-def]
        return jsonify({"admin": g.admin.name})

    app.register_blueprint(bp)
    return app.test_client()


def test_admin_required(app: Flask, room: Room) -> None:
    client = with_probe(app)
    tok = token(client)
    ok = client.get("/api/v1/admin/probe", headers={"Authorization": f"Bearer {tok}"})
    assert ok.get_json() == {"admin": "admin"}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {tok}"}):
        resp = client.get("/api/v1/admin/probe", headers=headers)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "UNAUTHORIZED"
    with db_of(app).begin() as s:  # stored hashed; expired tokens stop working
        row = s.scalar(select(m.AdminToken).where(m.AdminToken.token_hash == token_hash(tok)))
        assert row is not None
        row.expires_at = m.utcnow() - dt.timedelta(seconds=1)
    assert client.get("/api/v1/admin/probe",
                      headers={"Authorization": f"Bearer {tok}"}).status_code == 401


def test_operators_get_no_token_and_failures_are_limited(client: FlaskClient,
                                                         room: Room) -> None:
    resp = client.post("/api/v1/admin/token", json={"user": "hxfj", "password": "123456"})
    assert resp.status_code == 403
    for _ in range(5):
        resp = client.post("/api/v1/admin/token", json={"user": "admin", "password": "bad"})
        assert resp.status_code == 401
    resp = client.post("/api/v1/admin/token", json={"user": "admin", "password": ADMIN_PASSWORD})
    assert resp.status_code == 429
    assert resp.get_json()["error"]["code"] == "RATE_LIMITED"


def test_password_hashes_are_argon2(app: Flask, room: Room) -> None:
    with db_of(app).session() as s:
        stored = s.scalar(select(m.User.password_hash).where(m.User.name == "hxfj"))
    assert stored is not None and stored.startswith("$argon2id$")
    assert verify_password(stored, "123456")
    assert not verify_password(stored, "1234567")
    assert not verify_password(None, "123456")
    assert not verify_password("garbage", "123456")
