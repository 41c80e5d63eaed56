"""The cross-screen processor: F7+n, the mouse, and where each key event goes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.seat import F7, Routed, ScreenChange, Seat, SeatError
from kvm_protocol.keys import KeyEvent, Mod, key_usage, sequence_events


def seat(n: int = 3) -> Seat:
    return Seat("s", [f"50{i:02d}" for i in range(1, n + 1)])


def feed(s: Seat, spec: str) -> list[object]:
    out: list[object] = []
    for e in sequence_events(spec):
        out.extend(s.key(e))
    return out


def test_keys_go_to_the_active_screen() -> None:
    s = seat()
    out = feed(s, "A")
    assert out == [Routed("5001", e) for e in sequence_events("A")]


def test_f7_digit_is_consumed_and_selects() -> None:
    s = seat()
    assert feed(s, "F7+3") == [ScreenChange(1, 3)]
    assert s.active == 3
    assert [r.rx for r in feed(s, "B") if isinstance(r, Routed)] == ["5003", "5003"]


def test_f7_held_can_hop_over_several_screens() -> None:
    s = seat()
    f7, two, three = F7, key_usage("2"), key_usage("3")
    events = [KeyEvent(f7, Mod.NONE, True), KeyEvent(two, Mod.NONE, True),
              KeyEvent(two, Mod.NONE, False), KeyEvent(three, Mod.NONE, True),
              KeyEvent(three, Mod.NONE, False), KeyEvent(f7, Mod.NONE, False)]
    out = [o for e in events for o in s.key(e)]
    assert out == [ScreenChange(1, 2), ScreenChange(2, 3)]


def test_f7_digit_beyond_the_screens_is_consumed_without_change() -> None:
    s = seat(2)
    assert feed(s, "F7+8") == []
    assert s.active == 1


def test_lone_f7_reaches_the_active_screen_on_release() -> None:
    s = seat()
    out = feed(s, "F7")
    assert out == [Routed("5001", KeyEvent(F7, Mod.NONE, True)),
                   Routed("5001", KeyEvent(F7, Mod.NONE, False))]


def test_f7_chord_with_another_key_passes_through() -> None:
    s = seat()
    out = feed(s, "F7+A")
    assert [(r.rx, r.event.name, r.event.pressed) for r in out if isinstance(r, Routed)] == [
        ("5001", "F7", True), ("5001", "A", True), ("5001", "A", False), ("5001", "F7", False)
    ]


def test_release_goes_where_the_press_went() -> None:
    s = seat()
    shift_down = KeyEvent(key_usage("Shift"), Mod.LSHIFT, True)
    assert s.key(shift_down) == [Routed("5001", shift_down)]
    s.mouse_to(2)
    shift_up = KeyEvent(key_usage("Shift"), Mod.NONE, False)
    assert s.key(shift_up) == [Routed("5001", shift_up)]


def test_mouse_bounds() -> None:
    s = seat(2)
    assert s.mouse_to(2) == [ScreenChange(1, 2)]
    assert s.mouse_to(2) == []
    for bad in (0, 3, -1):
        with pytest.raises(SeatError):
            s.mouse_to(bad)


def test_single_rx_seat_passes_everything() -> None:
    s = seat(1)
    out = feed(s, "F7+1")
    assert [r.event for r in out if isinstance(r, Routed)] == sequence_events("F7+1")


_KEYS = ["A", "B", "Shift", "Ctrl", "F7", "1", "2", "3", "9", "Enter"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_KEYS), st.booleans()), max_size=40),
       st.integers(1, 4))
def test_property_no_stuck_keys_and_no_f7_digit_leaks(
    steps: list[tuple[str, bool]], mouse: int
) -> None:
    """Whatever is typed: every press an Rx got is released on that same Rx once all keys
    are up, and a digit 1-8 typed with F7 held is passed on only once that F7 was passed
    on itself (F7 + another key first); otherwise F7+n is consumed whole."""
    s = seat(4)
    down: set[int] = set()
    per_rx: dict[str, set[int]] = {}
    f7_down = False

    def apply(name: str, press: bool) -> None:
        nonlocal f7_down
        usage = key_usage(name)
        (down.add if press else down.discard)(usage)
        for out in s.key(KeyEvent(usage, Mod.NONE, press)):
            if isinstance(out, Routed):
                held = per_rx.setdefault(out.rx, set())
                if out.event.pressed:
                    held.add(out.event.usage)
                    if f7_down and name in "12345678" and out.event.usage == usage:
                        assert any(F7 in h for h in per_rx.values()), \
                            "a digit of F7+n was passed on although F7 was consumed"
                else:
                    assert out.event.usage in held, "release of a key this Rx never got"
                    held.discard(out.event.usage)
        if usage == F7:
            f7_down = press

    for i, (name, press) in enumerate(steps):
        if i == len(steps) // 2:
            s.mouse_to(mouse)
        if press != (key_usage(name) in down):       # a keyboard cannot press a key twice
            apply(name, press)
    for name in sorted(n for n in _KEYS if key_usage(n) in down):
        apply(name, False)
    assert all(not held for held in per_rx.values())
