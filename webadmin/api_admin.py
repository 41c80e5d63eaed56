"""The admin REST API, ``/api/v1/admin/...`` (docs/API.md "Admin side"; OpenAPI paths in
``webadmin.openapi_admin``).

Every view needs an admin's bearer token (``auth.current_admin``: 401 without, 403 for
operators), parses its body with the same validators as the control-room file (so a
field's rules are the file's, and a 400 names the field), changes the database through
``topology_db.import_config`` (merge) or ``admin_service``, writes an audit entry, commits,
and then wakes the watches of the devices whose view changed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, g, jsonify, request
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kvm_protocol.results import LANGS, ResultCode, push_summary
from kvm_protocol.yamlconf import (
    MAX_BYTES,
    Bool,
    ConfigError,
    Enum,
    Int,
    Invalid,
    ListOf,
    Maybe,
    Option,
    Problem,
    Section,
    Str,
    Validator,
    load_yaml,
    validate,
)
from webadmin import engine, routing, topology, topology_db
from webadmin import models as m
from webadmin.admin_service import AdminError, device_row
from webadmin.api_common import (
    ApiError,
    RequestError,
    db_session,
    error_response,
    json_body,
    no_unknown_args,
    query_int,
    services,
    texts,
)
from webadmin.auth import current_admin
from webadmin.snapshot import Built, SnapshotCache
from webadmin.topology import (
    DEVICE_GROUP,
    GRANT,
    HOTKEY_TARGETS,
    NAME,
    PASSWORD,
    SEAT,
    SERIAL,
    SETTINGS,
    USER_NAME,
    WALL,
    DeviceConf,
    DeviceGroupConf,
    DeviceId,
    DeviceSpec,
    GrantConf,
    HotkeyConf,
    HotkeyKey,
    RoomConfig,
    SeatConf,
    SettingsConf,
    UserConf,
    WallConf,
)

T = TypeVar("T")
bp = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")
STATUS = {"VALIDATION": 400, "UNKNOWN_FIELD": 400, "NOT_FOUND": 404, "CONFLICT": 409}


def init_app(app: Flask) -> None:
    """Register the blueprint and its part of the OpenAPI document."""
    from webadmin import openapi, openapi_admin

    app.register_blueprint(bp)
    openapi.add_part(app, openapi_admin.PATHS, openapi_admin.SCHEMAS)


@bp.before_request
def _admins_only() -> None:
    current_admin()


@bp.errorhandler(AdminError)
def _admin_error(e: AdminError) -> tuple[Response, int]:
    return error_response(STATUS.get(e.code, 400), e.code, e.message)


# --- parsing and finishing ---------------------------------------------------------------


def _problems_error(problems: Iterable[Problem], strip: str = "", prefix: str = "") -> ApiError:
    """Schema problems as one 400 (UNKNOWN_FIELD if that is all they are, else VALIDATION);
    key paths of a one-item configuration become the body's: ``seats[0].screens[1]`` →
    ``screens[1]`` (strip ``seats[0].``)."""
    items = list(problems)
    if any(p.path == "users" and "no enabled admin" in p.message for p in items):
        return ApiError(409, "CONFLICT", "no enabled admin would remain; keep at least one")

    def rebase(path: str) -> str:
        return prefix + path[len(strip):] if strip and path.startswith(strip) else path

    text = "; ".join(str(Problem(rebase(p.path), p.message)) for p in items)
    unknown = all(p.message.startswith("unknown key") for p in items)
    return RequestError("UNKNOWN_FIELD" if unknown else "VALIDATION", text)


def parse(schema: Validator[T], data: object | None = None) -> T:
    """The request's JSON body (or `data`) checked against `schema`."""
    try:
        return validate(schema, json_body() if data is None else data)
    except ConfigError as e:
        raise _problems_error(e.problems) from None


def _actor() -> str:
    return str(g.admin.name)


def _merge(s: Session, cfg: RoomConfig, strip: str, prefix: str = "") -> set[str]:
    """Apply a one-item configuration as a merging import; errors name the body's fields."""
    try:
        summary = topology_db.import_config(s, cfg, replace=False, actor=_actor(),
                                            audit_action=None)
    except ConfigError as e:
        raise _problems_error(e.problems, strip, prefix) from None
    return summary.notify


def _settle(s: Session) -> set[str]:
    """After a direct change of users, groups or grants: drop what logged-in users may no
    longer see; wake every watch (names, seats, keys allowed may have changed)."""
    s.flush()
    built = SnapshotCache(services().config.device_timeout_s).build(s)
    return routing.enforce_scopes(s, built, _actor()) | routing.touch_all(s)


def _audit(s: Session, action: str, target: str, detail: dict[str, Any] | None = None,
           device: str = "") -> None:
    routing.audit(s, actor=_actor(), action=action, result="OK", target=target, device=device,
                  detail=detail)


