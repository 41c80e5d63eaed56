"""The merged lab state (simulator + controllers) and the readable table of `kvm-lab state`."""

from __future__ import annotations

from typing import Any

from firmware_sim.lab.labstate import device, format_table, merge_state, sync_problems

SIM: dict[str, Any] = {
    "tx": [
        {
            "id": "0001",
            "serial": "S1",
            "name": "SCADA-01",
            "power": True,
            "network": True,
            "online": True,
            "stream_ok": True,
            "video": [True],
            "computer": {"text": "hxfj\n"},
        },
        {
            "id": "0012",
            "serial": "S12",
            "name": "Backup",
            "power": False,
            "network": True,
            "online": False,
            "stream_ok": True,
            "video": [False, False],
            "computer": {"text": ""},
        },
    ],
    "rx": [
        {
            "id": "5001",
            "power": True,
            "network": True,
            "online": True,
            "overlay": True,
            "heads": [{"head": 1, "source": "0001:1", "video": True}],
            "seat": "seat-A",
            "wall": None,
            "link": {"up": True},
        },
        {
            "id": "5002",
            "power": True,
            "network": False,
            "online": False,
            "overlay": False,
            "heads": [
                {"head": 1, "source": None, "video": False},
                {"head": 2, "source": None, "video": False},
            ],
            "seat": "seat-B",
            "wall": None,
        },
    ],
}
OSD_MENU = {
    "screen": "menu",
    "mode": "push",
    "input": "1,2",
    "feedback": "推送成功",
    "status": "网络正常",
    "user": "hxfj",
    "rows": [{"id": "5001"}],
    "extra": 1,
}
OSD_LOGIN = {
    "screen": "login",
    "mode": "connect",
    "input": "",
    "feedback": "",
    "status": "网络断开",
    "user": None,
}


def test_merge_gives_the_documented_fields() -> None:
    state = merge_state(SIM, {"5001": OSD_MENU, "5002": OSD_LOGIN})
    tx1, tx12 = device(state, "0001"), device(state, "0012")
    assert (tx1["kind"], tx1["online"], tx1["video"], tx1["received"]) == (
        "tx",
        True,
        True,
        "hxfj\n",
    )
    assert (tx12["online"], tx12["video"]) == (False, False)
    rx1 = device(state, "5001")
    assert rx1["kind"] == "rx" and rx1["online"] is True
    assert rx1["heads"][0]["source"] == "0001:1"
    osd = rx1["heads"][0]["osd"]
    assert {k: osd[k] for k in ("screen", "mode", "input", "feedback", "status", "user")} == {
        "screen": "menu",
        "mode": "push",
        "input": "1,2",
        "feedback": "推送成功",
        "status": "网络正常",
        "user": "hxfj",
    }
    assert "extra" not in osd
    rx2 = device(state, "5002")
    assert rx2["online"] is False
    assert [h["source"] for h in rx2["heads"]] == [None, None]
    assert rx2["heads"][0]["osd"]["status"] == "网络断开" and rx2["heads"][1]["osd"] is None


def test_an_rx_without_a_controller_has_no_osd() -> None:
    rx = device(merge_state(SIM, {}), "5001")
    assert rx["controller"] is False and rx["heads"][0]["osd"] is None


def test_table_shows_every_device_and_head() -> None:
    table = format_table(merge_state(SIM, {"5001": OSD_MENU, "5002": OSD_LOGIN}))
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "KIND", "ONLINE", "DETAIL"]
    assert any(line.startswith("0001") and "hxfj⏎" in line for line in lines)
    assert any(line.startswith("0012") and " NO " in line for line in lines)
    assert any(
        line.startswith("5001") and "0001:1" in line and "feedback=推送成功" in line
        for line in lines
    )
    assert any("head 2" in line for line in lines)
    assert any(line.startswith("5002") and "status=网络断开" in line for line in lines)


def test_sync_problems() -> None:
    ok_login = {**OSD_LOGIN, "status": "网络正常"}
    assert sync_problems(SIM, {"5001": OSD_MENU, "5002": OSD_LOGIN}, {"S1"}, {"S1": "0001"}) == []
    problems = sync_problems(SIM, {"5001": None, "5002": ok_login}, set(), {"S1": "0001"})
    assert problems == [
        "Tx 0001 not yet reported to the server",
        "controller of Rx 5001 does not answer",
    ]
    waiting = sync_problems(
        SIM, {"5001": {**OSD_LOGIN, "network": True}, "5002": ok_login}, {"S1"}, {"S1": "0001"}
    )
    assert waiting == ["Rx 5001 login screen says '网络断开'"]
    synced = sync_problems(
        SIM,
        {"5001": {**OSD_MENU, "server_ok": True, "converged": False}, "5002": ok_login},
        {"S1"},
        {"S1": "0001"},
    )
    assert synced == ["controller of Rx 5001: screens not yet equal to the desired routing"]
    down = sync_problems(
        SIM,
        {"5001": {**OSD_MENU, "link_up": False, "converged": False}, "5002": ok_login},
        {"S1"},
        {"S1": "0001"},
    )
    assert down == ["controller of Rx 5001: serial link down"]
    unheard = sync_problems(
        SIM, {"5001": {**OSD_MENU, "reported": False}, "5002": ok_login}, {"S1"}, {"S1": "0001"}
    )
    assert unheard == [
        "controller of Rx 5001: its state not yet accepted by the server (offline there)"]


def test_an_english_login_screen_is_in_sync_too() -> None:
    ok_en = {**OSD_LOGIN, "status": "Network OK"}
    assert sync_problems(SIM, {"5001": ok_en, "5002": OSD_LOGIN}, {"S1"}, {"S1": "0001"}) == []
