"""Session: handshake, acks, retries, duplicates, heartbeats, link down/up, bad input.

Two Sessions are wired back to back in memory (conftest.Pair); time is advanced
by hand, so there are no threads and no sleeps.
"""

from __future__ import annotations

import pytest

from kvm_protocol import messages as m
from kvm_protocol.codec import SYNC, Frame, ProtocolError, decode_all, encode_frame
from kvm_protocol.session import (
    Acked,
    LinkDown,
    LinkUp,
    ProtocolIssue,
    Received,
    SendFailed,
    Session,
    SessionConfig,
)
from tests.kvm_protocol.conftest import DEVICE_HELLO, Pair
from tests.kvm_protocol.test_codec import raw_frame

SWITCH = m.SwitchHead(1, "0001", 1)


def test_handshake_brings_both_ends_up_with_the_device_identity(pair: Pair) -> None:
    assert pair.take("host") == [LinkUp(DEVICE_HELLO)]
    assert pair.take("device") == [LinkUp(DEVICE_HELLO)]
    assert pair.host.link_up and pair.device.link_up
    assert pair.host.identity == DEVICE_HELLO
    assert len(pair.sent("h2d", m.HelloRequest)) == 1


def test_handshake_waits_for_a_device_that_appears_later() -> None:
    p = Pair()
    p.cut = True
    p.advance(5.0)
    assert not p.host.link_up
    assert p.take("host") == []  # the host keeps asking, quietly
    assert len(p.sent("h2d", m.HelloRequest)) >= 5
    p.cut = False
    p.advance(1.0)
    assert p.take("host") == [LinkUp(DEVICE_HELLO)]
    assert p.host.link_up and p.device.link_up


