"""The call-up chord and its key hold-back (SPEC 1.7, 2.4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvm_protocol.keys import KEY_NAMES, KeyEvent, Mod, sequence_events
from osd.chord import (
    DEFAULT_CHORD,
    Chord,
    ChordDetector,
    ChordError,
    ChordStep,
    parse_chord,
)

O_KEY = KEY_NAMES["O"]
LSHIFT_KEY, RSHIFT_KEY = KEY_NAMES["Shift"], KEY_NAMES["RShift"]


def shift_o(shift_usage: int = LSHIFT_KEY) -> list[KeyEvent]:
    """Shift down, O down, O up, Shift up with the given Shift key."""
    mod = Mod.LSHIFT if shift_usage == LSHIFT_KEY else Mod.RSHIFT
    return [
        KeyEvent(shift_usage, mod, True),
        KeyEvent(O_KEY, mod, True),
        KeyEvent(O_KEY, mod, False),
        KeyEvent(shift_usage, Mod.NONE, False),
    ]


def run(det: ChordDetector, timed: list[tuple[float, KeyEvent]]) -> tuple[list[KeyEvent], bool]:
    out: list[KeyEvent] = []
    fired = False
    for t, key in timed:
        res = det.feed(key, t)
        out += res.forward
        fired = fired or res.fired
    return out, fired


def at(t0: float, keys: list[KeyEvent], gap: float = 10.0) -> list[tuple[float, KeyEvent]]:
    return [(t0 + i * gap, k) for i, k in enumerate(keys)]


# --- parsing ------------------------------------------------------------------------

def test_default_is_shift_o_twice_within_600_ms() -> None:
    assert parse_chord("Shift+O Shift+O", 600) == DEFAULT_CHORD
    assert str(DEFAULT_CHORD) == "Shift+O Shift+O"
    assert DEFAULT_CHORD.window_ms == 600


@pytest.mark.parametrize(
    ("spec", "steps"),
    [
        ("shift+o  SHIFT+O", (ChordStep(O_KEY, 0x02), ChordStep(O_KEY, 0x02))),
        ("RShift+O", (ChordStep(O_KEY, 0x02),)),
        ("Ctrl+Alt+K", (ChordStep(KEY_NAMES["K"], 0x05),)),
        ("O+Shift F9", (ChordStep(O_KEY, 0x02), ChordStep(KEY_NAMES["F9"], 0))),
    ],
)
def test_parse_chord(spec: str, steps: tuple[ChordStep, ...]) -> None:
    chord = parse_chord(spec, 400)
    assert chord == Chord(steps, 400.0)
    assert parse_chord(str(chord), 400) == chord


@pytest.mark.parametrize(
    ("spec", "window", "message"),
    [
        ("", 600, "empty"),
        ("Shift", 600, "exactly one non-modifier key"),
        ("A+B", 600, "exactly one non-modifier key"),
        ("Shift+", 600, "bad chord step"),
        ("Hyper+O", 600, "unknown key name"),
        ("O O O O O", 600, "more than 4 steps"),
        ("Shift+O", 10, "outside"),
        ("Shift+O", 60_000, "outside"),
        ("Shift+O", "fast", "number of ms"),
        (42, 600, "must be a string"),
    ],
)
def test_bad_chords_name_the_problem(spec: object, window: object, message: str) -> None:
    with pytest.raises(ChordError, match=message):
        parse_chord(spec, window)  # type: ignore[arg-type]


# --- firing ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("first", "second"),
    [(LSHIFT_KEY, LSHIFT_KEY), (RSHIFT_KEY, RSHIFT_KEY), (LSHIFT_KEY, RSHIFT_KEY)],
    ids=["left-left", "right-right", "left-right"],
)
def test_either_shift_opens(first: int, second: int) -> None:
    det = ChordDetector()
    out, fired = run(det, at(0, shift_o(first)) + at(100, shift_o(second)))
    assert fired
    assert all(k.usage != O_KEY for k in out), "the chord's O events must not reach the PC"
    assert not det.holding


def test_shift_held_through_both_presses_opens() -> None:
    keys = sequence_events("Shift+O")
    events = [keys[0], keys[1], keys[2], keys[1]]  # Shift down, O, O up, O again
    out, fired = run(ChordDetector(), at(0, events))
    assert fired
    assert out == [keys[0]], "Shift down passed through at once; nothing else"


def test_the_shift_taps_reach_the_computer_in_order() -> None:
    events = shift_o() + shift_o()
    out, fired = run(ChordDetector(), at(0, events, gap=50))
    assert fired
    assert out == [e for e in events if e.usage != O_KEY]


@pytest.mark.parametrize(("gap", "opens"), [(599, True), (600, True), (601, False)])
def test_window_edges(gap: float, opens: bool) -> None:
    """The second O press counts when it comes at most 600 ms after the first."""
    first, second = shift_o(), shift_o()
    timed: list[tuple[float, KeyEvent]] = [
        (0, first[0]), (0, first[1]), (20, first[2]), (30, first[3])
    ]
    timed += [(gap - 10, second[0]), (gap, second[1]), (gap + 20, second[2]), (gap + 30, second[3])]
    det = ChordDetector()
    out, fired = run(det, timed)
    out += det.tick(gap + 1000)
    assert fired is opens
    if not opens:
        assert out == first + second, "nothing lost, nothing reordered"


def test_modifier_mismatch_does_not_open() -> None:
    ctrl_shift_o = sequence_events("Ctrl+Shift+O")
    out, fired = run(ChordDetector(), at(0, ctrl_shift_o + ctrl_shift_o))
    assert not fired
    assert out == ctrl_shift_o + ctrl_shift_o


def test_plain_o_is_never_held() -> None:
    o = sequence_events("O")
    out, fired = run(ChordDetector(), at(0, o))
    assert not fired and out == o


# --- lone Shift+O: released late, in order ----------------------------------------------

def test_lone_shift_o_is_released_by_the_timer() -> None:
    det = ChordDetector()
    keys = shift_o()
    out, _ = run(det, at(0, keys))
    assert out == [keys[0]], "Shift down passes, O is held"
    assert det.deadline == 610, "600 ms after the O press at 10 ms"
    assert det.tick(609) == ()
    late = det.tick(610)
    assert [keys[0], *late] == keys, "released unchanged and in order, one window late"
    assert not det.holding and det.deadline is None


def test_lone_shift_o_is_released_by_the_next_key() -> None:
    det = ChordDetector()
    keys = shift_o() + sequence_events("A")
    out, fired = run(det, at(0, keys))
    assert not fired
    assert out == keys


def test_late_second_press_releases_the_first_then_starts_again() -> None:
    det = ChordDetector()
    first, second, third = shift_o(), shift_o(), shift_o()
    out, fired = run(det, at(0, first) + at(700, second) + at(900, third))
    assert fired, "the 2nd and 3rd presses are 200 ms apart"
    assert out[: len(first)] == first, "the first one went to the computer, in order"
    assert all(k.usage != O_KEY for k in out[len(first) :])


def test_unrelated_releases_wait_in_line_and_do_not_break_the_chord() -> None:
    a_down, a_up = sequence_events("A")
    events = [a_down, *shift_o()[:2], a_up, *shift_o()[2:], *shift_o()]
    out, fired = run(ChordDetector(), at(0, events))
    assert fired
    assert a_down in out and a_up in out
    assert out.index(a_down) < out.index(a_up)


def test_single_step_chord_fires_at_once() -> None:
    det = ChordDetector(parse_chord("F9"))
    f9 = sequence_events("F9")
    res = det.feed(f9[0], 0)
    assert res.fired and res.forward == ()
    assert not det.holding


# --- properties -------------------------------------------------------------------------

_usages = st.sampled_from([O_KEY, KEY_NAMES["P"], KEY_NAMES["A"], LSHIFT_KEY, RSHIFT_KEY, 0xE0])
_mods = st.sampled_from([Mod.NONE, Mod.LSHIFT, Mod.RSHIFT, Mod.LCTRL | Mod.LSHIFT])
_keys = st.builds(KeyEvent, _usages, _mods, st.booleans())
_timed = st.lists(st.tuples(st.integers(0, 900), _keys), max_size=40)


def _play(det: ChordDetector, stream: list[tuple[int, KeyEvent]]) -> tuple[list[KeyEvent], int]:
    now, fires = 0, 0
    out: list[KeyEvent] = []
    for gap, key in stream:
        now += gap
        out += det.tick(now) if gap % 3 == 0 else ()
        res = det.feed(key, now)
        out += res.forward
        fires += res.fired
    out += det.tick(now + 10_000)
    return out, fires


@settings(max_examples=300)
@given(_timed)
def test_without_firing_every_event_passes_unchanged_in_order(
    stream: list[tuple[int, KeyEvent]],
) -> None:
    out, fires = _play(ChordDetector(), stream)
    if fires == 0:
        assert out == [k for _, k in stream]


@settings(max_examples=300)
@given(_timed)
def test_only_chord_key_events_are_ever_dropped(stream: list[tuple[int, KeyEvent]]) -> None:
    keys = [k for _, k in stream]
    out, _ = _play(ChordDetector(), stream)
    assert _is_subsequence(out, keys), "nothing invented, nothing reordered"
    assert [k for k in out if k.usage != O_KEY] == [k for k in keys if k.usage != O_KEY]


def _is_subsequence(short: list[KeyEvent], long: list[KeyEvent]) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


def test_o_typed_after_the_chord_reaches_the_computer() -> None:
    """The chord's last release is dropped; a later O press/release goes through whole."""
    det = ChordDetector()
    chord_keys = shift_o() + shift_o()
    run(det, at(0, chord_keys[:6]))  # fired on the 2nd O press; O still down
    o = sequence_events("O")
    out, fired = run(det, at(100, [chord_keys[6], chord_keys[7], *o]))
    assert not fired
    assert out == [chord_keys[7], *o]
