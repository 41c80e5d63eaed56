"""Helpers for the web UI tests (a signed-in test client, CSRF tokens, "nothing changed").

Imported by the ``test_ui_*`` modules; it holds no tests itself.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from tests.webadmin.conftest import ADMIN_PASSWORD, db_of
from webadmin import models as m
from webadmin import topology_db

TOKEN_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def token_of(page: str) -> str:
    found = TOKEN_RE.search(page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def text_of(resp: TestResponse) -> str:
    """The page as text (tags dropped, entities decoded), for 'the user sees X' checks."""
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", resp.text, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def table_text(resp: TestResponse, table_id: str) -> str:
    """The text of the table with HTML id `table_id` (not the flashes above it)."""
    found = re.search(rf'<table[^>]*id="{re.escape(table_id)}".*?</table>', resp.text, re.S)
    assert found, f"no table {table_id!r}"
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0))))


def field_errors(resp: TestResponse) -> list[str]:
    """The messages shown next to fields and above forms."""
    out = [html.unescape(x).strip() for x in
           re.findall(r'<p class="field-error[^"]*"[^>]*>(.*?)</p>', resp.text, re.S)]
    for block in re.findall(r'<div class="form-errors"[^>]*>(.*?)</div>', resp.text, re.S):
        out += [html.unescape(x).strip() for x in re.findall(r"<p>(.*?)</p>", block, re.S)]
    return out


def error_next_to(resp: TestResponse, field: str) -> str:
    """The error message rendered right after the input named `field`."""
    pattern = (rf'<(?:input|select)[^>]*name="{re.escape(field)}"[^>]*>(?:(?!<div class="field).)*?'
               r'<p class="field-error[^"]*"[^>]*>(.*?)</p>')
    found = re.search(pattern, resp.text, re.S)
    assert found, f"no error next to {field!r}; errors: {field_errors(resp)}"
    return html.unescape(found.group(1)).strip()


@dataclass
class UI:
    """A test client of the web UI, signed in as an admin once ``login`` ran."""

    app: Flask
    client: FlaskClient
    token: str = ""

    @staticmethod
    def of(app: Flask) -> UI:
        return UI(app, app.test_client())

    def login(self, user: str = "admin", password: str = ADMIN_PASSWORD,
              lang: str | None = None) -> TestResponse:
        if lang is not None:
            self.set_lang(lang)
        page = self.client.get("/login")
        resp = self.client.post("/login", data={"csrf_token": token_of(page.text), "user": user,
                                                "password": password})
        if resp.status_code == 302:
            self.token = token_of(self.client.get("/").text)
        return resp

    def set_lang(self, lang: str) -> None:
        page = self.client.get("/login")
        self.client.post("/lang", data={"csrf_token": token_of(page.text), "lang": lang})

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kw: Any) -> TestResponse:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.token)
        return self.client.post(path, data=body, **kw)


def state(app: Flask) -> dict[str, Any]:
    """Everything an admin form could change: the configuration (as exported), devices
    waiting for adoption, routes, sessions, and the number of audit entries."""
    with db_of(app).session() as s:
        return {
            "config": topology_db.export_config(s),
            "pending": sorted((d.serial or "", d.kind, d.heads) for d in s.scalars(
                select(m.Device).where(m.Device.adoption == "pending"))),
            "routes": sorted((r.rx_pk, r.head, r.tx_pk, r.tx_head, r.set_by) for r in
                             s.scalars(select(m.Route))),
            "sessions": sorted((x.rx_pk, x.user_pk) for x in s.scalars(select(m.SeatSession))),
            "audit": s.scalar(select(func.count()).select_from(m.AuditEntry)),
            "passwords": sorted((u.name, u.password_hash) for u in s.scalars(select(m.User))),
        }


def audit_actions(app: Flask) -> list[tuple[str, str, str]]:
    """(actor, action, result) of every audit entry, oldest first."""
    with db_of(app).session() as s:
        return [(e.actor, e.action, e.result) for e in
                s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.pk))]


def make_app(server_config: dict[str, Any]) -> Flask:
    """The server app for UI tests: commits need not survive a power cut here, so SQLite
    runs with synchronous=NORMAL (far fewer fsyncs on a busy test machine)."""
    from webadmin.app import create_app

    app = create_app({**server_config, "sqlite_synchronous": "normal"})
    app.config["TESTING"] = True
    return app
