"""The controller of one Rx: glues the firmware link, the OSD machine, reconcile and the server.

Threads (docs/CONTROLLER.md): the link's reader thread delivers firmware events; one
watch thread per controller holds the long poll; the process's ``Hub`` runs timers and
every other server call on a strand per controller. All state changes happen under the
controller's lock, in whichever thread brought the event, so a key press is forwarded
(or a SwitchHead written) without any hand-off.

Outage rules: losing the server never touches the screens (the reconciler keeps its last
desired routing and nothing is disconnected); the status line tells the operator; every
loop retries with capped backoff and converges when the server is back. Losing the
firmware link stops heartbeats (the server then sees the Rx offline) and re-syncs on
the next handshake.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from serial import SerialBase, SerialException

from kvm_protocol import messages as msg
from kvm_protocol.keys import KeyEvent, Mod
from kvm_protocol.results import Lang, ResultCode
from kvm_protocol.session import Acked, Event, LinkDown, LinkUp, ProtocolIssue, Received, SendFailed
from kvm_protocol.transport import LinkLoop
from osd import client as api
from osd import events as ev
from osd.hub import Backoff, Hub, TimerHandle
from osd.model import MenuView, Mode, ScreenKind, ScreenModel
from osd.reconcile import Reconciler, RequestStatus, Switch
from osd.reportgroup import Report, ReportGroup
from osd.screen import OsdMachine
from osd.watchgroup import Ticket, WatchGroup

log = logging.getLogger("kvm.rx")

TICK_SLACK_S = 0.5   # s: a tick timer at most this much early is kept, not re-armed


class Link(Protocol):
    """What the controller needs of a firmware link (``kvm_protocol.transport.Link``)."""

    def send(self, message: msg.Message) -> int: ...

    def close(self) -> None: ...


ReportedState = tuple[bool, tuple[tuple[int, Any, bool], ...]]  # (network up, heads)
LinkFactory = Callable[[str, Callable[[Event], None], SerialBase | None], Link]


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """One Rx: where its firmware and the server are, and where it keeps its secret."""

    serial_url: str
    server_url: str
    state_dir: Path
    lang: Lang = "zh_CN"
    call_timeout: float = 3.0            # operator calls and reports
    watch_timeout: float = 25.0          # long poll
    heartbeat: tuple[float, float] = (3.0, 5.0)      # jittered interval of state reports
    server_retry: tuple[float, float] = (0.25, 1.0)  # backoff while the server is unreachable
    report_delay: float = 0.3             # a changed state is reported this long after the change
    announce_retry: tuple[float, float] = (1.0, 30.0)  # backoff while pending / refused
    name: str = ""                        # label for logs and the control endpoint


@dataclass(slots=True)
class _Shown:
    """What the OSD shows and the firmware reported, for the control endpoint and reports."""

    model: ScreenModel | None = None
    last_menu: MenuView | None = None     # the last menu drawn (its feedback outlives it)
    overlay: bool = False
    version: int = 0
    network_up: bool | None = None
    last_report: Any = None
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("keys_in", "keys_forwarded", "switches_sent", "reports", "watch_answers",
         "server_failures"), 0))


class Controller:
    """One Rx; see the module docstring. ``start()``, then ``stop()``."""

    def __init__(self, config: ControllerConfig, *, hub: Hub | None = None,
                 link_factory: LinkFactory | None = None,
                 watches: WatchGroup | None = None,
                 reports: ReportGroup | None = None) -> None:
        self.config = config
        self._watches = watches   # the process's shared long poll, else a thread of our own
        self._reports = reports   # the process's shared state reports, else our own calls
        self._own_hub = hub is None
        self.hub = hub or Hub(workers=2)
        self._clock = self.hub.clock
        self._link_factory = link_factory or functools.partial(
            _default_link_factory, loop=self.hub.links)
        self._rng = random.Random()
        self._secret = api.load_or_create_secret(config.state_dir)   # StateDirError if unusable
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self.machine = OsdMachine(ev.Settings(lang=config.lang))
        self.reconciler = Reconciler()
        self.shown = _Shown()
        # Strands on the hub's pool: operator calls never wait behind reports or lists.
        self._ops = self.hub.strand()    # login, logout, connect, push, fetch
        self._bg = self.hub.strand()     # announce, state reports, device lists
        self._lists_queued: set[Mode] = set()
        self._link: Link | None = None
        self._link_up = False
        self.identity: msg.Hello | None = None
        self.client: api.ServerClient | None = None
        self.adopted: api.Adopted | None = None
        self.server_ok: bool | None = None
        self._generation = -1
        self._settings_raw: Any = None
        self._session_user: str | None = None
        self._switch_heads: dict[int, int] = {}    # link seq → head of a SwitchHead
        self._logout_owed = False
        self._report_queued = False
        self._tick_timer: TimerHandle | None = None
        self._hb_timer: TimerHandle | None = None
        self._announce_timer: TimerHandle | None = None
        self._announce_backoff = Backoff(config.announce_retry, self._rng)
        self._server_backoff = Backoff(config.server_retry, self._rng)
        self._watch_thread: threading.Thread | None = None
        self._stopped = False
        self._started = False

    # --- life cycle -----------------------------------------------------------------------
    def start(self, *, check_port: bool = False) -> None:
        """Open the firmware link and start the watch thread. With ``check_port`` the serial
        URL is opened first and ``PortError`` raised if it cannot be; otherwise the link
        keeps retrying in the background (the firmware may come up later)."""
        first_port = open_serial(self.config.serial_url) if check_port else None
        with self._lock:
            if self._started:
                return
            self._started = True
            self._apply(self.machine.start(self._now_ms()))
            # Under the lock: the link's first events (LinkUp may come at once) wait until
            # ``self._link`` is set, or what they send would be dropped.
            self._link = self._link_factory(self.config.serial_url, self._on_link_event,
                                            first_port)
        if self._watches is not None:
            self._watches.add(self)
            return
        self._watch_thread = threading.Thread(
            target=self._watch_loop, name=f"kvm-rx-watch-{self.config.name}", daemon=True)
        self._watch_thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every thread of this controller; the screens keep what they show."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            for timer in (self._tick_timer, self._hb_timer, self._announce_timer):
                if timer is not None:
                    timer.cancel()
            self._wake.notify_all()
        self._ops.close()
        self._bg.close()
        if self._watches is not None:
            self._watches.remove(self)
        if self.client is not None:
            self.client.abort()
        if self._link is not None:
            self._link.close()
        if self._watch_thread is not None:
            self._watch_thread.join(timeout)
        if self.client is not None:
            self.client.close()
        if self._own_hub:
            self.hub.close()

    # --- views (thread-safe) ------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        return self._link_up

    @property
    def reported(self) -> bool:
        """The server accepted this controller's current state (before that it counts the
        Rx offline)."""
        return self.shown.last_report is not None

    @property
    def rx_id(self) -> str:
        adopted = self.adopted
        return adopted.id if adopted is not None else ""

    def model(self) -> ScreenModel:
        """What the OSD shows now (the machine's current model)."""
        with self._lock:
            return self.machine.model

    def overlay_png(self, size: tuple[int, int] = (1920, 1080)) -> bytes:
        """The overlay plane now, as an RGBA PNG (rendered on demand, shared renderer)."""
        from osd.control import OverlayPainter

        return self.hub.resource(OverlayPainter).png(self.model(), size)

    def snapshot(self) -> dict[str, Any]:
        """The OSD and link state as JSON-able data (for ``GET /osd``)."""
        from osd.control import osd_snapshot

        with self._lock:
            return osd_snapshot(self)

    def wait_for(self, predicate: Callable[[Controller], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked on every change) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return predicate(self)
                self._wake.wait(min(left, 0.25))
            return True

    # --- firmware link ----------------------------------------------------------------------
    def _on_link_event(self, event: Event) -> None:
        if isinstance(event, Acked):
            return   # the session's bookkeeping: nothing here changes (two per switch)
        with self._lock:
            if self._stopped:
                return
            now = self._clock()
            match event:
                case Received(seq=_, message=m):
                    self._on_message(m, now)
                case LinkUp(identity=hello):
                    self._on_link_up(hello, now)
                case LinkDown(reason=reason):
                    self._on_link_down(reason)
                case SendFailed(seq=seq, message=m, reason=reason):
                    head = self._switch_heads.pop(seq, None)
                    if isinstance(m, msg.SwitchHead) and head is not None:
                        self._run_rec(self.reconciler.switch_lost(head, now))
                    log.debug("%s: %s not delivered: %s", self.label, type(m).__name__, reason)
                case ProtocolIssue(kind=kind, detail=detail):
                    log.info("%s: firmware link: %s: %s", self.label, kind, detail)
            self._after()

    def _on_message(self, m: msg.Message, now: float) -> None:
        match m:
            case msg.KeyInput(usage=usage, mods=mods, pressed=pressed):
                self.shown.stats["keys_in"] += 1
                key = KeyEvent(usage, Mod(mods), pressed)
                self._apply(self.machine.handle(ev.KeyInput(key), now * 1000.0))
            case msg.SwitchResult(request_seq=seq, head=head, status=status):
                self._switch_heads.pop(seq, None)
                self._run_rec(self.reconciler.switch_result(head, status, now, seq))
                self._want_report()
            case msg.HeadStatus(head=head, tx_id=tx_id, tx_head=tx_head, video=video):
                source = (tx_id, tx_head) if tx_id else None
                self._run_rec(self.reconciler.head_status(head, source, video, now))
                self._want_report()
            case msg.NetworkStatus(up=up):
                self.shown.network_up = up
                self._apply(self.machine.handle(ev.NetworkStatus(up), now * 1000.0))
                self._run_rec(self.reconciler.network(up, now))
                self._want_report()
            case msg.ScreenSelect(active=active):
                self._apply(self.machine.handle(ev.ScreenActive(active), now * 1000.0))
            case _:
                pass

    def _on_link_up(self, hello: msg.Hello, now: float) -> None:
        changed = self.identity is None or hello.serial != self.identity.serial
        self.identity = hello
        self._link_up = True
        log.info("%s: firmware up: %s, %d head(s), %s", self.label, hello.serial, hello.heads,
                 hello.firmware)
        if changed:
            if self.client is not None:
                self.client.close()
            self.client = api.ServerClient(
                self.config.server_url, hello.serial, self._secret,
                call_timeout=self.config.call_timeout, watch_timeout=self.config.watch_timeout)
            self.adopted = None
            self._generation = -1
        self._apply(self.machine.handle(ev.DeviceInfo(self.rx_id, hello.firmware), now * 1000.0))
        # The firmware may have (re)booted: tell it whether the OSD plane is up.
        self._send(msg.OsdOverlay(self.shown.overlay))
        self._run_rec(self.reconciler.link_up(hello.heads, now))
        self._announce_backoff.reset()
        self._schedule_announce(0.0)
        if self.adopted is not None:
            self._start_heartbeat()
        self._watch_wanted()

    def _on_link_down(self, reason: str) -> None:
        if not self._link_up:
            return
        log.warning("%s: firmware link down: %s", self.label, reason)
        self._link_up = False
        self._switch_heads.clear()
        self.reconciler.link_down()
        for timer in (self._hb_timer, self._announce_timer):
            if timer is not None:
                timer.cancel()
        self._hb_timer = self._announce_timer = None
        if self.client is not None:
            self.client.abort_watch()
        if self.adopted is not None:
            # Say so at once instead of letting the server wait for its device timeout.
            self._bg.submit(self._report_offline)

    def _send(self, m: msg.Message) -> int | None:
        link = self._link
        if link is None or not self._link_up:
            return None
        try:
            return link.send(m)
        except Exception as exc:   # a closed port: the link reports LinkDown on its own
            log.debug("%s: cannot send %s: %s", self.label, type(m).__name__, exc)
            return None

    # --- effects --------------------------------------------------------------------------
    def _apply(self, effects: list[ev.Effect]) -> None:
        """Execute the OSD machine's effects, in order."""
        for e in effects:
            match e:
                case ev.ForwardKey(key=key):
                    # Presses only while the machine forwards (OSD closed, someone logged in,
                    # keys allowed, active screen); releases always, so nothing sticks.
                    if not key.pressed or self._may_forward():
                        self.shown.stats["keys_forwarded"] += 1
                        self._send(msg.KeyForward(key.usage, int(key.mods), key.pressed))
                case ev.Draw(model=model):
                    self.shown.model = model
                    if model.menu is not None:
                        self.shown.last_menu = model.menu
                    self.shown.version += 1
                case ev.Overlay(visible=visible):
                    self.shown.overlay = visible
                    if not visible:
                        self.shown.version += 1
                    self._send(msg.OsdOverlay(visible))
                case ev.RequestDevices(mode=mode):
                    if mode not in self._lists_queued:   # one queued list per mode is enough
                        self._lists_queued.add(mode)
                        self._bg.submit(lambda mode=mode: self._server_call(  # type: ignore[misc]
                            ev.RequestDevices(mode)))
                case ev.Login() | ev.Logout() | ev.Connect() | ev.Push() | ev.Fetch():
                    call = e
                    self._ops.submit(lambda call=call: self._server_call(call))  # type: ignore[misc]
        self._wake.notify_all()

    def _may_forward(self) -> bool:
        m = self.machine
        return (m.kind is ScreenKind.CLOSED and m.forwarding and m.state.user is not None
                and m.state.keys_allowed)

    def _run_rec(self, effects: list[RequestStatus | Switch]) -> None:
        for e in effects:
            if isinstance(e, RequestStatus):
                self._send(msg.StatusRequest())
            else:
                tx_id, tx_head = e.source if e.source is not None else ("", 0)
                seq = self._send(msg.SwitchHead(e.head, tx_id, tx_head))
                self.shown.stats["switches_sent"] += 1
                if seq is None:
                    self.reconciler.switch_lost(e.head, self._clock())
                else:
                    self._switch_heads[seq] = e.head
                    self.reconciler.switch_sent(e.head, seq)

    def _after(self) -> None:
        """Re-arm the tick timer for the machine's and the reconciler's next deadline, and
        drop it when neither has one: a switch answered in time leaves no timer behind (its
        5 s result timeout fired for every Rx of a push, in the middle of the next one)."""
        deadlines = []
        osd_next = self.machine.next_deadline()
        if osd_next is not None:
            deadlines.append(osd_next / 1000.0)
        rec_next = self.reconciler.next_deadline()
        if rec_next is not None:
            deadlines.append(rec_next)
        timer = self._tick_timer
        if not deadlines or self._stopped:
            if timer is not None:
                timer.cancel()
                self._tick_timer = None
            return
        when = min(deadlines)
        # An earlier timer is kept when it is close (it fires, finds nothing, re-arms).
        if timer is not None and not timer.cancelled and when - TICK_SLACK_S <= timer.when <= when:
            return
        if timer is not None:
            timer.cancel()
        self._tick_timer = self.hub.call_at(when, self._on_tick)

    def _on_tick(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._tick_timer = None
            now = self._clock()
            self._apply(self.machine.handle(ev.Tick(), now * 1000.0))
            self._run_rec(self.reconciler.tick(now))
            self._after()

    def _now_ms(self) -> float:
        return self._clock() * 1000.0

    @property
    def label(self) -> str:
        return self.config.name or self.config.serial_url

    # --- server: status ----------------------------------------------------------------------
    def _server_status(self, ok: bool, why: object = None) -> None:
        """Called under the lock with the outcome of any server exchange."""
        if not ok:
            self.shown.stats["server_failures"] += 1
        if ok != self.server_ok:
            if ok:
                log.info("%s: server reachable", self.label)
            else:
                log.warning("%s: server unreachable: %s", self.label, why)
            self.server_ok = ok
            self._apply(self.machine.handle(ev.ServerStatus(ok), self._now_ms()))
            self._after()

    def _lost_adoption(self, out: api.Failure) -> None:
        """A device call said we are not (or no longer) adopted: announce again."""
        if isinstance(out, api.Pending) or (isinstance(out, api.Refused)
                                            and out.status in (401, 403)):
            if self.adopted is not None:
                log.warning("%s: the server no longer accepts this device (%s); announcing",
                            self.label, type(out).__name__)
            self.adopted = None
            self._generation = -1
            if self._hb_timer is not None:
                self._hb_timer.cancel()
                self._hb_timer = None
            self._schedule_announce(0.0)

    # --- server: announce ----------------------------------------------------------------------
    def _schedule_announce(self, delay: float) -> None:
        if self._announce_timer is not None:
            self._announce_timer.cancel()
        self._announce_timer = self.hub.call_later(
            delay, lambda: self._bg.submit(self._announce))

    def _announce(self) -> None:
        with self._lock:
            client, hello = self.client, self.identity
            if self._stopped or not self._link_up or client is None or hello is None:
                return
        out = client.announce(heads=hello.heads, firmware=hello.firmware)
        with self._lock:
            if self._stopped or client is not self.client:
                return
            self._announce_timer = None
            match out:
                case api.Adopted():
                    first = self.adopted is None
                    self.adopted = out
                    self._server_status(True)
                    self._announce_backoff.reset()
                    if first:
                        log.info("%s: adopted as %s (%s)", self.label, out.id, out.name)
                    self._apply(self.machine.handle(
                        ev.DeviceInfo(out.id, hello.firmware), self._now_ms()))
                    if self._link_up:
                        self._start_heartbeat()
                        self._want_report(force=True)
                    self._watch_wanted()
                case api.Pending():
                    self._server_status(False, out)
                    delay = self._announce_backoff.next()
                    log.info("%s: waiting for an admin to adopt %s (retry in %.0f s)",
                             self.label, hello.serial, delay)
                    self._schedule_announce(delay)
                case api.Refused():
                    self._server_status(False, out)
                    log.error("%s: the server refuses %s: %s %s", self.label, hello.serial,
                              out.code, out.message)
                    self._schedule_announce(self._announce_backoff.next())
                case api.ServerUnreachable():
                    self._server_status(False, out)
                    self._schedule_announce(self._server_backoff.next())
            self._after()

    # --- server: reports -----------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if self._hb_timer is not None:
            self._hb_timer.cancel()
        low, high = self.config.heartbeat
        self._hb_timer = self.hub.call_later(self._rng.uniform(low, high), self._on_heartbeat)

    def _on_heartbeat(self) -> None:
        with self._lock:
            if self._stopped or not self._link_up or self.adopted is None:
                self._hb_timer = None
                return
            self._want_report(force=True)
            self._start_heartbeat()

    def _current_report(self) -> ReportedState:
        return (self.shown.network_up is not False, tuple(self.reconciler.report()))

    def _want_report(self, force: bool = False) -> None:
        """Queue a state report if the state changed (or ``force``); at most one queued."""
        if self.adopted is None or not self._link_up or self._report_queued:
            return
        if not force and self._current_report() == self.shown.last_report:
            return
        self._report_queued = True
        if force:
            self._bg.submit(self._report)
            return
        # Changes that come together (a push switching many heads, a reboot) make one report,
        # and the switches themselves never wait behind the reports of others.
        self.hub.call_later(self.config.report_delay * self._rng.uniform(1.0, 2.0),
                            lambda: self._bg.submit(self._report))

    def _report(self) -> None:
        with self._lock:
            self._report_queued = False
            client = self.client
            if self._stopped or not self._link_up or self.adopted is None or client is None:
                return
            report = self._current_report()
            network_up, heads = report
            if self._reports is not None:
                serial, secret = client.credential
                body = api.state_body(online=True, network_up=network_up, heads=list(heads))
                self._reports.submit(self, Report(serial, secret, body, (client, report)))
                return
        out = client.report_state(online=True, network_up=network_up, heads=list(heads))
        self._reported(client, report, out)

    def report_answer(self, sent: Report, out: api.ReportOutcome) -> None:
        """The shared reports' outcome for us (``osd.reportgroup``)."""
        client, report = cast(tuple[api.ServerClient, ReportedState], sent.token)
        self._reported(client, report, out)

    def _reported(self, client: api.ServerClient, report: ReportedState,
                  out: api.ReportOutcome) -> None:
        with self._lock:
            if self._stopped or client is not self.client:
                return
            self.shown.stats["reports"] += 1
            if isinstance(out, api.Reported):
                self.shown.last_report = report
                self._server_status(True)
            elif isinstance(out, api.ServerUnreachable):
                self.shown.last_report = None
                self._server_status(False, out)
            else:
                self._server_status(False, out)
                self._lost_adoption(out)

    def _report_offline(self) -> None:
        with self._lock:
            client = self.client
            if self._stopped or self._link_up or client is None:
                return
            heads = list(self.shown.last_report[1]) if self.shown.last_report else []
            self.shown.last_report = None
        client.report_state(online=False, network_up=False, heads=heads)

    # --- server: watch -----------------------------------------------------------------------
    def _watch_wanted(self) -> None:
        """The link came up or the device was adopted: (re)start watching now."""
        self._wake.notify_all()
        if self._watches is not None:
            self._watches.poke(self)

    def _watch_loop(self) -> None:
        """The long poll of a controller with a thread of its own (``GET /device/watch``)."""
        while True:
            with self._wake:
                while not self._stopped and not (self._link_up and self.adopted is not None):
                    self._wake.wait()
                if self._stopped:
                    return
                client, generation = self.client, self._generation
                # After a failure, ask for an answer at once: the server's state then confirms
                # (or corrects) the routing and the status line recovers without waiting.
                resync = self.server_ok is not True
            assert client is not None
            out = client.watch(generation, timeout=0 if resync else None)
            with self._lock:
                if self._stopped:
                    return
                if client is not self.client:
                    continue
                delay = self._take_watch(out)
                if delay:
                    self._wake.wait(delay)

    def watch_ticket(self) -> Ticket | None:
        """For the shared long poll (``osd.watchgroup``): what to watch, when we want to."""
        with self._lock:
            client = self.client
            if self._stopped or client is None or not (self._link_up and self.adopted):
                return None
            serial, secret = client.credential
            return Ticket(serial, secret, self._generation, self.server_ok is not True, client)

    def watch_answer(self, ticket: Ticket, out: api.WatchOutcome) -> None:
        """The shared long poll's outcome for us (its backoff is the group's)."""
        with self._lock:
            if self._stopped or ticket.token is not self.client or not self._link_up:
                return
            self._take_watch(out)

    def _take_watch(self, out: api.WatchOutcome) -> float:
        """Apply a long poll's outcome (under the lock); the pause before the next one."""
        delay = 0.0
        if isinstance(out, api.Watched):
            self._on_watched(out)
            self._server_backoff.reset()
        elif self._link_up:   # an aborted poll after link down is not a server fault
            self._server_status(False, out)
            if isinstance(out, api.ServerUnreachable):
                delay = self._server_backoff.next()
            else:
                self._lost_adoption(out)
        self._after()
        return delay

    def _on_watched(self, w: api.Watched) -> None:
        now = self._clock()
        self.shown.stats["watch_answers"] += 1
        self._server_status(True)
        self._generation = w.generation
        if self.adopted is not None and w.id and (w.id, w.name) != (self.adopted.id,
                                                                      self.adopted.name):
            self.adopted = api.Adopted(w.id, w.name, self.adopted.heads)
            fw = self.identity.firmware if self.identity else ""
            self._apply(self.machine.handle(ev.DeviceInfo(w.id, fw), now * 1000.0))
        if w.settings != self._settings_raw:
            try:
                settings = ev.Settings.from_api(w.settings)
            except ev.SettingsError as exc:
                log.error("%s: ignoring settings from the server: %s", self.label, exc)
            else:
                self._apply(self.machine.handle(ev.SettingsChanged(settings), now * 1000.0))
            self._settings_raw = w.settings
        s = w.session
        info = ev.SessionInfo(s.user, s.keys_allowed, s.lang) if s else ev.SessionInfo(None)
        self._session_user = info.user
        self._apply(self.machine.handle(info, now * 1000.0))
        self._run_rec(self.reconciler.set_desired(
            {r.head: r.source for r in w.routing}, now))

    # --- server: operator calls -----------------------------------------------------------------
    def _server_call(self, call: ev.ServerCall) -> None:
        with self._lock:
            client = self.client
            if isinstance(call, ev.RequestDevices):
                self._lists_queued.discard(call.mode)
            if self._stopped:
                return
            if isinstance(call, ev.Logout):
                self._logout_owed = True
        if client is None:
            answer: ev.Event | None = self._unreachable_answer(call)
            with self._lock:
                if answer is not None:
                    self._apply(self.machine.handle(answer, self._now_ms()))
                self._after()
            return
        if isinstance(call, ev.Login) and self._logout_owed:
            self._settle_logout(client)
        answer, outcome = self._call(client, call)
        with self._lock:
            if self._stopped or client is not self.client:
                return
            if isinstance(outcome, api.ServerUnreachable | api.Pending | api.Refused):
                self._server_status(False, outcome)
                if not isinstance(outcome, api.ServerUnreachable):
                    self._lost_adoption(outcome)
            else:
                self._server_status(True)
            if answer is not None:
                self._apply(self.machine.handle(answer, self._now_ms()))
            self._after()

    def _settle_logout(self, client: api.ServerClient) -> None:
        out = client.logout()
        if isinstance(out, api.ActionAnswer):
            self._logout_owed = False

    def _call(self, client: api.ServerClient,
              call: ev.ServerCall) -> tuple[ev.Event | None, object]:
        """Run one operator call; the machine's answer event and the raw outcome."""
        match call:
            case ev.Login(user=user, password=password):
                lo = client.login(user, password)
                if isinstance(lo, api.LoginAnswer):
                    keys = True
                    return ev.LoginResult(lo.result, lo.user or user, lo.lang, keys), lo
                return ev.LoginResult(ResultCode.SERVER_UNREACHABLE), lo
            case ev.Logout():
                out = client.logout()
                if isinstance(out, api.ActionAnswer):
                    self._logout_owed = False   # the watch's session None unlocks the rest
                else:
                    self._retry_logout()
                return None, out
            case ev.RequestDevices(mode=mode):
                dl = client.devices(mode.value)
                if isinstance(dl, api.DeviceList):
                    rows = tuple(ev.DeviceRow(r.id, r.name, r.colour) for r in dl.rows)
                    return ev.DeviceList(mode, rows), dl
                return None, dl
            case ev.Connect(input=text) | ev.Push(input=text) | ev.Fetch(input=text):
                mode = _MODES[type(call)]
                fn = {"connect": client.connect, "push": client.push,
                      "fetch": client.fetch}[mode.value]
                act = fn(text)
                if isinstance(act, api.ActionAnswer):
                    failures = tuple((t.id, t.result) for t in act.targets if not t.result.ok)
                    if act.result is not ResultCode.PUSH_PARTIAL:
                        failures = ()
                    return ev.ActionResult(mode, act.result, failures), act
                return ev.ActionResult(mode, ResultCode.SERVER_UNREACHABLE), act
        return None, None

    def _retry_logout(self) -> None:
        """The seat is locked locally; keep telling the server until it heard the logout."""
        def retry() -> None:
            with self._lock:
                if self._stopped or not self._logout_owed:
                    return
            self._ops.submit(lambda: self._server_call(ev.Logout()))
        self.hub.call_later(self._server_backoff.next(), retry)

    @staticmethod
    def _unreachable_answer(call: ev.ServerCall) -> ev.Event | None:
        if isinstance(call, ev.Login):
            return ev.LoginResult(ResultCode.SERVER_UNREACHABLE)
        if isinstance(call, ev.Connect | ev.Push | ev.Fetch):
            return ev.ActionResult(_MODES[type(call)], ResultCode.SERVER_UNREACHABLE)
        return None


_MODES: dict[type[ev.Connect | ev.Push | ev.Fetch], Mode] = {
    ev.Connect: Mode.CONNECT, ev.Push: Mode.PUSH, ev.Fetch: Mode.FETCH}


def _default_link_factory(url: str, on_event: Callable[[Event], None],
                          first_port: SerialBase | None, *,
                          loop: LinkLoop | None = None) -> Link:
    from kvm_protocol import transport

    def opener(u: str) -> SerialBase:
        nonlocal first_port
        port, first_port = first_port, None
        return port if port is not None else transport.open_port(u)

    return transport.Link(url, on_event, opener=opener, loop=loop)


class PortError(Exception):
    """The serial URL cannot be opened; the message says which and why."""


def open_serial(url: str) -> SerialBase:
    """Open the firmware's serial URL once, to fail early with a clear message."""
    from kvm_protocol import transport

    try:
        return transport.open_port(url)
    except (SerialException, OSError, ValueError) as exc:
        raise PortError(f"cannot open serial port {url!r}: {exc}") from None