def _done(notify: Iterable[str], body: Any, status: int = 200) -> tuple[Response, int]:
    db_session().commit()
    ids = set(notify)
    if ids:
        services().hub.notify(ids)
    return jsonify(body), status


def _one(s: Session, model: Any, what: str, **where: Any) -> Any:
    row = s.scalar(select(model).filter_by(**where))
    if row is None:
        raise ApiError(404, "NOT_FOUND", f"no {what} {next(iter(where.values()))!r}")
    return row


def _absent(s: Session, model: Any, what: str, **where: Any) -> None:
    if s.scalar(select(model).filter_by(**where)) is not None:
        raise ApiError(409, "CONFLICT", f"{what} {next(iter(where.values()))!r} exists already")


def _fresh_built(s: Session) -> Built:
    return SnapshotCache(services().config.device_timeout_s).build(s)


# --- devices -----------------------------------------------------------------------------

DEVICE_CREATE = Section({
    "id": DeviceId(), "name": Option(NAME, default=""),
    "heads": Option(Int(1, topology.MAX_HEADS), default=1),
    "serial": Option(Maybe(SERIAL), default=None),
})
DEVICE_PATCH = Section({
    "id": Option(DeviceId(), default=""), "name": Option(NAME, default=""),
    "heads": Option(Int(1, topology.MAX_HEADS), default=0),
    "serial": Option(Maybe(SERIAL), default=None),     # null: no serial
})
ADOPT = Section({"id": DeviceId(), "name": Option(Maybe(NAME), default=None)})


def _device_json(d: m.Device, built: Built | None = None) -> dict[str, Any]:
    online = None
    if built is not None and d.id is not None and d.id in built.snap.devices:
        online = built.snap.devices[d.id].online
    return device_row(d, online=online)


def _device(s: Session, device_id: str) -> m.Device:
    return _one(s, m.Device, "device", id=device_id)  # type: ignore[no-any-return]


def _conf(d: m.Device, **changes: Any) -> DeviceConf:
    kind: topology.Kind = "tx" if d.kind == "tx" else "rx"
    values = {"id": d.id, "name": d.name, "heads": d.heads, "serial": d.serial} | changes
    return DeviceConf(credential_hash=None, sim=None, kind=kind, **values)


def _device_room(conf: DeviceConf) -> RoomConfig:
    return RoomConfig(tx=(conf,)) if conf.kind == "tx" else RoomConfig(rx=(conf,))


