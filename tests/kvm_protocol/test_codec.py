"""Codec: round trips, frame structure, garbage, resync, chunking, bad input."""

from __future__ import annotations

import dataclasses
import struct
from enum import IntEnum

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kvm_protocol import messages as m
from kvm_protocol.codec import (
    MAX_ISSUES,
    MAX_PAYLOAD,
    SYNC,
    Frame,
    FrameDecoder,
    ProtocolError,
    crc16,
    decode_all,
    decode_frame,
    decode_payload,
    describe_layout,
    encode_frame,
    encode_payload,
)
from tests.kvm_protocol.strategies import STRATEGIES, any_message, frame_items

SETTINGS = settings(max_examples=200, deadline=None)


def crc_reference(data: bytes) -> int:
    """Bitwise CRC-16/CCITT-FALSE, independent of binascii."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def raw_frame(msg_type: int, seq: int, payload: bytes, length: int | None = None) -> bytes:
    """A frame with a correct CRC around arbitrary content (to build bad-but-intact frames)."""
    body = struct.pack("<HBB", len(payload) if length is None else length, msg_type, seq) + payload
    return SYNC + body + crc_reference(body).to_bytes(2, "big")


def test_every_message_has_a_strategy_and_a_layout() -> None:
    assert set(STRATEGIES) == set(m.ALL_MESSAGES)
    for cls in m.ALL_MESSAGES:
        assert [name for name, _ in describe_layout(cls)] == [
            f.name for f in dataclasses.fields(cls)
        ]


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1 == crc_reference(b"123456789")


@given(st.binary(max_size=600))
@SETTINGS
def test_crc_matches_reference(data: bytes) -> None:
    assert crc16(data) == crc_reference(data)


@pytest.mark.parametrize("cls", m.ALL_MESSAGES, ids=lambda c: c.__name__)
@given(data=st.data(), seq=st.integers(0, 255))
@settings(max_examples=60, deadline=None)
def test_round_trip_per_message_type(cls: type[m.Message], data: st.DataObject, seq: int) -> None:
    msg = data.draw(STRATEGIES[cls])
    frame = decode_frame(encode_frame(msg, seq))
    assert frame == Frame(seq, msg)
    assert type(frame.message) is cls
    for f in dataclasses.fields(cls):  # enums come back as enums, bools as bools
        assert type(getattr(frame.message, f.name)) is type(getattr(msg, f.name)) or isinstance(
            getattr(msg, f.name), IntEnum
        )


@given(frame_items)
@SETTINGS
def test_frame_structure_and_single_byte_corruption(item: tuple[m.Message, int]) -> None:
    msg, seq = item
    data = encode_frame(msg, seq)
    payload = encode_payload(msg)
    assert data[:2] == b"\xa5\x5a"
    assert struct.unpack_from("<HBB", data, 2) == (len(payload), msg.TYPE, seq)
    assert len(data) == 2 + 4 + len(payload) + 2
    assert data[6:-2] == payload
    assert int.from_bytes(data[-2:], "big") == crc_reference(data[2:-2])
    assert decode_payload(msg.TYPE, payload) == msg
    original = Frame(seq, msg)
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            bad = data[:i] + bytes([data[i] ^ flip]) + data[i + 1 :]
            with pytest.raises(ProtocolError):
                decode_frame(bad)
            assert original not in decode_all(bad)


@given(st.binary(max_size=300))
@SETTINGS
@example(b"\xa5\x5a\x00\x02")  # oversized length
@example(b"\xa5\x5a\x00\x00\x10\x00")  # header of an empty KeyInput, no CRC yet
def test_garbage_never_raises_and_never_fabricates(data: bytes) -> None:
    frames = decode_all(data)
    for frame in frames:
        assert encode_frame(frame.message, frame.seq) in data
    try:
        frame = decode_frame(data)
    except ProtocolError:
        pass
    else:
        assert encode_frame(frame.message, frame.seq) == data


@given(st.integers(0, 255), st.binary(max_size=80))
@SETTINGS
def test_decode_payload_is_canonical_or_protocol_error(msg_type: int, payload: bytes) -> None:
    try:
        msg = decode_payload(msg_type, payload)
    except ProtocolError:
        return
    assert msg_type == msg.TYPE
    assert encode_payload(msg) == payload


def sync_free(data: bytes) -> bool:
    return SYNC not in data


noise = st.binary(max_size=40).filter(sync_free)


@given(st.lists(st.tuples(noise, frame_items), max_size=12), noise)
@SETTINGS
def test_every_frame_after_sync_free_noise_is_found(
    chunks: list[tuple[bytes, tuple[m.Message, int]]], tail: bytes
) -> None:
    stream = b"".join(n + encode_frame(msg, seq) for n, (msg, seq) in chunks) + tail
    dec = FrameDecoder()
    assert dec.feed(stream) == [Frame(seq, msg) for _, (msg, seq) in chunks]
    assert dec.stats["crc_errors"] == 0
    assert dec.pop_issues() == []


# A segment of the corrupted stream: (bytes, frame if the segment is an intact frame).
Segment = tuple[bytes, Frame | None]


@st.composite
def segments(draw: st.DrawFn) -> Segment:
    msg, seq = draw(frame_items)
    data = encode_frame(msg, seq)
    kind = draw(st.sampled_from(["intact", "intact", "flip", "truncate", "noise"]))
    if kind == "intact":
        return data, Frame(seq, msg)
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :], None
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))], None
    return draw(st.binary(max_size=60)), None  # may contain false syncs


@given(st.lists(segments(), max_size=12))
@SETTINGS
def test_corrupted_stream_recovers_every_intact_frame(segs: list[Segment]) -> None:
    """Guarantee: every intact frame is found unless a false candidate validated.

    A false candidate (a sync inside noise or a damaged frame) that passes the
    CRC (odds about 1 in 65536 per candidate) yields a frame that was never
    sent and may cover real frames. That case is detected (a frame not in the
    intact list) and then only the weaker guarantees are checked.
    """
    stream = b"".join(data for data, _ in segs)
    intact = [f for _, f in segs if f is not None]
    dec = FrameDecoder()
    got = dec.feed(stream) + dec.flush()
    assert dec.buffered == 0
    for frame in got:
        assert encode_frame(frame.message, frame.seq) in stream
    if all(f in intact for f in got):
        assert got == intact


@given(st.lists(segments(), max_size=8), st.data())
@SETTINGS
def test_whole_vs_pieces_give_same_frames_issues_and_stats(
    segs: list[Segment], data: st.DataObject
) -> None:
    stream = b"".join(d for d, _ in segs)
    whole = FrameDecoder()
    expected = whole.feed(stream)
    bytewise = FrameDecoder()
    got = [f for i in range(len(stream)) for f in bytewise.feed(stream[i : i + 1])]
    assert got == expected
    assert bytewise.pop_issues() == whole.pop_issues()
    assert bytewise.stats == whole.stats
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    chunked = FrameDecoder()
    assert [f for p in pieces for f in chunked.feed(p)] == expected
    assert whole.flush() == bytewise.flush() == chunked.flush()


# --- false sync and truncation ---------------------------------------------------

GOOD = [(m.KeyInput(0x04, 0, True), 1), (m.SwitchHead(1, "0001", 1), 2), (m.Heartbeat(5), 3)]
GOOD_BYTES = b"".join(encode_frame(msg, seq) for msg, seq in GOOD)
GOOD_FRAMES = [Frame(seq, msg) for msg, seq in GOOD]


def test_false_sync_with_short_length_is_skipped_once_its_crc_fails() -> None:
    dec = FrameDecoder()
    # A false candidate claiming 8 payload bytes overlaps the first real frame.
    assert dec.feed(b"\x00\xa5\x5a\x08\x00" + GOOD_BYTES) == GOOD_FRAMES
    assert dec.stats["crc_errors"] == 1
    assert dec.stats["resyncs"] == 1


def test_false_sync_with_long_length_holds_frames_until_more_bytes_or_flush() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\xa5\x5a\xff\x01\x20\x00" + GOOD_BYTES) == []  # waits for 511+8 bytes
    assert dec.buffered > 0
    assert dec.flush() == GOOD_FRAMES
    assert dec.buffered == 0
    # ...or the candidate fails by itself once enough bytes have arrived.
    dec2 = FrameDecoder()
    filler = encode_frame(m.Heartbeat(1), 9) * 60
    got = dec2.feed(b"\xa5\x5a\xff\x01\x20\x00" + GOOD_BYTES + filler)
    assert got[:3] == GOOD_FRAMES
    assert len(got) == 63


def test_truncated_frame_does_not_hide_the_next_one() -> None:
    dec = FrameDecoder()
    big = encode_frame(m.Hello(1, m.DeviceKind.RX, "X" * 32, 4, "F" * 32), 0)
    assert dec.feed(big[:20] + GOOD_BYTES) == []  # candidate still short of bytes
    assert dec.flush() == GOOD_FRAMES
    dec = FrameDecoder()
    assert dec.feed(big[:20] + GOOD_BYTES + big) == [*GOOD_FRAMES, decode_frame(big)]


def test_lone_first_sync_byte_is_kept_across_feeds() -> None:
    data = encode_frame(m.OsdOverlay(True), 4)
    dec = FrameDecoder()
    assert dec.feed(b"\x01\x02" + data[:1]) == []
    assert dec.buffered == 1
    assert dec.feed(data[1:]) == [Frame(4, m.OsdOverlay(True))]


# --- bad input -------------------------------------------------------------------


def test_oversized_length_is_rejected_at_once_and_decoding_goes_on() -> None:
    dec = FrameDecoder()
    frames = dec.feed(b"\xa5\x5a" + struct.pack("<H", MAX_PAYLOAD + 1) + b"\x10\x00" + GOOD_BYTES)
    assert frames == GOOD_FRAMES
    issues = dec.pop_issues()
    assert [i.kind for i in issues] == ["oversized"]
    assert "513" in issues[0].detail
    assert dec.stats["oversized"] == 1
    # Rejected without waiting: nothing is held back for the 513-byte candidate.
    dec = FrameDecoder()
    assert dec.feed(b"\xa5\x5a\xff\xff") == []
    assert dec.buffered == 0
    assert dec.pop_issues()[0].kind == "oversized"


def test_unknown_type_is_reported_not_raised() -> None:
    dec = FrameDecoder()
    frames = dec.feed(raw_frame(0x7E, 9, b"\x01\x02") + GOOD_BYTES)
    assert frames == GOOD_FRAMES
    (issue,) = dec.pop_issues()
    assert (issue.kind, issue.msg_type, issue.seq) == ("unknown_type", 0x7E, 9)
    assert dec.stats["unknown_types"] == 1
    assert dec.stats["frames"] == 3
    assert dec.stats["crc_errors"] == 0
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode_frame(raw_frame(0x7E, 9, b""))


BAD_PAYLOADS = [
    (m.Hello.TYPE, b"\x01\x02\x03ABC\x09\x00", "heads"),  # 9 heads
    (m.Hello.TYPE, b"\x01\x07\x03ABC\x01\x00", "kind"),  # no such DeviceKind
    (m.Hello.TYPE, b"\x01\x02\x00\x01\x00", "serial"),  # empty serial
    (m.Hello.TYPE, b"\x01\x02\x02A\xff\x01\x00", "ASCII"),  # non-ASCII serial
    (m.Hello.TYPE, b"\x01\x02\x02A\x07\x01\x00", "printable"),  # control character
    (m.KeyInput.TYPE, b"\x04\x00\x02", "pressed"),  # bool byte 2
    (m.KeyInput.TYPE, b"\x04\x00", "too short"),
    (m.KeyInput.TYPE, b"\x04\x00\x01\x00", "trailing"),
    (m.SwitchHead.TYPE, b"\x01\x0412a4\x01", "4 digits"),
    (m.SwitchHead.TYPE, b"\x01\x040001\x00", "tx_head"),  # ID without a head
    (m.SwitchHead.TYPE, b"\x01\x00\x02", "tx_head"),  # head without an ID
    (m.SwitchHead.TYPE, b"\x05\x00\x00", "head"),
    (m.SwitchHead.TYPE, b"\x01\x09", "past the payload"),
    (m.ScreenSelect.TYPE, b"\x01\x09", "screen"),
    (m.SwitchResult.TYPE, b"\x01\x01\x63", "status"),
    (m.StatusRequest.TYPE, b"\x00", "trailing"),
    (m.Heartbeat.TYPE, b"\x00\x00\x00", "too short"),
]


@pytest.mark.parametrize(("msg_type", "payload", "why"), BAD_PAYLOADS)
def test_bad_payload_is_reported_and_the_stream_goes_on(
    msg_type: int, payload: bytes, why: str
) -> None:
    dec = FrameDecoder()
    assert dec.feed(raw_frame(msg_type, 3, payload) + GOOD_BYTES) == GOOD_FRAMES
    (issue,) = dec.pop_issues()
    assert (issue.kind, issue.msg_type, issue.seq) == ("bad_payload", msg_type, 3)
    assert why in issue.detail
    assert dec.stats["bad_payloads"] == 1
    with pytest.raises(ProtocolError, match=why):
        decode_payload(msg_type, payload)


INVALID_MESSAGES = [
    (m.Hello(1, m.DeviceKind.RX, "", 1, ""), "serial"),
    (m.Hello(1, m.DeviceKind.RX, "S" * 33, 1, ""), "serial"),
    (m.Hello(1, m.DeviceKind.RX, "SÉRIE", 1, ""), "ASCII"),
    (m.Hello(1, m.DeviceKind.RX, "S", 0, ""), "heads"),
    (m.Hello(1, m.DeviceKind.RX, "S", 5, ""), "heads"),
    (m.Hello(256, m.DeviceKind.RX, "S", 1, ""), "protocol_version"),
    (m.Hello(1, 9, "S", 1, ""), "kind"),  # type: ignore[arg-type]
    (m.KeyInput(256, 0, True), "usage"),
    (m.KeyInput(-1, 0, True), "usage"),
    (m.KeyInput(4, 0, 1), "pressed"),  # type: ignore[arg-type]
    (m.KeyInput(True, 0, True), "usage"),
    (m.KeyForward(4, "0", True), "mods"),  # type: ignore[arg-type]
    (m.SwitchHead(1, "1", 1), "4 digits"),
    (m.SwitchHead(1, "00012", 1), "4 digits"),
    (m.SwitchHead(1, "٠١٢٣", 1), "4 digits"),  # Arabic-Indic digits are digits, not ASCII
    (m.SwitchHead(1, "", 1), "tx_head"),
    (m.SwitchHead(1, "0001", 0), "tx_head"),
    (m.SwitchHead(0, "0001", 1), "head"),
    (m.ScreenSelect(True, 9), "screen"),
    (m.Heartbeat(2**32), "uptime_ms"),
    (m.Error(m.ErrorCode.BAD_STATE, 0, "x" * 65), "detail"),
    (m.Ack(300), "ack_seq"),
]


@pytest.mark.parametrize(("msg", "why"), INVALID_MESSAGES, ids=lambda x: repr(x)[:40])
def test_encoding_an_invalid_message_raises_protocol_error(msg: m.Message, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        encode_frame(msg, 0)


@pytest.mark.parametrize("seq", [-1, 256, True, "1"])
def test_encoding_with_a_bad_seq_raises_protocol_error(seq: object) -> None:
    with pytest.raises(ProtocolError, match="seq"):
        encode_frame(m.Heartbeat(0), seq)  # type: ignore[arg-type]


def test_encoding_a_non_message_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        encode_frame(object(), 0)  # type: ignore[arg-type]


def test_issue_list_is_bounded() -> None:
    dec = FrameDecoder()
    dec.feed(raw_frame(0x7E, 0, b"") * (MAX_ISSUES + 5))
    assert len(dec.pop_issues()) == MAX_ISSUES
    assert dec.stats["issues_dropped"] == 5
    assert dec.stats["unknown_types"] == MAX_ISSUES + 5


@given(any_message)
@settings(max_examples=50, deadline=None)
def test_reset_forgets_a_partial_frame(msg: m.Message) -> None:
    data = encode_frame(msg, 1)
    dec = FrameDecoder()
    dec.feed(data[:-1])
    dec.reset()
    assert dec.buffered == 0
    assert dec.feed(data) == [Frame(1, msg)]
