"""F2 push (SPEC 1.4, 2.2, 2.3): outcomes, several targets, `all`, walls, heads, push grants."""

from __future__ import annotations

import dataclasses

import pytest

from kvm_protocol.results import ResultCode as R
from kvm_protocol.results import push_summary
from tests.webadmin.test_engine_room import HERE, ME, apply, room, show, sources, with_device
from webadmin.engine import Route, Snapshot, Wall, push

P, OFF, OUT, SAME = R.PUSHED, R.OFFLINE, R.OUT_OF_SCOPE, R.SAME_SOURCE


def here_shows(*src: str, **room_changes: object) -> Snapshot:
    return show(room(**room_changes), HERE, *src)


# (typed, expected code, expected per-target codes)
TARGET_CASES = [
    ("2", P, [("5002", P)]),
    ("5002", P, [("5002", P)]),
    ("rx2", P, [("5002", P)]),
    ("5", OUT, [("5005", OUT)]),
    ("3", OFF, [("5003", OFF)]),
    ("4", OFF, [("5004", OFF)]),               # network down counts as offline
    ("2,12", P, [("5002", P), ("5012", P)]),
    ("row_1", P, [("5002", P), ("5012", P)]),  # hotkey: its targets in its order
    ("12, rx2", P, [("5012", P), ("5002", P)]),
    ("2,3,5", R.PUSH_PARTIAL, [("5002", P), ("5003", OFF), ("5005", OUT)]),
    ("3,4", R.PUSH_PARTIAL, [("5003", OFF), ("5004", OFF)]),  # all failed: still names each
    ("3,5", R.PUSH_PARTIAL, [("5003", OFF), ("5005", OUT)]),
    ("1", SAME, [("5001", SAME)]),             # onto itself: it already shows it
]


@pytest.mark.parametrize(("text", "code", "targets"), TARGET_CASES)
def test_push_targets(text: str, code: R, targets: list[tuple[str, R]]) -> None:
    snap = here_shows("0001:1")
    outcome = push(snap, ME, HERE, text)
    assert outcome.code is code
    assert [(t.target, t.code) for t in outcome.targets] == targets
    after = apply(snap, outcome)
    for target, target_code in targets:
        shown = sources(after, target)
        assert (shown[0] == "0001:1") is (target_code in (P, SAME)), target
    changed = {c.rx_id for c in outcome.changes}
    assert changed == {t for t, c in targets if c is P}


@pytest.mark.parametrize(
    ("user", "src", "text", "code"),
    [
        (ME, (), "2", R.NOT_CONNECTED),
        (ME, ("-",), "2", R.NOT_CONNECTED),
        (ME, (), "all", R.NOT_CONNECTED),
        (ME, ("0007:1",), "2", OUT),           # the source is outside the pusher's view scope
        ("low", ("0002:1",), "2", OUT),
        ("low", ("0001:1",), "5", OUT),        # target outside push scope
        ("low", ("0001:1",), "3", OUT),        # scope before offline: no leak
        ("low", ("0001:1",), "all", P),        # `all` = low's only Rx
        ("seatb", ("0001:1",), "all", OUT),    # an empty push scope: nothing to push to
        ("gone", ("0001:1",), "2", R.ACCOUNT_DISABLED),
        ("nobody", ("0001:1",), "2", R.NOT_LOGGED_IN),
        ("boss", ("0007:1",), "5", P),
        (ME, ("0012:1",), "2", P),             # view-only is still in view scope
    ],
)
def test_push_outcomes(user: str, src: tuple[str, ...], text: str, code: R) -> None:
    snap = here_shows(*src) if src else room()
    outcome = push(snap, user, HERE, text)
    assert outcome.code is code
    assert bool(outcome.changes) is (code is P)


def test_a_signal_pushed_from_outside_cannot_be_passed_on() -> None:
    snap = show(room(), HERE, "0007:1", by="boss", pushed=True)
    outcome = push(snap, ME, HERE, "2")
    assert outcome == dataclasses.replace(outcome, code=OUT, changes=(), targets=())


def test_push_all_is_every_rx_in_scope_but_this_seat() -> None:
    snap = show(room(sessions={"5031": "boss"}), "5031", "0001:1")
    outcome = push(snap, "boss", "5031", "ALL ")
    targets = [t.target for t in outcome.targets]
    assert targets == sorted(targets)
    assert set(targets) == {d for d in snap.devices if d >= "5001"} - {"5031", "5032"}
    assert outcome.code is R.PUSH_PARTIAL
    assert {t.target for t in outcome.targets if t.code is OFF} == {"5003", "5004"}
    assert all(t.code is P for t in outcome.targets if t.target not in ("5003", "5004"))


