"""Stateful test: random sends, losses, corruption and time steps on a connection pair.

Shadow model: the reliable messages each side sent, in order. Invariants: the
peer receives them in that order, each at most once; every outcome (Acked or
SendFailed) is reported at most once, and an Acked message was delivered. At the
end the line is healed: then every message has exactly one outcome and the
link is up again.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kvm_protocol import messages as m
from kvm_protocol.codec import Frame
from kvm_protocol.session import Acked, Received, SendFailed
from tests.kvm_protocol.conftest import Pair

PEER = {"host": "device", "device": "host"}
DIRECTION = {"host": "h2d", "device": "d2h"}


def is_subsequence(part: list[m.Message], whole: list[m.Message]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


class LinkMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = Pair()
        self.p.pump()
        self.n = 0
        self.sent: dict[str, list[m.Message]] = {"host": [], "device": []}
        self.delivered: dict[str, list[m.Message]] = {"host": [], "device": []}  # by the sender
        self.outcomes: dict[str, dict[m.Message, list[str]]] = {"host": {}, "device": {}}
        self.drops = {"h2d": 0, "d2h": 0}
        for direction in self.drops:
            self.p.drop[direction] = self._dropper(direction)

    def _dropper(self, direction: str):  # type: ignore[no-untyped-def]
        def drop(_: Frame) -> bool:
            if self.drops[direction] > 0:
                self.drops[direction] -= 1
                return True
            return False

        return drop

    def _collect(self) -> None:
        for who in ("host", "device"):
            for event in self.p.take(who):
                if isinstance(event, Received):
                    self.delivered[PEER[who]].append(event.message)
                elif isinstance(event, Acked):
                    self.outcomes[who].setdefault(event.message, []).append("acked")
                elif isinstance(event, SendFailed):
                    self.outcomes[who].setdefault(event.message, []).append("failed")

    @precondition(lambda self: self.n < 200)
    @rule()
    def host_sends(self) -> None:
        self.n += 1
        msg = m.SwitchHead(1 + self.n % 4, f"{self.n:04d}", 1)
        self.p.host.send(msg, self.p.now)
        self.sent["host"].append(msg)
        self.p.pump()
        self._collect()

    @precondition(lambda self: self.n < 200)
    @rule()
    def device_sends(self) -> None:
        self.n += 1
        msg = m.SwitchResult(self.n, 1, m.SwitchStatus.OK)
        self.p.device.send(msg, self.p.now)
        self.sent["device"].append(msg)
        self.p.pump()
        self._collect()

    @rule(direction=st.sampled_from(["h2d", "d2h"]), count=st.integers(1, 6))
    def lose_frames(self, direction: str, count: int) -> None:
        self.drops[direction] += count

    @rule(direction=st.sampled_from(["h2d", "d2h"]), at=st.integers(0, 1000))
    def corrupt_next_chunk(self, direction: str, at: int) -> None:
        def flip(data: bytes) -> bytes:
            self.p.mangle[direction] = None
            i = at % len(data)
            return data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1 :]

        self.p.mangle[direction] = flip

    @rule(seconds=st.sampled_from([0.05, 0.2, 0.5, 1.0, 3.5]))
    def time_passes(self, seconds: float) -> None:
        self.p.advance(seconds, step=0.05)
        self._collect()

    @invariant()
    def delivered_in_order_at_most_once(self) -> None:
        for who in ("host", "device"):
            got = self.delivered[who]
            assert len(got) == len(set(got)), f"duplicate delivery from {who}"
            assert is_subsequence(got, self.sent[who]), f"reordered delivery from {who}"

    @invariant()
    def one_outcome_at_most_and_acked_means_delivered(self) -> None:
        for who in ("host", "device"):
            for msg, outcomes in self.outcomes[who].items():
                assert len(outcomes) == 1, (msg, outcomes)
                if outcomes == ["acked"]:
                    assert msg in self.delivered[who]

    def teardown(self) -> None:
        self.drops = {"h2d": 0, "d2h": 0}
        self.p.mangle = {"h2d": None, "d2h": None}
        self.p.advance(3.0, step=0.05)
        self._collect()
        self.delivered_in_order_at_most_once()
        self.one_outcome_at_most_and_acked_means_delivered()
        for who in ("host", "device"):
            assert set(self.outcomes[who]) == set(self.sent[who])
        assert self.p.host.link_up and self.p.device.link_up


TestLink = LinkMachine.TestCase
TestLink.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
