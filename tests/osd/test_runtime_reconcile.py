"""The reconcile core: desired routing vs actual heads → SwitchHead commands."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kvm_protocol.messages import SwitchStatus
from osd.reconcile import Reconciler, RequestStatus, Source, Switch

A: Source = ("0001", 1)
B: Source = ("0002", 1)
A2: Source = ("0001", 2)


def linked(heads: int = 1, actual: dict[int, Source | None] | None = None) -> Reconciler:
    """A reconciler whose link is up and whose heads' actual state is known."""
    rec = Reconciler()
    assert rec.link_up(heads, 0.0) == [RequestStatus()]
    for head in range(1, heads + 1):
        src = (actual or {}).get(head)
        assert rec.head_status(head, src, src is not None, 0.0) == []
    return rec


def test_nothing_is_switched_before_the_desired_routing_is_known() -> None:
    rec = linked(2, {1: A})
    assert rec.tick(100.0) == []
    assert rec.next_deadline() is None


def test_switches_only_the_heads_that_differ() -> None:
    rec = linked(2, {1: A, 2: None})
    assert rec.set_desired({1: A, 2: B}, 1.0) == [Switch(2, B)]
    assert rec.tick(1.1) == []   # one command in flight per head
    assert rec.switch_result(2, SwitchStatus.OK, 1.2) == []
    assert rec.converged
    assert rec.report() == [(1, A, True), (2, B, True)]
    assert rec.tick(500.0) == []


def test_head_not_listed_in_routing_is_disconnected() -> None:
    rec = linked(1, {1: A})
    assert rec.set_desired({}, 0.0) == [Switch(1, None)]


def test_waits_for_the_actual_state_then_switches_when_it_never_comes() -> None:
    rec = Reconciler(status_timeout=2.0)
    rec.link_up(1, 0.0)
    assert rec.set_desired({1: A}, 0.5) == []
    assert rec.next_deadline() == 2.0
    assert rec.tick(2.0) == [RequestStatus(), Switch(1, A)]


def test_status_arriving_equal_to_desired_needs_no_switch() -> None:
    rec = Reconciler()
    rec.link_up(1, 0.0)
    rec.set_desired({1: A}, 0.1)
    assert rec.head_status(1, A, True, 0.2) == []
    assert rec.converged


