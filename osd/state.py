"""The state of the OSD screen machine: plain data, changed only by ``osd.screen``."""

from __future__ import annotations

from dataclasses import dataclass, field

from kvm_protocol.results import Lang, ResultCode
from osd.events import DeviceRow, Settings
from osd.model import LoginFocus, Mode, ScreenKind


@dataclass(slots=True)
class LoginForm:
    user: str = ""
    password: str = field(default="", repr=False)
    focus: LoginFocus = LoginFocus.USER
    status: ResultCode | None = None   # shown instead of the connectivity status
    sent_at: float | None = None       # a Login is on its way


@dataclass(slots=True)
class MenuState:
    mode: Mode = Mode.CONNECT
    rows: tuple[DeviceRow, ...] | None = None   # None: not loaded yet
    page: int = 0
    text: str = ""
    feedback: ResultCode | None = None
    failures: tuple[tuple[str, ResultCode], ...] = ()
    sent_at: float | None = None                  # a Connect/Push/Fetch is on its way
    targets: tuple[str, ...] = ()                 # what the request on its way names
    highlight: tuple[str, ...] = ()               # rows just switched to (bright yellow)
    close_at: float | None = None                 # auto-close after a success


@dataclass(slots=True)
class OsdState:
    """Everything the machine knows; ``osd.view.build_model`` turns it into a ScreenModel."""

    settings: Settings = field(default_factory=Settings)
    rx_id: str = ""
    firmware: str = ""
    user: str | None = None
    keys_allowed: bool = True
    session_lang: Lang | None = None
    logout_pending: bool = False       # our Logout is not confirmed by the server yet
    network_up: bool | None = None     # None: not known yet
    server_ok: bool | None = None
    active: bool = True                # this is the screen with the keyboard and mouse
    menu_open: bool = False
    login_called: bool = False         # a hidden login screen was called up (wall tiles)
    last_key: float = 0.0
    login: LoginForm = field(default_factory=LoginForm)
    menu: MenuState = field(default_factory=MenuState)

    @property
    def kind(self) -> ScreenKind:
        if self.user is None:
            # Locked either way; a wall tile shows its login screen only when called up.
            shown = self.login_called or not self.settings.login_hidden
            return ScreenKind.LOGIN if shown else ScreenKind.CLOSED
        return ScreenKind.MENU if self.menu_open else ScreenKind.CLOSED

    @property
    def lang(self) -> Lang:
        return self.session_lang or self.settings.lang

    @property
    def connectivity(self) -> ResultCode | None:
        if self.network_up is None:
            return None
        if not self.network_up:
            return ResultCode.NETWORK_DOWN
        return ResultCode.SERVER_UNREACHABLE if self.server_ok is False else ResultCode.NETWORK_OK
