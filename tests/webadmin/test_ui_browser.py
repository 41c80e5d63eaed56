"""The web UI in a real browser (headless Debian chromium driven by Playwright), at 1366×768.

Scenario: sign in, adopt a device that announced itself, create a user with scopes, define a
hotkey (a bad one first), watch the routing view change without a reload when a seat
connects through the seat API, find that switch in the audit log, export the configuration
and import it back. Every page is saved under test-artifacts/ui/.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

from tests.webadmin.conftest import ADMIN_PASSWORD, device_auth, secret_of, seed_room
from tests.webadmin.test_ui_support import make_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
VIEWPORT = {"width": 1366, "height": 768}
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def served(server_config: dict[str, Any]) -> Iterator[tuple[Flask, str]]:
    """The app on a real socket (127.0.0.1, a free port), devices never time out."""
    app = make_app({**server_config, "device_timeout_s": 3600})
    seed_room(app)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ui-server", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["kvm"].db.dispose()


@pytest.fixture
def page(browser: Any, served: tuple[Flask, str]) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    """Save the page as test-artifacts/ui/<name>.png once its fonts have loaded."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    # The CJK web font may not have been asked for yet when the page is first painted.
    page.evaluate("document.fonts.load('16px \"KVM CJK\"', '中文')"
                  ".then(() => document.fonts.ready).then(() => true)")
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#user", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{base}/")


def flash(page: Any) -> str:
    return str(page.locator(".flash").first.inner_text())


