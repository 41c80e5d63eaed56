"""The fabric's rules: switching, faults and their reports, keys to the right computer."""

from __future__ import annotations

import pytest

from firmware_sim.config import build_fabric, parse_config
from firmware_sim.fabric import Fabric, FabricError, Outgoing
from kvm_protocol.keys import sequence_events, text_events
from kvm_protocol.messages import (
    HeadStatus,
    KeyInput,
    NetworkStatus,
    ScreenSelect,
    SwitchResult,
    SwitchStatus,
    VideoStatus,
)
from tests.firmware_sim.conftest import room_config

S = SwitchStatus


def msgs(fabric: Fabric, device: str | None = None) -> list[object]:
    return [o.message for o in fabric.drain() if device is None or o.device == device]


def shows(fabric: Fabric, rx: str, head: int = 1) -> tuple[str | None, bool]:
    h = fabric.rx[rx].heads[head - 1]
    return (None if h.source is None else f"{h.source[0]}:{h.source[1]}", h.video)


def test_switch_ok_reports_result_then_head_status(fabric: Fabric) -> None:
    fabric.switch("5001", 1, "0001", 1, now=0.0, request_seq=7, conn=3)
    out = fabric.drain()
    assert out == [
        Outgoing("5001", SwitchResult(7, 1, S.OK), 3),
        Outgoing("5001", HeadStatus(1, "0001", 1, True)),
    ]
    assert shows(fabric, "5001") == ("0001:1", True)


@pytest.mark.parametrize(
    ("setup", "tx_id", "tx_head", "status"),
    [
        ([], "0001", 2, S.OK),
        ([("0001", "power-off")], "0001", 1, S.TX_OFFLINE),
        ([("0001", "network-down")], "0001", 1, S.TX_OFFLINE),
        ([], "0099", 1, S.TX_OFFLINE),                 # no such Tx: nobody answers
        ([("0001", "stream-fault")], "0001", 1, S.STREAM_FAILED),
        ([("0003", "video-off")], "0003", 1, S.NO_VIDEO),
        ([], "0003", 2, S.NO_VIDEO),                   # configured without video on head 2
        ([], "0002", 2, S.BAD_HEAD),                   # Tx 0002 has one head
        ([("5001", "network-down")], "0001", 1, S.NETWORK_DOWN),
    ],
)
def test_switch_outcomes(
    fabric: Fabric, setup: list[tuple[str, str]], tx_id: str, tx_head: int, status: SwitchStatus
) -> None:
    for device, kind in setup:
        fabric.fault(device, kind)
    fabric.drain()
    fabric.switch("5001", 1, tx_id, tx_head, now=0.0, request_seq=1)
    results = [m for m in msgs(fabric, "5001") if isinstance(m, SwitchResult)]
    assert results == [SwitchResult(1, 1, status)]
    expected = (f"{tx_id}:{tx_head}", True) if status is S.OK else (None, False)
    assert shows(fabric, "5001") == expected


def test_failed_switch_clears_what_the_head_showed(fabric: Fabric) -> None:
    fabric.switch("5001", 1, "0001", 1, now=0.0)
    fabric.fault("0002", "power-off")
    fabric.drain()
    fabric.switch("5001", 1, "0002", 1, now=1.0, request_seq=2)
    assert msgs(fabric, "5001") == [SwitchResult(2, 1, S.TX_OFFLINE), HeadStatus(1, "", 0, False)]
    assert shows(fabric, "5001") == (None, False)


def test_state_says_when_each_head_last_changed_source(fabric: Fabric) -> None:
    def since() -> object:
        return fabric.rx_state(fabric.rx["5001"])["heads"][0]["since"]

    assert since() is None                                  # never switched
    fabric.switch("5001", 1, "0001", 1, now=5.0)
    assert since() == 5.0
    fabric.switch("5001", 1, "0001", 1, now=6.0)            # same source: no change
    assert since() == 5.0
    fabric.switch("5001", 1, "0001", 2, now=7.0)
    assert since() == 7.0
    fabric.fault("5001", "power-off")
    assert since() is None


