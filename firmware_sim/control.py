"""The simulator's JSON control server (stdlib HTTP on 127.0.0.1).

    GET  /state[?only=tx|rx]         every device, seat and wall (or the Tx / Rx alone)
    GET  /ports                      device ID -> {kind, url, port}
    GET  /frame?rx=5001&head=1[&w=&h=]   PNG of what that head shows
    POST /keys    {"rx": "5001", "keys": "Shift+O Shift+O"}
                  (or "events": [{"usage": 4, "mods": 0, "pressed": true}, ...])
    POST /type    {"rx": "5001", "text": "hello"}
    POST /mouse   {"seat": "seat-A", "screen": 2}
    POST /fault   {"device": "0001", "kind": "power-off", "head": 2?}   ("fault" = "kind")
    POST /garbage {"device": "5001", "hex": "a55a00ff"}   (or "count": 64 random bytes)
    POST /splice  {"wall": "wall-1", "on": true}

A target for keys may be an Rx ID (its seat's keyboard) or a seat name ("seat" key).
Errors answer ``{"error": {"code": "...", "message": "..."}}`` with 400/404/405/413/500.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from firmware_sim.simulator import Simulator

log = logging.getLogger("kvm.sim.control")
MAX_BODY = 1 << 20


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def _fields(body: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)} (allowed: "
                         f"{', '.join(sorted(allowed))})")
    missing = sorted(required - set(body))
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(missing)}")


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _int(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"{what}: expected an integer {lo}..{hi}, got {value!r}")
    return value


def _target(body: dict[str, Any]) -> str:
    keys = [k for k in ("rx", "seat", "target") if k in body]
    if len(keys) != 1:
        raise BadRequest("name exactly one of rx, seat (or target)")
    return _str(body, keys[0])


class _Api:
    """The routes, over a Simulator; each returns (status, content type, body bytes)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.get: dict[str, Callable[[dict[str, list[str]]], Any]] = {
            "/state": self.state,
            "/ports": lambda q: sim.ports(),
        }
        self.post: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/keys": self.keys,
            "/type": self.type,
            "/mouse": self.mouse,
            "/fault": self.fault,
            "/garbage": self.garbage,
            "/splice": self.splice,
        }

    def keys(self, body: dict[str, Any]) -> Any:
        from firmware_sim.simulator import parse_event

        _fields(body, {"rx", "seat", "target", "keys", "events"}, set())
        target = _target(body)
        if ("keys" in body) == ("events" in body):
            raise BadRequest("give either keys (a string such as \"Shift+O F1\") or events")
        if "keys" in body:
            return self.sim.press(target, _str(body, "keys"))
        events = body["events"]
        if not isinstance(events, list) or not events:
            raise BadRequest("events: expected a non-empty list")
        return self.sim.send_events(
            target, [parse_event(e, f"events[{i}]") for i, e in enumerate(events)]
        )

    def type(self, body: dict[str, Any]) -> Any:
        _fields(body, {"rx", "seat", "target", "text"}, {"text"})
        text = body["text"]
        if not isinstance(text, str):
            raise BadRequest(f"text: expected a string, got {text!r}")
        return self.sim.type_text(_target(body), text)

    def mouse(self, body: dict[str, Any]) -> Any:
        _fields(body, {"seat", "rx", "screen"}, {"screen"})
        target = _target(body)
        return self.sim.mouse_to_screen(target, _int(body["screen"], "screen", 1, 8))

    def fault(self, body: dict[str, Any]) -> Any:
        _fields(body, {"device", "kind", "fault", "head"}, {"device"})
        if ("kind" in body) == ("fault" in body):
            raise BadRequest("give the fault as kind (e.g. \"power-off\")")
        kind = _str(body, "kind" if "kind" in body else "fault")
        head = body.get("head")
        head = None if head is None else _int(head, "head", 1, 4)
        device = _str(body, "device")
        self.sim.fault(device, kind, head)
        return {"ok": True, "device": device, "kind": kind, "head": head}

    def garbage(self, body: dict[str, Any]) -> Any:
        _fields(body, {"device", "hex", "count"}, {"device"})
        if ("hex" in body) == ("count" in body):
            raise BadRequest("give either hex (bytes as hex digits) or count (random bytes)")
        if "hex" in body:
            data = parse_hex(_str(body, "hex"))
        else:
            data = os.urandom(_int(body["count"], "count", 1, 65536))
        device = _str(body, "device")
        self.sim.inject_garbage(device, data)
        return {"ok": True, "device": device, "bytes": len(data)}

    def splice(self, body: dict[str, Any]) -> Any:
        _fields(body, {"wall", "on"}, {"wall", "on"})
        if not isinstance(body["on"], bool):
            raise BadRequest(f"on: expected true or false, got {body['on']!r}")
        self.sim.splice(_str(body, "wall"), body["on"])
        return {"ok": True}

    def state(self, query: dict[str, list[str]]) -> Any:
        unknown = sorted(set(query) - {"only"})
        if unknown:
            raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}")
        return self.sim.state(query["only"][0] if query.get("only") else None)

    def frame(self, query: dict[str, list[str]]) -> bytes:
        unknown = sorted(set(query) - {"rx", "head", "w", "h"})
        if unknown:
            raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}")
        rx = (query.get("rx") or [""])[0]
        if not rx:
            raise BadRequest("rx: required, e.g. /frame?rx=5001&head=1")
        head = _int((query.get("head") or ["1"])[0], "head", 1, 4)
        size = None
        if "w" in query or "h" in query:
            size = (_int((query.get("w") or [""])[0], "w", 64, 3840),
                    _int((query.get("h") or [""])[0], "h", 64, 2160))
        return self.sim.frame_png(rx, head, size)


