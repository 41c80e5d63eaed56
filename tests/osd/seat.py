"""A test driver for the OSD screen machine: a fake clock, key typing, effect filters."""

from __future__ import annotations

from typing import TypeVar

from kvm_protocol.keys import KeyEvent, sequence_events, text_events
from kvm_protocol.results import ResultCode
from osd import events as ev
from osd.model import LoginView, MenuView, ScreenKind, ScreenModel
from osd.screen import OsdMachine

E = TypeVar("E")


class Seat:
    """One Rx's OSD machine with a clock in ms; every call returns the effects it produced."""

    def __init__(
        self, settings: ev.Settings | None = None, *, network: bool = True, rx_id: str = "5001"
    ) -> None:
        self.machine = OsdMachine(settings)
        self.now = 0.0
        self.log: list[ev.Effect] = []
        self.overlay = False
        self._record(self.machine.start(self.now))
        if network:
            self.event(ev.NetworkStatus(True))
            self.event(ev.ServerStatus(True))
        self.event(ev.DeviceInfo(rx_id, "RX-FW 2.4.1"))

    def _record(self, out: list[ev.Effect]) -> list[ev.Effect]:
        for effect in out:
            if isinstance(effect, ev.Overlay):
                self.overlay = effect.visible
        self.log.extend(out)
        return out

    def event(self, event: ev.Event, dt: float = 0.0) -> list[ev.Effect]:
        self.now += dt
        return self._record(self.machine.handle(event, self.now))

    def key_events(self, events: list[KeyEvent], gap: float = 30.0) -> list[ev.Effect]:
        out: list[ev.Effect] = []
        for key in events:
            out += self.event(ev.KeyInput(key), gap)
        return out

    def keys(self, spec: str, gap: float = 30.0) -> list[ev.Effect]:
        """Press chords such as ``"Shift+O Shift+O"`` or ``"F1"``."""
        return self.key_events(sequence_events(spec), gap)

    def type(self, text: str, gap: float = 30.0) -> list[ev.Effect]:
        return self.key_events(text_events(text), gap)

    def tick(self, dt: float) -> list[ev.Effect]:
        return self.event(ev.Tick(), dt)

    def login(self, user: str = "hxfj", password: str = "123456") -> list[ev.Effect]:
        """Log in through the login screen; the server accepts."""
        self.type(user)
        self.keys("Tab")
        self.type(password)
        out = self.keys("Enter")
        assert ev.Login(user, password) in out
        return out + self.event(ev.LoginResult(ResultCode.NETWORK_OK, user))

    def open_menu(self) -> list[ev.Effect]:
        out = self.keys("Shift+O Shift+O")
        assert self.kind is ScreenKind.MENU
        return out

    @property
    def kind(self) -> ScreenKind:
        return self.machine.kind

    @property
    def model(self) -> ScreenModel:
        return self.machine.model

    @property
    def menu(self) -> MenuView:
        view = self.model.menu
        assert view is not None, f"no menu on the {self.kind} screen"
        return view

    @property
    def login_view(self) -> LoginView:
        view = self.model.login
        assert view is not None, f"no login screen on the {self.kind} screen"
        return view


def of_type(effects: list[ev.Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def forwarded(effects: list[ev.Effect]) -> list[KeyEvent]:
    return [e.key for e in effects if isinstance(e, ev.ForwardKey)]
