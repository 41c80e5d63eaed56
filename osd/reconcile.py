"""Keep the firmware's heads equal to the desired routing: a pure core, no I/O, no clock.

Inputs are what the world tells the controller (the desired routing from the server's
watch, ``HeadStatus``/``SwitchResult``/``NetworkStatus`` from the firmware, link up/down,
the time); outputs are effects for the shell: ``Switch`` (send a ``SwitchHead``) and
``RequestStatus`` (send a ``StatusRequest``).

Rules (docs/CONTROLLER.md):
- Nothing is switched before a desired routing is known: a controller that starts while
  the server is unreachable leaves the screens as they are. Losing the server keeps the
  last desired routing; it never disconnects anything.
- After the link comes up the actual state is asked for; a head is switched only when
  its actual state is known to differ (or is still unknown after ``status_timeout``).
- One ``SwitchHead`` in flight per head. ``SwitchResult`` OK settles the head. A lost
  command (no ack / no result within ``inflight_timeout``) and the firmware's transient
  failures (Tx offline, no video, stream failed) are retried with exponential backoff
  capped at ``retry_max``; ``NETWORK_DOWN`` waits for the network to come back;
  ``BAD_HEAD`` is definite: no retry until the desired source of that head changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kvm_protocol.messages import SwitchStatus

Source = tuple[str, int]  # (Tx ID, Tx head)


@dataclass(frozen=True, slots=True)
class Switch:
    """Send ``SwitchHead(head, tx_id, tx_head)``; ``source`` None means show nothing."""

    head: int
    source: Source | None


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """Send a ``StatusRequest`` (the firmware answers with ``HeadStatus`` per head)."""


Effect = Switch | RequestStatus

TRANSIENT = frozenset({SwitchStatus.TX_OFFLINE, SwitchStatus.NO_VIDEO, SwitchStatus.STREAM_FAILED})


@dataclass(slots=True)
class _Inflight:
    source: Source | None
    sent_at: float
    seq: int | None = None


class Reconciler:
    """Desired routing vs actual heads → ``Switch`` commands, with retries and backoff."""

    def __init__(self, *, retry_initial: float = 0.25, retry_max: float = 15.0,
                 inflight_timeout: float = 5.0, status_timeout: float = 2.0) -> None:
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.inflight_timeout = inflight_timeout
        self.status_timeout = status_timeout
        self.linked = False
        self.heads = 0
        self.network_up = True
        self.desired: dict[int, Source | None] | None = None
        self.actual: dict[int, Source | None] = {}
        self.video: dict[int, bool] = {}
        self._inflight: dict[int, _Inflight] = {}
        self._retry_at: dict[int, float] = {}
        self._attempts: dict[int, int] = {}
        self._blocked: dict[int, Source | None] = {}   # definite failure for this target
        self._waiting_network: set[int] = set()
        self._status_asked_at: float | None = None

    # --- inputs ----------------------------------------------------------------------
    def link_up(self, heads: int, now: float) -> list[Effect]:
        """The firmware said Hello: forget what we knew of its heads and ask again."""
        self.linked = True
        self.heads = heads
        self._forget()
        self._status_asked_at = now
        return [RequestStatus()]

    def link_down(self) -> None:
        self.linked = False
        self._forget()
        self._status_asked_at = None

    def set_desired(self, routing: Mapping[int, Source | None], now: float) -> list[Effect]:
        """The server's desired routing (heads not listed show nothing)."""
        new = {h: routing.get(h) for h in range(1, 5)}
        old = self.desired
        self.desired = new
        for head in range(1, 5):
            if old is None or old.get(head) != new[head]:
                self._settle(head)
        return self.tick(now)

    def head_status(self, head: int, source: Source | None, video: bool,
                    now: float) -> list[Effect]:
        if not self.linked or not 1 <= head <= max(self.heads, 1):
            return []
        self.actual[head] = source
        self.video[head] = video
        if self._want(head) == source and head not in self._inflight:
            self._settle(head)
        return self.tick(now)

    def switch_sent(self, head: int, seq: int | None) -> None:
        """The shell wrote the ``SwitchHead`` for ``head`` with link sequence ``seq``."""
        inflight = self._inflight.get(head)
        if inflight is not None:
            inflight.seq = seq

    def switch_result(self, head: int, status: SwitchStatus, now: float,
                      request_seq: int | None = None) -> list[Effect]:
        inflight = self._inflight.get(head)
        if inflight is None or (inflight.seq is not None and request_seq is not None
                                and request_seq != inflight.seq):
            # A late answer to a command we gave up on: if it switched, the head now shows
            # something we cannot name; ask the firmware instead of guessing.
            if status == SwitchStatus.OK and self.linked:
                self.actual.pop(head, None)
                self._status_asked_at = now
                return [RequestStatus(), *self.tick(now)]
            return self.tick(now)
        del self._inflight[head]
        if status == SwitchStatus.OK:
            self.actual[head] = inflight.source
            self.video.pop(head, None)
            if inflight.source == self._want(head):
                self._settle(head)
        elif status == SwitchStatus.BAD_HEAD:
            self._blocked[head] = inflight.source
        elif status == SwitchStatus.NETWORK_DOWN:
            self._waiting_network.add(head)
        else:
            self._backoff(head, now)
        return self.tick(now)

    def switch_lost(self, head: int, now: float) -> list[Effect]:
        """The link gave up on the ``SwitchHead`` for ``head`` (no ack after its retries)."""
        if self._inflight.pop(head, None) is not None:
            self._backoff(head, now)
        return self.tick(now)

    def network(self, up: bool, now: float) -> list[Effect]:
        self.network_up = up
        if up:
            for head in self._waiting_network:
                self._retry_at.pop(head, None)
            self._waiting_network.clear()
            # A Tx that was unreachable may be reachable now: retry without waiting.
            self._retry_at.clear()
        return self.tick(now)

    # --- the decision ----------------------------------------------------------------
    def tick(self, now: float) -> list[Effect]:
        """Commands due at ``now``."""
        if not self.linked or self.desired is None:
            return []
        effects: list[Effect] = []
        unknown = [h for h in range(1, self.heads + 1) if h not in self.actual]
        status_overdue = (self._status_asked_at is not None
                          and now - self._status_asked_at >= self.status_timeout)
        if unknown and status_overdue:
            effects.append(RequestStatus())
            self._status_asked_at = now
        for head in range(1, self.heads + 1):
            inflight = self._inflight.get(head)
            if inflight is not None:
                if now - inflight.sent_at < self.inflight_timeout:
                    continue
                del self._inflight[head]
                self._backoff(head, now)
            want = self._want(head)
            if head in self.actual and self.actual[head] == want:
                continue
            if head not in self.actual and not status_overdue:
                continue
            if head in self._blocked and self._blocked[head] == want:
                continue
            if head in self._waiting_network or self._retry_at.get(head, now) > now:
                continue
            self._inflight[head] = _Inflight(want, now)
            effects.append(Switch(head, want))
        return effects

    def next_deadline(self) -> float | None:
        """When ``tick`` may next have something to do (None: only on new input)."""
        if not self.linked or self.desired is None:
            return None
        times = [f.sent_at + self.inflight_timeout for f in self._inflight.values()]
        times.extend(t for h, t in self._retry_at.items()
                     if h not in self._waiting_network and h not in self._inflight)
        if self._status_asked_at is not None and any(
                h not in self.actual for h in range(1, self.heads + 1)):
            times.append(self._status_asked_at + self.status_timeout)
        return min(times) if times else None

    # --- views ---------------------------------------------------------------------------
    @property
    def converged(self) -> bool:
        return (self.linked and self.desired is not None
                and all(self.actual.get(h, ()) == self._want(h)
                        for h in range(1, self.heads + 1)))

    def report(self) -> list[tuple[int, Source | None, bool]]:
        """Actual state per known head, for the server: (head, source, video)."""
        return [(h, self.actual[h], self.video.get(h, self.actual[h] is not None))
                for h in range(1, self.heads + 1) if h in self.actual]

    def pending_heads(self) -> Iterable[int]:
        return sorted(self._inflight)

    # --- helpers -------------------------------------------------------------------------
    def _want(self, head: int) -> Source | None:
        return None if self.desired is None else self.desired.get(head)

    def _forget(self) -> None:
        self.actual.clear()
        self.video.clear()
        self._inflight.clear()
        self._retry_at.clear()
        self._attempts.clear()
        self._blocked.clear()
        self._waiting_network.clear()

    def _settle(self, head: int) -> None:
        self._retry_at.pop(head, None)
        self._attempts.pop(head, None)
        self._blocked.pop(head, None)
        self._waiting_network.discard(head)

    def _backoff(self, head: int, now: float) -> None:
        n = self._attempts.get(head, 0)
        self._attempts[head] = n + 1
        self._retry_at[head] = now + min(self.retry_max, self.retry_initial * (2 ** min(n, 16)))
