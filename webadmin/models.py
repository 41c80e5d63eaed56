"""Storage model of the management server (SQLAlchemy 2.x declarative).

Names follow the manual: device, seat, wall, hotkey, grant (scope), route, session.
Every table has an integer surrogate key ``pk``; a device's 4-digit ID is ``Device.id``
(NULL while the device is pending), so an admin can renumber a device without touching
the rows that point at it.

Schema changes go through an Alembic revision in ``webadmin/migrations/versions``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so that Alembic revisions work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KINDS = ("tx", "rx")
ADOPTION = ("pending", "adopted")
ROLES = ("admin", "operator")
SCOPES = ("view", "push", "fetch", "login")
ACCESS = ("control", "view-only")
LANGS = ("zh_CN", "en")


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC (what every timestamp column stores)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# --- devices -----------------------------------------------------------------------------


class Device(Base):
    """A Tx or Rx: its configuration (set by an admin) and its reported state."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint(_in("kind", KINDS), name="kind"),
        CheckConstraint(_in("adoption", ADOPTION), name="adoption"),
        CheckConstraint("heads BETWEEN 1 AND 4", name="heads"),
        CheckConstraint("adoption = 'pending' OR id IS NOT NULL", name="adopted_has_id"),
        Index("ix_devices_last_seen", "last_seen"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str | None] = mapped_column(String(4), unique=True)  # "0001".."9999"
    kind: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(64), default="")
    heads: Mapped[int] = mapped_column(Integer, default=1)
    serial: Mapped[str | None] = mapped_column(String(64), unique=True)
    adoption: Mapped[str] = mapped_column(String(8), default="adopted")
    # SHA-256 hex of the device's 256-bit secret; NULL until the first announce binds it.
    credential_hash: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Reported state (device/state); online also needs last_seen within device_timeout.
    last_seen: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    network_up: Mapped[bool] = mapped_column(Boolean, default=True)
    stream_ok: Mapped[bool] = mapped_column(Boolean, default=True)
    # Per head, as last reported: [{"head": 1, "video": true, "source": "0001:1"|null}]
    reported_heads: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Bumped whenever what this device's watch returns changes; never goes back.
    generation: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<Device {self.kind} {self.id or self.serial} {self.adoption}>"


# --- seats and walls ---------------------------------------------------------------------


class Seat(Base):
    """One Rx, or up to 8 Rx behind a cross-screen processor (one keyboard and mouse)."""

    __tablename__ = "seats"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    screens: Mapped[list[SeatScreen]] = relationship(
        back_populates="seat",
        order_by="SeatScreen.position",
        cascade="all, delete-orphan",
    )


