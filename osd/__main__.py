"""``kvm-rx``: the controller service of one Rx, or of many in one process (the lab).

    kvm-rx --serial URL --server URL --state-dir DIR [--lang zh_CN|en] [--window]
    kvm-rx --many FILE.yaml [--control-port PORT]

Exit codes: 0 stopped by SIGTERM/SIGINT (or the window closed), 2 bad arguments or
configuration (the message says which), 1 an unexpected failure (logged).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import resource
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kvm_protocol.longlived import freeze_long_lived, tune_collector
from kvm_protocol.yamlconf import (
    ConfigError,
    Enum,
    Invalid,
    ListOf,
    Maybe,
    Option,
    Section,
    Str,
    load_yaml,
    validate,
)

if TYPE_CHECKING:
    from osd.runtime import Controller

log = logging.getLogger("kvm.rx")
MAX_CONTROLLERS = 2000
SETTLE_POLL_S = 1.0     # how often the host looks whether its controllers have settled
SETTLE_LIMIT_S = 300.0  # ... and when it stops waiting for the last of them


class UsageError(Exception):
    """Bad arguments or configuration; printed as is, exit code 2."""


def check_server_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{url!r} is not an http:// or https:// URL of the server")
    try:
        parts.port  # noqa: B018 - validates the port number
    except ValueError:
        raise Invalid(f"{url!r} has a bad port number") from None
    return url.rstrip("/")


def check_serial_url(url: str) -> str:
    if not url or any(c.isspace() for c in url):
        raise Invalid(f"{url!r} is not a serial port URL (e.g. /dev/ttyS1, socket://HOST:PORT)")
    return url


@dataclass(frozen=True, slots=True)
class Entry:
    serial: str
    state_dir: str
    server: str | None = None
    name: str | None = None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ManyFile:
    controllers: tuple[Entry, ...]
    server: str | None = None
    lang: str = "zh_CN"


_LANG = Enum("zh_CN", "en")
MANY_SCHEMA: Section[ManyFile] = Section({
    "server": Option(Maybe(Str(min_len=1)), None),
    "lang": Option(_LANG, "zh_CN"),
    "controllers": ListOf(Section({
        "serial": Str(min_len=1),
        "state_dir": Str(min_len=1),
        "server": Option(Maybe(Str(min_len=1)), None),
        "name": Option(Maybe(Str(r"[A-Za-z0-9_.-]{1,32}", what="1-32 of A-Z a-z 0-9 _ . -")),
                       None),
        "lang": Option(Maybe(_LANG), None),
    }, into=Entry), min_len=1, max_len=MAX_CONTROLLERS),
}, into=ManyFile)


def load_many(path: Path, server_override: str | None) -> list[Any]:
    """The controllers of a ``--many`` file as ``ControllerConfig``s; ConfigError if bad."""
    from kvm_protocol.yamlconf import Problem
    from osd.runtime import ControllerConfig

    data = load_yaml(path)
    if isinstance(data, list):   # a bare list of controllers is fine too
        data = {"controllers": data}
    many = validate(MANY_SCHEMA, data)
    problems: list[Problem] = []
    configs = []
    names: set[str] = set()
    dirs: set[str] = set()
    for i, e in enumerate(many.controllers):
        where = f"controllers[{i}]"
        server = server_override or e.server or many.server
        if server is None:
            problems.append(Problem(f"{where}.server", "no server URL (give server: at the top, "
                                    "per controller, or --server)"))
            continue
        try:
            server = check_server_url(server)
            serial = check_serial_url(e.serial)
        except Invalid as exc:
            problems.append(Problem(where, exc.message))
            continue
        name = e.name or e.serial.rsplit(":", 1)[-1].rsplit("/", 1)[-1] or str(i)
        if name in names:
            problems.append(Problem(f"{where}.name", f"{name!r} is used twice"))
        if e.state_dir in dirs:
            problems.append(Problem(f"{where}.state_dir", f"{e.state_dir!r} is used twice"))
        names.add(name)
        dirs.add(e.state_dir)
        configs.append(ControllerConfig(serial_url=serial, server_url=server,
                                        state_dir=Path(e.state_dir), name=name,
                                        lang=e.lang or many.lang))   # type: ignore[arg-type]
    if problems:
        raise ConfigError(problems)
    return configs


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="kvm-rx", description="kvm-seat controller service of an Rx (OSD, switching)")
    p.add_argument("--serial", metavar="URL",
                   help="the Rx firmware's serial port: /dev/ttyS1, socket://HOST:PORT, ...")
    p.add_argument("--server", metavar="URL", help="the management server, e.g. "
                   "http://10.0.0.2:8080 (with --many: overrides the file)")
    p.add_argument("--state-dir", metavar="DIR", help="where this Rx keeps its device secret")
    p.add_argument("--lang", choices=("zh_CN", "en"), default="zh_CN",
                   help="OSD language until the server's settings say otherwise")
    p.add_argument("--window", action="store_true",
                   help="show the OSD in a pygame window over a plain background")
    p.add_argument("--many", metavar="FILE.yaml", type=Path,
                   help="run every controller listed in FILE in this process")
    p.add_argument("--control-port", metavar="PORT", type=int, default=None,
                   help="serve the control endpoint on 127.0.0.1:PORT (0: any free port; "
                   "default with --many: 0)")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    args = p.parse_args(argv)
    if args.many is not None:
        if args.serial or args.state_dir or args.window:
            p.error("--many cannot be combined with --serial, --state-dir or --window")
    else:
        missing = [f"--{n}" for n in ("serial", "server", "state-dir")
                   if not getattr(args, n.replace("-", "_"))]
        if missing:
            p.error(f"missing {', '.join(missing)} (or use --many FILE.yaml)")
    if args.control_port is not None and not 0 <= args.control_port <= 65535:
        p.error(f"--control-port {args.control_port} is not a port number 0-65535")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except UsageError as exc:
        print(f"kvm-rx: {exc}", file=sys.stderr)
        return 2
    except Exception:
        log.exception("kvm-rx failed")
        return 1


def _run(args: argparse.Namespace) -> int:
    from osd.client import StateDirError
    from osd.control import ControlServer, OverlayPainter
    from osd.hub import Hub
    from osd.reportgroup import ReportGroup
    from osd.runtime import Controller, ControllerConfig, PortError
    from osd.watchgroup import WatchGroup

    if args.many is not None:
        try:
            configs = load_many(args.many, args.server)
        except ConfigError as exc:
            raise UsageError(f"bad controller file {args.many}:\n{exc}") from None
    else:
        try:
            server = check_server_url(args.server)
            serial = check_serial_url(args.serial)
        except Invalid as exc:
            raise UsageError(exc.message) from None
        configs = [ControllerConfig(serial_url=serial, server_url=server,
                                    state_dir=Path(args.state_dir), lang=args.lang)]

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping (%s)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    raise_nofile_limit(len(configs) * 5 + 64)
    tune_collector()   # rarer young collections: no full pass every few seconds
    hub = Hub(workers=min(32, 4 + len(configs) // 8))
    controllers: list[Controller] = []
    # A controller host long-polls for all its controllers in one request per server (one
    # thread per 256): a thread each made a push to every Rx a storm of thread switches.
    # Its controllers' state reports go together too (docs/CONTROLLER.md "Threads").
    groups: dict[str, tuple[WatchGroup, ReportGroup]] = {}
    control: ControlServer | None = None
    try:
        for cfg in configs:
            group = None
            if args.many is not None:
                group = groups.get(cfg.server_url)
                if group is None:
                    group = groups[cfg.server_url] = (
                        WatchGroup(cfg.server_url, hub, watch_timeout=cfg.watch_timeout),
                        ReportGroup(cfg.server_url, call_timeout=cfg.call_timeout))
                    group[1].start()
            try:
                ctrl = Controller(cfg, hub=hub, watches=group and group[0],
                                  reports=group and group[1])
                ctrl.start(check_port=True)
            except (StateDirError, PortError) as exc:
                raise UsageError(f"{cfg.name or cfg.serial_url}: {exc}") from None
            controllers.append(ctrl)
        log.info("%d controller(s) running, server %s", len(controllers),
                 configs[0].server_url)
        port = args.control_port if args.control_port is not None else (
            0 if args.many is not None else None)
        if port is not None:
            try:
                control = ControlServer(lambda: controllers, hub.resource(OverlayPainter), port)
            except OSError as exc:
                raise UsageError(f"cannot serve the control endpoint on 127.0.0.1:{port}: "
                                 f"{exc.strerror}") from None
            control.start()
            print(f"kvm-rx: control endpoint {control.url}", flush=True)
        if args.window:
            _window(controllers[0], hub.resource(OverlayPainter), stop)
        else:
            _settle(controllers, stop)
            while not stop.wait(3600):
                pass
    finally:
        if control is not None:
            control.close()
        # Each stop waits for its link's reader thread (~0.1-0.3 s): stop them side by side.
        if controllers:
            with ThreadPoolExecutor(max_workers=min(64, len(controllers))) as pool:
                list(pool.map(lambda c: c.stop(), controllers))
        for watches, reports in groups.values():
            watches.close()
            reports.close()
        hub.close()
    return 0


def _settle(controllers: Sequence[Controller], stop: threading.Event) -> None:
    """Once every controller has its link up, is adopted and reaches the server (or after
    SETTLE_LIMIT_S), exempt what they built from full garbage collections
    (kvm_protocol.longlived): at 250 controllers such a pass took 40-120 ms, and it came
    with the first push, holding up every switch of the host. Without a collection first:
    that would be the same pause, at a moment the room may already be in use."""
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while not stop.wait(SETTLE_POLL_S):
        if time.monotonic() >= deadline or all(
                c.link_up and c.adopted is not None and c.server_ok for c in controllers):
            freeze_long_lived(collect=False)   # no pause: the room may be in use already
            return


def raise_nofile_limit(needed: int) -> None:
    """Each controller holds a serial link and up to three HTTP connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        log.warning("the open-files limit is %d; %d controllers may need %d (ulimit -n)",
                    soft, needed // 5, needed)


def _window(ctrl: Any, painter: Any, stop: threading.Event) -> None:
    """The OSD over a plain background in a pygame window (for a real Rx's monitor)."""
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    try:
        pygame.display.init()
        screen = pygame.display.set_mode((1280, 720), pygame.RESIZABLE)
    except pygame.error as exc:
        raise UsageError(f"cannot open a window: {exc} (is there a display?)") from None
    pygame.display.set_caption(f"kvm-rx {ctrl.config.serial_url}")
    clock = pygame.time.Clock()
    shown: tuple[int, tuple[int, int]] | None = None
    try:
        while not stop.is_set():
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    stop.set()
            key = (ctrl.shown.version, screen.get_size())
            if key != shown:
                shown = key
                screen.fill((28, 36, 48))
                screen.blit(painter.surface(ctrl.model(), screen.get_size()), (0, 0))
                pygame.display.flip()
            clock.tick(30)
    finally:
        pygame.display.quit()


if __name__ == "__main__":
    sys.exit(main())