def test_switch_to_missing_rx_head_changes_nothing(fabric: Fabric) -> None:
    fabric.switch("5002", 1, "0001", 1, now=0.0)
    fabric.drain()
    fabric.switch("5002", 3, "0002", 1, now=0.0, request_seq=9)
    assert msgs(fabric) == [SwitchResult(9, 3, S.BAD_HEAD)]
    assert shows(fabric, "5002") == ("0001:1", True)


def test_disconnect_shows_nothing(fabric: Fabric) -> None:
    fabric.switch("5002", 1, "0002", 1, now=0.0)
    fabric.drain()
    fabric.switch("5002", 1, "", 0, now=0.0, request_seq=4)
    assert msgs(fabric) == [SwitchResult(4, 1, S.OK), HeadStatus(1, "", 0, False)]


def test_network_down_blocks_switching_and_recovers_the_picture(fabric: Fabric) -> None:
    fabric.switch("5002", 1, "0001", 1, now=0.0)
    fabric.drain()
    fabric.fault("5002", "network-down")
    assert msgs(fabric) == [NetworkStatus(False), HeadStatus(1, "0001", 1, False)]
    fabric.switch("5002", 1, "0002", 1, now=1.0, request_seq=5)
    assert msgs(fabric)[0] == SwitchResult(5, 1, S.NETWORK_DOWN)
    assert shows(fabric, "5002") == (None, False)
    fabric.fault("5002", "network-up")
    assert msgs(fabric) == [NetworkStatus(True)]          # nothing tuned any more
    fabric.switch("5002", 1, "0002", 1, now=2.0, request_seq=6)
    assert SwitchResult(6, 1, S.OK) in msgs(fabric)


@pytest.mark.parametrize(
    ("down", "up", "tx_report"),
    [
        ("power-off", "power-on", []),                     # a powered-off Tx says nothing
        ("network-down", "network-up", [NetworkStatus(False)]),
        ("stream-fault", "stream-ok", []),
        ("video-off", "video-on", [VideoStatus(1, False), VideoStatus(2, False)]),
    ],
)
def test_tx_fault_takes_the_picture_away_and_back(
    fabric: Fabric, down: str, up: str, tx_report: list[object]
) -> None:
    fabric.switch("5001", 1, "0001", 1, now=0.0)
    fabric.switch("5001", 2, "0001", 2, now=0.0)
    fabric.switch("5002", 1, "0002", 1, now=0.0)
    fabric.drain()
    fabric.fault("0001", down)
    out = fabric.drain()
    assert [o.message for o in out if o.device == "0001"] == tx_report
    assert [o.message for o in out if o.device == "5001"] == [
        HeadStatus(1, "0001", 1, False), HeadStatus(2, "0001", 2, False)
    ]
    assert not [o for o in out if o.device == "5002"]     # other sources unaffected
    assert shows(fabric, "5001") == ("0001:1", False)
    fabric.fault("0001", up)
    assert [m for m in msgs(fabric, "5001")] == [
        HeadStatus(1, "0001", 1, True), HeadStatus(2, "0001", 2, True)
    ]


def test_video_off_per_head(fabric: Fabric) -> None:
    fabric.switch("5001", 1, "0001", 1, now=0.0)
    fabric.switch("5001", 2, "0001", 2, now=0.0)
    fabric.drain()
    fabric.fault("0001", "video-off", head=2)
    assert msgs(fabric) == [VideoStatus(2, False), HeadStatus(2, "0001", 2, False)]
    assert shows(fabric, "5001", 1) == ("0001:1", True)
    with pytest.raises(FabricError, match=r"heads 1\.\.2"):
        fabric.fault("0001", "video-off", head=3)


def test_fault_is_reported_once(fabric: Fabric) -> None:
    fabric.fault("5003", "network-down")
    fabric.fault("5003", "network-down")
    assert msgs(fabric) == [NetworkStatus(False)]


