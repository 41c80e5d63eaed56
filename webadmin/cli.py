"""``kvm-admin``: set up and administer a management server's data directory.

    kvm-admin init    --data DIR [--admin-password P] [--import FILE]
    kvm-admin import  --data DIR FILE [--replace]
    kvm-admin export  --data DIR [FILE|-]
    kvm-admin passwd  --data DIR USER [--password P]
    kvm-admin devices --data DIR [--pending]
    kvm-admin adopt   --data DIR SERIAL ID [--name NAME]
    kvm-admin reset-device --data DIR ID

Every command also takes ``--database-url`` and ``--config server.yaml`` (and reads the
``KVM_SERVER_*`` environment) like ``kvm-server``. Exit codes: 0 done, 1 refused or failed
(the message says why), 2 bad command line or server configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from kvm_protocol.yamlconf import ConfigError, load_yaml
from webadmin import admin_service, topology, topology_db
from webadmin import models as m
from webadmin.admin_service import AdminError
from webadmin.config import ServerConfig, load_config
from webadmin.db import DB_FILE, Database, DataDirError, init_data_dir, is_current

PROG = "kvm-admin"


class Failed(Exception):
    """A refusal to print (without a traceback) and exit 1."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", metavar="DIR", help="data directory (kvm.db, secret_key)")
    common.add_argument("--database-url", metavar="URL",
                        help="database (default: SQLite in the data directory)")
    common.add_argument("--config", metavar="FILE", help="the server's YAML configuration")
    p = argparse.ArgumentParser(prog=PROG, description="kvm-seat management server admin tool")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("init", parents=[common], help="create a data directory and first admin")
    c.add_argument("--admin-name", default="admin", help="name of the first admin (admin)")
    c.add_argument("--admin-password", metavar="P",
                   help="the first admin's password (default: generated and printed once)")
    c.add_argument("--import", dest="import_file", metavar="FILE",
                   help="then import this control-room file")

    c = sub.add_parser("import", parents=[common], help="import a control-room file")
    c.add_argument("file", metavar="FILE",
                   help="control-room YAML (docs/CONFIG_FORMAT.md), - = stdin")
    c.add_argument("--replace", action="store_true",
                   help="make the configuration exactly the file's (default: merge it in)")

    c = sub.add_parser("export", parents=[common], help="write the configuration as YAML")
    c.add_argument("file", metavar="FILE", nargs="?", default="-", help="output file (- = stdout)")

    c = sub.add_parser("passwd", parents=[common], help="set a user's password")
    c.add_argument("user", metavar="USER")
    c.add_argument("--password", metavar="P", help="the new password (default: asked for)")

    c = sub.add_parser("devices", parents=[common], help="list devices")
    c.add_argument("--pending", action="store_true", help="only devices waiting for adoption")

    c = sub.add_parser("adopt", parents=[common], help="adopt a pending device")
    c.add_argument("serial", metavar="SERIAL")
    c.add_argument("id", metavar="ID", help="its 4-digit ID: Tx 0001-4999, Rx 5001-9999")
    c.add_argument("--name", help="its name in the OSD lists")

    c = sub.add_parser("reset-device", parents=[common],
                       help="forget a device's secret (it binds a new one on its next announce)")
    c.add_argument("id", metavar="ID")
    return p


def _server_config(args: argparse.Namespace) -> ServerConfig:
    return load_config(args.config, overrides={"data_dir": args.data,
                                               "database_url": args.database_url})


@contextlib.contextmanager
def _database(cfg: ServerConfig) -> Iterator[Database]:
    """The initialised database of `cfg` (migrated to this version), or Failed."""
    if cfg.database_url is None and not (cfg.data_path / DB_FILE).is_file():
        raise Failed(f"{cfg.data_dir} is not an initialised data directory: "
                     f"run `{PROG} init --data {cfg.data_dir}` first")
    db = Database(cfg.db_url())
    try:
        assert db.engine is not None
        if not is_current(db.engine):
            raise Failed(f"the database is not initialised: run `{PROG} init` first")
        db.upgrade()
        yield db
    finally:
        db.dispose()


def _read_config_file(name: str, stdin: TextIO) -> topology.RoomConfig:
    source: Path | str = stdin.read() if name == "-" else Path(name)
    try:
        return topology.parse(load_yaml(source, name="<stdin>" if name == "-" else None))
    except ConfigError as e:
        raise Failed(_problems(name, e)) from None


def _problems(name: str, e: ConfigError) -> str:
    lines = [str(p) for p in e.problems]
    if len(lines) == 1 and lines[0].startswith(f"{name}:"):
        return lines[0]
    return f"{name}: {len(lines)} problem(s):\n" + "\n".join(f"  {line}" for line in lines)