def _kind_arg(name: str, choices: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value is not None and value not in choices:
        raise RequestError("VALIDATION", f"query parameter {name} must be one of "
                                         f"{', '.join(choices)}, got {value!r}")
    return value


@bp.get("/devices")
def list_devices() -> Response:
    no_unknown_args("kind", "state")
    kind, state = _kind_arg("kind", ("tx", "rx")), _kind_arg("state", ("adopted", "pending"))
    s = db_session()
    query = select(m.Device).order_by(m.Device.adoption, m.Device.id, m.Device.serial)
    if kind:
        query = query.where(m.Device.kind == kind)
    if state:
        query = query.where(m.Device.adoption == state)
    built = services().cache.build(s)
    return jsonify({"devices": [_device_json(d, built) for d in s.scalars(query)]})


@bp.post("/devices")
def create_device() -> tuple[Response, int]:
    body = parse(DEVICE_CREATE)
    s = db_session()
    _absent(s, m.Device, "device", id=body["id"])
    kind = topology.kind_of(body["id"])
    conf = DeviceConf(credential_hash=None, sim=None, kind=kind or "tx", **body)
    notify = _merge(s, _device_room(conf), f"{conf.kind}[0].")
    _audit(s, "device.create", body["id"], body, device=body["id"])
    return _done(notify, _device_json(_device(s, body["id"])), 201)


@bp.get("/devices/<device_id>")
def get_device(device_id: str) -> Response:
    s = db_session()
    return jsonify(_device_json(_device(s, device_id), services().cache.build(s)))


@bp.patch("/devices/<device_id>")
def update_device(device_id: str) -> tuple[Response, int]:
    raw = json_body()
    body = {k: v for k, v in parse(DEVICE_PATCH, raw).items() if k in raw}
    s = db_session()
    dev = _device(s, device_id)
    new_id = body.pop("id", None) or device_id
    if new_id != device_id:
        if topology.kind_of(new_id) != dev.kind:
            span = "Tx 0001-4999" if dev.kind == "tx" else "Rx 5001-9999"
            raise RequestError("VALIDATION", f"id: {new_id} is not of the kind of {device_id} "
                                             f"({span})")
        _absent(s, m.Device, "device", id=new_id)
        dev.id = new_id
        s.flush()
    notify = _merge(s, _device_room(_conf(dev, **body)), f"{dev.kind}[0].")
    _audit(s, "device.update", device_id, {**body, "id": new_id}, device=new_id)
    return _done(notify, _device_json(_device(s, new_id)))


@bp.delete("/devices/<device_id>")
def delete_device(device_id: str) -> tuple[Response, int]:
    s = db_session()
    dev = _device(s, device_id)
    wall = s.scalar(select(m.Wall.name).join(m.WallTile).where(m.WallTile.device_pk == dev.pk))
    if wall is not None:
        raise ApiError(409, "CONFLICT", f"{device_id} is a tile of wall {wall!r}: change the "
                                        "wall first")
    # The Rx that show this Tx go dark; the seat of this Rx changes.
    showing = s.scalars(select(m.Device.id).join(m.Route, m.Route.rx_pk == m.Device.pk)
                        .where(m.Route.tx_pk == dev.pk)).all()
    s.delete(dev)
    notify = _settle(s) | {d for d in showing if d}
    _audit(s, "device.delete", device_id, device=device_id)
    return _done(notify, {"deleted": device_id})


@bp.post("/devices/<serial>/adopt")
def adopt_device(serial: str) -> tuple[Response, int]:
    from webadmin.admin_service import adopt

    body = parse(ADOPT)
    s = db_session()
    adopted = adopt(s, serial, body["id"], body["name"], actor=_actor())
    return _done(adopted.notify, _device_json(adopted.device))


@bp.post("/devices/<device_id>/reset")
def reset_device(device_id: str) -> tuple[Response, int]:
    from webadmin.admin_service import reset_credential

    parse(Section({}), request.get_json(silent=True) or {})
    s = db_session()
    dev = _device(s, device_id)
    reset_credential(s, dev, actor=_actor())
    return _done((), _device_json(dev))


@bp.delete("/devices/pending/<serial>")
def reject_pending(serial: str) -> tuple[Response, int]:
    s = db_session()
    dev = _one(s, m.Device, "pending device with serial", serial=serial, adoption="pending")
    s.delete(dev)
    _audit(s, "device.reject", serial)
    return _done((), {"deleted": serial})


# --- seats and walls ---------------------------------------------------------------------

SEAT_PATCH = Section({"name": Option(Maybe(NAME), default=None),
                      "screens": Option(Maybe(SEAT.fields["screens"].validator), default=None)})
WALL_PATCH = Section({key: Option(Maybe(option.validator), default=None)
                      for key, option in WALL.fields.items()})


def _ids(members: Iterable[Any]) -> list[str]:
    return [str(x.device.id) for x in members if x.device.id is not None]


def _seat_json(seat: m.Seat) -> dict[str, Any]:
    return {"name": seat.name, "screens": _ids(seat.screens)}


def _wall_json(wall: m.Wall) -> dict[str, Any]:
    return {"name": wall.name, "rows": wall.rows, "cols": wall.cols, "tiles": _ids(wall.tiles),
            "splice": bool(wall.splice)}


def _rename(s: Session, row: Any, model: Any, what: str, new: str | None) -> None:
    if new is not None and new != row.name:
        _absent(s, model, what, name=new)
        row.name = new
        s.flush()


@bp.get("/seats")
def list_seats() -> Response:
    seats = db_session().scalars(select(m.Seat).order_by(m.Seat.name))
    return jsonify({"seats": [_seat_json(x) for x in seats]})


@bp.post("/seats")
def create_seat() -> tuple[Response, int]:
    seat = parse(SEAT)
    s = db_session()
    _absent(s, m.Seat, "seat", name=seat.name)
    notify = _merge(s, RoomConfig(seats=(seat,)), "seats[0].")
    _audit(s, "seat.create", seat.name, {"screens": list(seat.screens)})
    return _done(notify, _seat_json(_one(s, m.Seat, "seat", name=seat.name)), 201)


@bp.get("/seats/<name>")
def get_seat(name: str) -> Response:
    return jsonify(_seat_json(_one(db_session(), m.Seat, "seat", name=name)))


@bp.patch("/seats/<name>")
def update_seat(name: str) -> tuple[Response, int]:
    body = parse(SEAT_PATCH)
    s = db_session()
    seat = _one(s, m.Seat, "seat", name=name)
    _rename(s, seat, m.Seat, "seat", body["name"])
    conf = SeatConf(seat.name, body["screens"] or tuple(_ids(seat.screens)))
    notify = _merge(s, RoomConfig(seats=(conf,)), "seats[0].")
    _audit(s, "seat.update", name, {"name": seat.name, "screens": list(conf.screens)})
    return _done(notify, _seat_json(seat))


@bp.delete("/seats/<name>")
def delete_seat(name: str) -> tuple[Response, int]:
    s = db_session()
    s.delete(_one(s, m.Seat, "seat", name=name))
    notify = _settle(s)
    _audit(s, "seat.delete", name)
    return _done(notify, {"deleted": name})


@bp.get("/walls")
def list_walls() -> Response:
    walls = db_session().scalars(select(m.Wall).order_by(m.Wall.name))
    return jsonify({"walls": [_wall_json(x) for x in walls]})


@bp.post("/walls")
def create_wall() -> tuple[Response, int]:
    wall: WallConf = parse(WALL)
    s = db_session()
    _absent(s, m.Wall, "wall", name=wall.name)
    notify = _merge(s, RoomConfig(walls=(wall,)), "walls[0].")
    _audit(s, "wall.create", wall.name, _wall_json(_one(s, m.Wall, "wall", name=wall.name)))
    return _done(notify, _wall_json(_one(s, m.Wall, "wall", name=wall.name)), 201)


@bp.get("/walls/<name>")
def get_wall(name: str) -> Response:
    return jsonify(_wall_json(_one(db_session(), m.Wall, "wall", name=name)))


@bp.patch("/walls/<name>")
def update_wall(name: str) -> tuple[Response, int]:
    """Change a wall; ``{"splice": true|false}`` switches presenting a splice on or off."""
    body = parse(WALL_PATCH)
    s = db_session()
    wall = _one(s, m.Wall, "wall", name=name)
    _rename(s, wall, m.Wall, "wall", body["name"])
    now = _wall_json(wall)
    values = {k: (now[k] if body[k] is None else body[k])
              for k in ("rows", "cols", "tiles", "splice")}
    conf = parse(WALL, {"name": wall.name, **values, "tiles": list(values["tiles"])})
    notify = _merge(s, RoomConfig(walls=(conf,)), "walls[0].")
    changed = {k: list(v) if isinstance(v, tuple) else v for k, v in body.items() if v is not None}
    _audit(s, "wall.update", name, changed)
    return _done(notify, _wall_json(wall))


@bp.delete("/walls/<name>")
def delete_wall(name: str) -> tuple[Response, int]:
    s = db_session()
    s.delete(_one(s, m.Wall, "wall", name=name))
    notify = _settle(s)
    _audit(s, "wall.delete", name)
    return _done(notify, {"deleted": name})


# --- users and groups --------------------------------------------------------------------

GROUP_NAMES = ListOf(NAME, unique=True)
USER_CREATE = Section({
    "name": USER_NAME, "password": PASSWORD,
    "role": Option(Enum(*topology.ROLES), default="operator"),
    "enabled": Option(Bool(), default=True),
    "lang": Option(Enum(*topology.LANGS), default="zh_CN"),
    "groups": Option(GROUP_NAMES, default=()),
})
USER_PATCH = Section({
    "role": Option(Maybe(Enum(*topology.ROLES)), default=None),
    "enabled": Option(Maybe(Bool()), default=None),
    "lang": Option(Maybe(Enum(*topology.LANGS)), default=None),
    "groups": Option(Maybe(GROUP_NAMES), default=None),
})
PASSWORD_BODY = Section({"password": PASSWORD})
MEMBERS = ListOf(USER_NAME, unique=True)
GROUP = Section({"name": NAME, "members": Option(MEMBERS, default=())})
GROUP_PATCH = Section({"name": Option(Maybe(NAME), default=None),
                       "members": Option(Maybe(MEMBERS), default=None)})
DEVICE_GROUP_PATCH = Section({"name": Option(Maybe(NAME), default=None),
                              "devices": Option(Maybe(ListOf(DeviceSpec(), unique=True)),
                                                default=None)})


def _user_json(u: m.User, sessions: dict[int, list[str]] | None = None) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "enabled": bool(u.enabled), "lang": u.lang,
            "groups": sorted(x.name for x in u.groups), "created_at": u.created_at.isoformat(),
            "logged_in_at": (sessions or {}).get(u.pk, [])}


