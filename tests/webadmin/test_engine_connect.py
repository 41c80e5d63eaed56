"""F1 connect (SPEC 1.3, 2.3): every outcome, the order of checks, multi-head, disconnect."""

from __future__ import annotations

import pytest

from kvm_protocol.results import ResultCode as R
from tests.webadmin.test_engine_room import HERE, ME, apply, room, show, sources
from webadmin.engine import Route, Snapshot, connect, disconnect

# (already shown on the Rx, user, rx, typed, expected code, what the Rx shows afterwards)
CASES = [
    # success, with multi-head mapping
    ((), ME, HERE, "1", R.CONNECTED, ["0001:1"]),
    ((), ME, HERE, "0001", R.CONNECTED, ["0001:1"]),
    ((), ME, HERE, "pc", R.CONNECTED, ["0001:1"]),
    ((), ME, HERE, "2", R.CONNECTED, ["0002:1"]),          # 2-head Tx on a 1-head Rx
    ((), ME, "5002", "2", R.CONNECTED, ["0002:1", "0002:2"]),
    ((), ME, "5002", "1", R.CONNECTED, ["0001:1", "-"]),   # 1-head Tx: Rx head 2 shows nothing
    ((), ME, "5002", "both", R.CONNECTED, ["0001:1", "0002:1"]),  # hotkey of several Tx
    ((), ME, "5002", "three", R.CONNECTED, ["0001:1", "0012:1"]),  # Tx past the heads unused
    ((), ME, HERE, "both", R.CONNECTED, ["0001:1"]),
    ((), ME, HERE, "dark", R.CONNECTED, ["0001:1"]),       # its no-video Tx is not used here
    ((), ME, HERE, "6", R.CONNECTED, ["0006:1"]),          # only head 2 lacks video
    ((), ME, HERE, "12", R.CONNECTED, ["0012:1"]),         # view-only: the picture is allowed
    (("0001:1",), ME, HERE, "2", R.CONNECTED, ["0002:1"]),
    (("0002:1", "-"), ME, "5002", "2", R.CONNECTED, ["0002:1", "0002:2"]),
    ((), "boss", HERE, "7", R.CONNECTED, ["0007:1"]),      # admins have every device
    # failures
    ((), ME, HERE, "7", R.OUT_OF_SCOPE, ["-"]),
    ((), ME, HERE, "secret", R.OUT_OF_SCOPE, ["-"]),
    ((), "low", HERE, "3", R.OUT_OF_SCOPE, ["-"]),         # scope before offline: no leak
    ((), "low", HERE, "4", R.OUT_OF_SCOPE, ["-"]),
    ((), ME, HERE, "3", R.OFFLINE, ["-"]),
    ((), ME, HERE, "4", R.NO_VIDEO, ["-"]),
    ((), ME, "5002", "dark", R.NO_VIDEO, ["-", "-"]),
    ((), ME, HERE, "5", R.CONNECT_FAILED, ["-"]),
    (("0001:1",), ME, HERE, "1", R.SAME_SOURCE, ["0001:1"]),
    (("0001:1",), ME, HERE, "pc", R.SAME_SOURCE, ["0001:1"]),
    (("0002:1", "0002:2"), ME, "5002", "2", R.SAME_SOURCE, ["0002:1", "0002:2"]),
    (("0003:1",), ME, HERE, "3", R.OFFLINE, ["0003:1"]),   # a dead source says why
    (("0004:1",), ME, HERE, "4", R.NO_VIDEO, ["0004:1"]),
    (("0005:1",), ME, HERE, "5", R.CONNECT_FAILED, ["0005:1"]),
    ((), ME, HERE, "9", R.UNKNOWN_TARGET, ["-"]),
    ((), ME, HERE, "row_1", R.UNKNOWN_TARGET, ["-"]),
    ((), "gone", HERE, "1", R.ACCOUNT_DISABLED, ["-"]),
    ((), "nobody", HERE, "1", R.NOT_LOGGED_IN, ["-"]),
    ((), ME, "0001", "1", R.NOT_LOGGED_IN, None),          # not an Rx
    ((), ME, "5555", "1", R.NOT_LOGGED_IN, None),          # no such device
]


@pytest.mark.parametrize(("before", "user", "rx_id", "text", "code", "after"), CASES)
def test_connect(
    before: tuple[str, ...], user: str, rx_id: str, text: str, code: R, after: list[str] | None
) -> None:
    snap = show(room(), rx_id, *before) if before else room()
    outcome = connect(snap, user, rx_id, text)
    assert outcome.code is code
    assert outcome.targets == ()
    if code.ok:
        assert {c.rx_id for c in outcome.changes} == {rx_id}
        assert all(c.route is None or (c.route.set_by == user and not c.route.pushed)
                   for c in outcome.changes)
    else:
        assert outcome.changes == ()
    if after is not None:
        assert sources(apply(snap, outcome), rx_id) == after


def test_connect_switches_only_the_screen_the_osd_is_on() -> None:
    snap = show(room(sessions={"5031": "boss"}), "5032", "0002:1")
    outcome = connect(snap, "boss", "5031", "1")
    assert outcome.code is R.CONNECTED
    after = apply(snap, outcome)
    assert sources(after, "5031") == ["0001:1"]
    assert sources(after, "5032") == ["0002:1"]


def test_a_pushed_picture_is_no_permission_to_connect() -> None:
    # hxfj was pushed 0007 (outside their scope); while it is on screen and after switching
    # away, typing it answers OUT_OF_SCOPE: the push grant is the route, nothing else.
    snap = show(room(), HERE, "0007:1", by="boss", pushed=True)
    assert connect(snap, ME, HERE, "7").code is R.OUT_OF_SCOPE
    switched = apply(snap, connect(snap, ME, HERE, "1"))
    assert sources(switched, HERE) == ["0001:1"]
    assert connect(switched, ME, HERE, "7").code is R.OUT_OF_SCOPE


def test_connect_replaces_a_push_by_an_ordinary_route() -> None:
    snap = show(room(), HERE, "0002:1", by="boss", pushed=True)
    outcome = connect(snap, ME, HERE, "1")
    assert outcome.changes[0].route == Route("0001", 1, set_by=ME, pushed=False)


@pytest.mark.parametrize("user", [ME, "gone", "nobody"])
def test_disconnect_clears_every_head_of_every_screen_of_the_seat(user: str) -> None:
    snap: Snapshot = show(show(room(), "5031", "0001:1"), "5032", "0002:1")
    snap = show(snap, HERE, "0001:1")
    outcome = disconnect(snap, user, "5032")
    assert outcome.code is R.DISCONNECTED
    after = apply(snap, outcome)
    assert sources(after, "5031") == ["-"]
    assert sources(after, "5032") == ["-"]
    assert sources(after, HERE) == ["0001:1"]      # another seat is untouched


def test_disconnect_of_a_lone_multi_head_rx() -> None:
    snap = show(room(), "5002", "0002:1", "0002:2")
    outcome = disconnect(snap, ME, "5002")
    assert sources(apply(snap, outcome), "5002") == ["-", "-"]
    assert {c.rx_id for c in outcome.changes} == {"5002"}
