"""The up process's own control endpoint: supervision commands from other shells.

Requests are parsed in the HTTP server's threads and queued; the lab's main thread
executes them (it alone starts children, see `supervisor`) and the answer goes back
to the waiting request. Endpoints (JSON in, JSON out, 127.0.0.1 only):

- ``GET /status``                                  → children, pids, Tx gateway
- ``POST /server``      ``{"action": "stop"|"start"|"kill"}``
- ``POST /controller``  ``{"rx": "5001", "action": "kill"|"start"}``
- ``POST /down``                                   → the lab stops
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]
MAX_BODY = 64 * 1024
SERVER_ACTIONS = ("stop", "start", "kill")
CONTROLLER_ACTIONS = ("kill", "start")


class CommandError(ValueError):
    """A command that cannot be carried out; the message says why (HTTP 400/404/409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Command:
    name: str  # status | server | controller | down
    args: Json
    reply: Future[Json] = field(default_factory=Future)


def parse_command(method: str, path: str, body: Json) -> Command:
    """Turn one request into a command, or raise CommandError naming what is wrong."""
    route = path.split("?", 1)[0].rstrip("/") or "/"
    if method == "GET" and route == "/status":
        return Command("status", {})
    if method != "POST":
        raise CommandError(f"no such endpoint: {method} {route}", 404)
    if route == "/down":
        return Command("down", {})
    if route == "/server":
        action = body.get("action")
        if action not in SERVER_ACTIONS:
            raise CommandError(
                f"server action must be one of {', '.join(SERVER_ACTIONS)}, not {action!r}"
            )
        return Command("server", {"action": action})
    if route == "/controller":
        action, rx = body.get("action"), body.get("rx")
        if action not in CONTROLLER_ACTIONS:
            raise CommandError(
                f"controller action must be one of {', '.join(CONTROLLER_ACTIONS)}, not {action!r}"
            )
        if not isinstance(rx, str) or not rx:
            raise CommandError('controller needs an Rx ID, e.g. {"rx": "5001"}')
        return Command("controller", {"action": action, "rx": rx})
    raise CommandError(f"no such endpoint: {method} {route}", 404)


class ControlServer:
    """HTTP front of the command queue; `drain` runs queued commands in the caller's thread."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, reply_timeout: float = 60.0
    ) -> None:
        self.commands: queue.Queue[Command] = queue.Queue()
        self.reply_timeout = reply_timeout
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="lab-control", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        # Anyone still waiting learns that the lab is going away.
        while True:
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                break
            if not cmd.reply.done():
                cmd.reply.set_exception(CommandError("the lab is stopping", 409))

    def submit(self, cmd: Command) -> Json:
        self.commands.put(cmd)
        try:
            return cmd.reply.result(self.reply_timeout)
        except FutureTimeout:
            raise CommandError("the lab did not carry out the command in time", 504) from None

    def drain(self, execute: Callable[[Command], Json], timeout: float = 0.0) -> int:
        """Run queued commands (waiting up to `timeout` s for the first); returns how many ran."""
        ran = 0
        wait = timeout
        while True:
            try:
                cmd = self.commands.get(timeout=wait) if wait > 0 else self.commands.get_nowait()
            except queue.Empty:
                return ran
            wait = 0.0
            try:
                cmd.reply.set_result(execute(cmd))
            except CommandError as exc:
                cmd.reply.set_exception(exc)
            except Exception as exc:  # the answer says what broke; the lab goes on
                cmd.reply.set_exception(CommandError(f"{cmd.name} failed: {exc}", 500))
            ran += 1


def _make_handler(server: ControlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: Json) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            body: Json = {}
            if method == "POST":
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY:
                    self._answer(400, {"error": "bad Content-Length"})
                    return
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    parsed = json.loads(raw or b"{}")
                except ValueError:
                    self._answer(400, {"error": "body is not JSON"})
                    return
                if not isinstance(parsed, dict):
                    self._answer(400, {"error": "body must be a JSON object"})
                    return
                body = parsed
            try:
                cmd = parse_command(method, self.path, body)
                result = server.submit(cmd)
            except CommandError as exc:
                self._answer(exc.status, {"error": str(exc)})
                return
            self._answer(200, result)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