@pytest.mark.parametrize(
    ("device", "kind", "head", "message"),
    [
        ("5001", "video-off", None, "applies to a Tx"),
        ("5001", "stream-fault", None, "applies to a Tx"),
        ("0001", "explode", None, "unknown fault"),
        ("7777", "power-off", None, "no device"),
        ("0001", "power-off", 1, "only be given for video"),
    ],
)
def test_bad_faults_are_refused(
    fabric: Fabric, device: str, kind: str, head: int | None, message: str
) -> None:
    with pytest.raises(FabricError, match=message):
        fabric.fault(device, kind, head)


def test_rx_power_cycle_reboots_empty_and_silent(fabric: Fabric) -> None:
    fabric.switch("5002", 1, "0001", 1, now=0.0)
    fabric.set_overlay("5002", True)
    fabric.drain()
    fabric.fault("5002", "power-off")
    assert fabric.seat_keys("5003", text_events("x")) == ["5003"]
    fabric.switch("5002", 1, "0002", 1, now=1.0)      # nobody is there to take it
    assert msgs(fabric, "5002") == []
    rx = fabric.rx["5002"]
    assert (rx.power, rx.overlay, shows(fabric, "5002")) == (False, False, (None, False))
    fabric.fault("0001", "power-off")                  # was tuned before: no stale report
    fabric.fault("5002", "power-on")
    assert msgs(fabric, "5002") == []
    assert rx.power


def test_latency_delays_completion_and_keeps_order() -> None:
    fabric = build_fabric(parse_config(room_config(latency_ms=[5, 15], seed=3)))
    fabric.switch("5003", 1, "0001", 1, now=10.0, request_seq=1)
    fabric.switch("5003", 1, "0002", 1, now=10.0, request_seq=2)
    assert fabric.drain() == []
    deadline = fabric.next_deadline()
    assert deadline is not None and 10.005 <= deadline <= 10.015
    fabric.tick(10.015)
    results = [m for m in msgs(fabric) if isinstance(m, SwitchResult)]
    assert [r.request_seq for r in results] == [1, 2]
    assert shows(fabric, "5003") == ("0002:1", True)      # the later request wins
    assert fabric.next_deadline() is None


def test_rx_reboot_cancels_pending_switches() -> None:
    fabric = build_fabric(parse_config(room_config(latency_ms=10)))
    fabric.switch("5003", 1, "0001", 1, now=0.0)
    fabric.fault("5003", "power-off")
    fabric.fault("5003", "power-on")
    fabric.tick(1.0)
    assert msgs(fabric) == []
    assert shows(fabric, "5003") == (None, False)


def test_status_report(fabric: Fabric) -> None:
    fabric.switch("5001", 2, "0003", 1, now=0.0)
    fabric.drain()
    fabric.status_report("5001", conn=1)
    assert msgs(fabric) == [
        HeadStatus(1, "", 0, False), HeadStatus(2, "0003", 1, True),
        NetworkStatus(True), ScreenSelect(True, 1),
    ]
    fabric.status_report("5003")
    assert msgs(fabric) == [HeadStatus(1, "", 0, False), NetworkStatus(True)]
    fabric.status_report("0003")
    assert msgs(fabric) == [
        VideoStatus(1, True), VideoStatus(2, False), VideoStatus(3, True), VideoStatus(4, True),
        NetworkStatus(True),
    ]


# --- keys --------------------------------------------------------------------------


def test_keys_at_a_lone_rx_go_to_its_host(fabric: Fabric) -> None:
    assert fabric.seat_keys("5003", sequence_events("Shift+O")) == ["5003"]
    assert msgs(fabric, "5003") == [
        KeyInput(0xE1, 0x02, True), KeyInput(0x12, 0x02, True),
        KeyInput(0x12, 0x02, False), KeyInput(0xE1, 0x00, False),
    ]


