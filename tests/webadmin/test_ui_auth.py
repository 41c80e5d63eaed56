"""Web UI sign-in: admins only, CSRF on every form, rate limiting, idle expiry, sign-out."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from sqlalchemy import select

from kvm_protocol.results import ResultCode
from tests.webadmin.conftest import ADMIN_PASSWORD, PASSWORDS, Room, db_of
from tests.webadmin.test_ui_support import (
    UI,
    audit_actions,
    field_errors,
    state,
    text_of,
    token_of,
)
from webadmin import models as m

SQLITE_SYNCHRONOUS = "normal"  # UI tests: see the conftest's app fixture


@pytest.fixture
def ui(app: Flask, room: Room) -> UI:
    return UI.of(app)


def test_pages_need_a_signed_in_admin(ui: UI) -> None:
    for path in ("/", "/devices", "/users", "/audit", "/settings", "/settings/backup.yaml"):
        resp = ui.get(path)
        assert resp.status_code == 302
        assert resp.headers["Location"].startswith("/login?next=")
    live = ui.get("/dashboard/live.json")
    assert live.status_code == 401
    assert live.get_json() == {"error": "signed_out"}


def test_sign_in_shows_the_dashboard_in_chinese_by_default(ui: UI) -> None:
    page = ui.get("/login")
    assert page.status_code == 200
    assert "管理员" in text_of(page)          # zh_CN is the default
    resp = ui.login()
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    dash = ui.get("/")
    assert dash.status_code == 200
    assert "实时切换状态" in text_of(dash)
    assert ("admin", "web_login", "OK") in audit_actions(ui.app)


def test_language_switch_in_the_header(ui: UI) -> None:
    ui.login()
    resp = ui.post("/lang", {"lang": "en", "next": "/devices"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/devices"
    assert "Waiting for adoption" in text_of(ui.get("/devices"))
    ui.post("/lang", {"lang": "xx"})                   # unknown: ignored
    assert "Waiting for adoption" in text_of(ui.get("/devices"))
    ui.post("/lang", {"lang": "zh_CN"})
    assert "待接纳" in text_of(ui.get("/devices"))


def test_wrong_password_is_refused_with_the_osd_text(ui: UI) -> None:
    resp = ui.login(password="wrong-password")
    assert resp.status_code == 401
    assert ResultCode.BAD_CREDENTIALS.text("zh_CN") in field_errors(resp)
    assert ui.get("/").status_code == 302
    assert ("admin", "web_login", "UNAUTHORIZED") in audit_actions(ui.app)


def test_unknown_user_and_empty_fields(ui: UI) -> None:
    assert ui.login(user="nobody", password="whatever1").status_code == 401
    page = ui.get("/login")
    resp = ui.client.post("/login", data={"csrf_token": token_of(page.text), "user": " ",
                                          "password": ""})
    assert resp.status_code == 400
    assert set(field_errors(resp)) == {"请输入用户名", "请输入密码"}


def test_login_rate_limit_refuses_even_the_right_password(ui: UI) -> None:
    for _ in range(5):
        assert ui.login(password="bad-password").status_code == 401
    resp = ui.login()                       # the right password, but too many failures
    assert resp.status_code == 429
    assert ResultCode.RATE_LIMITED.text("zh_CN") in field_errors(resp)
    assert ui.get("/").status_code == 302
    assert ("admin", "web_login", "RATE_LIMITED") in audit_actions(ui.app)


def test_rate_limit_per_client_address_across_user_names(ui: UI) -> None:
    for i in range(20):
        assert ui.login(user=f"guess{i}", password="bad-password").status_code == 401
    assert ui.login().status_code == 429


def test_operator_gets_a_clear_refusal_page_and_no_session(ui: UI) -> None:
    resp = ui.login(user="hxfj", password=PASSWORDS["hxfj"])
    assert resp.status_code == 403
    page = text_of(resp)
    assert "此账号不能使用管理页面" in page and "Shift+O" in page
    assert ui.get("/").status_code == 302            # not signed in
    assert ("hxfj", "web_login", "FORBIDDEN") in audit_actions(ui.app)


def test_disabled_admin_cannot_sign_in(ui: UI, app: Flask) -> None:
    with db_of(app).begin() as s:
        s.add(m.User(name="root2", role="admin", enabled=False,
                     password_hash=s.scalar(select(m.User.password_hash)
                                            .where(m.User.name == "admin"))))
    resp = ui.login(user="root2")
    assert resp.status_code == 401
    assert ResultCode.ACCOUNT_DISABLED.text("zh_CN") in field_errors(resp)


def test_admin_demoted_while_signed_in_is_refused(ui: UI, app: Flask) -> None:
    ui.login()
    with db_of(app).begin() as s:
        s.add(m.User(name="other", role="admin", password_hash="x"))
        s.scalars(select(m.User).where(m.User.name == "admin")).one().role = "operator"
    resp = ui.get("/")
    assert resp.status_code == 403
    assert "此账号不能使用管理页面" in text_of(resp)
    assert ui.get("/").status_code == 302            # and the session is gone


def test_password_change_ends_other_sessions(ui: UI, app: Flask) -> None:
    ui.login()
    other = UI.of(app)
    other.login()
    resp = other.post("/users/admin/password", {"password": "new-secret-1",
                                                "again": "new-secret-1"})
    assert resp.status_code == 302
    assert ui.get("/").status_code == 302            # the first session ended
    assert ui.login(password="new-secret-1").status_code == 302


def test_session_expires_after_the_idle_timeout(ui: UI, app: Flask) -> None:
    ui.login()
    assert ui.get("/").status_code == 200
    idle = app.config["UI_IDLE_TIMEOUT_S"]
    assert idle == 30 * 60
    with ui.client.session_transaction() as sess:
        sess["seen"] = int(time.time()) - idle - 1
    resp = ui.get("/devices")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    page = ui.get(resp.headers["Location"])
    assert "会话因长时间无操作已过期" in text_of(page)
    assert ui.get("/").status_code == 302


def test_polling_does_not_keep_a_session_alive(ui: UI, app: Flask) -> None:
    ui.login()
    old = int(time.time()) - 60
    with ui.client.session_transaction() as sess:
        sess["seen"] = old
    assert ui.get("/dashboard/live.json").status_code == 200
    with ui.client.session_transaction() as sess:
        assert sess["seen"] == old                   # the poll is not activity
    assert ui.get("/").status_code == 200
    with ui.client.session_transaction() as sess:
        assert sess["seen"] > old                    # a page view is
    with ui.client.session_transaction() as sess:
        sess["seen"] = old - app.config["UI_IDLE_TIMEOUT_S"]
    resp = ui.get("/dashboard/live.json")
    assert resp.status_code == 401 and resp.get_json() == {"error": "expired"}


def test_configured_idle_timeout(server_config: dict[str, object], room: Room) -> None:
    from webadmin.app import create_app

    app = create_app(server_config)
    app.config["UI_IDLE_TIMEOUT_S"] = 5
    try:
        ui = UI.of(app)
        assert ui.login().status_code == 302
        with ui.client.session_transaction() as sess:
            sess["seen"] = int(time.time()) - 6
        assert ui.get("/").status_code == 302
    finally:
        app.extensions["kvm"].db.dispose()


def test_sign_in_without_csrf_token_is_refused(ui: UI) -> None:
    before = state(ui.app)
    resp = ui.client.post("/login", data={"user": "admin", "password": ADMIN_PASSWORD})
    assert resp.status_code == 400
    assert "表单已失效" in text_of(resp)
    assert ui.get("/").status_code == 302
    assert state(ui.app) == before                   # not even an audit entry


def test_sign_out_needs_the_token_and_ends_the_session(ui: UI) -> None:
    ui.login()
    assert ui.post("/logout", csrf=False).status_code == 400
    assert ui.get("/").status_code == 200            # still signed in
    resp = ui.post("/logout")
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert ui.get("/").status_code == 302
    assert ("admin", "web_logout", "OK") in audit_actions(ui.app)


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil",
                                    "javascript:alert(1)"])
def test_next_never_leaves_the_server(ui: UI, target: str) -> None:
    page = ui.get("/login", query_string={"next": target})
    resp = ui.client.post("/login", data={"csrf_token": token_of(page.text), "user": "admin",
                                          "password": ADMIN_PASSWORD, "next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_next_returns_to_the_page_asked_for(ui: UI) -> None:
    first = ui.get("/hotkeys?x=1")
    page = ui.get(first.headers["Location"])
    resp = ui.client.post("/login", data={"csrf_token": token_of(page.text), "user": "admin",
                                          "password": ADMIN_PASSWORD, "next": "/hotkeys?x=1"})
    assert resp.headers["Location"] == "/hotkeys?x=1"


def test_security_headers_and_cookie(ui: UI) -> None:
    resp = ui.login()
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = ui.get("/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_the_device_api_needs_no_csrf_token(ui: UI, room: Room) -> None:
    """CSRF protection is the UI's: device and seat JSON calls are untouched."""
    ui.login()
    assert room.login(ui.client, "5001", "hxfj")["result"] == "NETWORK_OK"


def test_unknown_page_and_wrong_method(ui: UI) -> None:
    ui.login()
    assert ui.get("/devices/0999").status_code == 404
    assert "找不到" in text_of(ui.get("/devices/0999"))
    assert ui.get("/logout").status_code == 405