def _sessions(s: Session) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for user_pk, rx in s.execute(select(m.SeatSession.user_pk, m.Device.id)
                                 .join(m.Device, m.Device.pk == m.SeatSession.rx_pk)
                                 .order_by(m.Device.id)):
        if rx is not None:
            out.setdefault(user_pk, []).append(rx)
    return out


def _user(s: Session, name: str) -> m.User:
    return _one(s, m.User, "user", name=name)  # type: ignore[no-any-return]


def _user_conf(u: m.User, **changes: Any) -> UserConf:
    values: dict[str, Any] = {
        "name": u.name, "role": u.role, "enabled": bool(u.enabled), "lang": u.lang,
        "groups": tuple(sorted(x.name for x in u.groups)), "password": None,
        "password_hash": None,
    }
    return UserConf(**(values | {k: v for k, v in changes.items() if v is not None}))


def _log_out(s: Session, user: m.User) -> set[str]:
    """End every seat session of `user` (disabled or deleted): their screens go dark."""
    built = _fresh_built(s)
    notify: set[str] = set()
    done: set[str] = set()
    for rx in _sessions(s).get(user.pk, []):
        if rx not in done:
            result = routing.logout(s, built, rx_id=rx)
            notify |= result.notify
            done |= set(built.seat(rx).screens)
    return notify


