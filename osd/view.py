"""What to show for a state: the OSD's interface labels and ``build_model`` (pure).

Result texts (status line, feedback) come from ``kvm_protocol.results`` only; the labels
below are the OSD's own fixed interface text, in each language.
"""

from __future__ import annotations

from kvm_protocol.results import Lang, ResultCode, push_summary
from osd.model import (
    ROWS_PER_PAGE,
    ButtonView,
    Colour,
    FieldView,
    InfoLine,
    InputView,
    KeyHelp,
    LoginFocus,
    LoginView,
    MenuView,
    Mode,
    PageView,
    RowView,
    ScreenKind,
    ScreenModel,
    Text,
    page_count,
)
from osd.state import OsdState

LABELS: dict[str, tuple[str, str]] = {  # key: (zh_CN, en)
    "login_title": ("用户登录", "User login"),
    "user": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login": ("登录", "Log in"),
    "clear": ("清除", "Clear"),
    "login_help": ("Tab 切换   Enter 确认", "Tab next   Enter confirm"),
    "login_busy": ("正在登录…", "Logging in…"),
    "menu_title": ("OSD菜单", "OSD menu"),
    "firmware": ("固件版本", "Firmware"),
    "current_user": ("当前用户", "User"),
    "list_connect": ("发送终端列表", "Transmitters"),
    "list_rx": ("接收终端列表", "Receivers"),
    "col_id": ("编号", "ID"),
    "col_name": ("名称", "Name"),
    "loading": ("正在获取设备列表…", "Loading the device list…"),
    "no_devices": ("没有可用的设备", "No devices"),
    "page": ("第 {n}/{m} 页", "Page {n}/{m}"),
    "page_keys": ("PgUp/PgDn 翻页", "PgUp/PgDn page"),
    "mode_connect": ("【连接】", "[Connect]"),
    "mode_push": ("【推送】", "[Push]"),
    "mode_fetch": ("【获取】", "[Fetch]"),
    "prompt_connect": ("输入发送终端ID或热键,按Enter连接", "Type a Tx ID or hotkey, then Enter"),
    "prompt_push": (
        "输入接收终端ID(用逗号分隔)、热键或all,按Enter推送",
        "Type Rx IDs (comma separated), a hotkey or all, then Enter",
    ),
    "prompt_fetch": ("输入接收终端ID或热键,按Enter获取", "Type an Rx ID or hotkey, then Enter"),
    "busy": ("正在处理…", "Working…"),
    "key_connect": ("连接", "Connect"),
    "key_push": ("推送", "Push"),
    "key_fetch": ("获取", "Fetch"),
    "key_refresh": ("刷新", "Refresh"),
    "key_logout": ("注销", "Log out"),
    "key_close": ("关闭", "Close"),
}

_ROW_COLOURS = {"grey": Colour.GREY, "yellow": Colour.YELLOW, "red": Colour.RED}
_FUNCTION_KEYS = (
    ("F1", "key_connect"),
    ("F2", "key_push"),
    ("F3", "key_fetch"),
    ("F5", "key_refresh"),
    ("F12", "key_logout"),
    ("Esc", "key_close"),
)


def label(key: str, lang: Lang) -> str:
    """An interface label in `lang`."""
    zh, en = LABELS[key]
    return zh if lang == "zh_CN" else en


def result_text(code: ResultCode, lang: Lang) -> Text:
    """A result as the OSD shows it: white when it went well, red when not."""
    return Text(code.text(lang), Colour.WHITE if code.ok else Colour.RED)


def build_model(s: OsdState) -> ScreenModel:
    """The screen model of a state (pure)."""
    kind = s.kind
    if kind is ScreenKind.LOGIN:
        return ScreenModel(kind, s.lang, login=_login(s))
    if kind is ScreenKind.MENU:
        return ScreenModel(kind, s.lang, menu=_menu(s))
    return ScreenModel(kind, s.lang)


def _brown(key: str, lang: Lang) -> Text:
    return Text(label(key, lang), Colour.BROWN)


