"""The admin REST API, ``/api/v1/admin/...`` (docs/API.md "Admin side"; OpenAPI paths in
``webadmin.openapi_admin``).

Every view needs an admin's bearer token (``auth.current_admin``: 401 without, 403 for
operators), parses its body with the same validators as the control-room file (so a
field's rules are the file's, and a 400 names the field), changes the database through
``admin_service`` (the same operations as the web UI; they check, change and audit), commits,
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

from kvm_protocol.results import LANGS, push_summary
from kvm_protocol.yamlconf import (
    MAX_BYTES,
    Bool,
    ConfigError,
    Enum,
    Int,
    ListOf,
    Maybe,
    Option,
    Section,
    Str,
    Validator,
    load_yaml,
    validate,
)
from webadmin import admin_service as svc
from webadmin import models as m
from webadmin import routing, topology, topology_db
from webadmin.admin_service import AdminError
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
from webadmin.auth import current_admin, hash_passwords_first
from webadmin.bodies import takes_body
from webadmin.snapshot import Built
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
    DeviceGroupConf,
    DeviceId,
    GrantConf,
    SeatConf,
    SettingsConf,
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


def parse(schema: Validator[T], data: object | None = None) -> T:
    """The request's JSON body (or `data`) checked against `schema`: a 400 names each field
    (UNKNOWN_FIELD when unknown fields are all that is wrong)."""
    try:
        return validate(schema, json_body() if data is None else data)
    except ConfigError as e:
        unknown = all(p.message.startswith("unknown key") for p in e.problems)
        raise RequestError("UNKNOWN_FIELD" if unknown else "VALIDATION",
                           "; ".join(str(p) for p in e.problems)) from None


def parse_empty() -> None:
    """Actions without fields take no body, ``{}`` or an empty JSON object."""
    if request.get_data(cache=True).strip():
        parse(Section({}))


def _actor() -> str:
    return str(g.admin.name)


def _done(notify: Iterable[str], body: Any, status: int = 200) -> tuple[Response, int]:
    """Commit, then wake the watches of `notify` (so a woken watch reads the commit)."""
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


def _kind_arg(name: str, choices: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value is not None and value not in choices:
        raise RequestError("VALIDATION", f"query parameter {name} must be one of "
                                         f"{', '.join(choices)}, got {value!r}")
    return value


def _ids(members: Iterable[Any]) -> list[str]:
    return [str(x.device.id) for x in members if x.device.id is not None]


# --- devices -----------------------------------------------------------------------------

HEADS = Int(1, topology.MAX_HEADS)
DEVICE_CREATE = Section({"id": DeviceId(), "name": NAME,
                         "heads": Option(HEADS, default=1),
                         "serial": Option(Maybe(SERIAL), default=None)})
DEVICE_PATCH = Section({"id": Option(Maybe(DeviceId()), default=None),
                        "name": Option(Maybe(NAME), default=None),
                        "heads": Option(Maybe(HEADS), default=None)})
ADOPT = Section({"id": DeviceId(), "name": Option(Maybe(NAME), default=None)})


def _device_json(d: m.Device, built: Built | None = None) -> dict[str, Any]:
    online = None
    if built is not None and d.id is not None and d.id in built.snap.devices:
        online = built.snap.devices[d.id].online
    return svc.device_row(d, online=online)


def _device(s: Session, device_id: str) -> m.Device:
    return _one(s, m.Device, "device", id=device_id)  # type: ignore[no-any-return]


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
    """Pre-provision a device: with a serial, the device with it binds on its first announce."""
    body = parse(DEVICE_CREATE)
    s = db_session()
    notify = svc.create_device(s, device_id=body["id"], name=body["name"], heads=body["heads"],
                               serial=body["serial"], actor=_actor())
    return _done(notify, _device_json(_device(s, body["id"])), 201)


@bp.get("/devices/<device_id>")
def get_device(device_id: str) -> Response:
    s = db_session()
    return jsonify(_device_json(_device(s, device_id), services().cache.build(s)))


@bp.patch("/devices/<device_id>")
def update_device(device_id: str) -> tuple[Response, int]:
    """Renumber (same kind), rename, change heads."""
    body = parse(DEVICE_PATCH)
    s = db_session()
    dev = _device(s, device_id)
    new_id = body["id"] or device_id
    notify = svc.update_device(s, dev, device_id=new_id, name=_given(body["name"], dev.name),
                               heads=_given(body["heads"], dev.heads), actor=_actor())
    return _done(notify, _device_json(_device(s, new_id)))


def _given(value: T | None, current: T) -> T:
    return current if value is None else value


@bp.delete("/devices/<device_id>")
def delete_device(device_id: str) -> tuple[Response, int]:
    s = db_session()
    notify = svc.delete_device(s, _device(s, device_id), actor=_actor())
    return _done(notify, {"deleted": device_id})


@bp.post("/devices/<serial>/adopt")
def adopt_device(serial: str) -> tuple[Response, int]:
    body = parse(ADOPT)
    adopted = svc.adopt(db_session(), serial, body["id"], body["name"], actor=_actor())
    return _done(adopted.notify, _device_json(adopted.device))


@bp.post("/devices/<device_id>/reset")
def reset_device(device_id: str) -> tuple[Response, int]:
    parse_empty()
    s = db_session()
    dev = _device(s, device_id)
    svc.reset_credential(s, dev, actor=_actor())
    return _done((), _device_json(dev))


@bp.delete("/devices/pending/<serial>")
def reject_pending(serial: str) -> tuple[Response, int]:
    s = db_session()
    svc.forget_pending(s, svc.device_by_serial(s, serial), actor=_actor())
    return _done((), {"deleted": serial})


# --- seats and walls ---------------------------------------------------------------------

SEAT_PATCH = Section({key: Option(Maybe(option.validator), default=None)
                      for key, option in SEAT.fields.items()})
WALL_PATCH = Section({key: Option(Maybe(option.validator), default=None)
                      for key, option in WALL.fields.items()})


def _seat_json(seat: m.Seat) -> dict[str, Any]:
    return {"name": seat.name, "screens": _ids(seat.screens)}


def _wall_json(wall: m.Wall) -> dict[str, Any]:
    return {"name": wall.name, "rows": wall.rows, "cols": wall.cols, "tiles": _ids(wall.tiles),
            "splice": bool(wall.splice)}


def _save_layout(model: Any, what: str, save: Any, to_json: Any, body: dict[str, Any],
                 row: Any = None) -> tuple[Response, int]:
    """Create (`row` None) or change a seat or wall: fields not given keep their value."""
    s = db_session()
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in body.items()}
    if row is not None:
        values = {k: (to_json(row)[k] if v is None else v) for k, v in values.items()}
    notify = save(s, **values, actor=_actor(), **{what: row})
    return _done(notify, to_json(_one(s, model, what, name=values["name"])),
                 201 if row is None else 200)


@bp.get("/seats")
def list_seats() -> Response:
    seats = db_session().scalars(select(m.Seat).order_by(m.Seat.name))
    return jsonify({"seats": [_seat_json(x) for x in seats]})


@bp.post("/seats")
def create_seat() -> tuple[Response, int]:
    seat: SeatConf = parse(SEAT)
    return _save_layout(m.Seat, "seat", svc.save_seat, _seat_json,
                        {"name": seat.name, "screens": seat.screens})


@bp.get("/seats/<name>")
def get_seat(name: str) -> Response:
    return jsonify(_seat_json(_one(db_session(), m.Seat, "seat", name=name)))


@bp.patch("/seats/<name>")
def update_seat(name: str) -> tuple[Response, int]:
    body = parse(SEAT_PATCH)
    seat = _one(db_session(), m.Seat, "seat", name=name)
    return _save_layout(m.Seat, "seat", svc.save_seat, _seat_json, body, seat)


@bp.delete("/seats/<name>")
def delete_seat(name: str) -> tuple[Response, int]:
    s = db_session()
    notify = svc.delete_seat(s, _one(s, m.Seat, "seat", name=name), actor=_actor())
    return _done(notify, {"deleted": name})


@bp.get("/walls")
def list_walls() -> Response:
    walls = db_session().scalars(select(m.Wall).order_by(m.Wall.name))
    return jsonify({"walls": [_wall_json(x) for x in walls]})


@bp.post("/walls")
def create_wall() -> tuple[Response, int]:
    wall: WallConf = parse(WALL)
    return _save_layout(m.Wall, "wall", svc.save_wall, _wall_json,
                        {"name": wall.name, "rows": wall.rows, "cols": wall.cols,
                         "tiles": wall.tiles, "splice": wall.splice})


@bp.get("/walls/<name>")
def get_wall(name: str) -> Response:
    return jsonify(_wall_json(_one(db_session(), m.Wall, "wall", name=name)))


@bp.patch("/walls/<name>")
def update_wall(name: str) -> tuple[Response, int]:
    """Change a wall; ``{"splice": true|false}`` switches presenting a splice on or off."""
    body = parse(WALL_PATCH)
    wall = _one(db_session(), m.Wall, "wall", name=name)
    return _save_layout(m.Wall, "wall", svc.save_wall, _wall_json, body, wall)


@bp.delete("/walls/<name>")
def delete_wall(name: str) -> tuple[Response, int]:
    s = db_session()
    notify = svc.delete_wall(s, _one(s, m.Wall, "wall", name=name), actor=_actor())
    return _done(notify, {"deleted": name})


# --- users and groups --------------------------------------------------------------------

GROUP_NAMES = ListOf(NAME, unique=True)
ROLE, LANG = Enum(*topology.ROLES), Enum(*topology.LANGS)
USER_CREATE = Section({
    "name": USER_NAME, "password": PASSWORD, "role": Option(ROLE, default="operator"),
    "enabled": Option(Bool(), default=True), "lang": Option(LANG, default="zh_CN"),
    "groups": Option(GROUP_NAMES, default=()),
})
USER_PATCH = Section({
    "role": Option(Maybe(ROLE), default=None), "enabled": Option(Maybe(Bool()), default=None),
    "lang": Option(Maybe(LANG), default=None), "groups": Option(Maybe(GROUP_NAMES), default=None),
})
PASSWORD_BODY = Section({"password": PASSWORD})
MEMBERS = ListOf(USER_NAME, unique=True)
GROUP = Section({"name": NAME, "members": Option(MEMBERS, default=())})
GROUP_PATCH = Section({"name": Option(Maybe(NAME), default=None),
                       "members": Option(Maybe(MEMBERS), default=None)})
DEVICE_GROUP_PATCH = Section({key: Option(Maybe(option.validator), default=None)
                              for key, option in DEVICE_GROUP.fields.items()})


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
    notify = svc.create_user(s, **{**body, "groups": list(body["groups"])}, actor=_actor())
    return _done(notify, _user_json(_user(s, body["name"])), 201)


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
    now = _user_json(user)
    values = {k: (now[k] if v is None else v) for k, v in body.items()}
    notify = svc.update_user(s, user, role=values["role"], enabled=values["enabled"],
                             lang=values["lang"], groups=list(values["groups"]), actor=_actor())
    return _done(notify, _user_json(user, _sessions(s)))


@bp.delete("/users/<name>")
def delete_user(name: str) -> tuple[Response, int]:
    s = db_session()
    notify = svc.delete_user(s, _user(s, name), actor=_actor())
    return _done(notify, {"deleted": name})


@bp.post("/users/<name>/password")
def reset_password(name: str) -> tuple[Response, int]:
    body = parse(PASSWORD_BODY)
    s = db_session()
    svc.reset_password(s, _user(s, name), body["password"], actor=_actor())
    return _done((), {"user": name, "password": "changed"})


def _group_json(group: m.UserGroup) -> dict[str, Any]:
    return {"name": group.name, "members": sorted(u.name for u in group.members)}


def _device_group_json(group: m.DeviceGroup) -> dict[str, Any]:
    return {"name": group.name,
            "devices": topology.compress(d.id for d in group.members if d.id is not None)}


@bp.get("/groups")
def list_groups() -> Response:
    groups = db_session().scalars(select(m.UserGroup).order_by(m.UserGroup.name))
    return jsonify({"groups": [_group_json(x) for x in groups]})


@bp.post("/groups")
def create_group() -> tuple[Response, int]:
    body = parse(GROUP)
    return _save_group(m.UserGroup, "user group", svc.save_user_group, _group_json, "members",
                       body)


@bp.get("/groups/<name>")
def get_group(name: str) -> Response:
    return jsonify(_group_json(_one(db_session(), m.UserGroup, "user group", name=name)))


@bp.patch("/groups/<name>")
def update_group(name: str) -> tuple[Response, int]:
    body = parse(GROUP_PATCH)
    group = _one(db_session(), m.UserGroup, "user group", name=name)
    return _save_group(m.UserGroup, "user group", svc.save_user_group, _group_json, "members",
                       body, group)


def _save_group(model: Any, what: str, save: Any, to_json: Any, members: str,
                body: dict[str, Any], row: Any = None) -> tuple[Response, int]:
    """Create or change a user group (members) or a device group (devices)."""
    s = db_session()
    now = to_json(row) if row is not None else {}
    values = {k: list(now[k] if v is None else v) if k == members else (v or now.get(k))
              for k, v in body.items()}
    notify = save(s, **values, actor=_actor(), group=row)
    return _done(notify, to_json(_one(s, model, what, name=values["name"])),
                 201 if row is None else 200)


@bp.delete("/groups/<name>")
def delete_group(name: str) -> tuple[Response, int]:
    s = db_session()
    group = _one(s, m.UserGroup, "user group", name=name)
    return _done(svc.delete_user_group(s, group, actor=_actor()), {"deleted": name})


@bp.get("/device-groups")
def list_device_groups() -> Response:
    groups = db_session().scalars(select(m.DeviceGroup).order_by(m.DeviceGroup.name))
    return jsonify({"device_groups": [_device_group_json(x) for x in groups]})


@bp.post("/device-groups")
def create_device_group() -> tuple[Response, int]:
    conf: DeviceGroupConf = parse(DEVICE_GROUP)
    return _save_group(m.DeviceGroup, "device group", svc.save_device_group,
                       _device_group_json, "devices",
                       {"name": conf.name, "devices": conf.devices})


@bp.get("/device-groups/<name>")
def get_device_group(name: str) -> Response:
    return jsonify(_device_group_json(_one(db_session(), m.DeviceGroup, "device group",
                                           name=name)))


@bp.patch("/device-groups/<name>")
def update_device_group(name: str) -> tuple[Response, int]:
    body = parse(DEVICE_GROUP_PATCH)
    group = _one(db_session(), m.DeviceGroup, "device group", name=name)
    return _save_group(m.DeviceGroup, "device group", svc.save_device_group,
                       _device_group_json, "devices", body, group)


@bp.delete("/device-groups/<name>")
def delete_device_group(name: str) -> tuple[Response, int]:
    s = db_session()
    group = _one(s, m.DeviceGroup, "device group", name=name)
    return _done(svc.delete_device_group(s, group, actor=_actor()), {"deleted": name})


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
    """One grant entry as in the file (IDs, ranges, device groups) → one row per object;
    409 when all of it is granted already."""
    conf: GrantConf = parse(GRANT)
    s = db_session()
    before = {x.pk for x in _grants_of(s, conf.user, conf.group, conf.scope)}
    _, notify = svc.add_grants(s, scope=conf.scope, access=conf.access, user=conf.user,
                               group=conf.group, devices=list(conf.devices),
                               device_groups=list(conf.device_groups), actor=_actor())
    added = [x for x in _grants_of(s, conf.user, conf.group, conf.scope) if x.pk not in before]
    return _done(notify, {"grants": [_grant_json(x) for x in added]}, 201)


@bp.delete("/grants/<int:grant_id>")
def delete_grant(grant_id: int) -> tuple[Response, int]:
    s = db_session()
    notify = svc.delete_grant(s, _one(s, m.Grant, "grant", pk=grant_id), actor=_actor())
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
    """Create (201) or replace (200) a hotkey; keys are not case-sensitive (``a1`` is ``A1``)."""
    body = parse(HOTKEY)
    s = db_session()
    existing = s.scalar(select(m.Hotkey).where(m.Hotkey.key_lower == key.lower()))
    notify = svc.save_hotkey(s, key=key, targets=list(body["targets"]), actor=_actor(),
                             hotkey=existing)
    saved = _one(s, m.Hotkey, "hotkey", key_lower=key.strip().lower())
    return _done(notify, _hotkey_json(saved), 201 if existing is None else 200)


@bp.delete("/hotkeys/<key>")
def delete_hotkey(key: str) -> tuple[Response, int]:
    s = db_session()
    svc.delete_hotkey(s, _one(s, m.Hotkey, "hotkey", key_lower=key.lower()), actor=_actor())
    return _done((), {"deleted": key})


@bp.get("/settings")
def get_settings() -> Response:
    return jsonify(topology_db.export_settings(db_session()))


@bp.patch("/settings")
def update_settings() -> tuple[Response, int]:
    conf: SettingsConf = parse(SETTINGS)
    s = db_session()
    notify = svc.update_settings(s, conf.given(), actor=_actor())
    return _done(notify, topology_db.export_settings(s))


# --- routing -----------------------------------------------------------------------------

TYPED = Section({"input": Str(max_len=200)})


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
    if action not in svc.ROUTING_ACTIONS:
        raise ApiError(404, "NOT_FOUND", f"no routing action {action!r} "
                                         f"({', '.join(svc.ROUTING_ACTIONS)})")
    text = ""
    if action == "disconnect":
        parse_empty()
    else:
        text = parse(TYPED)["input"]
    s = db_session()
    outcome, notify = svc.admin_route(s, services().cache.build(s), actor=_actor(),
                                      rx_id=rx_id, action=action, text=text)
    extra: dict[str, Any] = {}
    if outcome.targets:
        extra["targets"] = [{"id": t.target, "result": t.code.value, "text": texts(t.code)}
                            for t in outcome.targets]
        failures = [(t.target, t.code) for t in outcome.targets if not t.code.ok]
        if failures and len(outcome.targets) > 1:
            extra["summary"] = {lang: push_summary(failures, lang) for lang in LANGS}
    return _done(notify, {"result": outcome.code.value, "text": texts(outcome.code), **extra})


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
    if fmt == "json":
        doc = topology_db.export_config(s)
        routing.audit(s, actor=_actor(), action="export", result="OK", target="json")
        s.commit()
        return jsonify(doc)
    text = svc.export_yaml(s, actor=_actor())
    s.commit()
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition": "attachment; filename=control-room.yaml"})


def _config_error(e: ConfigError) -> ApiError:
    if any(p.path == "users" and "no enabled admin" in p.message for p in e.problems):
        return ApiError(409, "CONFLICT", "no enabled admin would remain; keep at least one")
    return RequestError("VALIDATION", "; ".join(str(p) for p in e.problems))


@bp.post("/config")
@takes_body(MAX_BYTES)   # more than the API's 64 KiB
def config_import() -> tuple[Response, int]:
    """Import a control-room document (YAML or JSON body, at most 4 MiB); ``?mode=merge``
    (default) or ``?mode=replace``. Every problem is in the 400's message; nothing changes."""
    no_unknown_args("mode")
    mode = _kind_arg("mode", ("merge", "replace")) or "merge"
    try:
        text = request.get_data(cache=True).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequestError("BAD_JSON", "the body is not UTF-8 text") from None
    s = db_session()
    try:
        cfg = topology.parse(load_yaml(text, name="body"))
        hash_passwords_first(s, (u.password for u in cfg.users))
        summary = topology_db.import_config(s, cfg, replace=mode == "replace", actor=_actor())
    except ConfigError as e:
        raise _config_error(e) from None
    return _done(summary.notify, {"mode": summary.mode, "counts": summary.counts})