def test_key_forward_reaches_the_computer_on_head_1(fabric: Fabric) -> None:
    fabric.switch("5001", 1, "0002", 1, now=0.0)
    fabric.switch("5001", 2, "0001", 2, now=0.0)
    for e in text_events("Hi 5!") + sequence_events("Enter Ctrl+C"):
        assert fabric.key_forward("5001", e.usage, int(e.mods), e.pressed) == "0002"
    assert fabric.tx["0002"].computer.text == "Hi 5!\n"      # Ctrl+C types nothing
    assert fabric.tx["0002"].computer.key_count == 20
    assert fabric.tx["0001"].computer.key_count == 0


@pytest.mark.parametrize(
    ("fault", "delivered"),
    [
        (None, "0002"),
        (("5001", "network-down"), None),
        (("0002", "power-off"), None),
        (("0002", "network-down"), None),
        (("0002", "stream-fault"), "0002"),     # the keyboard path does not need the stream
    ],
)
def test_key_forward_needs_the_network(
    fabric: Fabric, fault: tuple[str, str] | None, delivered: str | None
) -> None:
    fabric.switch("5001", 1, "0002", 1, now=0.0)
    if fault:
        fabric.fault(*fault)
    assert fabric.key_forward("5001", 0x04, 0, True) == delivered
    assert fabric.tx["0002"].computer.key_count == (1 if delivered else 0)


def test_key_forward_without_source_goes_nowhere(fabric: Fabric) -> None:
    assert fabric.key_forward("5003", 0x04, 0, True) is None
    assert all(t.computer.key_count == 0 for t in fabric.tx.values())


def test_cross_screen_routing_with_f7_and_mouse(fabric: Fabric) -> None:
    assert fabric.seat_keys("seat-A", text_events("a")) == ["5001"]
    fabric.drain()
    assert fabric.seat_keys("seat-A", sequence_events("F7+2")) == []
    assert msgs(fabric) == [ScreenSelect(False, 1), ScreenSelect(True, 2)]
    assert fabric.seat_keys("5001", text_events("b")) == ["5002"]   # an Rx names its seat
    assert [m.usage for m in msgs(fabric, "5002") if isinstance(m, KeyInput)] == [0x05, 0x05]
    fabric.mouse_to_screen("seat-A", 1)
    assert msgs(fabric) == [ScreenSelect(False, 2), ScreenSelect(True, 1)]
    fabric.mouse_to_screen("seat-A", 1)                  # already there: no report
    assert msgs(fabric) == []
    with pytest.raises(FabricError, match=r"screens 1\.\.2, not 3"):
        fabric.mouse_to_screen("seat-A", 3)
    with pytest.raises(FabricError, match="no seat or Rx"):
        fabric.mouse_to_screen("seat-Z", 1)


def test_f7_digit_on_a_lone_rx_is_an_ordinary_chord(fabric: Fabric) -> None:
    fabric.seat_keys("5003", sequence_events("F7+2"))
    assert [m.usage for m in msgs(fabric) if isinstance(m, KeyInput)] == [0x40, 0x1F, 0x1F, 0x40]


def test_state_is_json_and_tells_what_is_shown(fabric: Fabric) -> None:
    import json

    fabric.switch("5011", 1, "0001", 1, now=0.0)
    fabric.fault("0003", "stream-fault")
    state = json.loads(json.dumps(fabric.snapshot()))
    rx = {d["id"]: d for d in state["rx"]}
    tx = {d["id"]: d for d in state["tx"]}
    assert rx["5011"]["heads"] == [{"head": 1, "source": "0001:1", "video": True, "since": 0.0}]
    assert rx["5011"]["wall"] == "wall-1"
    assert rx["5001"]["seat"] == "seat-A" and rx["5003"]["seat"] is None
    assert tx["0003"]["stream_ok"] is False and tx["0003"]["video"] == [True, False, True, True]
    assert state["seats"] == [
        {"name": "seat-A", "screens": ["5001", "5002"], "active": 1, "active_rx": "5001"}
    ]
    assert state["walls"][0]["splice"] is True


def test_splice_toggle(fabric: Fabric) -> None:
    fabric.set_splice("wall-1", False)
    assert fabric.walls["wall-1"].splice is False
    with pytest.raises(FabricError, match="no wall"):
        fabric.set_splice("nope", True)