def _login(s: OsdState) -> LoginView:
    f, lang = s.login, s.lang

    def field_view(key: str, value: str, focus: LoginFocus, masked: bool) -> FieldView:
        return FieldView(_brown(key, lang), Text(value, Colour.WHITE), f.focus is focus, masked)

    def button(key: str, focus: LoginFocus) -> ButtonView:
        on = f.focus is focus
        return ButtonView(Text(label(key, lang), Colour.BRIGHT_YELLOW if on else Colour.BROWN), on)

    code = f.status or s.connectivity
    if f.sent_at is not None:
        status = Text(label("login_busy", lang), Colour.WHITE)
    elif code is None:
        status = Text("", Colour.WHITE)
    else:
        status = result_text(code, lang)
    return LoginView(
        title=_brown("login_title", lang),
        user=field_view("user", f.user, LoginFocus.USER, False),
        password=field_view("password", "*" * len(f.password), LoginFocus.PASSWORD, True),
        buttons=(button("login", LoginFocus.LOGIN), button("clear", LoginFocus.CLEAR)),
        status=status,
        help=Text(label("login_help", lang), Colour.YELLOW),
        focus=f.focus,
        busy=f.sent_at is not None,
    )


def _menu(s: OsdState) -> MenuView:
    m, lang = s.menu, s.lang
    notices: list[Text] = []
    if not s.keys_allowed:
        notices.append(Text(ResultCode.VIEW_ONLY.text(lang), Colour.YELLOW))
    if s.connectivity not in (None, ResultCode.NETWORK_OK):
        notices.append(result_text(s.connectivity, lang))
    rows = m.rows or ()
    count = page_count(len(rows))
    page = min(m.page, count - 1)
    shown = rows[page * ROWS_PER_PAGE : (page + 1) * ROWS_PER_PAGE]
    everything = "all" in m.highlight
    row_views = tuple(
        RowView(
            r.id,
            r.name,
            Colour.BRIGHT_YELLOW
            if (everything or r.id in m.highlight) and r.colour != "red"
            else _ROW_COLOURS.get(r.colour, Colour.GREY),
        )
        for r in shown
    )
    empty = None
    if m.rows is None:
        empty = Text(label("loading", lang), Colour.WHITE)
    elif not rows:
        empty = Text(label("no_devices", lang), Colour.WHITE)
    feedback = None
    if m.sent_at is not None:
        feedback = Text(label("busy", lang), Colour.WHITE)
    elif m.feedback is not None:
        feedback = result_text(m.feedback, lang)
        if m.failures:
            feedback = Text(f"{feedback.text}: {push_summary(list(m.failures), lang)}", Colour.RED)
    user = f"{s.user}({s.rx_id})" if s.rx_id else str(s.user)
    mode = m.mode.value
    return MenuView(
        title=_brown("menu_title", lang),
        info=(
            InfoLine(_brown("firmware", lang), Text(s.firmware, Colour.WHITE)),
            InfoLine(_brown("current_user", lang), Text(user, Colour.WHITE)),
        ),
        notices=tuple(notices),
        list_title=_brown("list_connect" if m.mode is Mode.CONNECT else "list_rx", lang),
        columns=(_brown("col_id", lang), _brown("col_name", lang)),
        rows=row_views,
        empty=empty,
        page=PageView(
            page + 1,
            count,
            Text(label("page", lang).format(n=page + 1, m=count), Colour.WHITE),
            Text(label("page_keys", lang) if count > 1 else "", Colour.YELLOW),
        ),
        input=InputView(
            m.mode,
            Text(label(f"mode_{mode}", lang), Colour.BRIGHT_YELLOW),
            Text(m.text, Colour.WHITE),
            Text(label(f"prompt_{mode}", lang), Colour.YELLOW),
            m.sent_at is not None,
        ),
        feedback=feedback,
        function_keys=tuple(
            KeyHelp(Text(key, Colour.YELLOW), _brown(name, lang)) for key, name in _FUNCTION_KEYS
        ),
    )