@bp.get("/users")
def list_users() -> Response:
    s = db_session()
    sessions = _sessions(s)
    return jsonify({"users": [_user_json(u, sessions)
                              for u in s.scalars(select(m.User).order_by(m.User.name))]})


@bp.post("/users")
def create_user() -> tuple[Response, int]:
    body = parse(USER_CREATE)
    s = db_session()
    _absent(s, m.User, "user", name=body["name"])
    conf = UserConf(password_hash=None, **body)
    notify = _merge(s, RoomConfig(users=(conf,)), "users[0].")
    _audit(s, "user.create", conf.name, {k: v for k, v in body.items() if k != "password"})
    return _done(notify, _user_json(_user(s, conf.name)), 201)


@bp.get("/users/<name>")
def get_user(name: str) -> Response:
    s = db_session()
    return jsonify(_user_json(_user(s, name), _sessions(s)))


@bp.patch("/users/<name>")
def update_user(name: str) -> tuple[Response, int]:
    """Role, enabled (false disables the user and ends their seat sessions), lang, groups."""
    body = parse(USER_PATCH)
    s = db_session()
    user = _user(s, name)
    notify = _merge(s, RoomConfig(users=(_user_conf(user, **body),)), "users[0].")
    if not user.enabled:
        notify |= _log_out(s, user)
    _audit(s, "user.update", name, {k: v for k, v in body.items() if v is not None})
    return _done(notify, _user_json(user, _sessions(s)))


@bp.delete("/users/<name>")
def delete_user(name: str) -> tuple[Response, int]:
    s = db_session()
    user = _user(s, name)
    if user.role == "admin" and user.enabled and s.scalar(
        select(func.count()).where(m.User.role == "admin", m.User.enabled.is_(True))) == 1:
        raise ApiError(409, "CONFLICT", "no enabled admin would remain; keep at least one")
    notify = _log_out(s, user)
    s.delete(user)
    notify |= _settle(s)
    _audit(s, "user.delete", name)
    return _done(notify, {"deleted": name})


@bp.post("/users/<name>/password")
def reset_password(name: str) -> tuple[Response, int]:
    from webadmin.admin_service import set_password

    body = parse(PASSWORD_BODY)
    s = db_session()
    set_password(s, _user(s, name), body["password"], actor=_actor())
    return _done((), {"user": name, "password": "changed"})


def _group_json(group: m.UserGroup) -> dict[str, Any]:
    return {"name": group.name, "members": sorted(u.name for u in group.members)}


def _set_members(s: Session, group: m.UserGroup, names: Iterable[str]) -> None:
    users = []
    for i, name in enumerate(names):
        user = s.scalar(select(m.User).where(m.User.name == name))
        if user is None:
            raise RequestError("VALIDATION", f"members[{i}]: no user {name!r}")
        users.append(user)
    group.members = users


@bp.get("/groups")
def list_groups() -> Response:
    groups = db_session().scalars(select(m.UserGroup).order_by(m.UserGroup.name))
    return jsonify({"groups": [_group_json(x) for x in groups]})


@bp.post("/groups")
def create_group() -> tuple[Response, int]:
    body = parse(GROUP)
    s = db_session()
    _absent(s, m.UserGroup, "user group", name=body["name"])
    group = m.UserGroup(name=body["name"])
    s.add(group)
    _set_members(s, group, body["members"])
    notify = _settle(s)
    _audit(s, "group.create", group.name, {"members": list(body["members"])})
    return _done(notify, _group_json(group), 201)


@bp.get("/groups/<name>")
def get_group(name: str) -> Response:
    return jsonify(_group_json(_one(db_session(), m.UserGroup, "user group", name=name)))


@bp.patch("/groups/<name>")
def update_group(name: str) -> tuple[Response, int]:
    body = parse(GROUP_PATCH)
    s = db_session()
    group = _one(s, m.UserGroup, "user group", name=name)
    _rename(s, group, m.UserGroup, "user group", body["name"])
    if body["members"] is not None:
        _set_members(s, group, body["members"])
    notify = _settle(s)
    _audit(s, "group.update", name, {k: v for k, v in body.items() if v is not None})
    return _done(notify, _group_json(group))


@bp.delete("/groups/<name>")
def delete_group(name: str) -> tuple[Response, int]:
    s = db_session()
    s.delete(_one(s, m.UserGroup, "user group", name=name))
    notify = _settle(s)
    _audit(s, "group.delete", name)
    return _done(notify, {"deleted": name})


def _device_group_json(group: m.DeviceGroup) -> dict[str, Any]:
    return {"name": group.name,
            "devices": topology.compress(d.id for d in group.members if d.id is not None)}