def _import(db: Database, cfg: topology.RoomConfig, name: str, replace: bool,
            out: TextIO) -> None:
    try:
        with db.begin() as s:
            summary = topology_db.import_config(s, cfg, replace=replace, actor="kvm-admin")
    except ConfigError as e:
        raise Failed(_problems(name, e)) from None
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary.counts.items())
    print(f"imported {name} ({summary.mode}): {counts}", file=out)


def cmd_init(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    cfg = _server_config(args)
    room = _read_config_file(args.import_file, stdin) if args.import_file else None
    try:
        password = init_data_dir(cfg.data_path, args.admin_password,
                                 admin_name=args.admin_name, database_url=cfg.database_url)
    except DataDirError as e:
        raise Failed(str(e)) from None
    print(f"initialised {cfg.data_path.resolve()}", file=out)
    print(f"admin user:     {args.admin_name}", file=out)
    if args.admin_password is None:
        print(f"admin password: {password}", file=out)
        print("(shown once: only its hash is stored; change it with "
              f"`{PROG} passwd --data DIR {args.admin_name}`)", file=out)
    if room is not None:
        with _database(cfg) as db:
            _import(db, room, args.import_file, False, out)


def cmd_import(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    room = _read_config_file(args.file, stdin)
    with _database(_server_config(args)) as db:
        _import(db, room, args.file, args.replace, out)


def cmd_export(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    with _database(_server_config(args)) as db, db.begin() as s:
        text = admin_service.export_yaml(s, actor="kvm-admin")
    if args.file == "-":
        out.write(text)
        return
    path = Path(args.file)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # It holds password hashes: readable by the owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise Failed(f"cannot write {path}: {e.strerror or e}") from None
    print(f"exported to {path}", file=out)


def _ask_password(stdin: TextIO) -> str:
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise Failed("the two passwords differ")
    return first


def cmd_passwd(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    with _database(_server_config(args)) as db, db.begin() as s:
        user = admin_service.user_by_name(s, args.user)
        password = args.password if args.password is not None else _ask_password(stdin)
        admin_service.set_password(s, user, password, actor="kvm-admin")
    print(f"password of {args.user} changed", file=out)


def cmd_devices(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    with _database(_server_config(args)) as db, db.session() as s:
        query = select(m.Device).order_by(m.Device.adoption.desc(), m.Device.id, m.Device.serial)
        if args.pending:
            query = query.where(m.Device.adoption == "pending")
        rows = [admin_service.device_row(d) for d in s.scalars(query)]
    if not rows:
        print("no pending devices" if args.pending else "no devices", file=out)
        return
    print(f"{'ID':<5} {'KIND':<4} {'HEADS':<5} {'STATE':<8} {'BOUND':<5} {'SERIAL':<20} NAME",
          file=out)
    for r in rows:
        print(f"{r['id'] or '-':<5} {r['kind']:<4} {r['heads']:<5} {r['adoption']:<8} "
              f"{'yes' if r['bound'] else 'no':<5} {r['serial'] or '-':<20} {r['name']}", file=out)


def cmd_adopt(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    with _database(_server_config(args)) as db, db.begin() as s:
        admin_service.adopt(s, args.serial, args.id, args.name, actor="kvm-admin")
    print(f"adopted {args.serial} as {args.id}", file=out)


def cmd_reset_device(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> None:
    with _database(_server_config(args)) as db, db.begin() as s:
        admin_service.reset_credential(s, admin_service.device_by_id(s, args.id),
                                       actor="kvm-admin")
    print(f"device {args.id} will bind a new secret on its next announce", file=out)


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], None]] = {
    "init": cmd_init, "import": cmd_import, "export": cmd_export, "passwd": cmd_passwd,
    "devices": cmd_devices, "adopt": cmd_adopt, "reset-device": cmd_reset_device,
}


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None, stdin: TextIO | None = None) -> int:
    out, err, inp = stdout or sys.stdout, stderr or sys.stderr, stdin or sys.stdin
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:           # argparse has printed the usage error or the help
        return int(e.code or 0)
    try:
        COMMANDS[args.command](args, out, inp)
    except ConfigError as e:           # the server configuration (--config, KVM_SERVER_*)
        print(f"{PROG}: bad server configuration:\n{e}", file=err)
        return 2
    except (Failed, DataDirError) as e:
        print(f"{PROG}: {e}", file=err)
        return 1
    except AdminError as e:
        print(f"{PROG}: {e.message}", file=err)
        return 1
    except SQLAlchemyError as e:
        print(f"{PROG}: database error: {e.__class__.__name__}: {_first_line(e)}", file=err)
        return 1
    except OSError as e:
        print(f"{PROG}: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=err)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=err)
        return 130
    return 0


def _first_line(e: Any) -> str:
    return str(getattr(e, "orig", None) or e).splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