def test_push_all_for_an_operator_skips_rx_out_of_scope() -> None:
    outcome = push(here_shows("0001:1"), ME, HERE, "all")
    targets = {t.target for t in outcome.targets}
    assert "5005" not in targets and HERE not in targets
    assert "5002" in targets


def test_push_to_a_splicing_wall_tile_fills_the_whole_wall() -> None:
    snap = here_shows("0001:1")
    for text in ("21", "5022", "wall"):
        outcome = push(snap, ME, HERE, text)
        assert outcome.code is P
        assert len(outcome.targets) == 1
        after = apply(snap, outcome)
        assert sources(after, "5021") == ["0001:1"]
        assert sources(after, "5022") == ["0001:1"]


def test_push_to_a_wall_not_presenting_a_splice_changes_one_tile() -> None:
    snap = here_shows("0001:1", walls=(Wall("big", 1, 2, ("5021", "5022"), splice=False),))
    after = apply(snap, push(snap, ME, HERE, "21"))
    assert sources(after, "5021") == ["0001:1"]
    assert sources(after, "5022") == ["-"]


def test_wall_is_same_source_only_when_every_tile_shows_it() -> None:
    snap = show(here_shows("0001:1"), "5021", "0001:1")
    assert push(snap, ME, HERE, "21").code is P
    snap = show(snap, "5022", "0001:1")
    assert push(snap, ME, HERE, "21").code is SAME
    assert push(snap, ME, HERE, "22").code is SAME


def test_two_tiles_of_one_wall_in_one_push() -> None:
    outcome = push(here_shows("0001:1"), ME, HERE, "21,22")
    assert outcome.code is P
    assert sorted((c.rx_id, c.head) for c in outcome.changes) == [("5021", 1), ("5022", 1)]


@pytest.mark.parametrize(
    ("source_rx", "src", "target_heads", "expected"),
    [
        ("5002", ("0002:1", "0002:2"), 1, ["0002:1"]),          # primary first
        ("5002", ("0002:1", "0002:2"), 2, ["0002:1", "0002:2"]),
        ("5002", ("0002:1", "0002:2"), 3, ["0002:1", "0002:2", "-"]),
        ("5002", ("0001:1", "0012:1"), 2, ["0001:1", "0012:1"]),  # several Tx
        ("5002", ("-", "0002:2"), 1, ["0002:2"]),               # empty heads are skipped
        (HERE, ("0001:1",), 2, ["0001:1", "-"]),
    ],
)
def test_push_multi_head(
    source_rx: str, src: tuple[str, ...], target_heads: int, expected: list[str]
) -> None:
    snap = with_device(show(room(), source_rx, *src), "5012", heads=target_heads)
    outcome = push(snap, ME, source_rx, "12")
    assert outcome.code is P
    assert sources(apply(snap, outcome), "5012") == expected


def test_push_marks_routes_the_receivers_user_could_not_connect() -> None:
    # 5012's user `low` may view 0001 but not 0012: only head 2 is a push grant.
    snap = with_device(show(room(), "5002", "0001:1", "0012:1"), "5012", heads=2)
    snap = dataclasses.replace(snap, sessions={**snap.sessions, "5012": "low"})
    outcome = push(snap, ME, "5002", "12")
    assert [c.route for c in outcome.changes] == [
        Route("0001", 1, set_by=ME, pushed=False),
        Route("0012", 1, set_by=ME, pushed=True),
    ]


@pytest.mark.parametrize(
    ("session", "pushed"),
    [(None, True), ("low", False), ("boss", False), ("seatb", False), ("gone", True)],
)
def test_push_flag_follows_the_target_seats_user(session: str | None, pushed: bool) -> None:
    # 0001 is in the view scope of low, boss (admin) and seatb; `gone` is disabled; with
    # nobody logged in the route is a push too, so a later login gets no more than a push.
    sessions = {HERE: ME} | ({"5032": session} if session else {})
    snap = here_shows("0001:1", sessions=sessions)
    outcome = push(snap, ME, HERE, "31")     # 5031 shares seat B with 5032
    assert outcome.code is P
    assert outcome.changes[0].route == Route("0001", 1, set_by=ME, pushed=pushed)


def test_pushing_to_an_offline_wall_tile_answers_offline() -> None:
    snap = with_device(here_shows("0001:1"), "5021", online=False)
    outcome = push(snap, ME, HERE, "21")
    assert outcome.code is OFF
    assert outcome.changes == ()


def test_push_summary_names_each_failed_target() -> None:
    outcome = push(here_shows("0001:1"), ME, HERE, "2,3,5")
    failed = [(t.target, t.code) for t in outcome.targets if t.code is not P]
    assert push_summary(failed, "en") == (
        "5003: This device is offline 5005: Out of permission scope"
    )