@bp.get("/device-groups")
def list_device_groups() -> Response:
    groups = db_session().scalars(select(m.DeviceGroup).order_by(m.DeviceGroup.name))
    return jsonify({"device_groups": [_device_group_json(x) for x in groups]})


@bp.post("/device-groups")
def create_device_group() -> tuple[Response, int]:
    conf: DeviceGroupConf = parse(DEVICE_GROUP)
    s = db_session()
    _absent(s, m.DeviceGroup, "device group", name=conf.name)
    notify = _merge(s, RoomConfig(device_groups=(conf,)), "device_groups[0].")
    _audit(s, "device_group.create", conf.name, {"devices": list(conf.devices)})
    group = _one(s, m.DeviceGroup, "device group", name=conf.name)
    return _done(notify, _device_group_json(group), 201)


@bp.get("/device-groups/<name>")
def get_device_group(name: str) -> Response:
    return jsonify(_device_group_json(_one(db_session(), m.DeviceGroup, "device group",
                                           name=name)))


@bp.patch("/device-groups/<name>")
def update_device_group(name: str) -> tuple[Response, int]:
    body = parse(DEVICE_GROUP_PATCH)
    s = db_session()
    group = _one(s, m.DeviceGroup, "device group", name=name)
    _rename(s, group, m.DeviceGroup, "device group", body["name"])
    devices = body["devices"]
    if devices is None:
        devices = tuple(topology.compress(d.id for d in group.members if d.id is not None))
    notify = _merge(s, RoomConfig(device_groups=(DeviceGroupConf(group.name, devices),)),
                    "device_groups[0].")
    _audit(s, "device_group.update", name, {k: v for k, v in body.items() if v is not None})
    return _done(notify, _device_group_json(group))


@bp.delete("/device-groups/<name>")
def delete_device_group(name: str) -> tuple[Response, int]:
    s = db_session()
    s.delete(_one(s, m.DeviceGroup, "device group", name=name))
    notify = _settle(s)
    _audit(s, "device_group.delete", name)
    return _done(notify, {"deleted": name})


# --- grants ------------------------------------------------------------------------------

def _grant_json(g_: m.Grant) -> dict[str, Any]:
    out: dict[str, Any] = {"id": g_.pk, "scope": g_.scope, "access": g_.access}
    if g_.user is not None:
        out["user"] = g_.user.name
    elif g_.user_group is not None:
        out["group"] = g_.user_group.name
    if g_.device is not None:
        out["device"] = g_.device.id
    elif g_.device_group is not None:
        out["device_group"] = g_.device_group.name
    return out


def _grants_of(s: Session, user: str | None, group: str | None,
               scope: str | None) -> list[m.Grant]:
    query = select(m.Grant).order_by(m.Grant.pk)
    if user is not None:
        query = query.join(m.User, m.User.pk == m.Grant.user_pk).where(m.User.name == user)
    if group is not None:
        query = query.join(m.UserGroup, m.UserGroup.pk == m.Grant.user_group_pk).where(
            m.UserGroup.name == group)
    if scope is not None:
        query = query.where(m.Grant.scope == scope)
    return list(s.scalars(query))


@bp.get("/grants")
def list_grants() -> Response:
    no_unknown_args("user", "group", "scope")
    scope = _kind_arg("scope", topology.SCOPES)
    grants = _grants_of(db_session(), request.args.get("user"), request.args.get("group"), scope)
    return jsonify({"grants": [_grant_json(x) for x in grants]})


@bp.post("/grants")
def create_grants() -> tuple[Response, int]:
    """One grant entry as in the file (IDs, ranges, device groups) → one row per object."""
    conf: GrantConf = parse(GRANT)
    s = db_session()
    before = {x.pk for x in _grants_of(s, conf.user, conf.group, conf.scope)}
    notify = _merge(s, RoomConfig(grants=(conf,)), "grants[0].")
    added = [x for x in _grants_of(s, conf.user, conf.group, conf.scope) if x.pk not in before]
    _audit(s, "grant.create", conf.user or conf.group or "",
           {"scope": conf.scope, "access": conf.access, "devices": list(conf.devices),
            "device_groups": list(conf.device_groups), "added": len(added)})
    return _done(notify, {"grants": [_grant_json(x) for x in added]}, 201)


@bp.delete("/grants/<int:grant_id>")
def delete_grant(grant_id: int) -> tuple[Response, int]:
    s = db_session()
    grant = _one(s, m.Grant, "grant", pk=grant_id)
    detail = _grant_json(grant)
    s.delete(grant)
    notify = _settle(s)
    _audit(s, "grant.delete", str(grant_id), detail)
    return _done(notify, {"deleted": grant_id})


# --- hotkeys and settings ----------------------------------------------------------------

HOTKEY = Section({"targets": HOTKEY_TARGETS})


