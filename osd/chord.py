"""The call-up chord (SPEC 1.7, 2.4): Shift+O twice within 600 ms opens the OSD.

Pure: key events and times in, events to forward (and "fired") out. The detector sits
between the seat keyboard and the computer while the OSD is closed.

Hold-back rules (docs/OSD.md has the reasoning):

- Only the chord's *key* events (the O presses and their releases) are held back.
  Modifier events (Shift down/up) go to the computer at once while nothing is held,
  so Shift+click with the mouse keeps working and Shift never lags.
- Once a chord key is held, every later event queues behind it, so the computer
  still sees all events in their original order.
- A queue is given back unchanged (flushed) on the first press that does not continue
  the chord, or by ``tick`` once ``window_ms`` has passed since the first chord press:
  a lone Shift+O reaches the computer at most one window (plus one tick) late.
- When the chord completes, its key presses and their releases are dropped (a release
  that comes after the chord fired too, unless the key was pressed again); the other
  queued events (Shift down/up, releases of unrelated keys) are forwarded in order.
  The computer thus sees Shift taps but never an O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvm_protocol.keys import MODIFIER_USAGES, USAGE_NAMES, KeyEvent, KeySyntaxError, key_usage

DEFAULT_CHORD_SPEC = "Shift+O Shift+O"
DEFAULT_WINDOW_MS = 600.0
MIN_WINDOW_MS = 50.0
MAX_WINDOW_MS = 5000.0
MAX_STEPS = 4

# Side-independent modifier mask: bit 0 Ctrl, 1 Shift, 2 Alt, 3 Win (either side).
_MOD_NAMES = ("Ctrl", "Shift", "Alt", "Win")


class ChordError(KeySyntaxError):
    """A chord spec or window that cannot be used; the message names the bad part."""


def mod_mask(mods: int) -> int:
    """Fold the HID modifier byte so that left and right keys count the same."""
    return (mods | (mods >> 4)) & 0x0F


@dataclass(frozen=True, slots=True)
class ChordStep:
    """One press of the chord: a non-modifier key with exactly these modifiers held."""

    usage: int
    mask: int

    def matches(self, key: KeyEvent) -> bool:
        return key.pressed and key.usage == self.usage and mod_mask(int(key.mods)) == self.mask

    def __str__(self) -> str:
        mods = [name for bit, name in enumerate(_MOD_NAMES) if self.mask & (1 << bit)]
        return "+".join([*mods, USAGE_NAMES.get(self.usage, f"0x{self.usage:02X}")])


@dataclass(frozen=True, slots=True)
class Chord:
    """The call-up chord: 1-4 steps, all pressed within ``window_ms`` of the first."""

    steps: tuple[ChordStep, ...]
    window_ms: float = DEFAULT_WINDOW_MS

    def __str__(self) -> str:
        return " ".join(str(s) for s in self.steps)


def parse_chord(spec: str, window_ms: float = DEFAULT_WINDOW_MS) -> Chord:
    """Parse a chord such as ``"Shift+O Shift+O"``; raises ChordError naming the bad part.

    Modifier names (Shift, Ctrl, Alt, Win, and their R- forms) match either side.
    """
    if not isinstance(spec, str):
        raise ChordError(f"chord must be a string, not {type(spec).__name__}")
    if isinstance(window_ms, bool) or not isinstance(window_ms, int | float):
        raise ChordError(f"chord window must be a number of ms, not {window_ms!r}")
    if not MIN_WINDOW_MS <= window_ms <= MAX_WINDOW_MS:
        raise ChordError(
            f"chord window {window_ms!r} ms is outside {MIN_WINDOW_MS:g}-{MAX_WINDOW_MS:g} ms"
        )
    tokens = spec.split()
    if not tokens:
        raise ChordError("chord is empty")
    if len(tokens) > MAX_STEPS:
        raise ChordError(f"chord {spec!r} has more than {MAX_STEPS} steps")
    steps: list[ChordStep] = []
    for token in tokens:
        parts = token.split("+")
        if any(not p for p in parts):
            raise ChordError(f"bad chord step {token!r}")
        mask = 0
        keys: list[int] = []
        for part in parts:
            try:
                usage = key_usage(part)
            except KeySyntaxError as e:
                raise ChordError(f"chord step {token!r}: {e}") from None
            if usage in MODIFIER_USAGES:
                mask |= mod_mask(int(MODIFIER_USAGES[usage]))
            else:
                keys.append(usage)
        if len(keys) != 1:
            raise ChordError(f"chord step {token!r} must name exactly one non-modifier key")
        steps.append(ChordStep(keys[0], mask))
    return Chord(tuple(steps), float(window_ms))


DEFAULT_CHORD = parse_chord(DEFAULT_CHORD_SPEC)


@dataclass(frozen=True, slots=True)
class ChordOutput:
    """What one key event produced: events for the computer, in order, and whether it fired."""

    forward: tuple[KeyEvent, ...] = ()
    fired: bool = False


@dataclass(slots=True)
class _Held:
    key: KeyEvent
    chord_key: bool  # a chord press or the release of one: dropped when the chord fires


@dataclass(slots=True)
class ChordDetector:
    """Recognises the chord in the key stream and holds back its keys until decided."""

    chord: Chord = DEFAULT_CHORD
    _queue: list[_Held] = field(default_factory=list)
    _step: int = 0
    _start: float = 0.0
    _down: set[int] = field(default_factory=set)  # chord keys pressed and not yet released
    _swallow: set[int] = field(default_factory=set)  # chord keys down when it fired

    @property
    def holding(self) -> bool:
        """True while events are held back."""
        return bool(self._queue)

    @property
    def deadline(self) -> float | None:
        """The time (ms) at which ``tick`` gives the held events back, or None."""
        return self._start + self.chord.window_ms if self._queue else None

    def flush(self) -> tuple[KeyEvent, ...]:
        """Give back every held event unchanged and forget the attempt."""
        held = tuple(h.key for h in self._queue)
        self._reset()
        return held

    def tick(self, now_ms: float) -> tuple[KeyEvent, ...]:
        """Give the held events back once the window has run out."""
        if self._queue and now_ms - self._start >= self.chord.window_ms:
            return self.flush()
        return ()

    def feed(self, key: KeyEvent, now_ms: float) -> ChordOutput:
        """Process one key event from the seat keyboard."""
        forward: list[KeyEvent] = []
        if self._queue and now_ms - self._start > self.chord.window_ms:
            forward.extend(self.flush())
        if key.pressed:
            self._swallow.discard(key.usage)
        elif key.usage in self._swallow:
            self._swallow.discard(key.usage)
            return ChordOutput(tuple(forward))  # the release of the press that opened the OSD
        steps = self.chord.steps
        if self._queue:
            if steps[self._step].matches(key):
                self._hold(key, chord_key=True)
                self._step += 1
                if self._step == len(steps):
                    forward.extend(h.key for h in self._queue if not h.chord_key)
                    swallow = set(self._down)
                    self._reset()
                    self._swallow = swallow
                    return ChordOutput(tuple(forward), fired=True)
                return ChordOutput(tuple(forward))
            if not key.pressed:
                self._hold(key, chord_key=key.usage in self._down)
                self._down.discard(key.usage)
                return ChordOutput(tuple(forward))
            if key.usage in MODIFIER_USAGES:
                self._hold(key, chord_key=False)
                return ChordOutput(tuple(forward))
            # Any other press ends the attempt; it may start a new one below.
            forward.extend(self.flush())
        if steps[0].matches(key):
            if len(steps) == 1:
                self._swallow = {key.usage}
                return ChordOutput(tuple(forward), fired=True)
            self._start = now_ms
            self._step = 1
            self._hold(key, chord_key=True)
            return ChordOutput(tuple(forward))
        forward.append(key)
        return ChordOutput(tuple(forward))

    def _hold(self, key: KeyEvent, *, chord_key: bool) -> None:
        self._queue.append(_Held(key, chord_key))
        if chord_key and key.pressed:
            self._down.add(key.usage)

    def _reset(self) -> None:
        self._queue.clear()
        self._down.clear()
        self._step = 0
