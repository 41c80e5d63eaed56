"""The OSD screen state machine: every rule of what a key or an answer does lives here.

Pure (sans-IO): ``OsdMachine.handle(event, now_ms)`` takes one event from ``osd.events``
and the current monotonic time in ms, and returns the effects to execute, in order.
Display effects (``Draw``, ``Overlay``) come last in each batch, so key releases and
server calls go out before the overlay changes. See docs/OSD.md for the screens and keys.

Three screens (``ScreenKind``):
- LOGIN — nobody is logged in; the overlay is up and the seat is locked (Esc does nothing);
- MENU — the OSD menu is open; keys go to the OSD only;
- CLOSED — logged in, overlay hidden; keys go through the chord detector to the computer
  (unless the session is view-only, or this is not the active screen of a cross-screen seat).
  Also a wall tile (setting ``login_hidden``) while nobody is logged in: locked, no overlay
  over the wall's picture; the chord calls up its login screen, Esc or idleness hides it.

The keys the computer holds are tracked; whenever forwarding stops, the computer gets
releases for them so nothing stays stuck, and later releases of keys it never saw
pressed are dropped.
"""

from __future__ import annotations

from kvm_protocol.keys import KEY_NAMES, MODIFIER_USAGES, KeyEvent, Mod
from kvm_protocol.results import Lang, ResultCode
from osd import events as ev
from osd.chord import ChordDetector, mod_mask
from osd.menu import INPUT_CHARS, MAX_INPUT, MAX_PASSWORD, MAX_USER, normalise, parse_targets
from osd.model import LoginFocus, Mode, ScreenKind, ScreenModel, page_count
from osd.state import LoginForm, MenuState, OsdState
from osd.view import build_model

REQUEST_TIMEOUT_MS = 15_000.0   # a server call not answered by then counts as SERVER_UNREACHABLE
SWITCHED = frozenset({ResultCode.CONNECTED, ResultCode.PUSHED, ResultCode.FETCHED})

_K = KEY_NAMES
_ENTER_KEYS = frozenset({_K["Enter"], 0x58})  # 0x58: keypad Enter
_MODE_KEYS = {_K["F1"]: Mode.CONNECT, _K["F2"]: Mode.PUSH, _K["F3"]: Mode.FETCH}
_FOCUS_ORDER = (LoginFocus.USER, LoginFocus.PASSWORD, LoginFocus.LOGIN, LoginFocus.CLEAR)
_SHIFT = 0x02      # in the side-folded modifier mask (osd.chord.mod_mask)
_CALLS: dict[Mode, type[ev.Connect | ev.Push | ev.Fetch]] = {
    Mode.CONNECT: ev.Connect,
    Mode.PUSH: ev.Push,
    Mode.FETCH: ev.Fetch,
}


