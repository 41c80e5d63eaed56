"""Database setup: engine, sessions, migrations, cache versions, data-directory initialisation.

SQLite (the default, ``<data>/kvm.db``) runs in WAL mode with ``synchronous=FULL``: every
commit is on disk before the server answers, so nothing it accepted is lost by a process
crash *or* a power cut (NORMAL would survive a process crash but may lose the last commits
on power loss). Readers never block the writer in WAL mode. A ``postgresql://`` URL uses
psycopg 3.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, inspect, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from webadmin import models as m

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
DB_FILE = "kvm.db"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
SQLITE_SYNCHRONOUS = "FULL"


class DataDirError(RuntimeError):
    """The data directory is missing, not initialised, or has no enabled admin."""


def sqlite_url(data_dir: str | os.PathLike[str]) -> str:
    """The default database URL for a data directory."""
    return f"sqlite:///{Path(data_dir).resolve() / DB_FILE}"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` for psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


IMMEDIATE = "kvm_sqlite_immediate"  # execution option: start the transaction as a writer
BUSY_TIMEOUT_MS = 10_000   # how long a SQLite statement waits for a lock another holds
LOCK_PAUSES_S = (0.001, 0.02)  # cooperative wait for the write lock: first and longest pause


def gevent_patched() -> bool:
    """True when gevent's monkey patching made ``threading`` and ``time`` cooperative
    (``kvm-server``): every request is then a greenlet of one thread."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _begin_immediate_cooperatively(conn: Any) -> None:
    """``BEGIN IMMEDIATE`` without SQLite's own busy wait, for gevent.

    SQLite waits for a lock by sleeping inside the library: under gevent that stops every
    greenlet of the process, the one whose transaction holds the lock included, so the
    wait could only end by timing out (503s for everyone meanwhile). Here a locked
    database is tried again after a pause that lets the other greenlets run, until
    ``BUSY_TIMEOUT_MS``; the last try goes through SQLAlchemy, so that giving up raises
    the usual ``OperationalError``."""
    raw = conn.connection.dbapi_connection
    try:
        raw.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause, longest = LOCK_PAUSES_S
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    break  # not a wait: the try below raises it the usual way
            time.sleep(pause)  # patched by gevent: the lock's holder may run meanwhile
            pause = min(pause * 2, longest)
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        try:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error:  # a broken connection: the pool must not hand it out again
            conn.invalidate()


def make_engine(url: str, sqlite_synchronous: str = SQLITE_SYNCHRONOUS) -> Engine:
    """An engine for `url`; SQLite connections get WAL, FULL sync, foreign keys, real BEGIN."""
    if sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
        raise ValueError(f"sqlite synchronous must be FULL or NORMAL, not {sqlite_synchronous!r}")
    sync = sqlite_synchronous.upper()
    url = normalise_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    cooperative = gevent_patched()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so that reads are in a transaction too.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes the write lock at its start (waiting up to busy_timeout):
        # a deferred one that read first would fail at once with "database is locked"
        # when another connection committed in between (WAL busy snapshot).
        if not conn.get_execution_options().get(IMMEDIATE, False):
            conn.exec_driver_sql("BEGIN")
        elif cooperative:
            _begin_immediate_cooperatively(conn)
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def is_current(engine: Engine) -> bool:
    """True if the schema exists (the server_state table is there)."""
    return inspect(engine).has_table("server_state")


# --- cache versions ----------------------------------------------------------------------

_CONFIG_CLASSES: tuple[type[m.Base], ...] = (
    m.Seat, m.SeatScreen, m.Wall, m.WallTile, m.User, m.UserGroup, m.DeviceGroup,
    m.Grant, m.Hotkey, m.HotkeyTarget, m.Settings,
)
_ROUTING_CLASSES: tuple[type[m.Base], ...] = (m.Route, m.SeatSession)
# The snapshot's configuration part also holds the adopted devices' credentials.
_DEVICE_CONFIG = frozenset({"id", "kind", "name", "heads", "adoption", "serial",
                            "credential_hash"})
# Session.info key: what this transaction did that the caches must learn after its commit
# (see ``pending``); cleared on commit and rollback.
PENDING = "kvm_pending"
_DEVICE_STATE = frozenset({"online", "network_up", "stream_ok", "reported_heads"})


def _changed_attrs(obj: Any) -> set[str]:
    state = inspect(obj)
    return {a.key for a in state.attrs if a.history.has_changes()}


def _versions_to_bump(session: Session) -> set[str]:
    bump: set[str] = set()
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, _CONFIG_CLASSES):
            bump.add("config_version")
        elif isinstance(obj, _ROUTING_CLASSES):
            bump.add("routing_version")
        elif isinstance(obj, m.Device):
            bump.add("config_version")
    for obj in session.dirty:
        if not session.is_modified(obj):
            continue
        if isinstance(obj, _CONFIG_CLASSES):
            bump.add("config_version")
        elif isinstance(obj, _ROUTING_CLASSES):
            bump.add("routing_version")
        elif isinstance(obj, m.Device):
            changed = _changed_attrs(obj)
            if changed & _DEVICE_CONFIG:
                bump.add("config_version")
            if changed & _DEVICE_STATE:
                bump.add("device_version")
    return bump


