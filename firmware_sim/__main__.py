"""``kvm-sim``: run the hardware simulator, or talk to a running one.

    kvm-sim run --config sim.yaml [--control-port N] [--ports-file F]
    kvm-sim ctl [--control URL] state | ports | keys RX "Shift+O Shift+O" | type RX TEXT
                | mouse SEAT N | fault DEV KIND [--head N] | garbage DEV HEX
                | splice WALL on|off | frame RX [--head N] --out F.png

Every command exits 0 on success and non-zero with a one-line reason otherwise
(2: bad arguments or config, 1: the simulator refused or is not running).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_CONTROL_PORT = 7390
CONTROL_ENV = "KVM_SIM_CONTROL"
TIMEOUT = 30.0


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own signature returns NoReturn
        self.print_usage(sys.stderr)
        raise CliError(f"{self.prog}: {message}", 2)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kvm-sim",
                description="Simulated Tx/Rx hardware speaking the serial protocol.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run the simulator in the foreground")
    run.add_argument("--config", required=True, type=Path, help="YAML config (docs/SIMULATOR.md)")
    run.add_argument("--control-port", type=_port, default=DEFAULT_CONTROL_PORT,
                     help=f"control server port on 127.0.0.1 (default {DEFAULT_CONTROL_PORT}; "
                     "0: any free port)")
    run.add_argument("--ports-file", type=Path, help="write the device port map here (JSON)")
    run.add_argument("--verbose", action="store_true")

    ctl = sub.add_parser("ctl", help="talk to a running simulator")
    ctl.add_argument("--control", help=f"control URL (default ${CONTROL_ENV} or "
                     f"http://127.0.0.1:{DEFAULT_CONTROL_PORT})")
    c = ctl.add_subparsers(dest="action", required=True, parser_class=_Parser)
    c.add_parser("state", help="every device as JSON")
    c.add_parser("ports", help="device ID -> serial URL")
    k = c.add_parser("keys", help='press keys, e.g. keys 5001 "Shift+O Shift+O F1 1 Enter"')
    k.add_argument("target", help="Rx ID or seat name")
    k.add_argument("keys")
    t = c.add_parser("type", help="type text on a seat keyboard")
    t.add_argument("target")
    t.add_argument("text")
    m = c.add_parser("mouse", help="move a seat's mouse onto screen N")
    m.add_argument("seat")
    m.add_argument("screen", type=int)
    f = c.add_parser("fault", help="inject a fault, e.g. fault 0001 power-off")
    f.add_argument("device")
    f.add_argument("kind")
    f.add_argument("--head", type=int)
    g = c.add_parser("garbage", help="send raw bytes (hex) down a device's link")
    g.add_argument("device")
    g.add_argument("hex")
    s = c.add_parser("splice", help="start/stop a wall's splice")
    s.add_argument("wall")
    s.add_argument("on", choices=["on", "off"])
    fr = c.add_parser("frame", help="save what an Rx head shows as PNG")
    fr.add_argument("rx")
    fr.add_argument("--head", type=int, default=1)
    fr.add_argument("--out", type=Path, required=True)
    return p


# --- run ------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="kvm-sim: %(message)s")
    from firmware_sim.simulator import SimError, Simulator
    from kvm_protocol.longlived import freeze_long_lived, tune_collector

    tune_collector()   # rarer young collections: no full pass every few seconds
    try:
        sim = Simulator.from_file(args.config)
    except SimError as e:
        raise CliError(str(e), 2) from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sim.start()
        url = sim.serve_control(args.control_port)
        if args.ports_file is not None:
            try:
                sim.write_ports_file(args.ports_file, url)
            except OSError as e:
                raise CliError(f"cannot write the ports file {args.ports_file}: {e.strerror}"
                               ) from None
        kind = ("pty" if sim.config.pty else f"unix://{sim.config.unix_dir}"
                if sim.config.unix_dir else "socket://127.0.0.1")
        print(f"kvm-sim: {len(sim.fabric.tx)} Tx, {len(sim.fabric.rx)} Rx on {kind} endpoints; "
              f"control {url}" + (f"; ports in {args.ports_file}" if args.ports_file else ""),
              flush=True)
        # The fabric and the endpoints live as long as the process (kvm_protocol.longlived).
        freeze_long_lived()
        while not stop.wait(1.0):
            pass
        print("kvm-sim: stopping", flush=True)
        return 0
    except SimError as e:
        raise CliError(str(e)) from None
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- ctl ------------------------------------------------------------------------------


def _request(base: str, method: str, path: str, body: dict[str, Any] | None = None,
             query: str = "") -> tuple[str, bytes]:
    url = base.rstrip("/") + path + (f"?{query}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - http only
                                 headers={"Content-Type": "application/json"})
    if not url.startswith(("http://", "https://")):
        raise CliError(f"the control URL must start with http://, got {base!r}", 2)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310
            return resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode("utf-8", "replace")[:200] or e.reason
        raise CliError(f"kvm-sim: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CliError(
            f"kvm-sim: no simulator answers at {base} ({reason}); "
            "start one with: kvm-sim run --config sim.yaml"
        ) from None


def _ctl(args: argparse.Namespace) -> int:
    base = args.control or os.environ.get(CONTROL_ENV) or \
        f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}"
    a = args.action
    if a in ("state", "ports"):
        _, raw = _request(base, "GET", f"/{a}")
        print(json.dumps(json.loads(raw), indent=2, ensure_ascii=False))
        return 0
    if a == "frame":
        if not 1 <= args.head <= 4:
            raise CliError("kvm-sim: --head must be 1..4", 2)
        from urllib.parse import urlencode

        _, raw = _request(base, "GET", "/frame", query=urlencode({"rx": args.rx,
                                                                   "head": args.head}))
        try:
            args.out.write_bytes(raw)
        except OSError as e:
            raise CliError(f"kvm-sim: cannot write {args.out}: {e.strerror}") from None
        print(f"saved {args.out}")
        return 0
    body: dict[str, Any]
    if a == "keys":
        body = {"target": args.target, "keys": args.keys}
    elif a == "type":
        body = {"target": args.target, "text": args.text}
    elif a == "mouse":
        body = {"seat": args.seat, "screen": args.screen}
    elif a == "fault":
        body = {"device": args.device, "kind": args.kind}
        if args.head is not None:
            body["head"] = args.head
    elif a == "garbage":
        body = {"device": args.device, "hex": args.hex}
    else:
        body = {"wall": args.wall, "on": args.on == "on"}
    path = f"/{a}"
    _, raw = _request(base, "POST", path, body)
    print(json.dumps(json.loads(raw), ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return _run(args) if args.cmd == "run" else _ctl(args)
    except CliError as e:
        prefix = "" if e.message.startswith("kvm-sim") else "kvm-sim: "
        print(prefix + e.message, file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
