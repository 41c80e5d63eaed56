"""`kvm-lab`: bring up a simulated control room (`up`) and drive it from other shells."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from firmware_sim.lab.client import CONTROLLER_ACTIONS, FAULTS, SERVER_ACTIONS, Lab, LabError
from firmware_sim.lab.statefile import DEFAULT_DATA, LabNotRunning

EXIT_FAILED = 1  # the lab answered that it could not do it
EXIT_USAGE = 2  # bad command line (argparse's own code too)
EXIT_NO_LAB = 3  # no lab is up for the data dir

DESCRIPTION = """\
A whole simulated control room on this machine: the management server, simulated
Tx/Rx hardware and one controller per Rx, as real processes over real sockets.

  kvm-lab up                              start it (foreground; Ctrl-C stops it)
  kvm-lab keys 5001 "Shift+O Shift+O"     key presses on the seat of Rx 5001
  kvm-lab type 5001 hxfj                  type text on that seat
  kvm-lab state [--json]                  every device, its screens and OSD
  kvm-lab screenshot 5001 shot.png        what the monitor of Rx 5001 shows
  kvm-lab fault 0012 power-on             inject a fault (see `kvm-lab fault -h`)
  kvm-lab garbage 5001                    random bytes into a device's serial link
  kvm-lab server stop|start|kill          supervise the management server
  kvm-lab controller 5001 kill|start      supervise the controller process of an Rx
  kvm-lab down                            stop the lab

Every command finds the lab through --data DIR (default ./lab-data). See docs/LAB.md.
"""


def _data_arg(p: argparse.ArgumentParser, *, top: bool) -> None:
    p.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="the lab's data dir (default ./lab-data)",
        **({"default": DEFAULT_DATA} if top else {"default": argparse.SUPPRESS}),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvm-lab",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _data_arg(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    up = sub.add_parser("up", help="start the lab in the foreground")
    _data_arg(up, top=False)
    up.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="control-room topology YAML (default examples/control-room.yaml; first start only)",
    )
    up.add_argument(
        "--headless", action="store_true", help="no window for the monitor of seat 5001"
    )
    up.add_argument(
        "--port", type=int, metavar="N", help="port of the web server (default: any free port)"
    )
    up.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="give up if the lab is not up and in sync after S seconds (default 120)",
    )

    p = sub.add_parser("keys", help='key presses on a seat, e.g. "Shift+O Shift+O F1 1 Enter"')
    _data_arg(p, top=False)
    p.add_argument("rx", metavar="RX")
    p.add_argument(
        "spec", metavar="KEYS", help="key names or chords joined by +, separated by spaces"
    )

    p = sub.add_parser("type", help="type text on a seat")
    _data_arg(p, top=False)
    p.add_argument("rx", metavar="RX")
    p.add_argument("text", metavar="TEXT")

    p = sub.add_parser("state", help="every device, its screens and OSD")
    _data_arg(p, top=False)
    p.add_argument("--json", action="store_true", help="print JSON (see docs/LAB.md)")

    p = sub.add_parser("screenshot", help="what the monitor of an Rx shows, as PNG")
    _data_arg(p, top=False)
    p.add_argument("rx", metavar="RX")
    p.add_argument("file", type=Path, metavar="FILE.png")
    p.add_argument("--head", type=int, default=1, help="head of the Rx (default 1)")

    p = sub.add_parser("fault", help="inject a fault into a simulated device")
    _data_arg(p, top=False)
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("fault", choices=FAULTS, metavar="FAULT", help=" | ".join(FAULTS))

    p = sub.add_parser("garbage", help="inject random bytes into a device's serial link")
    _data_arg(p, top=False)
    p.add_argument("device", metavar="DEVICE")
    p.add_argument(
        "--bytes", type=int, default=64, dest="count", metavar="N", help="how many (default 64)"
    )

    p = sub.add_parser("server", help="stop, start or SIGKILL the management server")
    _data_arg(p, top=False)
    p.add_argument(
        "action", choices=SERVER_ACTIONS, metavar="ACTION", help=" | ".join(SERVER_ACTIONS)
    )

    p = sub.add_parser("controller", help="SIGKILL or restart the controller process holding an Rx")
    _data_arg(p, top=False)
    p.add_argument("rx", metavar="RX")
    p.add_argument(
        "action", choices=CONTROLLER_ACTIONS, metavar="ACTION", help=" | ".join(CONTROLLER_ACTIONS)
    )

    p = sub.add_parser("down", help="stop the lab")
    _data_arg(p, top=False)
    return parser


def format_state(state: dict[str, object]) -> str:
    """The readable table of `kvm-lab state`."""
    from firmware_sim.lab.labstate import format_table

    return format_table(state)


def run(args: argparse.Namespace) -> int:
    data: Path = args.data
    if args.command == "up":
        from firmware_sim.lab.up import UpError, UpOptions, run_up

        if args.port is not None and not 1 <= args.port <= 65535:
            print("kvm-lab: --port must be 1..65535", file=sys.stderr)
            return EXIT_USAGE
        try:
            return run_up(
                UpOptions(
                    data_dir=data,
                    config=args.config,
                    headless=args.headless,
                    port=args.port,
                    ready_timeout=args.ready_timeout,
                )
            )
        except UpError as exc:
            print(f"kvm-lab up: {exc}", file=sys.stderr)
            return EXIT_FAILED

    lab = Lab.attach(data)
    try:
        if args.command == "keys":
            lab.keys(args.rx, args.spec)
        elif args.command == "type":
            lab.type(args.rx, args.text)
        elif args.command == "state":
            state = lab.state()
            print(
                json.dumps(state, ensure_ascii=False, indent=2)
                if args.json
                else format_state(state)
            )
        elif args.command == "screenshot":
            path = lab.screenshot(args.rx, args.file, head=args.head)
            print(f"wrote {path}")
        elif args.command == "fault":
            lab.fault(args.device, args.fault)
        elif args.command == "garbage":
            lab.garbage(args.device, args.count)
        elif args.command == "server":
            lab.server(args.action)
        elif args.command == "controller":
            lab.controller(args.rx, args.action)
        elif args.command == "down":
            lab.stop()
            print("the lab is down")
    finally:
        lab.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except LabNotRunning as exc:
        print(f"kvm-lab: {exc}", file=sys.stderr)
        return EXIT_NO_LAB
    except LabError as exc:
        print(f"kvm-lab {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"kvm-lab {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