def pending(session: Session) -> dict[str, Any]:
    """What the current transaction did for the caches: ``versions`` (the version counters
    after its last bump), ``generations`` (device ID -> new watch generation), ``routing``
    (patches for the snapshot cache). ``routing.commit`` reads it; a commit or rollback
    clears it."""
    return session.info.setdefault(PENDING, {})  # type: ignore[no-any-return]


_BUMPS: dict[tuple[str, ...], Any] = {}


def _bump_statement(names: tuple[str, ...]) -> Any:
    # Built once per set of counters: constructing a statement costs more than running it.
    stmt = _BUMPS.get(names)
    if stmt is None:
        state = m.ServerState.__table__.c
        stmt = _BUMPS[names] = (
            update(m.Base.metadata.tables["server_state"])
            .where(state.pk == 1)
            .values({k: state[k] + 1 for k in names})
            .returning(state.config_version, state.device_version, state.routing_version)
        )
    return stmt


def _bump(session: Session, names: Any) -> tuple[int, int, int]:
    row = session.connection().execute(_bump_statement(tuple(sorted(names)))).one()
    versions = (int(row[0]), int(row[1]), int(row[2]))
    pending(session)["versions"] = versions
    return versions


def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    bump = _versions_to_bump(session)
    if bump:
        _bump(session, bump)


def bump_versions(session: Session, *names: str) -> tuple[int, int, int]:
    """Move cache versions explicitly (for bulk SQL that bypasses the ORM flush hook).

    Returns the counters after the bump (config, device, routing). Bump *before* writing:
    on PostgreSQL the row lock then orders concurrent writers."""
    return _bump(session, names)


def _forget_pending(session: Session, *_args: Any) -> None:
    session.info.pop(PENDING, None)


# --- the extension -----------------------------------------------------------------------


class Database:
    """Engine + session factory, attached to a Flask app with ``init_app`` (or used alone)."""

    def __init__(self, url: str | None = None, sqlite_synchronous: str = SQLITE_SYNCHRONOUS
                 ) -> None:
        self.engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self.sqlite_synchronous = sqlite_synchronous
        if url is not None:
            self.connect(url)

    def connect(self, url: str) -> None:
        self.engine = make_engine(url, self.sqlite_synchronous)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._factory, "before_flush", _before_flush)
        event.listen(self._factory, "after_commit", _forget_pending)
        event.listen(self._factory, "after_rollback", _forget_pending)

    def init_app(self, app: Any) -> None:
        self.connect(app.config["DATABASE_URL"])
        app.extensions["kvm_db"] = self

    def session(self) -> Session:
        if self._factory is None:
            raise RuntimeError("Database not connected")
        return self._factory()

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on error.

        On SQLite it starts with BEGIN IMMEDIATE, so concurrent writers queue
        instead of failing."""
        with self.session() as s, s.begin():
            s.connection(execution_options={IMMEDIATE: True})
            yield s

    def upgrade(self) -> None:
        assert self.engine is not None
        upgrade(self.engine)

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def ensure_singletons(session: Session) -> None:
    """The rows that must exist exactly once (settings, server_state)."""
    if session.get(m.Settings, 1) is None:
        session.add(m.Settings(pk=1))
    if session.get(m.ServerState, 1) is None:
        session.add(m.ServerState(pk=1))


# --- data directory ----------------------------------------------------------------------


def read_secret_key(data_dir: str | os.PathLike[str]) -> bytes:
    """The Flask secret key kept in the data directory (created by ``init_data_dir``)."""
    path = Path(data_dir) / SECRET_KEY_FILE
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        raise DataDirError(f"{path} is missing: run `kvm-admin init` first") from None
    if len(key) < 32:
        raise DataDirError(f"{path} is too short to be a secret key")
    return key


def init_data_dir(
    data_dir: str | os.PathLike[str],
    admin_password: str | None = None,
    *,
    admin_name: str = "admin",
    database_url: str | None = None,
) -> str:
    """Create a data directory: secret key, migrated database, first admin.

    Returns the admin password (generated and meant to be printed once when not given).
    Refuses (DataDirError) if the database already has users.
    """
    from webadmin.auth import hash_password  # auth imports models only; avoid a cycle

    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    key_path = path / SECRET_KEY_FILE
    if not key_path.exists():
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    password = admin_password if admin_password is not None else secrets.token_urlsafe(12)
    if len(password) < 6:
        raise DataDirError("the admin password must have at least 6 characters")
    database = Database(database_url or sqlite_url(path))
    try:
        database.upgrade()
        with database.begin() as s:
            ensure_singletons(s)
            if s.scalar(select(m.User.pk).limit(1)) is not None:
                raise DataDirError(f"{path} is already initialised (it has users)")
            s.add(m.User(name=admin_name, role="admin", password_hash=hash_password(password)))
            s.add(m.AuditEntry(actor="system", action="init", target=admin_name, result="OK"))
    finally:
        database.dispose()
    return password


def check_ready(database: Database) -> None:
    """Raise DataDirError unless the schema is there and an enabled admin exists."""
    assert database.engine is not None
    if not is_current(database.engine):
        raise DataDirError("the database is not initialised: run `kvm-admin init` first")
    with database.session() as s:
        admin = s.scalar(
            select(m.User.pk).where(m.User.role == "admin", m.User.enabled.is_(True)).limit(1)
        )
    if admin is None:
        raise DataDirError("no enabled admin user: run `kvm-admin init` first")
