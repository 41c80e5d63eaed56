"""The one list of result codes, with the exact texts the OSD shows (SPEC 2.5)."""

from __future__ import annotations

from enum import Enum
from typing import Literal

Lang = Literal["zh_CN", "en"]
LANGS: tuple[Lang, ...] = ("zh_CN", "en")


class ResultCode(Enum):
    """A result shared by server answers and OSD feedback; value is the stable wire name."""

    NETWORK_OK = "NETWORK_OK"
    NETWORK_DOWN = "NETWORK_DOWN"
    SERVER_UNREACHABLE = "SERVER_UNREACHABLE"
    BAD_CREDENTIALS = "BAD_CREDENTIALS"
    CONNECTED = "CONNECTED"
    CONNECT_FAILED = "CONNECT_FAILED"
    OUT_OF_SCOPE = "OUT_OF_SCOPE"
    SAME_SOURCE = "SAME_SOURCE"
    NO_VIDEO = "NO_VIDEO"
    OFFLINE = "OFFLINE"
    UNKNOWN_TARGET = "UNKNOWN_TARGET"
    PUSHED = "PUSHED"
    NOT_CONNECTED = "NOT_CONNECTED"
    FETCHED = "FETCHED"
    # Beyond the manual's list: answers the manual leaves implicit.
    PUSH_PARTIAL = "PUSH_PARTIAL"
    LOGIN_NOT_ALLOWED = "LOGIN_NOT_ALLOWED"
    RATE_LIMITED = "RATE_LIMITED"
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
    NOT_LOGGED_IN = "NOT_LOGGED_IN"
    VIEW_ONLY = "VIEW_ONLY"
    DISCONNECTED = "DISCONNECTED"
    LOGGED_OUT = "LOGGED_OUT"

    def text(self, lang: Lang = "zh_CN") -> str:
        """The text shown to the operator in `lang`."""
        return TEXTS[self][lang]

    @property
    def ok(self) -> bool:
        """True for the codes that mean the operation succeeded."""
        return self in SUCCESS


TEXTS: dict[ResultCode, dict[Lang, str]] = {
    ResultCode.NETWORK_OK: {"zh_CN": "网络正常", "en": "Network OK"},
    ResultCode.NETWORK_DOWN: {"zh_CN": "网络断开", "en": "Network down"},
    ResultCode.SERVER_UNREACHABLE: {
        "zh_CN": "与服务器通讯失败,请稍后重试!",
        "en": "Cannot reach the server, please try again later",
    },
    ResultCode.BAD_CREDENTIALS: {"zh_CN": "用户或密码错误", "en": "Wrong user name or password"},
    ResultCode.CONNECTED: {"zh_CN": "连接成功", "en": "Connected"},
    ResultCode.CONNECT_FAILED: {"zh_CN": "连接失败", "en": "Connection failed"},
    ResultCode.OUT_OF_SCOPE: {"zh_CN": "超出范围", "en": "Out of permission scope"},
    ResultCode.SAME_SOURCE: {"zh_CN": "相同视频源", "en": "Same video source"},
    ResultCode.NO_VIDEO: {"zh_CN": "此设备无视频", "en": "This device has no video"},
    ResultCode.OFFLINE: {"zh_CN": "此设备不在线", "en": "This device is offline"},
    ResultCode.UNKNOWN_TARGET: {"zh_CN": "热键和ID不存在", "en": "No such hotkey or ID"},
    ResultCode.PUSHED: {"zh_CN": "推送成功", "en": "Pushed"},
    ResultCode.NOT_CONNECTED: {
        "zh_CN": "获取视频切换状态失败",
        "en": "This receiver is not connected to any source",
    },
    ResultCode.FETCHED: {"zh_CN": "获取成功", "en": "Fetched"},
    ResultCode.PUSH_PARTIAL: {"zh_CN": "部分推送失败", "en": "Push failed for some targets"},
    ResultCode.LOGIN_NOT_ALLOWED: {
        "zh_CN": "此用户不能在本坐席登录",
        "en": "This user may not log in at this seat",
    },
    ResultCode.RATE_LIMITED: {
        "zh_CN": "登录尝试过多,请稍后重试",
        "en": "Too many login attempts, please wait",
    },
    ResultCode.ACCOUNT_DISABLED: {"zh_CN": "用户已停用", "en": "This user is disabled"},
    ResultCode.NOT_LOGGED_IN: {"zh_CN": "请先登录", "en": "Please log in first"},
    ResultCode.VIEW_ONLY: {
        "zh_CN": "仅查看,键盘鼠标不可用",
        "en": "View only: keyboard and mouse disabled",
    },
    ResultCode.DISCONNECTED: {"zh_CN": "已断开", "en": "Disconnected"},
    ResultCode.LOGGED_OUT: {"zh_CN": "已注销", "en": "Logged out"},
}

SUCCESS: frozenset[ResultCode] = frozenset(
    {
        ResultCode.NETWORK_OK,
        ResultCode.CONNECTED,
        ResultCode.PUSHED,
        ResultCode.FETCHED,
        ResultCode.DISCONNECTED,
        ResultCode.LOGGED_OUT,
    }
)


def push_summary(failures: list[tuple[str, ResultCode]], lang: Lang = "zh_CN") -> str:
    """Feedback for a multi-target push where some targets failed (SPEC 2.3).

    Names each failed target with its reason, e.g. ``5002:超出范围 5003:此设备不在线``.
    """
    sep = ":" if lang == "zh_CN" else ": "
    return " ".join(f"{target}{sep}{code.text(lang)}" for target, code in failures)
