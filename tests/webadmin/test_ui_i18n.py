"""The UI's message catalogue: both languages complete, every key the pages use exists, and
the domain's refusals reach a Chinese UI in Chinese."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from webadmin.ui import i18n
from webadmin.ui.i18n import MESSAGES, translate, translate_problem

ROOT = Path(__file__).resolve().parents[2] / "webadmin"
# Keys built at run time: prefix -> the suffixes the code can produce.
DYNAMIC = {
    "access.": ["control", "view-only"], "audit.": ["since", "until"],
    "audit.kind_": ["all", "switch", "session", "config"],
    "dash.state_": ["all", "connected", "idle", "pushed", "offline", "logged_in"],
    "devices.id_help_": ["tx", "rx"], "hotkeys.use_": ["tx", "rx"], "kind.": ["tx", "rx"],
    "lang.": ["zh_CN", "en"], "preview.mode_": ["connect", "push", "fetch"],
    "role.": ["admin", "operator"],
    "route.": ["connect", "push", "fetch", "disconnect"],
    "scope.": ["view", "push", "fetch", "login"],
    "status.": ["grey", "yellow", "red"], "auth.": ["expired"],
    "settings.restored_": ["merge", "replace"],
    "action.": [],      # audit action labels: optional, the raw action shows otherwise
    "settings.count_": ["tx", "rx", "seats", "walls", "users", "user_groups",
                        "device_groups", "grants_added", "hotkeys"],
}


def test_both_languages_have_every_text_with_the_same_placeholders() -> None:
    assert MESSAGES["zh_CN"].keys() == MESSAGES["en"].keys()
    fields = string.Formatter()
    for key in MESSAGES["en"]:
        zh, en = MESSAGES["zh_CN"][key], MESSAGES["en"][key]
        assert zh.strip() and en.strip(), key
        names = [{f for _, f, _, _ in fields.parse(text) if f} for text in (zh, en)]
        assert names[0] == names[1], key


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*ROOT.glob("templates/*.html"), *ROOT.glob("ui/*.py")]:
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(
            r"""\bt\(\s*['"]([a-z_]+\.[A-Za-z0-9_.-]+)['"](?!\s*[~+])""", text))
        for prefix in re.findall(r"""\bt\(\s*f?['"]([a-z_]+\.[a-z_]*)(?:['"]\s*[~+]|\{)""",
                                 text):
            assert prefix in DYNAMIC, f"{path.name}: dynamic key {prefix!r} not listed"
            keys |= {prefix + suffix for suffix in DYNAMIC[prefix]}
    keys |= {f"action.{a}" for a in ("connect", "push", "fetch", "admin_connect")}
    return keys


def test_every_key_the_pages_use_is_in_the_catalogue() -> None:
    keys = used_keys()
    assert len(keys) > 250
    missing = sorted(k for k in keys if k not in MESSAGES["en"])
    assert not missing


def test_unknown_key_shows_itself_and_params_fill_in() -> None:
    assert translate("no.such.key", "en") == "no.such.key"
    assert translate("pager.range", "en", first=1, last=50, total=900) == "1–50 of 900"
    assert translate("pager.range", "zh_CN", first=1, last=50,
                     total=900) == "第 1–50 条,共 900 条"
    assert translate("nav.users", "fr") == "用户"             # unknown language: default


@pytest.mark.parametrize(("message", "zh"), [
    ("'12' is not a device ID (Tx 0001-4999, Rx 5001-9999)",
     "'12' 不是设备 ID(Tx 0001-4999,Rx 5001-9999)"),
    ("'5001' is not a Tx ID (0001-4999)", "'5001' 不是 Tx ID(0001-4999)"),
    ("no device 0042", "设备 0042 不存在"),
    ("no device in 0100-0200", "0100-0200 范围内没有设备"),
    ("mixes Tx and Rx; a hotkey names only Tx or only Rx",
     "混合了 Tx 和 Rx;一个热键只能全部是 Tx 或全部是 Rx"),
    ("5 is not in 1..4", "5 不在 1–4 范围内"),
    ("expected an integer, got 'x'", "应为整数,实际为 'x'"),
    ("'0001' is listed twice", "'0001' 重复出现"),
    ("takes at most 8 item(s), got 9", "最多 8 项,实际 9 项"),
    ("no enabled admin would remain; keep at least one", "至少要保留一个启用的管理员"),
    ("hotkey 'A1' exists already (case does not count)", "热键 'A1' 已存在(不区分大小写)"),
    ("seat 'x' exists already", "'x' 已存在"),
    ("'a b' is not a user name (1-64 of A-Z a-z 0-9 _ . @ -)",
     "'a b' 不是有效的用户名(1-64 个 A-Z a-z 0-9 _ . @ -)"),
    ("5 is not in 1..4; no device 0042", "5 不在 1–4 范围内;设备 0042 不存在"),
])
def test_refusals_in_chinese(message: str, zh: str) -> None:
    assert translate_problem(message, "zh_CN") == zh
    assert translate_problem(message, "en") == message


def test_an_unknown_phrasing_stays_readable() -> None:
    assert translate_problem("the moon is made of cheese", "zh_CN") == (
        "the moon is made of cheese")


def test_catalogue_module_is_pure() -> None:
    source = Path(i18n.__file__).read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) flask", source, re.M)