def test_reliable_message_is_delivered_and_acked(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    seq = pair.host.send(SWITCH, pair.now)
    pair.pump()
    assert pair.take("device") == [Received(seq, SWITCH)]
    assert pair.take("host") == [Acked(seq, SWITCH)]


def test_lost_ack_means_retry_reack_and_single_delivery(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    lost: list[Frame] = []

    def drop_first_ack(f: Frame) -> bool:
        if isinstance(f.message, m.Ack) and not lost:
            lost.append(f)
            return True
        return False

    pair.drop["d2h"] = drop_first_ack
    seq = pair.host.send(SWITCH, pair.now)
    pair.advance(0.5)
    assert [f.message for f in lost] == [m.Ack(seq)]
    assert pair.take("device") == [Received(seq, SWITCH)]  # once, though sent twice
    assert pair.take("host") == [Acked(seq, SWITCH)]
    assert len([f for f in pair.sent("h2d", m.SwitchHead) if f.seq == seq]) == 2
    assert pair.device.stats["duplicates"] == 1
    assert len([f for f in pair.sent("d2h", m.Ack) if f.message == m.Ack(seq)]) == 2


def test_lost_frame_is_retried_after_the_timeout(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    drops = iter([True, True])
    pair.drop["h2d"] = lambda f: isinstance(f.message, m.SwitchHead) and next(drops, False)
    seq = pair.host.send(SWITCH, pair.now)
    pair.advance(0.39)
    assert pair.take("device") == []  # second try (t=0.2) lost too, third due at 0.4
    pair.advance(0.02)
    assert pair.take("device") == [Received(seq, SWITCH)]
    assert pair.take("host") == [Acked(seq, SWITCH)]


def test_retries_until_send_failed_then_link_down_and_recovery(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    pair.drop["h2d"] = lambda f: isinstance(f.message, m.SwitchHead)
    seq = pair.host.send(SWITCH, pair.now)
    pair.advance(0.99)
    assert pair.take("host") == []
    pair.advance(0.02)
    events = pair.take("host")
    assert events[0] == SendFailed(seq, SWITCH, "no ack for SwitchHead (seq 1) after 5 tries")
    assert isinstance(events[1], LinkDown) and "no ack" in events[1].reason
    assert len(pair.sent("h2d", m.SwitchHead)) == 5
    # The host asks who is there again at once; the device answers.
    assert events[2:] == [LinkUp(DEVICE_HELLO)]
    assert pair.host.link_up


def test_reliable_messages_keep_their_order_despite_losses(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    seen: set[int] = set()

    def drop_each_first_time(f: Frame) -> bool:
        if isinstance(f.message, m.SwitchHead) and f.seq not in seen:
            seen.add(f.seq)
            return True
        return False

    pair.drop["h2d"] = drop_each_first_time
    msgs = [m.SwitchHead(1, f"{n:04d}", 1) for n in range(1, 6)]
    seqs = [pair.host.send(msg, pair.now) for msg in msgs]
    pair.advance(3.0)
    assert pair.take("device") == [Received(s, x) for s, x in zip(seqs, msgs, strict=True)]
    assert pair.take("host") == [Acked(s, x) for s, x in zip(seqs, msgs, strict=True)]


def test_unreliable_messages_go_out_at_once_without_ack(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    acks = len(pair.sent("h2d", m.Ack))
    key = m.KeyInput(0x04, 0, True)
    seq = pair.device.send(key, pair.now)
    pair.pump()
    assert pair.take("host") == [Received(seq, key)]
    assert pair.take("device") == []
    assert len(pair.sent("h2d", m.Ack)) == acks


def test_heartbeats_keep_an_idle_link_up(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    pair.advance(10.0, step=0.1)
    assert pair.take("host") == [] and pair.take("device") == []
    assert 9 <= len(pair.sent("h2d", m.Heartbeat)) <= 11
    assert 9 <= len(pair.sent("d2h", m.Heartbeat)) <= 11
    uptimes = [f.message.uptime_ms for f in pair.sent("d2h", m.Heartbeat)]  # type: ignore[attr-defined]
    assert uptimes == sorted(uptimes) and 9000 <= uptimes[-1] <= 10000


def test_silence_means_link_down_and_the_link_comes_back(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    pair.cut = True
    pair.advance(2.9, step=0.1)
    assert pair.host.link_up and pair.device.link_up
    pair.advance(0.2, step=0.1)
    assert pair.take("host") == [LinkDown("no frame for 3 s")]
    assert pair.take("device") == [LinkDown("no frame for 3 s")]
    pair.cut = False
    pair.advance(1.5)
    assert pair.take("host") == [LinkUp(DEVICE_HELLO)]
    assert pair.take("device") == [LinkUp(DEVICE_HELLO)]


def test_send_while_down_fails_at_once(pair: Pair) -> None:
    p = Pair()
    p.cut = True
    seq = p.host.send(SWITCH, p.now)
    assert p.host.next_deadline() == p.now
    assert p.host.tick(p.now) == [SendFailed(seq, SWITCH, "link down")]


def test_link_down_fails_queued_messages(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    pair.cut = True
    seqs = [pair.host.send(m.OsdOverlay(v), pair.now) for v in (True, False)]
    pair.advance(1.05)
    events = pair.take("host")
    assert [type(e) for e in events] == [SendFailed, LinkDown, SendFailed]
    assert events[2] == SendFailed(seqs[1], m.OsdOverlay(False), "link down")


def test_device_restart_resets_the_hosts_duplicate_filter(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    result = m.SwitchResult(7, 1, m.SwitchStatus.OK)
    seq = pair.device.send(result, pair.now)
    pair.pump()
    assert pair.take("host") == [Received(seq, result)]
    pair.restart_device()  # same sequence numbers again: Hello 0, then the result as 1
    assert pair.device.send(m.NetworkStatus(True), pair.now) >= 0
    pair.advance(0.1)
    assert pair.device.link_up
    seq2 = pair.device.send(result, pair.now)
    assert seq2 == seq
    pair.pump()
    assert Received(seq2, result) in pair.take("host")


def test_device_restart_while_the_link_is_up_is_a_new_link_up(pair: Pair) -> None:
    # A quick reboot (shorter than the silence timeout) loses the Rx's heads: the
    # controller must hear of it to re-sync, even though the identity is the same.
    pair.take("host")
    pair.advance(2.0)
    pair.restart_device()
    pair.pump()
    assert pair.take("host") == [LinkUp(DEVICE_HELLO)]


def test_the_hello_burst_of_a_reconnect_is_one_link_up() -> None:
    p = Pair()
    p.advance(0.5)
    assert p.take("host") == [LinkUp(DEVICE_HELLO)]  # unasked Hello + answer: one event


def test_host_restart_resets_the_devices_duplicate_filter(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    seq = pair.host.send(SWITCH, pair.now)
    pair.pump()
    pair.restart_host()
    pair.pump()
    assert pair.host.link_up
    seq2 = pair.host.send(SWITCH, pair.now)
    assert seq2 == seq
    pair.pump()
    assert pair.take("device") == [Received(seq, SWITCH), Received(seq2, SWITCH)]


def test_changed_identity_is_a_new_link_up(pair: Pair) -> None:
    pair.take("host")
    other = m.Hello(m.PROTOCOL_VERSION, m.DeviceKind.RX, "SIM-RX-5002", 1, "RX-FW 2.5")
    pair.restart_device(other)
    pair.pump()
    assert pair.take("host") == [LinkUp(other)]
    assert pair.host.identity == other


def test_other_protocol_version_keeps_the_link_down() -> None:
    p = Pair(hello=m.Hello(9, m.DeviceKind.RX, "SIM-RX-5001", 1, ""))
    p.advance(2.5)
    events = p.take("host")
    assert events and all(isinstance(e, ProtocolIssue) and e.kind == "version" for e in events)
    assert not p.host.link_up
    assert 2 <= len(p.sent("h2d", m.HelloRequest)) <= 4  # asks again once a second


# --- bad input -----------------------------------------------------------------------


def test_unknown_type_is_reported_answered_with_error_and_the_session_goes_on(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    key = m.KeyInput(4, 0, True)
    events = pair.host.receive_data(raw_frame(0x7E, 3, b"\x00") + encode_frame(key, 4), pair.now)
    assert events == [
        ProtocolIssue("unknown_type", "unknown message type 0x7e", 0x7E, 3),
        Received(4, key),
    ]
    pair.pump()
    (issue,) = pair.take("device")
    assert isinstance(issue, ProtocolIssue) and issue.kind == "peer_error"
    assert issue.msg_type == 0x7E and "UNKNOWN_TYPE" in issue.detail
    assert pair.host.link_up


def test_bad_payload_is_reported_and_not_acked(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    bad = raw_frame(m.SwitchResult.TYPE, 9, b"\x01\x07\x01")  # head 7
    events = pair.host.receive_data(bad, pair.now)
    assert len(events) == 1 and isinstance(events[0], ProtocolIssue)
    assert events[0].kind == "bad_payload" and "head" in events[0].detail
    replies = [f.message for f in decode_all(pair.host.data_to_send())]
    assert m.Ack(9) not in replies  # not delivered, so not acknowledged
    assert [type(r) for r in replies] == [m.Error]


def test_oversized_length_is_reported_without_an_error_reply(pair: Pair) -> None:
    pair.take("host")
    key = m.KeyInput(5, 0, False)
    events = pair.host.receive_data(SYNC + b"\xff\xff" + encode_frame(key, 1), pair.now)
    assert [type(e) for e in events] == [ProtocolIssue, Received]
    assert pair.host.data_to_send() == b""


def test_truncated_frame_is_dropped_when_the_line_goes_idle(pair: Pair) -> None:
    pair.take("host")
    key = m.KeyInput(6, 0, True)
    partial = encode_frame(m.Hello(1, m.DeviceKind.RX, "X" * 32, 1, ""), 2)[:12]
    assert pair.host.receive_data(partial + encode_frame(key, 8), pair.now) == []
    assert pair.host.next_deadline() == pytest.approx(pair.now + 0.1)
    assert pair.host.tick(pair.now + 0.1) == [Received(8, key)]


def test_connection_lost_is_link_down_and_recovers(pair: Pair) -> None:
    pair.take("host"), pair.take("device")
    seq = pair.host.send(SWITCH, pair.now)
    pair.host.data_to_send()  # the port vanished with these bytes
    pair.host.receive_data(encode_frame(DEVICE_HELLO, 0)[:5], pair.now)  # mid-frame
    events = pair.host.connection_lost("port closed", pair.now)
    assert events == [
        LinkDown("connection lost: port closed"),
        SendFailed(seq, SWITCH, "link down"),
    ]
    pair.advance(0.5)
    assert pair.take("host") == [LinkUp(DEVICE_HELLO)]


@pytest.mark.parametrize(
    ("msg", "why"),
    [
        (m.Ack(1), "sent by the session"),
        (m.Heartbeat(1), "sent by the session"),
        (m.HelloRequest(), "sent by the session"),
        (m.SwitchHead(9, "0001", 1), "head"),
        ("SwitchHead", "not a protocol message"),
    ],
)
def test_send_rejects_invalid_messages(pair: Pair, msg: m.Message, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        pair.host.send(msg, pair.now)
    seq = pair.host.send(SWITCH, pair.now)  # no sequence number was used up
    assert seq == 1


def test_session_arguments_are_checked() -> None:
    with pytest.raises(ProtocolError, match="identity"):
        Session("device", 0.0)
    with pytest.raises(ProtocolError, match="role"):
        Session("server", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="heads"):
        Session("device", 0.0, identity=m.Hello(1, m.DeviceKind.RX, "S", 7, ""))


def test_queue_is_bounded(pair: Pair) -> None:
    pair.take("host")
    pair.cut = True
    cfg = SessionConfig()
    seqs = [pair.host.send(m.OsdOverlay(True), pair.now) for _ in range(cfg.max_queue + 2)]
    events = pair.host.tick(pair.now)
    assert events == [
        SendFailed(seqs[-1], m.OsdOverlay(True), "send queue full"),
    ]
