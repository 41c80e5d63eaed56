"""Client of the management server's REST API (docs/API.md), as one Rx device.

Every call returns one typed outcome and never raises for anything the network or
the server can do: connection refused, timeouts, 5xx, bad JSON and malformed bodies
all become ``ServerUnreachable(reason)``; ``Pending`` while the device is not adopted;
``Refused`` for any other 4xx. Operator decisions (wrong password, out of scope...)
are answers, not failures.

Threading: ``announce``/``report_state``/operator calls share one keep-alive session
and are serialised by a lock; ``watch`` has its own session so that a long poll never
delays a key press. ``abort()`` shuts down in-flight sockets so a stopping controller
does not wait for a 25 s long poll to end.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import random
import re
import secrets
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kvm_protocol.results import LANGS, Lang, ResultCode

SECRET_FILE = "device-secret"  # noqa: S105 - a file name, not a secret
_SECRET_RE = re.compile(r"[0-9a-f]{64}")
_TX_ID_RE = re.compile(r"[0-9]{4}")
BUSY_RETRIES = 3   # extra tries of a call answered 503 (about 0.05 + 0.1 + 0.2 s apart)

Mode = Literal["connect", "push", "fetch"]
Colour = Literal["grey", "yellow", "red"]


# --- outcomes ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ServerUnreachable:
    """The server gave no usable answer: refused, timeout, 5xx, bad JSON or a malformed body."""

    reason: str


@dataclass(frozen=True, slots=True)
class Pending:
    """The server knows this device but an admin has not adopted it yet."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A 4xx error other than pending: bad credential (401), secret conflict (409), validation..."""

    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Adopted:
    id: str
    name: str
    heads: int


@dataclass(frozen=True, slots=True)
class Reported:
    generation: int


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """What one Rx head should show; ``source`` is (Tx ID, Tx head) or None for nothing."""

    head: int
    source: tuple[str, int] | None
    set_by: str = ""
    pushed: bool = False


@dataclass(frozen=True, slots=True)
class SessionInfo:
    user: str
    role: str = "operator"
    lang: Lang = "zh_CN"
    keys_allowed: bool = True


@dataclass(frozen=True, slots=True)
class SeatInfo:
    name: str
    screens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Watched:
    """One answer of the long poll: the whole desired state of this Rx at ``generation``."""

    generation: int
    routing: tuple[RouteEntry, ...]
    session: SessionInfo | None
    settings: Mapping[str, Any]   # as sent; ``osd.events.Settings.from_api`` validates it
    seat: SeatInfo | None
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    result: ResultCode
    user: str = ""
    role: str = ""
    lang: Lang | None = None


@dataclass(frozen=True, slots=True)
class TargetResult:
    id: str
    result: ResultCode


@dataclass(frozen=True, slots=True)
class ActionAnswer:
    """Answer to connect/push/fetch/logout; ``text`` is the server's text per language."""

    result: ResultCode
    text: Mapping[str, str] = field(default_factory=dict)
    targets: tuple[TargetResult, ...] = ()
    summary: Mapping[str, str] = field(default_factory=dict)

    def feedback(self, lang: Lang) -> str:
        """The exact text to show: the push summary when there is one, else the code's text."""
        if self.summary.get(lang):
            return self.summary[lang]
        return self.result.text(lang)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    name: str
    colour: Colour
    online: bool


@dataclass(frozen=True, slots=True)
class DeviceList:
    mode: Mode
    rows: tuple[DeviceRow, ...]


Failure = ServerUnreachable | Pending | Refused
AnnounceOutcome = Adopted | Failure
ReportOutcome = Reported | Failure
WatchOutcome = Watched | Failure
LoginOutcome = LoginAnswer | Failure
ActionOutcome = ActionAnswer | Failure
DevicesOutcome = DeviceList | Failure


class BadAnswer(ValueError):
    """A 2xx body that does not have the documented shape."""


# --- secret ------------------------------------------------------------------

class StateDirError(Exception):
    """The state directory or its secret file cannot be used; the message says why."""


