"""A seat's keyboard path: one Rx, or up to 8 Rx behind a cross-screen processor (no I/O).

The cross-screen processor sits between the one keyboard/mouse and the Rx of the
seat. It sends keys to the active screen's Rx, and the mouse (moved onto a
screen) or **F7+1…8** picks the active screen. Decisions, see docs/SIMULATOR.md:

- F7+n is consumed by the processor: neither the F7 nor the digit reaches any Rx.
  While F7 is held, each digit 1-8 picks that screen; a digit above the number of
  screens is consumed and changes nothing.
- F7 pressed and released alone is a plain F7: the processor sends its press and
  release to the active screen when F7 is released (one key late).
- F7 held, then another key (not 1-8): the F7 press goes to the active screen
  first, then the key — F7 chords with other keys still work.
- A release goes to the Rx that got the press, even if the active screen changed
  in between, so no key is left stuck down on a screen.
- A seat of one Rx has no processor: every key, F7+n included, goes to that Rx.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvm_protocol.keys import KeyEvent, key_usage

MAX_SCREENS = 8
F7 = key_usage("F7")
_DIGIT_1 = key_usage("1")                                  # 1..8 are consecutive usages
_SCREEN_DIGITS = {_DIGIT_1 + i: i + 1 for i in range(MAX_SCREENS)}


class SeatError(ValueError):
    """A request the seat cannot carry out (e.g. a screen it does not have)."""


@dataclass(frozen=True, slots=True)
class Routed:
    """Deliver `event` to the Rx `rx`."""

    rx: str
    event: KeyEvent


@dataclass(frozen=True, slots=True)
class ScreenChange:
    """The active screen moved from `old` to `new` (1-based positions in the seat)."""

    old: int
    new: int


SeatOutput = Routed | ScreenChange


@dataclass(slots=True)
class Seat:
    """One keyboard and mouse for `screens` (Rx IDs in screen order)."""

    name: str
    screens: list[str]
    active: int = 1
    _f7: str = "idle"                 # idle | held (F7 down, consumed so far) | passed
    _f7_used: bool = False            # a screen was picked while F7 was held
    _down: dict[int, str] = field(default_factory=dict)    # usage -> Rx that got the press
    _eaten: set[int] = field(default_factory=set)          # digits whose release is consumed

    @property
    def cross_screen(self) -> bool:
        """True when a cross-screen processor is present (two or more screens)."""
        return len(self.screens) > 1

    @property
    def active_rx(self) -> str:
        return self.screens[self.active - 1]

    def screen_of(self, rx_id: str) -> int | None:
        """1-based screen position of `rx_id`, or None."""
        try:
            return self.screens.index(rx_id) + 1
        except ValueError:
            return None

    def mouse_to(self, n: int) -> list[SeatOutput]:
        """The mouse moved onto screen `n`."""
        if not 1 <= n <= len(self.screens):
            raise SeatError(
                f"seat {self.name!r} has screens 1..{len(self.screens)}, not {n}"
            )
        return self._select(n)

    def key(self, event: KeyEvent) -> list[SeatOutput]:
        """Route one key event from the seat keyboard."""
        if not self.cross_screen:
            return [Routed(self.screens[0], event)]
        usage = event.usage
        if event.pressed:
            if usage == F7 and self._f7 == "idle":
                self._f7, self._f7_used = "held", False
                return []
            if self._f7 == "held" and usage in _SCREEN_DIGITS:
                self._eaten.add(usage)
                self._f7_used = True
                n = _SCREEN_DIGITS[usage]
                return self._select(n) if n <= len(self.screens) else []
            out: list[SeatOutput] = []
            if self._f7 == "held" and not self._f7_used:
                # F7 turned out to be part of another chord: let it through first.
                out.append(self._press(KeyEvent(F7, event.mods, True)))
                self._f7 = "passed"
            out.append(self._press(event))
            return out
        # a release
        if usage in self._eaten:
            self._eaten.discard(usage)
            return []
        if usage == F7 and self._f7 == "held":
            self._f7 = "idle"
            if self._f7_used:
                return []
            # A lone F7: deliver it now, press then release.
            rx = self.active_rx
            return [Routed(rx, KeyEvent(F7, event.mods, True)), Routed(rx, event)]
        if usage == F7:
            self._f7 = "idle"
        return [Routed(self._down.pop(usage, self.active_rx), event)]

    def _press(self, event: KeyEvent) -> Routed:
        rx = self.active_rx
        self._down[event.usage] = rx
        return Routed(rx, event)

    def _select(self, n: int) -> list[SeatOutput]:
        if n == self.active:
            return []
        old, self.active = self.active, n
        return [ScreenChange(old, n)]
