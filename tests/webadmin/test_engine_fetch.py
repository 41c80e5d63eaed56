"""F3 fetch (SPEC 1.5): every outcome, order of checks, walls, multi-head, push grants."""

from __future__ import annotations

import pytest

from kvm_protocol.results import ResultCode as R
from tests.webadmin.test_engine_room import HERE, ME, apply, room, show, sources, with_device
from webadmin.engine import Route, Snapshot, Wall, connect, fetch, push

# (what 5002 shows, what 5001 shows, user, typed, code, what 5001 shows afterwards)
CASES = [
    (("0002:1", "0002:2"), (), ME, "2", R.FETCHED, ["0002:1"]),
    (("0002:1", "0002:2"), (), ME, "5002", R.FETCHED, ["0002:1"]),
    (("0002:1", "0002:2"), (), ME, "rx2", R.FETCHED, ["0002:1"]),
    (("0002:1", "0002:2"), ("0001:1",), ME, "2", R.FETCHED, ["0002:1"]),
    (("-", "0001:1"), (), ME, "2", R.FETCHED, ["0001:1"]),      # empty heads skipped
    (("0012:1", "-"), (), ME, "2", R.FETCHED, ["0012:1"]),      # view-only Tx: picture ok
    (("0007:1", "-"), (), "boss", "2", R.FETCHED, ["0007:1"]),
    (("0001:1", "-"), ("0001:1",), ME, "2", R.SAME_SOURCE, ["0001:1"]),
    (("0007:1", "-"), (), ME, "2", R.OUT_OF_SCOPE, ["-"]),      # its Tx is outside view scope
    (("0001:1", "0007:1"), (), ME, "2", R.OUT_OF_SCOPE, ["-"]),
    ((), (), ME, "2", R.NOT_CONNECTED, ["-"]),                  # it shows nothing
    ((), (), ME, "5", R.OUT_OF_SCOPE, ["-"]),                   # not in fetch scope
    ((), (), "low", "3", R.OUT_OF_SCOPE, ["-"]),                # scope before offline
    ((), (), ME, "3", R.OFFLINE, ["-"]),
    ((), (), ME, "4", R.OFFLINE, ["-"]),                        # network down
    ((), (), ME, "8888", R.UNKNOWN_TARGET, ["-"]),
    ((), (), ME, "row_1", R.UNKNOWN_TARGET, ["-"]),
    ((), (), ME, "1", R.NOT_CONNECTED, ["-"]),                  # itself, showing nothing
    (("0001:1", "-"), (), "gone", "2", R.ACCOUNT_DISABLED, ["-"]),
    (("0001:1", "-"), (), "nobody", "2", R.NOT_LOGGED_IN, ["-"]),
]


@pytest.mark.parametrize(("there", "here", "user", "text", "code", "after"), CASES)
def test_fetch(
    there: tuple[str, ...], here: tuple[str, ...], user: str, text: str, code: R, after: list[str]
) -> None:
    snap = room()
    if there:
        snap = show(snap, "5002", *there)
    if here:
        snap = show(snap, HERE, *here)
    outcome = fetch(snap, user, HERE, text)
    assert outcome.code is code
    if code.ok:
        assert {c.rx_id for c in outcome.changes} == {HERE}
        assert all(c.route is None or (c.route.set_by == user and not c.route.pushed)
                   for c in outcome.changes)
    else:
        assert outcome.changes == ()
    assert sources(apply(snap, outcome), HERE) == after


def test_fetch_onto_a_multi_head_rx() -> None:
    snap = show(room(), "5012", "0002:1")
    snap = with_device(snap, "5012", heads=1)
    outcome = fetch(snap, ME, "5002", "12")
    assert sources(apply(snap, outcome), "5002") == ["0002:1", "-"]


def test_fetch_from_a_tile_of_a_splicing_wall_gets_the_walls_tx() -> None:
    snap = show(room(), "5021", "0002:1")
    for text in ("22", "21", "wall"):
        outcome = fetch(snap, ME, HERE, text)
        assert outcome.code is R.FETCHED
        assert sources(apply(snap, outcome), HERE) == ["0002:1"]


def test_fetch_from_a_tile_of_a_wall_without_splice_gets_that_tile() -> None:
    snap = show(room(walls=(Wall("big", 1, 2, ("5021", "5022")),)), "5021", "0002:1")
    assert fetch(snap, ME, HERE, "22").code is R.NOT_CONNECTED
    assert fetch(snap, ME, HERE, "21").code is R.FETCHED


def test_the_push_grant_ends_when_the_rx_switches_away() -> None:
    """SPEC 1.4 rule 1 end to end: boss pushes 0007 to hxfj, who may see it only until they
    switch; then neither connect nor fetch brings it back."""
    snap: Snapshot = show(room(sessions={HERE: ME, "5002": "boss"}), "5002", "0007:1", "-")
    outcome = push(snap, "boss", "5002", "1")
    assert outcome.code is R.PUSHED
    snap = apply(snap, outcome)
    assert snap.routing[HERE] == (Route("0007", 1, set_by="boss", pushed=True),)
    assert fetch(snap, ME, HERE, "2").code is R.OUT_OF_SCOPE
    assert push(snap, ME, HERE, "12").code is R.OUT_OF_SCOPE      # no laundering
    snap = apply(snap, connect(snap, ME, HERE, "1"))
    assert sources(snap, HERE) == ["0001:1"]
    assert connect(snap, ME, HERE, "7").code is R.OUT_OF_SCOPE
    assert fetch(snap, ME, HERE, "2").code is R.OUT_OF_SCOPE
