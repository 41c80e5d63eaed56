"""What the OSD shows: plain frozen data, built by ``osd.view`` and drawn by ``osd.render``.

The model holds final texts (already in the OSD language) and colour roles, never
pixels. Tests assert on it; the renderer needs nothing else. A password is never in
the model, only its mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvm_protocol.results import Lang

ROWS_PER_PAGE = 8


def page_count(rows: int) -> int:
    """Pages of a device list of `rows` rows (an empty list still has one page)."""
    return max(1, -(-rows // ROWS_PER_PAGE))


class Colour(Enum):
    """Colour roles of the manual (SPEC 1.2); the renderer maps them to RGB."""

    BROWN = "brown"                  # fixed interface text: labels, titles, key names
    WHITE = "white"                  # dynamic information: version, user, typed text, results
    YELLOW = "yellow"                # operation prompts; device row: connected / same signal
    BRIGHT_YELLOW = "bright_yellow"  # the mode word, the focused item, rows just switched to
    GREY = "grey"                    # device row: online and available
    RED = "red"                      # device row: offline; failed results and faults


class ScreenKind(Enum):
    LOGIN = "login"    # nobody logged in: the seat is locked
    MENU = "menu"      # the OSD menu is open
    CLOSED = "closed"  # overlay hidden; logged in: keys go to the computer (else a locked tile)


class Mode(Enum):
    """The menu's operation, with the wire names of the seat API."""

    CONNECT = "connect"
    PUSH = "push"
    FETCH = "fetch"


class LoginFocus(Enum):
    """Tab order of the login screen."""

    USER = "user"
    PASSWORD = "password"  # noqa: S105 - a focus name, not a secret
    LOGIN = "login"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    colour: Colour


@dataclass(frozen=True, slots=True)
class FieldView:
    """A labelled input field; ``value`` is the mask for a password."""

    label: Text
    value: Text
    focused: bool
    masked: bool = False


@dataclass(frozen=True, slots=True)
class ButtonView:
    label: Text
    focused: bool


@dataclass(frozen=True, slots=True)
class LoginView:
    title: Text
    user: FieldView
    password: FieldView
    buttons: tuple[ButtonView, ...]   # Login, Clear
    status: Text                      # network / server / credential status line ("" = unknown)
    help: Text                        # key hints
    focus: LoginFocus
    busy: bool                        # a login request is on its way


@dataclass(frozen=True, slots=True)
class InfoLine:
    label: Text
    value: Text


@dataclass(frozen=True, slots=True)
class RowView:
    """One device of the list; ``colour`` is the row's state colour."""

    id: str
    name: str
    colour: Colour


@dataclass(frozen=True, slots=True)
class PageView:
    number: int          # 1-based
    count: int           # >= 1
    text: Text           # e.g. "第 1/3 页"
    keys: Text           # e.g. "PgUp/PgDn 翻页"; empty text when there is one page


@dataclass(frozen=True, slots=True)
class InputView:
    mode: Mode
    mode_word: Text      # 【连接】 in bright yellow
    text: Text           # what the operator typed, live
    prompt: Text         # what to type, in yellow
    busy: bool           # a request is on its way


@dataclass(frozen=True, slots=True)
class KeyHelp:
    key: Text
    label: Text


@dataclass(frozen=True, slots=True)
class MenuView:
    title: Text
    info: tuple[InfoLine, ...]              # firmware version, user(rxid)
    notices: tuple[Text, ...]               # view-only, network faults: only when they apply
    list_title: Text
    columns: tuple[Text, Text]              # "ID", "name" headers
    rows: tuple[RowView, ...]               # this page only, at most ROWS_PER_PAGE
    empty: Text | None                      # shown instead of rows: loading / no devices
    page: PageView
    input: InputView
    feedback: Text | None                   # result of the last operation
    function_keys: tuple[KeyHelp, ...]


@dataclass(frozen=True, slots=True)
class ScreenModel:
    """Everything the renderer draws; exactly one of ``login``/``menu`` is set unless closed."""

    kind: ScreenKind
    lang: Lang
    pointer_visible: bool = False
    login: LoginView | None = None
    menu: MenuView | None = None

    @property
    def visible(self) -> bool:
        return self.kind is not ScreenKind.CLOSED

