"""Stateful test of the OSD screen machine: any sequence of keys, answers and time.

Shadow model: what the computer has seen. Invariants after every step:
- nothing is raised, and the model is one of the defined screens;
- no key reaches the computer in a step that began with the OSD open or nobody logged in;
- the computer only gets releases of keys it holds, and holds none while forwarding is off;
- every press typed while forwarding was on reaches it exactly once, unchanged and in order,
  except the chord presses that opened the OSD.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvm_protocol.keys import (
    KEY_NAMES,
    MODIFIER_USAGES,
    KeyEvent,
    Mod,
    sequence_events,
    text_events,
)
from kvm_protocol.results import ResultCode
from osd import events as ev
from osd.chord import parse_chord
from osd.model import Mode, ScreenKind
from osd.screen import OsdMachine

K = KEY_NAMES
INTERESTING = [
    K[n] for n in (
        "O", "A", "1", "Comma", "Space", "Tab", "Enter", "Esc", "Backspace", "F1", "F2", "F3",
        "F4", "F5", "F12", "PageUp", "PageDown", "Up", "Down", "K", "F9", "Shift", "RShift",
        "Ctrl",
    )
]
usages = st.one_of(st.sampled_from(INTERESTING), st.integers(0, 255))
mods = st.one_of(
    st.sampled_from([Mod.NONE, Mod.LSHIFT, Mod.RSHIFT, Mod.LCTRL]),
    st.builds(Mod, st.integers(0, 255)),
)
keys = st.builds(KeyEvent, usages, mods, st.booleans())
gaps = st.one_of(st.sampled_from([0, 1, 100, 599, 600, 601, 1000]), st.integers(0, 70_000))
codes = st.sampled_from(list(ResultCode))
modes = st.sampled_from(list(Mode))
rows = st.lists(
    st.builds(
        ev.DeviceRow,
        st.sampled_from(["0001", "0002", "5001", "5002", "x"]),
        st.text(max_size=20),
        st.sampled_from(["grey", "yellow", "red"]),
    ),
    max_size=20,
).map(tuple)
chords = st.sampled_from(["Shift+O Shift+O", "Ctrl+K Ctrl+K Ctrl+K", "F9"])


@dataclass
class Typed:
    key: KeyEvent
    expected: bool      # arrived while forwarding was on: must reach the computer
    detected: bool      # arrived while the chord detector was listening


class OsdStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = OsdMachine()
        self.now = 0.0
        self.typed: list[Typed] = []
        self.sent: list[KeyEvent] = []          # presses the computer got
        self.down: set[int] = set()             # keys the computer holds
        self.overlay = False

    @initialize()
    def power_up(self) -> None:
        self._apply(self.m.start(self.now), began_open=True)

    # --- driving ------------------------------------------------------------------

    def _feed(self, event: ev.Event, gap: int = 0) -> None:
        self.now += gap
        kind_before = self.m.kind
        # open, or locked (a wall tile's hidden login screen: CLOSED without a user)
        began_open = kind_before is not ScreenKind.CLOSED or self.m.state.user is None
        detecting = kind_before is ScreenKind.CLOSED and self.m.state.active
        if isinstance(event, ev.KeyInput) and event.key.pressed:
            typed = Typed(event.key, self.m.forwarding, detecting)
            self.typed.append(typed)
        out = self.m.handle(event, self.now)
        if isinstance(event, ev.KeyInput) and detecting and self.m.kind is ScreenKind.MENU:
            self._consume_chord()
        self._apply(out, began_open)

    def _consume_chord(self) -> None:
        """The press that just opened the OSD and the steps before it never reach the PC."""
        steps = len(self.m.state.settings.chord.steps)
        chord_presses = [
            t for t in self.typed
            if t.detected and t.key.usage not in MODIFIER_USAGES
        ][-steps:]
        assert len(chord_presses) == steps
        for t in chord_presses:
            t.expected = False

    def _apply(self, out: list[ev.Effect], began_open: bool) -> None:
        shown = [e for e in out if isinstance(e, ev.Overlay | ev.Draw)]
        assert out[len(out) - len(shown):] == shown, "display effects come last"
        for effect in out:
            if isinstance(effect, ev.ForwardKey):
                assert not began_open, "a key reached the PC while the OSD was open/locked"
                key = effect.key
                if key.pressed:
                    self.sent.append(key)
                    self.down.add(key.usage)
                else:
                    assert key.usage in self.down, "release of a key the PC does not hold"
                    self.down.discard(key.usage)
            elif isinstance(effect, ev.Overlay):
                assert effect.visible != self.overlay, "Overlay only on a change"
                self.overlay = effect.visible
            elif isinstance(effect, ev.Draw):
                assert effect.model.visible
                assert effect.model == self.m.model
        if not self.m.forwarding:
            assert not self.down, "the PC holds keys while forwarding is off"

    # --- rules -----------------------------------------------------------------------

    @rule(key=keys, gap=gaps)
    def key(self, key: KeyEvent, gap: int) -> None:
        self._feed(ev.KeyInput(key), gap)

    @rule(gap=st.integers(0, 700), between=st.integers(0, 700))
    def chord(self, gap: int, between: int) -> None:
        for i, key in enumerate(sequence_events("Shift+O Shift+O")):
            self._feed(ev.KeyInput(key), gap if i == 0 else (between if i == 4 else 5))

    @rule(gap=gaps, shift=st.sampled_from(["Shift", "RShift"]))
    def lone_shift_o(self, gap: int, shift: str) -> None:
        """Half a chord: its O is held back until the window runs out or something else."""
        for i, key in enumerate(sequence_events(f"{shift}+O")):
            self._feed(ev.KeyInput(key), gap if i == 0 else 5)

    @rule(text=st.sampled_from(["hxfj", "1", "1,2", "all", "wall", "12345", "a b"]))
    def type_and_enter(self, text: str) -> None:
        for key in text_events(text) + sequence_events("Enter"):
            self._feed(ev.KeyInput(key), 10)

    @rule()
    def login(self) -> None:
        for key in sequence_events("A Tab B Enter"):
            self._feed(ev.KeyInput(key), 10)
        self._feed(ev.LoginResult(ResultCode.NETWORK_OK, "op"), 5)

    @rule(gap=gaps)
    def tick(self, gap: int) -> None:
        self._feed(ev.Tick(), gap)

    @rule(code=codes, user=st.sampled_from([None, "op"]))
    def login_result(self, code: ResultCode, user: str | None) -> None:
        self._feed(ev.LoginResult(code, user))

    @rule(mode=modes, rows=rows)
    def device_list(self, mode: Mode, rows: tuple[ev.DeviceRow, ...]) -> None:
        self._feed(ev.DeviceList(mode, rows))

    @rule(mode=modes, code=codes, failures=st.lists(st.tuples(st.just("5002"), codes), max_size=3))
    def action_result(
        self, mode: Mode, code: ResultCode, failures: list[tuple[str, ResultCode]]
    ) -> None:
        self._feed(ev.ActionResult(mode, code, tuple(failures)))

    @rule(up=st.booleans())
    def network(self, up: bool) -> None:
        self._feed(ev.NetworkStatus(up))

    @rule(ok=st.booleans())
    def server(self, ok: bool) -> None:
        self._feed(ev.ServerStatus(ok))

    @rule(user=st.sampled_from([None, "op", "other"]), allowed=st.booleans())
    def session(self, user: str | None, allowed: bool) -> None:
        self._feed(ev.SessionInfo(user, allowed))

    @rule(active=st.booleans())
    def screen(self, active: bool) -> None:
        self._feed(ev.ScreenActive(active))

    @rule(
        chord=chords,
        window=st.sampled_from([100, 600, 2000]),
        lang=st.sampled_from(["zh_CN", "en"]),
        auto_close=st.sampled_from([0, 1000]),
        idle=st.sampled_from([0, 5, 60]),
        idle_logout=st.sampled_from([0, 120]),
        tile=st.booleans(),
    )
    def settings(
        self, chord: str, window: int, lang: str, auto_close: int, idle: int, idle_logout: int,
        tile: bool,
    ) -> None:
        s = ev.Settings.from_api(
            {"chord": chord, "chord_window_ms": window, "lang": lang, "auto_close_ms": auto_close,
             "idle_close_s": idle, "idle_logout_s": idle_logout, "login_hidden": tile}
        )
        self._feed(ev.SettingsChanged(s))

    @rule(rx=st.sampled_from(["5001", "", "9999"]), fw=st.text(max_size=40))
    def device_info(self, rx: str, fw: str) -> None:
        self._feed(ev.DeviceInfo(rx, fw))

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def one_of_the_screens(self) -> None:
        model = self.m.model
        assert model.kind in ScreenKind
        assert (model.login is not None) == (model.kind is ScreenKind.LOGIN)
        assert (model.menu is not None) == (model.kind is ScreenKind.MENU)
        assert not model.pointer_visible
        assert self.overlay == model.visible
        if model.menu is not None:
            assert len(model.menu.rows) <= 8
            assert 1 <= model.menu.page.number <= model.menu.page.count
        deadline = self.m.next_deadline()
        assert deadline is None or deadline == deadline  # a number, never NaN

    @invariant()
    def presses_in_order_exactly_once_so_far(self) -> None:
        expected = [t.key for t in self.typed if t.expected]
        assert self.sent == expected[: len(self.sent)], "forwarded presses are a prefix"

    def teardown(self) -> None:
        # Let any held-back key go, then every expected press must have arrived.
        self._feed(ev.Tick(), 100_000)
        assert self.sent == [t.key for t in self.typed if t.expected]


OsdStateMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=60, deadline=None
)
TestOsdStateMachine = OsdStateMachine.TestCase


def test_chord_sequence_helper_matches_the_default_chord() -> None:
    """The `chord` rule above types the default chord."""
    assert ev.Settings().chord == parse_chord("Shift+O Shift+O")
