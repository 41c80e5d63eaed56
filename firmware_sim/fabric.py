"""The network fabric: every simulated Tx, Rx, seat and wall, and the rules between them (no I/O).

Inputs are method calls that take ``now`` (seconds, monotonic); outputs are the
messages each device's firmware sends to its host, collected in an outbox
(``drain()``). Switches complete ``latency`` after they are asked for: the shell
calls ``tick(now)`` at ``next_deadline()``.

Rules (docs/SIMULATOR.md, "Fabric rules"):

- A switch is answered by ``SwitchResult``. ``OK`` tunes the head to the Tx head
  and shows its picture. A failure (``NETWORK_DOWN``, ``TX_OFFLINE``, ``BAD_HEAD``,
  ``STREAM_FAILED``, ``NO_VIDEO``) leaves the head showing nothing — except
  ``BAD_HEAD`` for a head this Rx does not have, which changes nothing.
- After a successful switch the head stays tuned: a fault (Tx power, network,
  stream, video; the Rx's own network) takes the picture away ("no signal") and
  the picture comes back by itself when the fault clears. Each change is reported
  with ``HeadStatus``.
- Switches of one head complete in the order they were asked for.
- A powered-off device is silent; powering an Rx off clears its heads, overlay and
  pending switches (it reboots empty).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from firmware_sim.model import Head, Rx, Source, Tx, Wall, format_source
from firmware_sim.seat import Routed, ScreenChange, Seat, SeatError, SeatOutput
from kvm_protocol.keys import KeyEvent, Mod
from kvm_protocol.messages import MAX_HEADS as PROTOCOL_MAX_HEADS
from kvm_protocol.messages import (
    HeadStatus,
    KeyInput,
    Message,
    NetworkStatus,
    ScreenSelect,
    SwitchResult,
    SwitchStatus,
    VideoStatus,
)

FaultKind = Literal[
    "network-down", "network-up", "power-off", "power-on",
    "video-off", "video-on", "stream-fault", "stream-ok",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
_TX_ONLY = {"video-off", "video-on", "stream-fault", "stream-ok"}


class FabricError(ValueError):
    """A request naming something the fabric does not have, or that does not apply to it."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message the firmware of `device` sends to its host.

    ``conn`` is set on a ``SwitchResult``: the link connection that asked, so that
    an answer is never delivered to a newer connection that did not ask.
    """

    device: str
    message: Message
    conn: int | None = None


@dataclass(frozen=True, slots=True, order=True)
class _Pending:
    due: float
    order: int
    rx: str
    head: int
    tx_id: str
    tx_head: int
    request_seq: int
    conn: int | None
    boot: int


class Fabric:
    """Tx, Rx, seats and walls, and what each Rx head shows."""

    def __init__(
        self,
        txs: Iterable[Tx],
        rxs: Iterable[Rx],
        seats: Iterable[Seat] = (),
        walls: Iterable[Wall] = (),
        *,
        latency_ms: tuple[float, float] = (0.0, 20.0),
        seed: int = 0,
    ) -> None:
        self.tx: dict[str, Tx] = {t.id: t for t in txs}
        self.rx: dict[str, Rx] = {r.id: r for r in rxs}
        self.seats: dict[str, Seat] = {s.name: s for s in seats}
        self.walls: dict[str, Wall] = {w.name: w for w in walls}
        lo, hi = latency_ms
        if not 0 <= lo <= hi:
            raise FabricError(f"latency_ms must be 0 <= low <= high, got {latency_ms}")
        self.latency_ms = (float(lo), float(hi))
        self._rng = random.Random(seed)
        self._seat_of: dict[str, Seat] = {}
        for seat in self.seats.values():
            for rx_id in seat.screens:
                self._seat_of[rx_id] = seat
        for rx_id in self.rx:
            self._seat_of.setdefault(rx_id, Seat(rx_id, [rx_id]))
        self._wall_of = {t: w for w in self.walls.values() for t in w.tiles}
        self._pending: list[_Pending] = []
        self._order = 0
        self._head_due: dict[tuple[str, int], float] = {}
        self._boot: dict[str, int] = dict.fromkeys(self.rx, 0)
        self._watchers: dict[str, set[tuple[str, int]]] = {}   # Tx ID -> tuned (Rx, head)
        self._outbox: list[Outgoing] = []

    # --- outputs ---------------------------------------------------------------------

    def drain(self) -> list[Outgoing]:
        """Messages produced since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def next_deadline(self) -> float | None:
        """When ``tick`` has work next (a pending switch falls due), or None."""
        return self._pending[0].due if self._pending else None

    def _emit(self, device: str, message: Message, conn: int | None = None) -> None:
        dev = self.tx.get(device) or self.rx.get(device)
        if dev is not None and dev.power:          # a powered-off device says nothing
            self._outbox.append(Outgoing(device, message, conn))

    # --- lookups --------------------------------------------------------------------

    def get_rx(self, rx_id: str) -> Rx:
        try:
            return self.rx[rx_id]
        except KeyError:
            raise FabricError(f"no Rx {rx_id!r}") from None

    def get_tx(self, tx_id: str) -> Tx:
        try:
            return self.tx[tx_id]
        except KeyError:
            raise FabricError(f"no Tx {tx_id!r}") from None

    def seat_for(self, target: str) -> Seat:
        """The seat named `target`, or the seat of the Rx `target` (a lone Rx is its own seat)."""
        if target in self._seat_of:
            return self._seat_of[target]
        if target in self.seats:
            return self.seats[target]
        raise FabricError(f"no seat or Rx {target!r}")

    def wall_of(self, rx_id: str) -> Wall | None:
        return self._wall_of.get(rx_id)

    # --- switching -----------------------------------------------------------------

    def switch(
        self, rx_id: str, head: int, tx_id: str, tx_head: int, now: float,
        *, request_seq: int = 0, conn: int | None = None,
    ) -> None:
        """The host of `rx_id` asked `head` to show Tx `tx_id` head `tx_head` ("" = nothing)."""
        rx = self.get_rx(rx_id)
        if not rx.power:
            return
        lo, hi = self.latency_ms
        delay = (lo if lo == hi else self._rng.uniform(lo, hi)) / 1000.0
        key = (rx_id, head)
        due = max(now + delay, self._head_due.get(key, 0.0))
        self._head_due[key] = due
        self._order += 1
        heapq.heappush(
            self._pending,
            _Pending(due, self._order, rx_id, head, tx_id, tx_head, request_seq, conn,
                     self._boot[rx_id]),
        )
        self.tick(now)

    def tick(self, now: float) -> None:
        """Complete every switch that is due at `now`."""
        while self._pending and self._pending[0].due <= now:
            p = heapq.heappop(self._pending)
            if self._head_due.get((p.rx, p.head)) == p.due:
                del self._head_due[(p.rx, p.head)]
            self._complete(p, now)

    def switch_status(self, rx: Rx, tx_id: str, tx_head: int) -> SwitchStatus:
        """What a switch of `rx` to Tx `tx_id` head `tx_head` would answer now."""
        if tx_id == "":
            return SwitchStatus.OK
        if not 1 <= tx_head <= PROTOCOL_MAX_HEADS:
            return SwitchStatus.BAD_HEAD
        if not rx.network:
            return SwitchStatus.NETWORK_DOWN
        tx = self.tx.get(tx_id)
        if tx is None or not tx.online:
            return SwitchStatus.TX_OFFLINE
        if tx_head > tx.heads:
            return SwitchStatus.BAD_HEAD
        if not tx.stream_ok:
            return SwitchStatus.STREAM_FAILED
        if not tx.video[tx_head - 1]:
            return SwitchStatus.NO_VIDEO
        return SwitchStatus.OK

    def _complete(self, p: _Pending, now: float) -> None:
        rx = self.rx[p.rx]
        if not rx.power or self._boot[p.rx] != p.boot:
            return                                  # the Rx rebooted meanwhile
        head = rx.head(p.head)
        if head is None:
            self._emit(rx.id, SwitchResult(p.request_seq, p.head, SwitchStatus.BAD_HEAD), p.conn)
            return
        status = self.switch_status(rx, p.tx_id, p.tx_head)
        before = (head.source, head.video)
        ok = status is SwitchStatus.OK and p.tx_id != ""
        self._tune(rx.id, p.head, head, (p.tx_id, p.tx_head) if ok else None)
        if head.source != before[0]:
            head.since = now
        head.video = self._picture(rx, head)
        self._emit(rx.id, SwitchResult(p.request_seq, p.head, status), p.conn)
        if (head.source, head.video) != before:
            self._emit(rx.id, self._head_status(p.head, head))

    def _tune(self, rx_id: str, n: int, head: Head, source: Source | None) -> None:
        if head.source is not None:
            watchers = self._watchers.get(head.source[0])
            if watchers is not None:
                watchers.discard((rx_id, n))
        head.source = source
        if source is not None:
            self._watchers.setdefault(source[0], set()).add((rx_id, n))

    def _picture(self, rx: Rx, head: Head) -> bool:
        if not (rx.power and rx.network and head.source is not None):
            return False
        tx = self.tx.get(head.source[0])
        return tx is not None and tx.streams(head.source[1])

    @staticmethod
    def _head_status(n: int, head: Head) -> HeadStatus:
        if head.source is None:
            return HeadStatus(n, "", 0, False)
        return HeadStatus(n, head.source[0], head.source[1], head.video)

    def _refresh(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Re-evaluate the picture of these (Rx, head) and report the ones that changed."""
        for rx_id, n in sorted(pairs):
            rx = self.rx[rx_id]
            head = rx.heads[n - 1]
            video = self._picture(rx, head)
            if video != head.video:
                head.video = video
                self._emit(rx_id, self._head_status(n, head))

    def _refresh_tx(self, tx_id: str) -> None:
        self._refresh(list(self._watchers.get(tx_id, ())))

    def _refresh_rx(self, rx: Rx) -> None:
        self._refresh([(rx.id, n) for n in range(1, len(rx.heads) + 1)])

    # --- status ---------------------------------------------------------------------

    def status_report(self, device: str, conn: int | None = None) -> None:
        """Answer a ``StatusRequest``: per-head status, the network, and for a cross-screen
        seat's Rx whether it is the active screen."""
        if device in self.rx:
            rx = self.rx[device]
            for n, head in enumerate(rx.heads, 1):
                self._emit(device, self._head_status(n, head), conn)
            self._emit(device, NetworkStatus(rx.network), conn)
            seat = self._seat_of[device]
            if seat.cross_screen:
                pos = seat.screens.index(device) + 1
                self._emit(device, ScreenSelect(seat.active == pos, pos), conn)
        elif device in self.tx:
            tx = self.tx[device]
            for n, present in enumerate(tx.video, 1):
                self._emit(device, VideoStatus(n, present), conn)
            self._emit(device, NetworkStatus(tx.network), conn)
        else:
            raise FabricError(f"no device {device!r}")

    def set_overlay(self, rx_id: str, visible: bool) -> None:
        """The host showed or hid the OSD overlay plane."""
        rx = self.get_rx(rx_id)
        if rx.power:
            rx.overlay = visible

    # --- keyboard -------------------------------------------------------------------

    def seat_keys(self, target: str, events: Iterable[KeyEvent]) -> list[str]:
        """Key events from the keyboard of a seat (named, or by one of its Rx).

        Returns the Rx IDs that received events, in first-delivery order. Each
        delivered event goes to that Rx's host as ``KeyInput`` (lost if it is off).
        """
        seat = self.seat_for(target)
        got: list[str] = []
        for event in events:
            self._seat_output(seat, seat.key(event), got)
        return got

    def mouse_to_screen(self, target: str, n: int) -> None:
        """The seat's mouse moved onto screen `n` (1-based)."""
        seat = self.seat_for(target)
        try:
            outputs = seat.mouse_to(n)
        except SeatError as e:
            raise FabricError(str(e)) from None
        self._seat_output(seat, outputs, [])

    def _seat_output(self, seat: Seat, outputs: list[SeatOutput], got: list[str]) -> None:
        for out in outputs:
            if isinstance(out, Routed):
                e = out.event
                self._emit(out.rx, KeyInput(e.usage, int(e.mods), e.pressed))
                if out.rx not in got and self.rx[out.rx].power:
                    got.append(out.rx)
            elif isinstance(out, ScreenChange):
                self._emit(seat.screens[out.old - 1], ScreenSelect(False, out.old))
                self._emit(seat.screens[out.new - 1], ScreenSelect(True, out.new))

    def key_forward(self, rx_id: str, usage: int, mods: int, pressed: bool) -> str | None:
        """The host of `rx_id` forwards a key to the computer of the Tx on head 1.

        Returns the Tx ID that received it, or None (nothing on head 1, this Rx's
        network down, or that Tx unreachable).
        """
        rx = self.get_rx(rx_id)
        source = rx.heads[0].source
        if not (rx.power and rx.network) or source is None:
            return None
        tx = self.tx.get(source[0])
        if tx is None or not tx.online:
            return None
        tx.computer.receive(KeyEvent(usage, Mod(mods), pressed))
        return tx.id

    # --- faults and walls --------------------------------------------------------------

    def fault(self, device: str, kind: str, head: int | None = None) -> None:
        """Apply a fault (or its repair) to a device; see ``FAULT_KINDS``."""
        if kind not in FAULT_KINDS:
            raise FabricError(f"unknown fault {kind!r}; one of: {', '.join(FAULT_KINDS)}")
        if head is not None and kind not in ("video-off", "video-on"):
            raise FabricError(f"a head can only be given for video-off/video-on, not {kind}")
        if device in self.tx:
            self._fault_tx(self.tx[device], kind, head)
        elif device in self.rx:
            if kind in _TX_ONLY:
                raise FabricError(f"{kind} applies to a Tx; {device} is an Rx")
            self._fault_rx(self.rx[device], kind)
        else:
            raise FabricError(f"no device {device!r}")

    def _fault_tx(self, tx: Tx, kind: str, head: int | None) -> None:
        if kind in ("power-off", "power-on"):
            tx.power = kind == "power-on"
        elif kind in ("network-down", "network-up"):
            up = kind == "network-up"
            if tx.network != up:
                tx.network = up
                self._emit(tx.id, NetworkStatus(up))
        elif kind in ("stream-fault", "stream-ok"):
            tx.stream_ok = kind == "stream-ok"
        else:
            present = kind == "video-on"
            if head is not None and not 1 <= head <= tx.heads:
                raise FabricError(f"Tx {tx.id} has heads 1..{tx.heads}, not {head}")
            for n in [head] if head is not None else range(1, tx.heads + 1):
                if tx.video[n - 1] != present:
                    tx.video[n - 1] = present
                    self._emit(tx.id, VideoStatus(n, present))
        self._refresh_tx(tx.id)

    def _fault_rx(self, rx: Rx, kind: str) -> None:
        if kind in ("network-down", "network-up"):
            up = kind == "network-up"
            if rx.network != up:
                rx.network = up
                self._emit(rx.id, NetworkStatus(up))
            self._refresh_rx(rx)
        elif kind == "power-off" and rx.power:
            for n, head in enumerate(rx.heads, 1):
                self._tune(rx.id, n, head, None)
                head.video, head.since = False, None
            rx.overlay = False
            rx.power = False
            self._boot[rx.id] += 1
        elif kind == "power-on":
            rx.power = True

    def set_splice(self, wall: str, on: bool) -> None:
        try:
            self.walls[wall].splice = on
        except KeyError:
            raise FabricError(f"no wall {wall!r}") from None

    # --- inspection -------------------------------------------------------------------

    def tx_state(self, tx: Tx) -> dict[str, Any]:
        return {
            "id": tx.id, "kind": "tx", "serial": tx.serial, "name": tx.name,
            "firmware": tx.firmware, "power": tx.power, "network": tx.network,
            "online": tx.online, "stream_ok": tx.stream_ok, "heads": tx.heads,
            "video": list(tx.video),
            "computer": {"text": tx.computer.text, "key_count": tx.computer.key_count},
        }

    def rx_state(self, rx: Rx) -> dict[str, Any]:
        seat = self._seat_of[rx.id]
        wall = self._wall_of.get(rx.id)
        return {
            "id": rx.id, "kind": "rx", "serial": rx.serial, "firmware": rx.firmware,
            "power": rx.power, "network": rx.network, "online": rx.online,
            "overlay": rx.overlay,
            "heads": [
                {"head": n, "source": format_source(h.source), "video": h.video,
                 "since": h.since}
                for n, h in enumerate(rx.heads, 1)
            ],
            "seat": seat.name if seat.name in self.seats else None,
            "wall": wall.name if wall is not None else None,
        }

    def snapshot(self, only: str | None = None) -> dict[str, Any]:
        """Everything, as JSON-able data (see docs/SIMULATOR.md, "state"); lists in config order.
        `only` ``"tx"`` / ``"rx"``: that list alone (a poller that needs one kind does not
        pay for the other, and the simulator's loop is held for less)."""
        if only == "tx":
            return {"tx": [self.tx_state(t) for t in self.tx.values()]}
        if only == "rx":
            return {"rx": [self.rx_state(r) for r in self.rx.values()]}
        return {
            "latency_ms": list(self.latency_ms),
            "tx": [self.tx_state(t) for t in self.tx.values()],
            "rx": [self.rx_state(r) for r in self.rx.values()],
            "seats": [
                {"name": s.name, "screens": list(s.screens), "active": s.active,
                 "active_rx": s.active_rx}
                for s in self.seats.values()
            ],
            "walls": [
                {"name": w.name, "rows": w.rows, "cols": w.cols,
                 "tiles": list(w.tiles), "splice": w.splice}
                for w in self.walls.values()
            ],
        }