def parse_hex(text: str) -> bytes:
    """Bytes from hex digits; spaces and colons between bytes are allowed."""
    cleaned = text.replace(" ", "").replace(":", "")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise BadRequest(f"hex: not hex digits: {text[:40]!r}") from None
    if not data:
        raise BadRequest("hex: no bytes given")
    return data


def _make_handler(api: _Api) -> type[BaseHTTPRequestHandler]:
    from firmware_sim.simulator import SimError

    class Handler(BaseHTTPRequestHandler):
        server_version = "kvm-sim"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            self._send(status, "application/json; charset=utf-8", body)

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": {"code": code, "message": message}})

        def _run(self, fn: Callable[[], None]) -> None:
            try:
                fn()
            except BadRequest as e:
                self._error(e.status, e.code, e.message)
            except SimError as e:
                self._error(400, "BAD_REQUEST", str(e))
            except Exception:
                log.exception("control request %s %s failed", self.command, self.path)
                self._error(500, "INTERNAL", "internal error in the simulator (see its log)")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)

            def go() -> None:
                if url.path == "/frame":
                    self._send(200, "image/png", api.frame(query))
                elif url.path in api.get:
                    self._json(200, api.get[url.path](query))
                elif url.path in api.post:
                    raise BadRequest(f"{url.path} takes POST", 405, "METHOD_NOT_ALLOWED")
                else:
                    raise BadRequest(f"no such path {url.path}", 404, "NOT_FOUND")

            self._run(go)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path

            def go() -> None:
                length = self._read_length()
                raw = self.rfile.read(length) if length else b""
                if path not in api.post:
                    if path in api.get or path == "/frame":
                        raise BadRequest(f"{path} takes GET", 405, "METHOD_NOT_ALLOWED")
                    raise BadRequest(f"no such path {path}", 404, "NOT_FOUND")
                try:
                    body = json.loads(raw.decode("utf-8")) if raw.strip() else None
                except (UnicodeDecodeError, ValueError):
                    raise BadRequest("the body is not valid JSON", code="BAD_JSON") from None
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object", code="BAD_JSON")
                result = api.post[path](body)
                self._json(200, result if result is not None else {"ok": True})

            self._run(go)

        def _read_length(self) -> int:
            raw = self.headers.get("Content-Length") or "0"
            try:
                length = int(raw)
            except ValueError:
                self.close_connection = True
                raise BadRequest("bad Content-Length") from None
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                raise BadRequest(f"body larger than {MAX_BODY} bytes", 413, "TOO_LARGE")
            return length

    return Handler


class ControlServer:
    """The HTTP control server of one simulator, on its own thread."""

    def __init__(self, sim: Simulator, port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(_Api(sim)))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="kvm-sim-control", daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)