class SeatScreen(Base):
    """Screen ``position`` (1..8) of a seat is Rx ``device``; an Rx is in at most one seat."""

    __tablename__ = "seat_screens"
    __table_args__ = (
        UniqueConstraint("seat_pk", "position", name="uq_seat_screens_position"),
        CheckConstraint("position BETWEEN 1 AND 8", name="position"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    seat_pk: Mapped[int] = mapped_column(ForeignKey("seats.pk", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    device_pk: Mapped[int] = mapped_column(
        ForeignKey("devices.pk", ondelete="CASCADE"), unique=True
    )
    seat: Mapped[Seat] = relationship(back_populates="screens")
    device: Mapped[Device] = relationship()


class Wall(Base):
    """A video wall: rows x cols Rx tiles; while ``splice`` is on, all tiles show one Tx."""

    __tablename__ = "walls"
    __table_args__ = (
        CheckConstraint("rows BETWEEN 1 AND 16", name="rows"),
        CheckConstraint("cols BETWEEN 1 AND 16", name="cols"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    rows: Mapped[int] = mapped_column(Integer)
    cols: Mapped[int] = mapped_column(Integer)
    splice: Mapped[bool] = mapped_column(Boolean, default=False)
    tiles: Mapped[list[WallTile]] = relationship(
        back_populates="wall",
        order_by="WallTile.position",
        cascade="all, delete-orphan",
    )


class WallTile(Base):
    """Tile ``position`` (0-based, row-major) of a wall is Rx ``device``."""

    __tablename__ = "wall_tiles"
    __table_args__ = (UniqueConstraint("wall_pk", "position", name="uq_wall_tiles_position"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    wall_pk: Mapped[int] = mapped_column(ForeignKey("walls.pk", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    device_pk: Mapped[int] = mapped_column(
        ForeignKey("devices.pk", ondelete="CASCADE"), unique=True
    )
    wall: Mapped[Wall] = relationship(back_populates="tiles")
    device: Mapped[Device] = relationship()


# --- users, groups, grants ---------------------------------------------------------------

user_group_members = Table(
    "user_group_members",
    Base.metadata,
    Column("group_pk", ForeignKey("user_groups.pk", ondelete="CASCADE"), primary_key=True),
    Column("user_pk", ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
)

device_group_members = Table(
    "device_group_members",
    Base.metadata,
    Column("group_pk", ForeignKey("device_groups.pk", ondelete="CASCADE"), primary_key=True),
    Column("device_pk", ForeignKey("devices.pk", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    """An admin (web UI/API, all devices) or an operator (OSD, scoped by grants)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint(_in("lang", LANGS), name="lang"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(8), default="operator")
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, see webadmin.auth
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    lang: Mapped[str] = mapped_column(String(8), default="zh_CN")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    groups: Mapped[list[UserGroup]] = relationship(
        secondary=user_group_members, back_populates="members"
    )


class UserGroup(Base):
    __tablename__ = "user_groups"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    members: Mapped[list[User]] = relationship(
        secondary=user_group_members, back_populates="groups"
    )


class DeviceGroup(Base):
    __tablename__ = "device_groups"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    members: Mapped[list[Device]] = relationship(secondary=device_group_members)


class Grant(Base):
    """Subject (a user or a user group) gets `scope` on object (a device or a device group).

    ``access`` is meaningful for view grants only: ``control`` (keys reach the computer) or
    ``view-only`` (picture only). A user without any login grant may log in everywhere.
    """

    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint(_in("scope", SCOPES), name="scope"),
        CheckConstraint(_in("access", ACCESS), name="access"),
        CheckConstraint(
            "(user_pk IS NULL) <> (user_group_pk IS NULL)", name="one_subject"
        ),
        CheckConstraint(
            "(device_pk IS NULL) <> (device_group_pk IS NULL)", name="one_object"
        ),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    access: Mapped[str] = mapped_column(String(16), default="control")
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"))
    user_group_pk: Mapped[int | None] = mapped_column(
        ForeignKey("user_groups.pk", ondelete="CASCADE")
    )
    device_pk: Mapped[int | None] = mapped_column(ForeignKey("devices.pk", ondelete="CASCADE"))
    device_group_pk: Mapped[int | None] = mapped_column(
        ForeignKey("device_groups.pk", ondelete="CASCADE")
    )
    user: Mapped[User | None] = relationship()
    user_group: Mapped[UserGroup | None] = relationship()
    device: Mapped[Device | None] = relationship()
    device_group: Mapped[DeviceGroup | None] = relationship()


# --- hotkeys -----------------------------------------------------------------------------


class Hotkey(Base):
    """An admin-defined key (matched case-insensitively) naming an ordered list of devices."""

    __tablename__ = "hotkeys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(16))             # as the admin typed it
    key_lower: Mapped[str] = mapped_column(String(16), unique=True)  # key.lower(), for lookups
    targets: Mapped[list[HotkeyTarget]] = relationship(
        back_populates="hotkey",
        order_by="HotkeyTarget.position",
        cascade="all, delete-orphan",
    )


class HotkeyTarget(Base):
    __tablename__ = "hotkey_targets"
    __table_args__ = (UniqueConstraint("hotkey_pk", "position", name="uq_hotkey_targets_position"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    hotkey_pk: Mapped[int] = mapped_column(ForeignKey("hotkeys.pk", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk", ondelete="CASCADE"))
    hotkey: Mapped[Hotkey] = relationship(back_populates="targets")
    device: Mapped[Device] = relationship()


# --- routing and sessions ----------------------------------------------------------------


class Route(Base):
    """Desired routing of one Rx head. ``tx_pk`` NULL = show nothing (e.g. after logout)."""

    __tablename__ = "routes"
    __table_args__ = (CheckConstraint("head BETWEEN 1 AND 4", name="head"),)

    rx_pk: Mapped[int] = mapped_column(
        ForeignKey("devices.pk", ondelete="CASCADE"), primary_key=True
    )
    head: Mapped[int] = mapped_column(Integer, primary_key=True)
    tx_pk: Mapped[int | None] = mapped_column(ForeignKey("devices.pk", ondelete="SET NULL"))
    tx_head: Mapped[int | None] = mapped_column(Integer)
    set_by: Mapped[str] = mapped_column(String(64), default="")
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Came from a push into a scope that does not include the Tx (SPEC 1.4 rule 1).
    pushed: Mapped[bool] = mapped_column(Boolean, default=False)
    rx: Mapped[Device] = relationship(foreign_keys=[rx_pk])
    tx: Mapped[Device | None] = relationship(foreign_keys=[tx_pk])


class SeatSession(Base):
    """The operator logged in at an Rx. A login at a seat writes one row per screen."""

    __tablename__ = "seat_sessions"

    rx_pk: Mapped[int] = mapped_column(
        ForeignKey("devices.pk", ondelete="CASCADE"), primary_key=True
    )
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The seat's last operator call (login, device list, connect/push/fetch); NULL = since.
    # Written with plain SQL (no version bump): the snapshot does not hold it, only the
    # server's idle logout reads it (webadmin.idle).
    last_active: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    rx: Mapped[Device] = relationship()
    user: Mapped[User] = relationship()


# --- security bookkeeping ----------------------------------------------------------------


class LoginAttempt(Base):
    """One failed login, for the rate limit (seat logins: 5 per user per seat per minute)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_lookup", "user_name", "place", "at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64))
    place: Mapped[str] = mapped_column(String(80))  # "seat:<name>", "rx:<id>" or "admin-token"
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AdminToken(Base):
    """A bearer token for the admin API; only its SHA-256 is stored."""

    __tablename__ = "admin_tokens"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    user: Mapped[User] = relationship()


# --- settings, audit, bookkeeping --------------------------------------------------------


class Settings(Base):
    """The one row (pk=1) of control-room wide OSD settings, sent to every Rx in its watch."""

    __tablename__ = "settings"
    __table_args__ = (CheckConstraint(_in("lang", LANGS), name="lang"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    chord: Mapped[str] = mapped_column(String(64), default="Shift+O Shift+O")
    chord_window_ms: Mapped[int] = mapped_column(Integer, default=600)
    lang: Mapped[str] = mapped_column(String(8), default="zh_CN")
    auto_close_ms: Mapped[int] = mapped_column(Integer, default=1000)
    idle_close_s: Mapped[int] = mapped_column(Integer, default=60)
    idle_logout_s: Mapped[int] = mapped_column(Integer, default=0)  # 0 = off


class AuditEntry(Base):
    """Append-only audit log: every switch, login, logout and admin change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))          # user name, "device:<serial>", "system"
    seat: Mapped[str] = mapped_column(String(64), default="")
    device: Mapped[str] = mapped_column(String(64), default="")  # Rx/Tx ID or serial
    action: Mapped[str] = mapped_column(String(32))         # connect, push, fetch, login, ...
    target: Mapped[str] = mapped_column(Text, default="")   # what was typed / acted on
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[str] = mapped_column(String(32), default="")


class ServerState(Base):
    """The one row (pk=1) of cache versions: a snapshot cache is valid while these hold.

    ``config_version`` moves on any change to devices' configuration, users, groups, grants,
    hotkeys, seats or walls; ``device_version`` on a change of reported device state;
    ``routing_version`` on a change of routes or sessions. Bumped automatically by
    ``webadmin.db`` on ORM flushes.
    """

    __tablename__ = "server_state"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    config_version: Mapped[int] = mapped_column(BigInteger, default=0)
    device_version: Mapped[int] = mapped_column(BigInteger, default=0)
    routing_version: Mapped[int] = mapped_column(BigInteger, default=0)