def test_an_admin_sets_up_a_seat_and_watches_it_switch(page: Any,
                                                       served: tuple[Flask, str]) -> None:
    app, base = served
    api = app.test_client()
    # A receiver that nobody configured yet announces itself.
    resp = api.post("/api/v1/device/announce", json={
        "serial": "NEW-RX-9", "kind": "rx", "heads": 1, "firmware": "RX-FW 2.4.1",
        "secret": secret_of("NEW-RX-9")})
    assert resp.status_code == 202

    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/login\?next="))
    shot(page, "01-login")
    sign_in(page, base)
    assert page.locator('[data-count="pending"]').inner_text() == "1"
    shot(page, "02-dashboard")

    # Adopt it: ID and name.
    page.click("#stat-pending")
    row = page.locator('tr[data-serial="NEW-RX-9"]')
    assert row.locator("td").nth(1).inner_text().strip() in ("接收端 Rx", "Rx")
    row.locator('input[name="id"]').fill("5030")
    row.locator('input[name="name"]').fill("Ops desk 9")
    shot(page, "03-devices-pending")
    row.locator(".row-form button[type=submit]").click()
    assert "5030" in flash(page)
    page.goto(f"{base}/devices?kind=rx&q=ops")
    assert page.locator("#device-table").inner_text().count("Ops desk 9") == 1
    shot(page, "04-devices-rx")
    assert api.post("/api/v1/device/announce", json={
        "serial": "NEW-RX-9", "kind": "rx", "heads": 1, "firmware": "RX-FW 2.4.1",
        "secret": secret_of("NEW-RX-9")}).status_code == 200
    assert api.post("/api/v1/device/state", headers=device_auth("NEW-RX-9"),
                    json={"online": True, "network_up": True}).status_code == 200

    # A user with scopes: view 0001-0002 (control), login at the new desk only.
    page.goto(f"{base}/users")
    page.fill("#user-new-form #name", "ops9")
    page.fill("#user-new-form #password", "ops9-pass")
    page.click("#user-new-form button[type=submit]")
    page.wait_for_url(f"{base}/users/ops9")
    page.select_option("#grant-form #scope", "view")
    page.fill("#grant-form #devices", "0001-0002")
    page.click("#grant-form button[type=submit]")
    assert "2" in flash(page)
    page.select_option("#grant-form #scope", "login")
    page.fill("#grant-form #devices", "5030")
    page.click("#grant-form button[type=submit]")
    page.select_option("#at", "5030")                      # auto-submits: OSD preview there
    page.wait_for_url(re.compile(r"at=5030"))
    connect_list = page.locator('.osd-list[data-mode="connect"]').inner_text()
    assert "0001" in connect_list and "0002" in connect_list and "0003" not in connect_list
    assert "网络正常" in page.locator("#preview-login").inner_text()
    shot(page, "05-user-scopes-preview")

    # A hotkey: first a bad one (all digits would read as an ID), then a good one.
    page.goto(f"{base}/hotkeys")
    page.fill("#hotkey-form #key", "1234")
    page.fill("#hotkey-form #targets", "0002, 0001")
    page.click("#hotkey-form button[type=submit]")
    error = page.locator("#hotkey-form .field-error").first.inner_text()
    assert "全是数字" in error
    shot(page, "06-hotkey-error")
    page.fill("#hotkey-form #key", "ops9")
    page.click("#hotkey-form button[type=submit]")
    assert "ops9" in page.locator("#hotkey-table").inner_text()
    shot(page, "07-hotkeys")

    # The live routing view changes, without a reload, when the seat connects.
    page.goto(f"{base}/")
    page.fill("#routing-q", "5030")
    expect(page.locator("#routing-body tr[data-rx]")).to_have_count(1)
    page.evaluate("window.__noReload = true")
    assert api.post("/api/v1/seat/login", headers=device_auth("NEW-RX-9"),
                    json={"user": "ops9", "password": "ops9-pass"}).get_json()[
        "result"] == "NETWORK_OK"
    answer = api.post("/api/v1/seat/connect", headers=device_auth("NEW-RX-9"),
                      json={"input": "ops9"}).get_json()
    assert answer["result"] == "CONNECTED"
    expect(page.locator('#routing-body tr[data-rx="5030"] .c-tx')).to_contain_text("0002")
    assert page.evaluate("window.__noReload") is True
    row_text = page.locator('#routing-body tr[data-rx="5030"]').inner_text()
    assert "ops9" in row_text and "Dual head B" in row_text
    assert page.locator('[data-count="seats_logged_in"]').inner_text() == "1"
    shot(page, "08-dashboard-live")

    # An admin switch from the web, through the same engine.
    page.fill("#routing-q", "")
    page.locator('#routing-body tr[data-rx="5001"] .c-seat').click()   # fills the Rx field
    assert page.input_value("#rx") == "5001"
    page.fill("#text", "A1")
    page.click("#route-form button[type=submit]")
    assert "连接成功" in flash(page)

    # The switch is in the audit log.
    page.goto(f"{base}/audit")
    page.fill("#audit-user", "ops9")
    page.select_option("#audit-kind", "switch")
    page.click("#audit-filter button[type=submit]")
    table = page.locator("#audit-table").inner_text()
    assert "ops9" in table and "5030" in table and "连接成功" in table and "ops9" in table
    shot(page, "09-audit")
    with page.expect_download() as got:
        page.click("#audit-csv")
    assert "ops9" in Path(got.value.path()).read_text(encoding="utf-8-sig")

    # Export the configuration, lose the hotkey, import the backup back.
    page.goto(f"{base}/settings")
    with page.expect_download() as got:
        page.click("#backup-download")
    backup = Path(got.value.path())
    assert "ops9:" in backup.read_text(encoding="utf-8")
    shot(page, "10-settings")
    page.goto(f"{base}/hotkeys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('tr[data-key="ops9"] button', has_text="删除").click()
    assert "ops9" not in page.locator("#hotkey-table").inner_text()
    page.goto(f"{base}/settings")
    page.set_input_files("#restore-form #file", str(backup))
    page.check('#restore-form input[value="replace"]')
    page.check("#restore-form #confirm")
    page.click("#restore-form button[type=submit]")
    assert "已替换全部配置" in flash(page)
    page.goto(f"{base}/hotkeys")
    assert "ops9" in page.locator("#hotkey-table").inner_text()


PAGES = [
    ("/seats", "11-seats"), ("/walls", "12-walls"), ("/walls/wall-1", "13-wall-edit"),
    ("/groups", "14-groups"), ("/users", "15-users"), ("/devices/0002", "16-device"),
    ("/devices/new", "17-device-new"), ("/groups/users/operators", "18-user-group"),
]


def test_every_page_fits_1366x768_in_both_languages(page: Any,
                                                    served: tuple[Flask, str]) -> None:
    app, base = served
    api = app.test_client()
    assert api.post("/api/v1/seat/login", headers=device_auth("SIM-RX-5002"),
                    json={"user": "hxfj", "password": "123456"}).status_code == 200
    api.post("/api/v1/seat/connect", headers=device_auth("SIM-RX-5002"), json={"input": "2"})
    api.post("/api/v1/seat/push", headers=device_auth("SIM-RX-5002"), json={"input": "wall"})
    sign_in(page, base)
    for path, name in PAGES:
        page.goto(base + path)
        # Nothing wider than the window: no sideways scrolling at 1366 px.
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"], path
        shot(page, name)
    page.click('.lang-switch button[value="en"]')
    for path, name in [("/", "20-dashboard-en"), ("/users/hxfj?at=5002", "21-user-en"),
                       ("/devices?kind=tx", "22-devices-en"), ("/audit", "23-audit-en")]:
        page.goto(base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"], path
        shot(page, name)
    page.goto(base + "/")
    assert "Live routing" in page.locator("#routing h2").inner_text()
