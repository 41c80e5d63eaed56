"""Simulated devices as plain state: a Tx with the computer behind it, an Rx with its heads.

No I/O and no rules across devices here; the rules that connect devices live in
``firmware_sim.fabric``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from kvm_protocol.keys import KeyEvent, Mod, key_usage

TEXT_LIMIT = 65536          # characters of typed text kept per computer (the tail)
RECENT_LIMIT = 64           # key events kept per computer, for inspection
ENTER = key_usage("Enter")
_COMMAND_MODS = Mod.LCTRL | Mod.RCTRL | Mod.LALT | Mod.RALT | Mod.LGUI | Mod.RGUI

Source = tuple[str, int]    # (Tx ID, Tx head)


def format_source(source: Source | None) -> str | None:
    """``("0001", 1)`` → ``"0001:1"`` (the form the server's API uses); None stays None."""
    return None if source is None else f"{source[0]}:{source[1]}"


@dataclass(slots=True)
class Computer:
    """What the computer behind a Tx received through it (key events and the text they type)."""

    key_count: int = 0
    text: str = ""
    recent: deque[KeyEvent] = field(default_factory=lambda: deque(maxlen=RECENT_LIMIT))

    def receive(self, event: KeyEvent) -> None:
        """Record one key event; a press that types a character appends it (Enter types "\\n")."""
        self.key_count += 1
        self.recent.append(event)
        if not event.pressed or event.mods & _COMMAND_MODS:
            return
        ch = "\n" if event.usage == ENTER else event.char()
        if ch is not None:
            self.text = (self.text + ch)[-TEXT_LIMIT:]


@dataclass(slots=True)
class Tx:
    """A transmitter: 1-4 heads of video from its computer, and the computer's keyboard."""

    id: str
    serial: str
    name: str
    heads: int
    video: list[bool]           # per head: a video signal is present
    firmware: str
    power: bool = True
    network: bool = True
    stream_ok: bool = True      # False: online but the encoder cannot stream
    computer: Computer = field(default_factory=Computer)

    @property
    def online(self) -> bool:
        """Reachable over the network (powered and its network link up)."""
        return self.power and self.network

    def streams(self, head: int) -> bool:
        """A picture of `head` is available to receivers right now."""
        return self.online and self.stream_ok and 1 <= head <= self.heads and self.video[head - 1]


@dataclass(slots=True)
class Head:
    """One video output of an Rx: the Tx head it is tuned to and whether a picture shows."""

    source: Source | None = None
    video: bool = False
    since: float | None = None  # when the source last changed (simulator clock = time.monotonic)


@dataclass(slots=True)
class Rx:
    """A receiver: 1-4 heads, a network link, and the OSD overlay plane."""

    id: str
    serial: str
    heads: list[Head]
    firmware: str
    power: bool = True
    network: bool = True
    overlay: bool = False       # the OSD overlay plane is shown over the video

    @property
    def online(self) -> bool:
        return self.power and self.network

    def head(self, n: int) -> Head | None:
        """Head `n` (1-based), or None if this Rx has no such head."""
        return self.heads[n - 1] if 1 <= n <= len(self.heads) else None


@dataclass(slots=True)
class Wall:
    """A video wall: ``rows`` × ``cols`` Rx tiles (row-major); while splicing, each tile shows
    its part of the picture on its head 1."""

    name: str
    rows: int
    cols: int
    tiles: list[str]
    splice: bool = False

    def position(self, rx_id: str) -> tuple[int, int] | None:
        """(row, col), 0-based, of the tile `rx_id`, or None if it is not on this wall."""
        try:
            i = self.tiles.index(rx_id)
        except ValueError:
            return None
        return divmod(i, self.cols)