def test_lost_command_is_retried_with_capped_exponential_backoff() -> None:
    rec = Reconciler(retry_initial=0.25, retry_max=2.0)
    rec.link_up(1, 0.0)
    rec.head_status(1, None, False, 0.0)
    now = 0.0
    assert rec.set_desired({1: A}, now) == [Switch(1, A)]
    delays = []
    for _ in range(6):
        assert rec.switch_lost(1, now) == []
        deadline = rec.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        assert rec.tick(deadline - 0.01) == []
        now = deadline
        assert rec.tick(now) == [Switch(1, A)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_command_without_result_times_out_and_is_resent() -> None:
    rec = Reconciler(inflight_timeout=5.0, retry_initial=0.25)
    rec.link_up(1, 0.0)
    rec.head_status(1, None, False, 0.0)
    assert rec.set_desired({1: A}, 0.0) == [Switch(1, A)]
    assert rec.tick(4.9) == []
    assert rec.tick(5.0) == []          # given up; backoff starts now
    assert rec.tick(5.25) == [Switch(1, A)]


def test_transient_firmware_failure_is_retried() -> None:
    rec = linked(1)
    rec.set_desired({1: A}, 0.0)
    assert rec.switch_result(1, SwitchStatus.TX_OFFLINE, 0.1) == []
    assert rec.tick(0.35) == [Switch(1, A)]


def test_bad_head_is_definite_until_the_desired_source_changes() -> None:
    rec = linked(1)
    rec.set_desired({1: A2}, 0.0)
    assert rec.switch_result(1, SwitchStatus.BAD_HEAD, 0.1) == []
    assert rec.tick(1000.0) == []
    assert rec.next_deadline() is None
    assert rec.set_desired({1: A}, 1001.0) == [Switch(1, A)]


def test_network_down_waits_for_the_network() -> None:
    rec = linked(1)
    rec.set_desired({1: A}, 0.0)
    assert rec.switch_result(1, SwitchStatus.NETWORK_DOWN, 0.1) == []
    assert rec.network(False, 0.2) == []
    assert rec.tick(1000.0) == []
    assert rec.network(True, 1001.0) == [Switch(1, A)]


def test_link_outage_keeps_the_desired_routing_and_resyncs() -> None:
    rec = linked(2, {1: A, 2: B})
    rec.set_desired({1: A, 2: B}, 0.0)
    rec.link_down()
    assert rec.tick(10.0) == []
    assert rec.link_up(2, 20.0) == [RequestStatus()]
    # The firmware rebooted with head 2 empty: only head 2 is switched.
    assert rec.head_status(1, A, True, 20.1) == []
    assert rec.head_status(2, None, False, 20.1) == [Switch(2, B)]


def test_new_desired_while_in_flight_is_sent_after_the_result() -> None:
    rec = linked(1)
    rec.set_desired({1: A}, 0.0)
    assert rec.set_desired({1: B}, 0.1) == []
    assert rec.switch_result(1, SwitchStatus.OK, 0.2) == [Switch(1, B)]


def test_late_result_of_an_abandoned_command_is_ignored() -> None:
    rec = Reconciler(inflight_timeout=1.0, retry_initial=0.1)
    rec.link_up(1, 0.0)
    rec.head_status(1, None, False, 0.0)
    rec.set_desired({1: A}, 0.0)
    rec.switch_sent(1, 7)
    rec.tick(1.0)
    assert rec.tick(1.1) == [Switch(1, A)]
    rec.switch_sent(1, 9)
    assert rec.switch_result(1, SwitchStatus.TX_OFFLINE, 1.2, request_seq=7) == []
    assert list(rec.pending_heads()) == [1]
    assert rec.switch_result(1, SwitchStatus.OK, 1.3, request_seq=9) == []
    assert rec.converged


def test_status_for_heads_the_device_does_not_have_is_ignored() -> None:
    rec = linked(1)
    assert rec.head_status(3, A, True, 0.0) == []
    assert rec.report() == [(1, None, False)]


# --- stateful: a lossy firmware, outages, changing routing; calm → converged ----------

SOURCES = st.sampled_from([None, A, B, A2])


class ReconcileMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rec = Reconciler(retry_initial=0.25, retry_max=4.0, inflight_timeout=2.0)
        self.now = 0.0
        self.heads = 2
        self.shown: dict[int, Source | None] = {1: None, 2: None}   # the firmware's truth
        self.link = False
        self.queue: list[Switch] = []   # commands the firmware has received, not yet answered
        self.ever_desired = False
        self.open_since: dict[int, float] = {}   # head → when its unanswered command was sent

    def _run(self, effects: list[RequestStatus | Switch]) -> None:
        for e in effects:
            if isinstance(e, Switch):
                assert self.ever_desired, "switched before any desired routing"
                assert self.link
                # One command per head until it is answered or has timed out.
                since = self.open_since.get(e.head)
                assert since is None or self.now - since >= self.rec.inflight_timeout
                self.open_since[e.head] = self.now
                self.queue.append(e)

    @rule(up=st.booleans())
    def link_change(self, up: bool) -> None:
        if up and not self.link:
            self.link = True
            self._run(self.rec.link_up(self.heads, self.now))
        elif not up and self.link:
            self.link = False
            self.queue.clear()
            self.open_since.clear()
            self.rec.link_down()

    @rule(h1=SOURCES, h2=SOURCES)
    def desired(self, h1: Source | None, h2: Source | None) -> None:
        self.ever_desired = True
        self._run(self.rec.set_desired({1: h1, 2: h2}, self.now))

    @precondition(lambda self: self.link)
    @rule()
    def status(self) -> None:
        for head, src in self.shown.items():
            self._run(self.rec.head_status(head, src, src is not None, self.now))

    @precondition(lambda self: self.link and self.queue)
    @rule(outcome=st.sampled_from(["ok", "lost", "offline", "silent"]))
    def answer(self, outcome: str) -> None:
        cmd = self.queue.pop(0)
        if outcome != "silent":
            self.open_since.pop(cmd.head, None)
        if outcome == "ok":
            self.shown[cmd.head] = cmd.source
            self._run(self.rec.switch_result(cmd.head, SwitchStatus.OK, self.now))
        elif outcome == "lost":
            self._run(self.rec.switch_lost(cmd.head, self.now))
        elif outcome == "offline":
            self._run(self.rec.switch_result(cmd.head, SwitchStatus.TX_OFFLINE, self.now))

    @rule(dt=st.floats(0.0, 10.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        if self.link:
            self._run(self.rec.tick(self.now))

    @invariant()
    def never_more_in_flight_than_heads(self) -> None:
        assert set(self.rec.pending_heads()) <= {1, 2}

    def teardown(self) -> None:
        # Calm: link up, firmware obeys, time passes → the heads equal the desired routing.
        if not self.ever_desired:
            return
        if not self.link:
            self.link = True
            self._run(self.rec.link_up(self.heads, self.now))
        for _ in range(200):
            for head, src in self.shown.items():
                self._run(self.rec.head_status(head, src, src is not None, self.now))
            while self.queue:
                cmd = self.queue.pop(0)
                self.open_since.pop(cmd.head, None)
                self.shown[cmd.head] = cmd.source
                self._run(self.rec.switch_result(cmd.head, SwitchStatus.OK, self.now))
            if self.rec.converged:
                break
            self.now += 1.0
            self._run(self.rec.tick(self.now))
        desired = self.rec.desired
        assert desired is not None
        assert self.rec.converged
        assert self.shown == {1: desired[1], 2: desired[2]}


ReconcileMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30,
                                              deadline=None)
TestReconcileStateful = ReconcileMachine.TestCase
