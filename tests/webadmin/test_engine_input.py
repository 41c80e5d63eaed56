"""Typed input to device IDs (SPEC 2.1): short IDs, hotkeys, and every format error."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvm_protocol.results import ResultCode
from tests.webadmin.test_engine_room import HERE, ME, room, show
from webadmin.engine import (
    MAX_INPUT,
    Device,
    InputError,
    Snapshot,
    connect,
    fetch,
    push,
    resolve,
    valid_hotkey_key,
)

OK = [
    # text, context, many, expected IDs
    ("1", "tx", False, ("0001",)),
    ("01", "tx", False, ("0001",)),
    ("0001", "tx", False, ("0001",)),
    ("12", "tx", False, ("0012",)),
    ("4999", "tx", False, ("4999",)),
    ("  1\t", "tx", False, ("0001",)),
    ("1", "rx", False, ("5001",)),
    ("12", "rx", False, ("5012",)),
    ("012", "rx", False, ("5012",)),
    ("5002", "rx", False, ("5002",)),
    ("9999", "rx", False, ("9999",)),
    ("pc", "tx", False, ("0001",)),
    ("PC", "tx", False, ("0001",)),
    (" bOtH ", "tx", False, ("0001", "0002")),
    ("A-16-CHARACTERS_", "tx", False, ("0001",)),
    ("rx2", "rx", False, ("5002",)),
    ("2,12,3", "rx", True, ("5002", "5012", "5003")),
    (" 2 , 12 ", "rx", True, ("5002", "5012")),
    ("row_1", "rx", True, ("5002", "5012")),
    ("row_1, wall, 9999", "rx", True, ("5002", "5012", "5021", "9999")),
    ("3,ROW_1", "rx", True, ("5003", "5002", "5012")),
]


@pytest.mark.parametrize(("text", "context", "many", "expected"), OK)
def test_resolve_ok(text: str, context: str, many: bool, expected: tuple[str, ...]) -> None:
    assert resolve(room(), text, context, many=many) == expected  # type: ignore[arg-type]


FAIL = [
    # text, context, many -- why
    ("", "tx", False),            # empty
    ("   ", "tx", False),         # only whitespace
    (",", "rx", True),            # empty tokens
    ("2,", "rx", True),
    (",2", "rx", True),
    ("2,,3", "rx", True),
    ("2, ,3", "rx", True),
    ("2,2", "rx", True),          # duplicate
    ("2,5002", "rx", True),       # duplicate after resolution
    ("row_1,12", "rx", True),     # duplicate through a hotkey
    ("rx2,row_1", "rx", True),    # duplicate between hotkeys
    ("all", "rx", True),          # `all` is push's own business
    ("ALL", "tx", False),
    ("all,2", "rx", True),        # `all` mixed with others
    ("2, all", "rx", True),
    ("1,2", "tx", False),         # connect/fetch take one target
    ("2,3", "rx", False),
    ("0", "tx", False),           # out of range
    ("0000", "tx", False),
    ("5000", "tx", False),
    ("5001", "tx", False),        # an Rx ID in a Tx context
    ("12345", "tx", False),       # more than 4 digits
    ("00001", "tx", False),
    ("0", "rx", False),
    ("000", "rx", False),
    ("0001", "rx", False),        # 4 digits are taken as they are
    ("4999", "rx", False),
    ("10000", "rx", False),
    ("4998", "tx", False),        # in range, no such device
    ("8888", "rx", False),
    ("nokey", "tx", False),       # unknown hotkey
    ("pc", "rx", False),          # a Tx hotkey where an Rx is wanted
    ("row_1", "tx", False),       # an Rx hotkey where a Tx is wanted
    ("mixed", "tx", False),       # a hotkey naming both kinds
    ("mixed", "rx", True),
    ("ghost", "tx", False),       # a hotkey naming a deleted device
    ("a-16-characters_x", "tx", False),  # 17 characters
    ("p c", "tx", False),         # inner whitespace
    ("1 2", "tx", False),
    ("pc!", "tx", False),
    ("1;2", "rx", True),          # only ASCII commas separate
    ("1，2", "rx", True),         # a fullwidth comma is not one
    ("１", "tx", False),          # fullwidth digit
    ("٣", "tx", False),           # Arabic-Indic digit
    ("+1", "tx", False),
    ("-1", "tx", False),
    ("1" + " " * MAX_INPUT, "tx", False),  # over-long even though otherwise valid
    (",".join(["2"] * 101), "rx", True),
]


@pytest.mark.parametrize(("text", "context", "many"), FAIL)
def test_resolve_fail(text: str, context: str, many: bool) -> None:
    with pytest.raises(InputError):
        resolve(room(), text, context, many=many)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "text"),
    [
        (connect, ""),
        (connect, "1,2"),
        (connect, "row_1"),
        (connect, "all"),
        (connect, "9"),
        (fetch, "pc"),
        (fetch, "row_1"),         # a hotkey of several Rx: fetch takes exactly one
        (fetch, "all"),
        (fetch, "2,12"),
        (push, "all,2"),
        (push, "ALL, all"),
        (push, "pc"),
        (push, "2,2"),
        (push, "2,8888"),         # one unknown target refuses the whole push
        (push, "all" + " " * MAX_INPUT),
    ],
)
def test_actions_answer_unknown_target_and_change_nothing(action: object, text: str) -> None:
    snap = show(room(), HERE, "0001:1")
    outcome = action(snap, ME, HERE, text)  # type: ignore[operator]
    assert outcome.code is ResultCode.UNKNOWN_TARGET
    assert outcome.changes == ()


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("pc", True), ("F1", True), ("a_b-c", True), ("x" * 16, True), ("7a", True),
        ("123", False), ("", False), ("x" * 17, False), ("all", False), ("ALL", False),
        ("a b", False), ("é", False), ("a,b", False),
    ],
)
def test_valid_hotkey_key(key: str, valid: bool) -> None:
    assert valid_hotkey_key(key) is valid


def _everything() -> Snapshot:
    devices = {f"{n:04d}": Device(f"{n:04d}", "tx", "") for n in range(1, 5000)}
    devices |= {f"{n:04d}": Device(f"{n:04d}", "rx", "") for n in range(5001, 10000)}
    return dataclasses.replace(room(), devices=devices)


EVERYTHING = _everything()


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=4999), st.integers(min_value=0, max_value=3))
def test_tx_ids_with_or_without_leading_zeros(n: int, zeros: int) -> None:
    typed = "0" * zeros + str(n)
    if len(typed) > 4:
        with pytest.raises(InputError):
            resolve(EVERYTHING, typed, "tx", many=False)
    else:
        assert resolve(EVERYTHING, typed, "tx", many=False) == (f"{n:04d}",)


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=9999))
def test_rx_short_ids_mean_5000_plus_n(n: int) -> None:
    typed = str(n)
    want = 5000 + n if len(typed) < 4 else n
    if 5001 <= want <= 9999:
        assert resolve(EVERYTHING, typed, "rx", many=False) == (f"{want:04d}",)
    else:
        with pytest.raises(InputError):
            resolve(EVERYTHING, typed, "rx", many=False)


@settings(max_examples=300)
@given(st.text(max_size=40), st.sampled_from(["tx", "rx"]), st.booleans())
def test_any_text_resolves_or_raises_input_error(text: str, context: str, many: bool) -> None:
    try:
        ids = resolve(room(), text, context, many=many)  # type: ignore[arg-type]
    except InputError:
        return
    snap = room()
    assert ids and len(set(ids)) == len(ids)
    assert all(snap.devices[i].kind == context for i in ids)
    assert many or "," not in text