class OsdMachine:
    """The screen state machine of one Rx; see the module docstring."""

    def __init__(self, settings: ev.Settings | None = None) -> None:
        self._s = OsdState(settings or ev.Settings())
        self._chord = ChordDetector(self._s.settings.chord)
        self._computer: dict[int, KeyEvent] = {}   # keys the computer holds, in press order
        self._drawn: ScreenModel | None = None
        self._shown = False

    # --- public -------------------------------------------------------------

    @property
    def state(self) -> OsdState:
        """Read-only view for tests and diagnostics; do not mutate."""
        return self._s

    @property
    def kind(self) -> ScreenKind:
        return self._s.kind

    @property
    def model(self) -> ScreenModel:
        return build_model(self._s)

    @property
    def forwarding(self) -> bool:
        """True when a key typed now would (eventually) reach the computer."""
        s = self._s
        return s.kind is ScreenKind.CLOSED and s.active and s.keys_allowed and s.user is not None

    def start(self, now_ms: float) -> list[ev.Effect]:
        """The effects of power-up: draw the login screen and show the overlay."""
        self._s.last_key = now_ms
        return self._display([])

    def next_deadline(self) -> float | None:
        """The earliest time (ms) at which a ``Tick`` would change something, or None."""
        s, f, m = self._s, self._s.login, self._s.menu
        times: list[float] = []
        chord = self._chord.deadline
        if chord is not None and s.kind is ScreenKind.CLOSED and s.active:  # as in _tick
            times.append(chord)
        if f.sent_at is not None:
            times.append(f.sent_at + REQUEST_TIMEOUT_MS)
        if m.sent_at is not None:
            times.append(m.sent_at + REQUEST_TIMEOUT_MS)
        if s.kind is ScreenKind.MENU:
            if m.close_at is not None:
                times.append(m.close_at)
            if s.settings.idle_close_s:
                times.append(s.last_key + s.settings.idle_close_s * 1000.0)
        if s.kind is ScreenKind.LOGIN and s.settings.idle_close_s and (
                f.user or f.password or s.login_called):
            times.append(s.last_key + s.settings.idle_close_s * 1000.0)
        if s.user is not None and s.active and s.settings.idle_logout_s:
            times.append(s.last_key + s.settings.idle_logout_s * 1000.0)
        return min(times) if times else None

    def handle(self, event: ev.Event, now_ms: float) -> list[ev.Effect]:
        """Process one event; never raises for any event the types allow."""
        fx: list[ev.Effect] = []
        s = self._s
        was_closed = s.kind is ScreenKind.CLOSED
        match event:
            case ev.KeyInput(key=key):
                self._key(key, now_ms, fx)
            case ev.Tick():
                self._tick(now_ms, fx)
            case ev.DeviceInfo(rx_id=rx_id, firmware=firmware):
                s.rx_id, s.firmware = rx_id, firmware
            case ev.LoginResult():
                self._login_result(event, now_ms, fx)
            case ev.DeviceList(mode=mode, rows=rows):
                if s.user is not None and mode is s.menu.mode:
                    s.menu.rows = rows
                    s.menu.page = min(s.menu.page, page_count(len(rows)) - 1)
            case ev.ActionResult():
                self._action_result(event, now_ms, fx)
            case ev.NetworkStatus(up=up):
                if up != s.network_up:
                    s.network_up = up
                    s.login.status = None
            case ev.ServerStatus(reachable=reachable):
                if reachable != s.server_ok:
                    s.server_ok = reachable
                    s.login.status = None
            case ev.SessionInfo():
                if self._session_settled(event):
                    # Every watch answer repeats the session (a push to every Rx sends one
                    # to each): nothing to change, so no model to rebuild and compare.
                    return fx
                self._session(event, now_ms, fx)
            case ev.ScreenActive(active=active):
                if active != s.active:
                    self._flush_chord(fx)
                    s.active = active
                    s.last_key = now_ms
                    s.menu_open = s.menu_open and active
            case ev.SettingsChanged(settings=settings):
                if settings.chord != s.settings.chord:
                    self._flush_chord(fx)
                    self._chord = ChordDetector(settings.chord)
                hides = (settings.login_hidden and not s.settings.login_hidden
                         and s.kind is ScreenKind.LOGIN)
                s.settings = settings
                if hides and s.login.sent_at is not None:
                    s.login_called = True  # its answer is awaited on the screen that asked
                elif hides:
                    self._hide_login()     # nothing typed stays behind for the next person
        if was_closed and s.kind is not ScreenKind.CLOSED:
            self._flush_chord(fx)  # keys the detector held under the closed screen's rules
        if not self.forwarding and self._computer:
            self._release_all(fx)
        return self._display(fx)

    # --- keys -----------------------------------------------------------------

    def _key(self, key: KeyEvent, now: float, fx: list[ev.Effect]) -> None:
        s = self._s
        if not s.active:
            return  # another screen of the seat has the keyboard
        s.last_key = now
        kind = s.kind
        if kind is ScreenKind.CLOSED:
            out = self._chord.feed(key, now)
            self._send(out.forward, fx)
            if out.fired and s.user is None:
                s.login_called = True   # a wall tile's hidden login screen, called up
            elif out.fired:
                self._open_menu(fx)
        elif key.pressed:
            if kind is ScreenKind.LOGIN:
                self._login_key(key, now, fx)
            else:
                self._menu_key(key, now, fx)

    def _send(self, keys: tuple[KeyEvent, ...], fx: list[ev.Effect]) -> None:
        if not self.forwarding:
            return  # view-only session, or locked: the computer gets nothing
        for key in keys:
            if key.pressed:
                self._computer.pop(key.usage, None)
                self._computer[key.usage] = key
            elif self._computer.pop(key.usage, None) is None:
                continue  # it never saw this key go down (pressed while the OSD was open)
            fx.append(ev.ForwardKey(key))

    def _release_all(self, fx: list[ev.Effect]) -> None:
        """Release every key the computer holds: other keys first, then the modifiers."""
        held = list(self._computer.values())
        self._computer.clear()
        mods = Mod.NONE
        for key in held:
            mods |= MODIFIER_USAGES.get(key.usage, Mod.NONE)
        for key in held:
            if key.usage not in MODIFIER_USAGES:
                fx.append(ev.ForwardKey(KeyEvent(key.usage, mods, False)))
        for key in reversed(held):
            if key.usage in MODIFIER_USAGES:
                mods &= ~MODIFIER_USAGES[key.usage]
                fx.append(ev.ForwardKey(KeyEvent(key.usage, mods, False)))

    def _flush_chord(self, fx: list[ev.Effect]) -> None:
        """Before forwarding rules change: held keys arrived under the old rules, deliver so."""
        held = self._chord.flush()
        if self.forwarding:
            self._send(held, fx)

    def _login_key(self, key: KeyEvent, now: float, fx: list[ev.Effect]) -> None:
        s, f = self._s, self._s.login
        usage, mask = key.usage, mod_mask(int(key.mods))
        on_field = f.focus in (LoginFocus.USER, LoginFocus.PASSWORD)
        if usage == _K["Esc"] and s.settings.login_hidden and f.sent_at is None:
            self._hide_login()
        elif usage in (_K["Tab"], _K["Down"], _K["Up"]):
            back = usage == _K["Up"] or (usage == _K["Tab"] and mask & _SHIFT)
            i = _FOCUS_ORDER.index(f.focus) + (-1 if back else 1)
            f.focus = _FOCUS_ORDER[i % len(_FOCUS_ORDER)]
        elif usage in _ENTER_KEYS or (usage == _K["Space"] and not on_field):
            if f.focus is LoginFocus.USER:
                f.focus = LoginFocus.PASSWORD
            elif f.focus is LoginFocus.CLEAR:
                self._s.login = LoginForm(sent_at=f.sent_at)
            else:
                self._submit_login(now, fx)
        elif usage == _K["Backspace"]:
            if f.focus is LoginFocus.USER:
                f.user = f.user[:-1]
            elif f.focus is LoginFocus.PASSWORD:
                f.password = f.password[:-1]
        elif on_field and not mask & ~_SHIFT:
            ch = key.char()
            if ch is None:
                return
            if f.focus is LoginFocus.USER and len(f.user) < MAX_USER:
                f.user += ch
            elif f.focus is LoginFocus.PASSWORD and len(f.password) < MAX_PASSWORD:
                f.password += ch

    def _hide_login(self) -> None:
        """A wall tile's login screen goes away again (Esc, idle); what was typed goes too."""
        s = self._s
        s.login_called = False
        s.login = LoginForm(status=s.login.status)

    def _submit_login(self, now: float, fx: list[ev.Effect]) -> None:
        s, f = self._s, self._s.login
        if f.sent_at is not None:
            return  # one request at a time
        if not f.user:
            f.focus = LoginFocus.USER
        elif s.network_up is False:
            f.status = ResultCode.NETWORK_DOWN
        else:
            fx.append(ev.Login(f.user, f.password))
            f.sent_at = now
            f.status = None

    def _menu_key(self, key: KeyEvent, now: float, fx: list[ev.Effect]) -> None:
        m = self._s.menu
        usage = key.usage
        m.close_at = None  # the operator is still working: no auto-close under their fingers
        if usage in _MODE_KEYS:
            self._s.menu = MenuState(mode=_MODE_KEYS[usage])
            fx.append(ev.RequestDevices(_MODE_KEYS[usage]))
        elif usage == _K["F5"]:
            fx.append(ev.RequestDevices(m.mode))
        elif usage == _K["F12"]:
            self._log_out(fx)
        elif usage == _K["Esc"]:
            self._s.menu_open = False
        elif usage in (_K["PageUp"], _K["PageDown"]):
            step = -1 if usage == _K["PageUp"] else 1
            m.page = max(0, min(m.page + step, page_count(len(m.rows or ())) - 1))
        elif usage in _ENTER_KEYS:
            self._submit_action(now, fx)
        elif usage == _K["Backspace"]:
            m.text = m.text[:-1]
        elif not mod_mask(int(key.mods)) & ~_SHIFT:
            ch = key.char()
            if ch is not None and ch in INPUT_CHARS and len(m.text) < MAX_INPUT:
                m.text += ch

    def _submit_action(self, now: float, fx: list[ev.Effect]) -> None:
        m = self._s.menu
        if m.sent_at is not None or not m.text.strip():
            return
        targets = parse_targets(m.mode, m.text)
        if targets is None:
            m.feedback, m.failures = ResultCode.UNKNOWN_TARGET, ()
            return
        fx.append(_CALLS[m.mode](normalise(m.text)))
        m.sent_at, m.targets, m.feedback, m.failures = now, targets, None, ()

    # --- answers and status -------------------------------------------------

    def _login_result(self, result: ev.LoginResult, now: float, fx: list[ev.Effect]) -> None:
        s, f = self._s, self._s.login
        if s.kind is not ScreenKind.LOGIN or f.sent_at is None:
            return  # not asked for (or given up on): the session watch will tell
        f.sent_at = None
        if result.code is ResultCode.NETWORK_OK:
            self._log_in(result.user or f.user, result.keys_allowed, result.lang, now, fx)
            return
        f.status = result.code
        f.password = ""
        if result.code is ResultCode.BAD_CREDENTIALS:
            f.focus = LoginFocus.PASSWORD

    def _log_in(
        self, user: str, keys_allowed: bool, lang: Lang | None, now: float, fx: list[ev.Effect]
    ) -> None:
        """Our own login went through: open the menu in Connect mode (SPEC 1.3)."""
        s = self._s
        s.user, s.keys_allowed, s.session_lang = user, keys_allowed, lang
        s.logout_pending = False
        s.login, s.menu, s.menu_open = LoginForm(), MenuState(), True
        s.last_key = now
        fx.append(ev.RequestDevices(Mode.CONNECT))

    def _session_settled(self, info: ev.SessionInfo) -> bool:
        """``info`` is what the machine already has: ``_session`` would change nothing."""
        s = self._s
        if s.logout_pending:
            return False
        if info.user is None:
            return s.user is None
        return (info.user == s.user and info.keys_allowed == s.keys_allowed
                and info.lang == s.session_lang)

    def _session(self, info: ev.SessionInfo, now: float, fx: list[ev.Effect]) -> None:
        s = self._s
        if info.user is None:
            s.logout_pending = False
            if s.user is not None:
                self._flush_chord(fx)
                self._drop_session(ResultCode.LOGGED_OUT)
            return
        if s.logout_pending:
            return  # the server has not seen our Logout yet: this is the old session
        if s.user is None:
            if s.login.sent_at is not None:
                # The watch overtook the answer to our own Login.
                self._log_in(info.user, info.keys_allowed, info.lang, now, fx)
                return
            # Logged in at another screen of this seat: unlock, overlay stays hidden here.
            s.login, s.menu, s.menu_open = LoginForm(), MenuState(), False
            s.last_key = now
        elif info.keys_allowed != s.keys_allowed:
            self._flush_chord(fx)
        s.user, s.keys_allowed = info.user, info.keys_allowed
        s.session_lang = info.lang

    def _log_out(self, fx: list[ev.Effect]) -> None:
        """F12 or idle logout: the seat locks at once; the server is told (SPEC 1.6)."""
        fx.append(ev.Logout())
        self._s.logout_pending = True
        self._drop_session(ResultCode.LOGGED_OUT)

    def _drop_session(self, status: ResultCode) -> None:
        s = self._s
        s.user, s.keys_allowed, s.session_lang, s.menu_open = None, True, None, False
        s.login_called = False
        s.login, s.menu = LoginForm(status=status), MenuState()

    def _action_result(self, result: ev.ActionResult, now: float, fx: list[ev.Effect]) -> None:
        s, m = self._s, self._s.menu
        if s.kind is not ScreenKind.MENU:
            return  # the menu was closed meanwhile; the device list shows the outcome next time
        targets, m.sent_at, m.targets = m.targets, None, ()
        if result.code is ResultCode.NOT_LOGGED_IN:
            self._drop_session(ResultCode.NOT_LOGGED_IN)
            return
        m.feedback, m.failures = result.code, result.failures
        if result.code in SWITCHED:
            m.text = ""
            if result.action is m.mode:
                m.highlight = targets
            if s.settings.auto_close_ms:
                m.close_at = now + s.settings.auto_close_ms
            fx.append(ev.RequestDevices(m.mode))

    def _open_menu(self, fx: list[ev.Effect]) -> None:
        s = self._s
        mode, rows = s.menu.mode, s.menu.rows
        s.menu = MenuState(mode=mode, rows=rows)
        s.menu_open = True
        fx.append(ev.RequestDevices(mode))

    # --- time -----------------------------------------------------------------

    def _tick(self, now: float, fx: list[ev.Effect]) -> None:
        s, f, m = self._s, self._s.login, self._s.menu
        if s.kind is ScreenKind.CLOSED and s.active:
            self._send(self._chord.tick(now), fx)
        if f.sent_at is not None and now - f.sent_at >= REQUEST_TIMEOUT_MS:
            f.sent_at, f.status = None, ResultCode.SERVER_UNREACHABLE
        if m.sent_at is not None and now - m.sent_at >= REQUEST_TIMEOUT_MS:
            m.sent_at, m.targets, m.failures = None, (), ()
            m.feedback = ResultCode.SERVER_UNREACHABLE
        idle_ms = now - s.last_key
        idle_close = s.settings.idle_close_s * 1000.0
        if s.kind is ScreenKind.MENU and (
            (m.close_at is not None and now >= m.close_at) or (idle_close and idle_ms >= idle_close)
        ):
            s.menu_open = False
        if (
            s.kind is ScreenKind.LOGIN and idle_close and idle_ms >= idle_close
            and f.sent_at is None and (f.user or f.password or s.login_called)
        ):
            self._hide_login()  # a half-typed password does not stay
        idle_logout = s.settings.idle_logout_s * 1000.0
        if s.user is not None and s.active and idle_logout and idle_ms >= idle_logout:
            self._flush_chord(fx)
            self._log_out(fx)

    # --- display --------------------------------------------------------------

    def _display(self, fx: list[ev.Effect]) -> list[ev.Effect]:
        model = build_model(self._s)
        if model.visible:
            if model != self._drawn:
                fx.append(ev.Draw(model))
                self._drawn = model
            if not self._shown:
                fx.append(ev.Overlay(True))
                self._shown = True
        else:
            self._drawn = None
            if self._shown:
                fx.append(ev.Overlay(False))
                self._shown = False
        return fx

