"""Stateful test of the fabric: whatever happens, every Rx head shows exactly what the rules
say, the host's picture of each head (built only from HeadStatus reports) is right, and
every switch asked of a powered Rx is answered exactly once."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from firmware_sim.config import build_fabric, parse_config
from firmware_sim.fabric import FAULT_KINDS, Fabric
from kvm_protocol.messages import HeadStatus, SwitchResult, SwitchStatus

TX = ["0001", "0002", "0003"]
RX = ["5001", "5002"]


class FabricMachine(RuleBasedStateMachine):
    fabric: Fabric

    @initialize()
    def setup(self) -> None:
        self.fabric = build_fabric(parse_config({
            "latency_ms": [0, 20],
            "tx": [{"id": "0001", "heads": 2}, {"id": "0002"},
                   {"id": "0003", "heads": 4, "video": [True, False, True, True]}],
            "rx": [{"id": "5001", "heads": 2}, {"id": "5002"}],
        }))
        self.now = 0.0
        self.belief: dict[tuple[str, int], tuple[str, int, bool]] = {
            (r, n): ("", 0, False) for r in RX for n in (1, 2)
        }
        self.awaiting: dict[int, str] = {}       # request_seq -> Rx
        self.next_seq = 0

    def _absorb(self) -> None:
        for out in self.fabric.drain():
            msg = out.message
            if isinstance(msg, HeadStatus):
                self.belief[(out.device, msg.head)] = (msg.tx_id, msg.tx_head, msg.video)
            elif isinstance(msg, SwitchResult):
                assert self.awaiting.pop(msg.request_seq) == out.device, "answered twice"
                assert msg.status in SwitchStatus

    @rule(rx=st.sampled_from(RX), head=st.integers(1, 3),
          tx=st.sampled_from([*TX, "", "0099"]), tx_head=st.integers(1, 4))
    def switch(self, rx: str, head: int, tx: str, tx_head: int) -> None:
        self.next_seq += 1
        if self.fabric.rx[rx].power:
            self.awaiting[self.next_seq] = rx
        self.fabric.switch(rx, head, tx, 0 if tx == "" else tx_head, self.now,
                           request_seq=self.next_seq)
        self._absorb()

    @rule(dev=st.sampled_from(TX + RX), kind=st.sampled_from(FAULT_KINDS),
          head=st.none() | st.integers(1, 4))
    def fault(self, dev: str, kind: str, head: int | None) -> None:
        if dev in RX and kind.startswith(("video", "stream")):
            return
        if head is not None and (not kind.startswith("video")
                                 or head > self.fabric.tx[dev].heads):
            return
        was_on = dev in RX and self.fabric.rx[dev].power
        self.fabric.fault(dev, kind, head)
        if dev in RX and was_on and not self.fabric.rx[dev].power:
            # The Rx reboots empty; its host learns that by asking (StatusRequest) later,
            # and pending switches die with it.
            for n in (1, 2):
                self.belief[(dev, n)] = ("", 0, False)
            self.awaiting = {s: r for s, r in self.awaiting.items() if r != dev}
        self._absorb()

    @rule(ms=st.integers(0, 30))
    def time_passes(self, ms: int) -> None:
        self.now += ms / 1000
        self.fabric.tick(self.now)
        self._absorb()

    @invariant()
    def heads_follow_the_rules(self) -> None:
        for rx in self.fabric.rx.values():
            for n, head in enumerate(rx.heads, 1):
                expected = rx.power and rx.network and head.source is not None and \
                    self.fabric.tx[head.source[0]].streams(head.source[1])
                assert head.video == expected
                shown = (head.source[0], head.source[1], head.video) if head.source \
                    else ("", 0, False)
                assert self.belief[(rx.id, n)] == shown, "the host was not told"

    @invariant()
    def pending_switches_get_answers(self) -> None:
        deadline = self.fabric.next_deadline()
        if deadline is None:
            assert not self.awaiting, f"unanswered: {self.awaiting}"


TestFabric = FabricMachine.TestCase
TestFabric.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