def load_or_create_secret(state_dir: Path) -> str:
    """The device's own secret: read from ``state_dir``, or generated once and stored mode 0600."""
    path = state_dir / SECRET_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateDirError(f"cannot create state dir {state_dir}: {exc.strerror}") from None
    secret = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateDirError(f"cannot write {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        return secret
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as exc:
        raise StateDirError(f"cannot read {path}: {exc.strerror}") from None
    if not _SECRET_RE.fullmatch(text):
        raise StateDirError(
            f"{path} is not a device secret (64 hex digits); restore it, or delete it and "
            "have an admin reset this device on the server"
        )
    return text


# --- abortable keep-alive connection ------------------------------------------------

class _Channel:
    """One keep-alive HTTP/1.1 connection (``http.client``), used by one caller at a time.

    ``http.client`` rather than requests: a controller host runs a thousand of these, and
    a call through requests costs about three times the CPU (1.8 vs 0.6 ms measured on the
    lab machine), which is what a push to every Rx waits for. ``abort()`` shuts the socket
    of the request in flight from another thread.
    """

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        try:
            self._port = parts.port or (443 if self._https else 80)
        except ValueError:   # a port that is not a number: every call fails, as unreachable
            self._port = 0
        self._valid = parts.scheme in ("http", "https") and bool(self._host) and bool(self._port)
        self.prefix = parts.path.rstrip("/")
        self.lock = threading.Lock()           # one caller at a time
        self._conn_lock = threading.Lock()     # guards ``_conn`` against abort() and close()
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                connect_timeout: float, read_timeout: float) -> tuple[int, bytes]:
        """One request and its whole answer; call with ``lock`` held.

        Raises ``TimeoutError`` (no connection or no answer in time), or another
        ``OSError``/``http.client.HTTPException`` when the server cannot be reached or the
        connection broke.
        """
        conn = self._connection(connect_timeout)
        try:
            assert conn.sock is not None
            conn.sock.settimeout(read_timeout)
            conn.request(method, self.prefix + path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self._drop(conn)
            raise
        if resp.will_close:
            self._drop(conn)
        return resp.status, data

    def _connection(self, connect_timeout: float) -> http.client.HTTPConnection:
        with self._conn_lock:
            conn = self._conn
        if conn is not None and conn.sock is not None and not _idle_socket_usable(conn.sock):
            self._drop(conn)   # the server closed the idle connection (restart, timeout)
            conn = None
        if not self._valid:
            raise http.client.InvalidURL("not an http(s) URL of a server")
        if conn is None or conn.sock is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=connect_timeout)
            try:
                conn.connect()
            except BaseException:
                conn.close()
                raise
            assert conn.sock is not None
            with contextlib.suppress(OSError):
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._conn_lock:
                self._conn = conn
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        with self._conn_lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    def abort(self) -> None:
        """Shut down the request in flight, if any (it then fails at once)."""
        with self._conn_lock:
            conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.abort()
        with self._conn_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _idle_socket_usable(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed by the server (or is broken)."""
    poller = select.poll()   # not select.select: a controller host has more than 1,024 fds
    try:
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


# --- parsing ---------------------------------------------------------------------

def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadAnswer(f"{what} is not an object")
    return value


def _str(d: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if not isinstance(value, str):
        raise BadAnswer(f"{key!r} is not a string")
    return value


def _int(d: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = d.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadAnswer(f"{key!r} is not an integer")
    return value


def _bool(d: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise BadAnswer(f"{key!r} is not a boolean")
    return value


def _lang(value: Any, default: Lang | None) -> Lang | None:
    if value is None:
        return default
    for lang in LANGS:
        if value == lang:
            return lang
    raise BadAnswer(f"unknown language {value!r}")


def _code(value: Any) -> ResultCode:
    try:
        return ResultCode(value)
    except ValueError:
        raise BadAnswer(f"unknown result code {value!r}") from None


def parse_source(value: Any) -> tuple[str, int] | None:
    """``"0001:2"`` → ("0001", 2); None → None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadAnswer("source is not a string")
    tx_id, sep, head = value.partition(":")
    if not sep or not _TX_ID_RE.fullmatch(tx_id) or not head.isdigit() or not 1 <= int(head) <= 4:
        raise BadAnswer(f"bad source {value!r}")
    return tx_id, int(head)


def format_source(source: tuple[str, int] | None) -> str | None:
    return None if source is None else f"{source[0]}:{source[1]}"


def parse_watch(body: Any) -> Watched:
    d = _obj(body, "watch answer")
    routing = d.get("routing", [])
    if not isinstance(routing, list):
        raise BadAnswer("'routing' is not a list")
    entries = []
    for item in routing:
        r = _obj(item, "routing entry")
        head = _int(r, "head")
        if not 1 <= head <= 4:
            raise BadAnswer(f"bad head {head}")
        entries.append(RouteEntry(head, parse_source(r.get("source")),
                                  str(r.get("set_by") or ""), bool(r.get("pushed", False))))
    session = None
    if d.get("session") is not None:
        s = _obj(d["session"], "session")
        session = SessionInfo(
            user=_str(s, "user"),
            role=_str(s, "role", "operator"),
            lang=_lang(s.get("lang"), "zh_CN") or "zh_CN",
            keys_allowed=_bool(s, "keys_allowed", True),
        )
    settings = d.get("settings") or {}
    if not isinstance(settings, dict):
        raise BadAnswer("'settings' is not an object")
    seat = None
    if d.get("seat") is not None:
        se = _obj(d["seat"], "seat")
        screens = se.get("screens", [])
        if not isinstance(screens, list) or not all(isinstance(x, str) for x in screens):
            raise BadAnswer("'screens' is not a list of IDs")
        seat = SeatInfo(_str(se, "name", ""), tuple(screens))
    return Watched(
        generation=_int(d, "generation"),
        routing=tuple(entries),
        session=session,
        settings=settings,
        seat=seat,
        id=str(d.get("id") or ""),
        name=str(d.get("name") or ""),
    )


def state_body(*, online: bool, network_up: bool,
               heads: list[tuple[int, tuple[str, int] | None, bool]]) -> dict[str, Any]:
    """The ``device/state`` body of an Rx: (head, source or None, video) per head."""
    return {
        "online": online,
        "network_up": network_up,
        "heads": [{"head": h, "source": format_source(src), "video": video}
                  for h, src, video in heads],
    }


def parse_action(body: Any) -> ActionAnswer:
    d = _obj(body, "answer")
    text = d.get("text") or {}
    summary = d.get("summary") or {}
    if not isinstance(text, dict) or not isinstance(summary, dict):
        raise BadAnswer("'text'/'summary' is not an object")
    targets = []
    for item in d.get("targets") or []:
        t = _obj(item, "target")
        targets.append(TargetResult(str(t.get("id", "")), _code(t.get("result"))))
    return ActionAnswer(
        result=_code(d.get("result")),
        text={k: v for k, v in text.items() if isinstance(v, str)},
        targets=tuple(targets),
        summary={k: v for k, v in summary.items() if isinstance(v, str)},
    )


def parse_devices(body: Any, mode: Mode) -> DeviceList:
    d = _obj(body, "device list")
    rows_in = d.get("rows")
    if not isinstance(rows_in, list):
        raise BadAnswer("'rows' is not a list")
    rows = []
    for item in rows_in:
        r = _obj(item, "row")
        colour = r.get("colour", "grey")
        if colour not in ("grey", "yellow", "red"):
            raise BadAnswer(f"bad colour {colour!r}")
        rows.append(DeviceRow(_str(r, "id"), _str(r, "name", ""), colour,
                              _bool(r, "online", colour != "red")))
    return DeviceList(mode, tuple(rows))


# --- the client --------------------------------------------------------------------

class ServerClient:
    """The REST API as seen by one Rx: device calls and operator calls on behalf of its seat.

    Three channels (keep-alive connections), so that nothing waits behind anything else:
    ``ops`` for the operator's login/logout/connect/push/fetch, ``bg`` for announce, state
    reports and device lists, ``watch`` for the long poll.
    """

    def __init__(self, base_url: str, serial: str, secret: str, *,
                 call_timeout: float = 3.0, connect_timeout: float = 1.5,
                 watch_timeout: float = 25.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.serial = serial
        self._secret = secret
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.watch_timeout = watch_timeout
        self._ops = _Channel(self.base_url)
        self._bg = _Channel(self.base_url)
        self._watch = _Channel(self.base_url)

    # device side -------------------------------------------------------------------
    def announce(self, *, heads: int, firmware: str) -> AnnounceOutcome:
        """Announce this Rx; ``Adopted`` once an admin adopted it, ``Pending`` before."""
        body = {"serial": self.serial, "kind": "rx", "heads": heads, "firmware": firmware,
                "secret": self._secret}
        res = self._request("POST", "/api/v1/device/announce", body, self._bg, auth=False)
        if isinstance(res, (ServerUnreachable, Pending, Refused)):
            return res
        status, data = res
        try:
            d = _obj(data, "announce answer")
            if status == 202 or d.get("state") == "pending":
                return Pending()
            return Adopted(_str(d, "id"), str(d.get("name") or ""), _int(d, "heads", heads))
        except BadAnswer as exc:
            return ServerUnreachable(f"bad answer from server: {exc}")

    def report_state(self, *, online: bool, network_up: bool,
                     heads: list[tuple[int, tuple[str, int] | None, bool]]) -> ReportOutcome:
        """Heartbeat with the actual state: (head, source or None, video) per head."""
        body = state_body(online=online, network_up=network_up, heads=heads)
        res = self._request("POST", "/api/v1/device/state", body, self._bg)
        if isinstance(res, (ServerUnreachable, Pending, Refused)):
            return res
        try:
            return Reported(_int(_obj(res[1], "state answer"), "generation", 0))
        except BadAnswer as exc:
            return ServerUnreachable(f"bad answer from server: {exc}")

    def watch(self, generation: int, timeout: float | None = None) -> WatchOutcome:
        """Long poll: returns when the generation passes ``generation`` or at ``timeout``."""
        wait = self.watch_timeout if timeout is None else timeout
        wait_s = max(0, math.ceil(wait))   # the server takes whole seconds
        res = self._request(
            "GET", f"/api/v1/device/watch?generation={int(generation)}&timeout={wait_s}", None,
            self._watch, read_timeout=wait_s + 5.0, busy_retries=0,
        )
        if isinstance(res, (ServerUnreachable, Pending, Refused)):
            return res
        try:
            return parse_watch(res[1])
        except BadAnswer as exc:
            return ServerUnreachable(f"bad answer from server: {exc}")

    # operator side -------------------------------------------------------------------
    def login(self, user: str, password: str) -> LoginOutcome:
        res = self._request("POST", "/api/v1/seat/login", {"user": user, "password": password},
                            self._ops)
        if isinstance(res, (ServerUnreachable, Pending)):
            return res
        if isinstance(res, Refused):
            return LoginAnswer(ResultCode.RATE_LIMITED) if res.code == "RATE_LIMITED" else res
        try:
            d = _obj(res[1], "login answer")
            return LoginAnswer(_code(d.get("result")), str(d.get("user") or ""),
                               str(d.get("role") or ""), _lang(d.get("lang"), None))
        except BadAnswer as exc:
            return ServerUnreachable(f"bad answer from server: {exc}")

    def logout(self) -> ActionOutcome:
        return self._action("/api/v1/seat/logout", {})

    def devices(self, mode: Mode) -> DevicesOutcome:
        res = self._request("GET", f"/api/v1/seat/devices?mode={mode}", None, self._bg)
        if isinstance(res, (ServerUnreachable, Pending, Refused)):
            return res
        try:
            return parse_devices(res[1], mode)
        except BadAnswer as exc:
            return ServerUnreachable(f"bad answer from server: {exc}")

    def connect(self, text: str) -> ActionOutcome:
        return self._action("/api/v1/seat/connect", {"input": text})

    def push(self, text: str) -> ActionOutcome:
        return self._action("/api/v1/seat/push", {"input": text})

    def fetch(self, text: str) -> ActionOutcome:
        return self._action("/api/v1/seat/fetch", {"input": text})

    @property
    def credential(self) -> tuple[str, str]:
        """(serial, secret) of this device, for a call that carries it in the body."""
        return self.serial, self._secret

    def abort(self) -> None:
        """Shut down in-flight requests (a blocked long poll returns ``ServerUnreachable``)."""
        for channel in (self._ops, self._bg, self._watch):
            channel.abort()

    def abort_watch(self) -> None:
        """Shut down only the long poll in flight, if any."""
        self._watch.abort()

    def close(self) -> None:
        for channel in (self._ops, self._bg, self._watch):
            channel.close()

    # plumbing ---------------------------------------------------------------------------
    def _action(self, path: str, body: dict[str, Any]) -> ActionOutcome:
        res = self._request("POST", path, body, self._ops)
        if isinstance(res, (ServerUnreachable, Pending)):
            return res
        if isinstance(res, Refused):
            return ActionAnswer(ResultCode.RATE_LIMITED) if res.code == "RATE_LIMITED" else res
        try:
            return parse_action(res[1])
        except BadAnswer as exc:
            return ServerUnreachable(f"bad answer from server: {exc}")

    def _request(self, method: str, path: str, body: dict[str, Any] | None, channel: _Channel,
                 *, auth: bool = True, read_timeout: float | None = None,
                 busy_retries: int = BUSY_RETRIES) -> tuple[int, Any] | Failure:
        res = self._request_once(method, path, body, channel, auth, read_timeout)
        # 503 means "nothing was done, try again" (e.g. a busy database): a few times, soon.
        for attempt in range(busy_retries):
            if res != _BUSY:
                break
            time.sleep(random.uniform(0.5, 1.5) * 0.05 * 2 ** attempt)
            res = self._request_once(method, path, body, channel, auth, read_timeout)
        return res

    def _request_once(self, method: str, path: str, body: dict[str, Any] | None,
                      channel: _Channel, auth: bool,
                      read_timeout: float | None) -> tuple[int, Any] | Failure:
        headers = {"Authorization": f"Device {self.serial}:{self._secret}"} if auth else {}
        return exchange(channel, method, path, body, headers, self.connect_timeout,
                        read_timeout or self.call_timeout)


def exchange(channel: _Channel, method: str, path: str, body: dict[str, Any] | None,
             headers: dict[str, str], connect_timeout: float,
             read_timeout: float) -> tuple[int, Any] | Failure:
    """One JSON call on ``channel``: (status, decoded body) for a 2xx answer, else the
    ``Failure`` it means (see the module docstring). ``headers`` are added to the usual ones."""
    headers = {"Accept": "application/json", "User-Agent": "kvm-rx", **headers}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    with channel.lock:
        try:
            status, raw = channel.request(method, path, payload, headers, connect_timeout,
                                          read_timeout)
        except TimeoutError:
            return ServerUnreachable("the server did not answer in time")
        except (OSError, http.client.HTTPException):
            return ServerUnreachable("cannot connect to the server")
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
        if 200 <= status < 300:
            return ServerUnreachable(f"bad JSON from server (HTTP {status})")
    if status >= 500 or status < 200 or 300 <= status < 400:
        return _BUSY if status == 503 else ServerUnreachable(f"server error (HTTP {status})")
    if status >= 400:
        return error_outcome(data, status)
    return status, data


def error_outcome(data: Any, status: int) -> Pending | Refused:
    """The outcome of a 4xx error body ``{"error": {"code": ..., "message": ...}}``."""
    code, message = _error_of(data, status)
    return Pending() if code == "PENDING" else Refused(status, code, message)


_BUSY = ServerUnreachable("server busy (HTTP 503)")


def _error_of(data: Any, status: int) -> tuple[str, str]:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return str(err.get("code") or f"HTTP_{status}"), str(err.get("message") or "")
    return f"HTTP_{status}", ""
