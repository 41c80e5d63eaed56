"""The input format check of the menu (SPEC 2.1): only the format, the server decides the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osd.menu import MAX_INPUT, normalise, parse_targets
from osd.model import Mode


@pytest.mark.parametrize(
    ("mode", "text", "targets"),
    [
        (Mode.CONNECT, "1", ("0001",)),            # leading zeros may be left out
        (Mode.CONNECT, "0001", ("0001",)),
        (Mode.CONNECT, "4999", ("4999",)),
        (Mode.CONNECT, " Wall-1 ", ("wall-1",)),   # hotkeys match case-insensitively
        (Mode.FETCH, "1", ("5001",)),              # Rx typed by the number after the 5
        (Mode.FETCH, "12", ("5012",)),
        (Mode.FETCH, "5003", ("5003",)),
        (Mode.PUSH, "1,2,7", ("5001", "5002", "5007")),
        (Mode.PUSH, " 1 , 2 ", ("5001", "5002")),
        (Mode.PUSH, "all", ("all",)),
        (Mode.PUSH, "ALL", ("all",)),
        (Mode.PUSH, "2,left_wall", ("5002", "left_wall")),
    ],
)
def test_well_formed(mode: Mode, text: str, targets: tuple[str, ...]) -> None:
    assert parse_targets(mode, text) == targets


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        (Mode.CONNECT, ""),
        (Mode.CONNECT, "1,2"),
        (Mode.FETCH, "1,2"),
        (Mode.PUSH, "1,,2"),
        (Mode.PUSH, ",1"),
        (Mode.PUSH, "1,1"),
        (Mode.PUSH, "1,5001"),
        (Mode.PUSH, "all,2"),
        (Mode.PUSH, "all,all"),
        (Mode.CONNECT, "12345"),
        (Mode.CONNECT, "a b"),
        (Mode.CONNECT, "x" * 17),
        (Mode.CONNECT, "名字"),
        (Mode.CONNECT, "１"),                       # fullwidth digit
        (Mode.PUSH, ",".join(["1"] * 40)),
    ],
)
def test_format_errors(mode: Mode, text: str) -> None:
    assert parse_targets(mode, text) is None


@given(st.sampled_from(list(Mode)), st.text(max_size=2 * MAX_INPUT))
def test_any_text_is_answered_without_raising(mode: Mode, text: str) -> None:
    targets = parse_targets(mode, text)
    if targets is not None:
        assert len(targets) == len(set(targets)) >= 1
        assert mode is Mode.PUSH or len(targets) == 1
        assert parse_targets(mode, normalise(text)) == targets