def _hotkey_json(hk: m.Hotkey) -> dict[str, Any]:
    return {"key": hk.key, "targets": _ids(hk.targets)}


@bp.get("/hotkeys")
def list_hotkeys() -> Response:
    hotkeys = db_session().scalars(select(m.Hotkey).order_by(m.Hotkey.key_lower))
    return jsonify({"hotkeys": [_hotkey_json(x) for x in hotkeys]})


@bp.get("/hotkeys/<key>")
def get_hotkey(key: str) -> Response:
    return jsonify(_hotkey_json(_one(db_session(), m.Hotkey, "hotkey", key_lower=key.lower())))


@bp.put("/hotkeys/<key>")
def put_hotkey(key: str) -> tuple[Response, int]:
    """Create or replace a hotkey (keys are not case-sensitive: ``a1`` replaces ``A1``)."""
    body = parse(HOTKEY)
    try:
        key = HotkeyKey().convert(key)
    except Invalid as e:
        raise RequestError("VALIDATION", f"key: {e.message}") from None
    s = db_session()
    existed = s.scalar(select(m.Hotkey).where(m.Hotkey.key_lower == key.lower())) is not None
    conf = HotkeyConf(key, body["targets"])
    notify = _merge(s, RoomConfig(hotkeys=(conf,)), f"hotkeys.{key}", "targets")
    _audit(s, "hotkey.save", key, {"targets": list(conf.targets)})
    return _done(notify, _hotkey_json(_one(s, m.Hotkey, "hotkey", key_lower=key.lower())),
                 200 if existed else 201)


@bp.delete("/hotkeys/<key>")
def delete_hotkey(key: str) -> tuple[Response, int]:
    s = db_session()
    s.delete(_one(s, m.Hotkey, "hotkey", key_lower=key.lower()))
    _audit(s, "hotkey.delete", key)
    return _done((), {"deleted": key})


@bp.get("/settings")
def get_settings() -> Response:
    return jsonify(topology_db.export_settings(db_session()))


@bp.patch("/settings")
def update_settings() -> tuple[Response, int]:
    conf: SettingsConf = parse(SETTINGS)
    s = db_session()
    notify = _merge(s, RoomConfig(settings=conf), "settings.")
    _audit(s, "settings.update", "", conf.given())
    return _done(notify, topology_db.export_settings(s))


# --- routing -----------------------------------------------------------------------------

TYPED = Section({"input": Str(max_len=200)})
ACTIONS = {"connect": engine.connect, "push": engine.push, "fetch": engine.fetch}


def _result(code: ResultCode, **extra: Any) -> dict[str, Any]:
    return {"result": code.value, "text": texts(code), **extra}


@bp.get("/routing")
def get_routing() -> Response:
    """The desired routing of every Rx head, and who is logged in where."""
    built = services().cache.build(db_session())
    snap = built.snap
    rows = []
    for rx_id in sorted(d for d, dev in snap.devices.items() if dev.kind == "rx"):
        heads = []
        routes = snap.routing.get(rx_id, ())
        for head in range(1, snap.devices[rx_id].heads + 1):
            route = routes[head - 1] if head <= len(routes) else None
            heads.append({"head": head,
                          "source": f"{route.tx_id}:{route.tx_head}" if route else None,
                          "set_by": route.set_by if route else "",
                          "pushed": bool(route and route.pushed)})
        rows.append({"rx": rx_id, "name": snap.devices[rx_id].name,
                     "seat": built.seat(rx_id).name, "user": snap.sessions.get(rx_id),
                     "online": snap.devices[rx_id].online, "heads": heads})
    return jsonify({"routing": rows})


@bp.post("/routing/<rx_id>/<action>")
def route(rx_id: str, action: str) -> tuple[Response, int]:
    """Connect / push / fetch as the admin (the engine decides, like at a seat), or
    disconnect every head of one Rx. Audited as ``admin_<action>``."""
    s = db_session()
    built = services().cache.build(s)
    device = built.snap.devices.get(rx_id)
    if device is None or device.kind != "rx":
        raise ApiError(404, "NOT_FOUND", f"no Rx {rx_id}")
    if action == "disconnect":
        parse(Section({}), request.get_json(silent=True) or {})
        text = ""
        outcome = engine.Outcome(ResultCode.DISCONNECTED, tuple(
            engine.RouteChange(rx_id, head, None) for head in range(1, device.heads + 1)))
    elif action in ACTIONS:
        text = parse(TYPED)["input"]
        outcome = ACTIONS[action](built.snap, _actor(), rx_id, text)
    else:
        raise ApiError(404, "NOT_FOUND", f"no routing action {action!r} "
                                         "(connect, push, fetch, disconnect)")
    notify = routing.apply_outcome(s, built, outcome, actor=_actor(), rx_id=rx_id,
                                   action=f"admin_{action}", text=text)
    extra: dict[str, Any] = {}
    if outcome.targets:
        extra["targets"] = [{"id": t.target, "result": t.code.value, "text": texts(t.code)}
                            for t in outcome.targets]
        failures = [(t.target, t.code) for t in outcome.targets if not t.code.ok]
        if failures and len(outcome.targets) > 1:
            extra["summary"] = {lang: push_summary(failures, lang) for lang in LANGS}
    return _done(notify, _result(outcome.code, **extra))


