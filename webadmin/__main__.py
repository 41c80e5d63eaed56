"""``kvm-server``: run the management server under gevent's WSGI server.

    kvm-server --config server.yaml [--data DIR] [--host HOST] [--port PORT]

gevent is patched in first thing, so that every request is a greenlet: a device's long
poll (``device/watch``) costs a few KiB, not a thread, and thousands can wait at once.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kvm-server", description="kvm-seat management server")
    p.add_argument("--config", metavar="FILE", help="YAML configuration file")
    p.add_argument("--data", metavar="DIR", help="data directory (overrides data_dir)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (0 = any free port, logged at start)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # Before anything else imports socket/threading/ssl: make them cooperative.
    from gevent import monkey

    monkey.patch_all()

    args = _parse_args(argv)

    import logging
    import signal

    import gevent
    from gevent.pywsgi import WSGIServer

    from kvm_protocol.longlived import freeze_long_lived, tune_collector
    from kvm_protocol.yamlconf import ConfigError
    from webadmin.app import create_app
    from webadmin.config import load_config
    from webadmin.db import DataDirError, check_ready, read_secret_key

    try:
        cfg = load_config(
            args.config, overrides={"data_dir": args.data, "host": args.host, "port": args.port}
        )
    except ConfigError as e:
        print(f"kvm-server: bad configuration:\n{e}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.log_format)
    log = logging.getLogger("webadmin.server")
    _raise_fd_limit()
    tune_collector()   # rarer young collections: no full pass every few seconds

    try:
        if not cfg.data_path.is_dir():
            raise DataDirError(f"data directory {cfg.data_dir} does not exist: "
                               "run `kvm-admin init --data DIR` first")
        read_secret_key(cfg.data_path)
        app = create_app(cfg)
        check_ready(app.extensions["kvm"].db)
    except DataDirError as e:
        log.error("cannot start: %s", e)
        print(f"kvm-server: {e}", file=sys.stderr)
        return 2

    access = logging.getLogger("webadmin.access")

    class NoDelayServer(WSGIServer):  # type: ignore[misc]
        """Answers leave at once: without TCP_NODELAY each small response's tail waits
        ~40 ms for the client's delayed ACK (Nagle), which dominated every switch."""

        def handle(self, sock: Any, address: Any) -> None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle(sock, address)

    server = NoDelayServer((cfg.host, cfg.port), app, log=access, error_log=log, backlog=4096,
                           handler_class=make_handler(access))
    try:
        server.start()
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", cfg.host, cfg.port, e)
        return 2
    # Heartbeats that only refresh last_seen are written together, once per period.
    last_seen = app.extensions["kvm_device_paths"].last_seen
    last_seen.start()
    # What start-up built (modules, app, snapshot) lives as long as the process: keep it out
    # of the garbage collector's full passes, which otherwise took 50-90 ms under a push.
    freeze_long_lived()
    log.info("listening", extra={"host": cfg.host, "port": server.server_port,
                                 "database": app.config["DATABASE_URL"].split("://")[0]})

    stopping = gevent.event.Event()

    def _stop(signum: int) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    gevent.signal_handler(signal.SIGTERM, _stop, signal.SIGTERM)
    gevent.signal_handler(signal.SIGINT, _stop, signal.SIGINT)
    stopping.wait()
    # Release the long polls so that devices reconnect at once to the next server.
    app.extensions["kvm"].hub.notify_all()
    server.stop(timeout=5)
    try:
        last_seen.stop()
    except Exception:  # the database is gone: the devices' next heartbeats restore it
        log.exception("writing the last last_seen refreshes failed")
    app.extensions["kvm"].db.dispose()
    log.info("stopped")
    return 0


