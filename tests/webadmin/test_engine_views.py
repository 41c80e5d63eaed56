"""Device lists and colours (SPEC 1.2, 2.2), keys for view-only, login checks, scope cleanup."""

from __future__ import annotations

import dataclasses

import pytest

from kvm_protocol.results import ResultCode as R
from tests.webadmin.test_engine_room import (
    ALL_RX,
    ALL_TX,
    HERE,
    ME,
    apply,
    room,
    show,
    sources,
    with_device,
)
from webadmin.engine import (
    Outcome,
    RouteChange,
    Scopes,
    Snapshot,
    User,
    can_login,
    connect,
    device_rows,
    enforce_scopes,
    keys_allowed,
)


def colours(snap: Snapshot, user: str, rx_id: str, mode: str) -> dict[str, str]:
    rows = device_rows(snap, user, rx_id, mode)  # type: ignore[arg-type]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    return {r.id: r.colour for r in rows}


def test_connect_rows_are_the_view_scope_with_colours() -> None:
    got = colours(show(room(), HERE, "0002:1"), ME, HERE, "connect")
    assert set(got) == ALL_TX - {"0007"}
    assert got["0002"] == "yellow"
    assert got["0003"] == "red"
    assert got["0001"] == got["0004"] == got["0005"] == "grey"


def test_connect_rows_include_what_this_rx_shows_even_outside_scope() -> None:
    got = colours(show(room(), HERE, "0007:1", pushed=True), "low", HERE, "connect")
    assert got == {"0001": "grey", "0007": "yellow"}


def test_an_offline_source_is_red_not_yellow() -> None:
    got = colours(show(room(), HERE, "0003:1"), ME, HERE, "connect")
    assert got["0003"] == "red"


def test_rows_carry_names_and_online() -> None:
    rows = device_rows(room(), ME, HERE, "connect")
    row = next(r for r in rows if r.id == "0003")
    assert (row.name, row.online) == ("PC 0003", False)


def test_push_rows() -> None:
    snap = show(show(room(), HERE, "0001:1"), "5012", "0001:1")
    snap = show(snap, "5002", "0001:1", "-")
    got = colours(snap, ME, HERE, "push")
    assert set(got) == ALL_RX - {"5005", HERE}
    assert got["5012"] == got["5002"] == "yellow"     # already show this signal
    assert got["5003"] == got["5004"] == "red"        # offline, network down
    assert got["9999"] == "grey"


def test_push_rows_of_a_wall_are_yellow_only_when_the_whole_wall_shows_it() -> None:
    snap = show(show(room(), HERE, "0001:1"), "5021", "0001:1")
    assert colours(snap, ME, HERE, "push")["5021"] == "grey"
    snap = show(snap, "5022", "0001:1")
    assert colours(snap, ME, HERE, "push")["5021"] == "yellow"


def test_fetch_rows() -> None:
    snap = show(show(room(), HERE, "0002:1"), "5002", "0002:1", "0002:2")
    snap = show(snap, "5022", "0002:1")         # the splicing wall shows 0002
    got = colours(snap, ME, HERE, "fetch")
    assert set(got) == ALL_RX - {"5005", HERE}
    assert got["5002"] == "yellow"                  # a fetch from it would change nothing
    assert got["5021"] == got["5022"] == "yellow"
    assert got["5012"] == "grey"
    assert got["5003"] == "red"


def test_nothing_shown_means_no_yellow_rx() -> None:
    got = colours(room(), ME, HERE, "push") | colours(room(), ME, HERE, "fetch")
    assert "yellow" not in got.values()


def test_admin_sees_everything() -> None:
    assert set(colours(room(), "boss", HERE, "connect")) == ALL_TX
    assert set(colours(room(), "boss", HERE, "push")) == ALL_RX - {HERE}