# --- audit log ---------------------------------------------------------------------------

AUDIT_ARGS = ("user", "device", "action", "since", "until", "limit", "offset")
CSV_COLUMNS = ("id", "at", "actor", "seat", "device", "action", "target", "result", "detail")


def _time_arg(name: str) -> dt.datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RequestError("VALIDATION", f"query parameter {name} must be an ISO 8601 time "
                                         f"such as 2024-05-01T08:00:00Z, got {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _audit_query(s: Session) -> Any:
    query = select(m.AuditEntry)
    if (user := request.args.get("user")) is not None:
        query = query.where(m.AuditEntry.actor == user)
    if (device := request.args.get("device")) is not None:
        query = query.where(or_(m.AuditEntry.device == device,
                                m.AuditEntry.device == f"device:{device}"))
    if (action := request.args.get("action")) is not None:
        query = query.where(m.AuditEntry.action == action)
    if (since := _time_arg("since")) is not None:
        query = query.where(m.AuditEntry.at >= since)
    if (until := _time_arg("until")) is not None:
        query = query.where(m.AuditEntry.at < until)
    return query


def _entry(e: m.AuditEntry) -> dict[str, Any]:
    return {"id": e.pk, "at": e.at.isoformat(), "actor": e.actor, "seat": e.seat,
            "device": e.device, "action": e.action, "target": e.target, "result": e.result,
            "detail": e.detail}


@bp.get("/audit")
def audit_log() -> Response:
    """Newest first; filters: user (actor), device, action, since/until (ISO 8601); paging."""
    no_unknown_args(*AUDIT_ARGS)
    limit = query_int("limit", default=100, lo=1, hi=1000)
    offset = query_int("offset", default=0, lo=0, hi=10**9)
    s = db_session()
    query = _audit_query(s)
    total = s.scalar(select(func.count()).select_from(query.subquery()))
    rows = s.scalars(query.order_by(m.AuditEntry.at.desc(), m.AuditEntry.pk.desc())
                     .limit(limit).offset(offset))
    return jsonify({"total": total, "limit": limit, "offset": offset,
                    "entries": [_entry(e) for e in rows]})


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/audit.csv")
def audit_csv() -> Response:
    """The same filters as /audit, every matching entry (at most 100 000), oldest first."""
    no_unknown_args(*AUDIT_ARGS)
    limit = query_int("limit", default=100_000, lo=1, hi=100_000)
    offset = query_int("offset", default=0, lo=0, hi=10**9)
    s = db_session()
    rows = s.scalars(_audit_query(s).order_by(m.AuditEntry.at, m.AuditEntry.pk)
                     .limit(limit).offset(offset))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in rows:
        d = _entry(e) | {"detail": json.dumps(e.detail, ensure_ascii=False, sort_keys=True)}
        writer.writerow([_cell(d[c]) for c in CSV_COLUMNS])
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=kvm-audit.csv"})


# --- whole configuration -----------------------------------------------------------------


@bp.get("/config")
def config_export() -> Response:
    """The configuration in the control-room format: YAML (default) or ``?format=json``."""
    no_unknown_args("format")
    fmt = _kind_arg("format", ("yaml", "json")) or "yaml"
    s = db_session()
    doc = topology_db.export_config(s)
    _audit(s, "export", fmt)
    s.commit()
    if fmt == "json":
        return jsonify(doc)
    return Response(topology_db.dump_yaml(doc), mimetype="application/yaml",
                    headers={"Content-Disposition": "attachment; filename=control-room.yaml"})


@bp.post("/config")
def config_import() -> tuple[Response, int]:
    """Import a control-room document (YAML or JSON body); ``?mode=merge`` (default) or
    ``?mode=replace``. All problems are listed in the 400's message."""
    no_unknown_args("mode")
    mode = _kind_arg("mode", ("merge", "replace")) or "merge"
    request.max_content_length = MAX_BYTES
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequestError("BAD_JSON", "the body is not UTF-8 text") from None
    try:
        cfg = topology.parse(load_yaml(text, name="body"))
    except ConfigError as e:
        raise _problems_error(e.problems) from None
    s = db_session()
    try:
        summary = topology_db.import_config(s, cfg, replace=mode == "replace", actor=_actor())
    except ConfigError as e:
        raise _problems_error(e.problems) from None
    return _done(summary.notify, {"mode": summary.mode, "counts": summary.counts})