def make_handler(access: Any) -> type:
    """gevent's ``WSGIHandler`` with the server's fast paths (same bytes on the wire):

    - the access-log line is formatted only when the ``webadmin.access`` logger would
      write it (pywsgi formats one per request even when nobody reads it);
    - the status line, headers and a body up to 64 KiB leave in one ``send`` (pywsgi sends
      headers and body separately: two syscalls per answer);
    - the ``Date`` header is formatted once per second;
    - ``SEND_EARLY`` (see ``webadmin.api_device``): the device watches woken by one commit
      are answered in one go by the first of them, straight to their sockets.
    """
    import logging
    import time

    from gevent.pywsgi import WSGIHandler, format_date_time

    from webadmin.api_device import SEND_EARLY

    date: list[Any] = [0, b""]

    def http_date() -> bytes:
        now = int(time.time())
        if now != date[0]:
            date[:] = [now, format_date_time(now)]
        return date[1]  # type: ignore[no-any-return]

    class KvmHandler(WSGIHandler):  # type: ignore[misc]
        _early: tuple[bytes, int] | None = None  # answer sent early: (unsent rest, length)
        provided_date: Any

        def get_environ(self) -> Any:
            env = super().get_environ()
            self._early = None
            if self.request_version == "HTTP/1.1" and self.command == "GET":
                env[SEND_EARLY] = self.send_early
            return env

        def send_early(self, status: str, headers: list[tuple[str, str]], body: bytes) -> bool:
            """Write the complete answer now without blocking (see ``SEND_EARLY``)."""
            sock = self.socket
            if self._early is not None or sock is None or self.close_connection:
                return False
            raw = bytearray(b"HTTP/1.1 %s\r\n" % status.encode("latin-1"))
            for name, value in headers:
                raw += b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
            raw += b"Date: %s\r\n\r\n" % http_date()
            raw += body
            try:
                sent = sock.send(raw, 0, 0.0)  # timeout 0: never waits, may send a part
            except BlockingIOError:
                sent = 0
            except OSError:
                return False  # the request's own greenlet meets the error when it writes
            self._early = (bytes(raw[sent:]), len(raw))
            return True

        def process_result(self) -> None:
            early = self._early
            if early is None:
                super().process_result()
                return
            self._early = None
            rest, length = early
            for _ in self.result:  # the same answer, already written
                pass
            self.headers_sent = True
            self.response_length = length - len(rest)
            if rest:
                self._sendall(rest)

        def finalize_headers(self) -> None:
            if self.provided_date is None:
                self.provided_date = "cached"
                self.response_headers.append((b"Date", http_date()))
            super().finalize_headers()

        def _write_with_headers(self, data: bytes) -> None:
            if self.response_use_chunked or len(data) > 65536:
                super()._write_with_headers(data)
                return
            self.headers_sent = True
            self.finalize_headers()
            if self.response_use_chunked:  # decided by finalize_headers for a streamed body
                self._sendall(self._head())
                self._write(data)
                return
            self._sendall(self._head() + data)

        def _head(self) -> bytes:
            out = bytearray(b"HTTP/1.1 ")
            out += self.status
            out += b"\r\n"
            for name, value in self.response_headers:
                out += b"%s: %s\r\n" % (name, value)
            out += b"\r\n"
            return bytes(out)

        def log_request(self) -> None:
            if access.isEnabledFor(logging.INFO):
                super().log_request()

    return KvmHandler


_STD_ATTRS = frozenset(vars(__import__("logging").LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def setup_logging(level: str, fmt: str) -> None:
    """Structured logs on stderr: one JSON object a line (``json``) or ``key=value`` (``text``)."""
    import json
    import logging
    import time

    class Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            fields = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
            fields.update({k: v for k, v in vars(record).items() if k not in _STD_ATTRS})
            if record.exc_info:
                fields["exc"] = self.formatException(record.exc_info)
            if fmt == "json":
                return json.dumps(fields, ensure_ascii=False, default=str)
            return " ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
                            if isinstance(v, str) and (" " in v or "=" in v or not v)
                            else f"{k}={v}" for k, v in fields.items())

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _raise_fd_limit() -> None:
    """Each waiting watch holds a socket: lift the soft file limit to the hard one."""
    import contextlib
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


if __name__ == "__main__":
    sys.exit(main())