@pytest.mark.parametrize("user", ["gone", "nobody"])
@pytest.mark.parametrize("mode", ["connect", "push", "fetch"])
def test_no_rows_for_disabled_or_unknown_users(user: str, mode: str) -> None:
    assert device_rows(room(), user, HERE, mode) == ()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user", "src", "allowed"),
    [
        (ME, (), True),
        (ME, ("0001:1",), True),
        (ME, ("0012:1",), False),                  # view-only
        ("boss", ("0012:1",), True),
        (ME, ("0007:1",), False),                  # a push from outside: picture only
        ("gone", ("0001:1",), False),
        ("nobody", ("0001:1",), False),
    ],
)
def test_keys_allowed(user: str, src: tuple[str, ...], allowed: bool) -> None:
    snap = show(room(), HERE, *src, pushed=True) if src else room()
    assert keys_allowed(snap, user, HERE) is allowed


@pytest.mark.parametrize(
    ("src", "allowed"),
    [
        (("0001:1", "0012:1"), True),              # keys go to the primary head's Tx
        (("0012:1", "0001:1"), False),
        (("-", "0012:1"), False),                  # primary empty: the first shown head
    ],
)
def test_keys_follow_the_primary_head(src: tuple[str, ...], allowed: bool) -> None:
    assert keys_allowed(show(room(), "5002", *src), ME, "5002") is allowed


@pytest.mark.parametrize(
    ("user", "rx_id", "code"),
    [
        (ME, HERE, R.NETWORK_OK),
        ("boss", "5031", R.NETWORK_OK),
        ("gone", HERE, R.ACCOUNT_DISABLED),
        ("nobody", HERE, R.BAD_CREDENTIALS),
        ("seatb", "5031", R.NETWORK_OK),
        ("seatb", "5032", R.NETWORK_OK),           # same seat as 5031
        ("seatb", HERE, R.LOGIN_NOT_ALLOWED),
        (ME, "0001", R.LOGIN_NOT_ALLOWED),         # not an Rx
        (ME, "5555", R.LOGIN_NOT_ALLOWED),
    ],
)
def test_can_login(user: str, rx_id: str, code: R) -> None:
    assert can_login(room(), user, rx_id) is code


def test_admin_ignores_login_scope() -> None:
    admin = User("root", role="admin", scopes=Scopes(login=frozenset()))
    snap = dataclasses.replace(room(), users={"root": admin})
    assert can_login(snap, "root", HERE) is R.NETWORK_OK


def test_enforce_scopes_clears_what_the_seats_user_may_not_see() -> None:
    snap = room(sessions={"5002": "low", "5031": "low", "5012": "boss", "9999": "gone"})
    snap = show(snap, "5002", "0001:1", "0002:1")          # 0002 outside low's scope
    snap = show(snap, "5032", "0002:1")                    # seat B: low is logged in via 5031
    snap = show(snap, "5012", "0007:1")                    # admin: keeps everything
    snap = show(snap, "9999", "0001:1")                    # disabled user: loses everything
    snap = show(snap, "5022", "0007:1")                    # nobody logged in: left alone
    changes = enforce_scopes(snap)
    assert set(changes) == {
        RouteChange("5002", 2, None),
        RouteChange("5032", 1, None),
        RouteChange("9999", 1, None),
    }
    after = apply(snap, Outcome(R.DISCONNECTED, changes))
    assert sources(after, "5002") == ["0001:1", "-"]
    assert enforce_scopes(after) == ()


def test_enforce_scopes_keeps_live_pushes() -> None:
    snap = show(room(sessions={"5012": "low"}), "5012", "0007:1", pushed=True)
    assert enforce_scopes(snap) == ()


@pytest.mark.parametrize(("heads", "expected"), [(9, 4), (0, 1), (-3, 1)])
def test_bad_head_counts_are_clamped_to_1_to_4(heads: int, expected: int) -> None:
    snap = with_device(room(), "5002", heads=heads)
    outcome = connect(snap, ME, "5002", "both")
    assert outcome.code is R.CONNECTED
    assert [c.head for c in outcome.changes] == list(range(1, expected + 1))
