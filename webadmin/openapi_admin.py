"""The admin API's part of the OpenAPI document (merged in by ``api_admin.init_app``)."""

from __future__ import annotations

from typing import Any

from webadmin.openapi import DEVICE_ID, err, json_body, obj, ref

J = dict[str, Any]
P = "/api/v1/admin"
ADMIN: list[J] = [{"admin": []}]
NAME = {"type": "string", "minLength": 1, "maxLength": 64}
IDS = {"type": "array", "items": DEVICE_ID}
SPECS = {"type": "array", "items": {"type": "string", "example": "0001-0010",
                                    "description": "a device ID or a range of one kind"}}
STR_LIST = {"type": "array", "items": {"type": "string"}}
ERRORS: J = {
    "400": err("VALIDATION (the message names the field) or UNKNOWN_FIELD"),
    "401": err("no or expired bearer token"),
    "403": err("not an admin"),
}


def _nullable(schema: J) -> J:
    return {**schema, "nullable": True}


def _patch(schema: J) -> J:
    """All fields optional."""
    return {**schema, "required": []}


SCHEMAS: J = {
    "AdminDevice": obj({
        "id": _nullable(DEVICE_ID), "kind": {"type": "string", "enum": ["tx", "rx"]},
        "name": {"type": "string"}, "heads": {"type": "integer", "minimum": 1, "maximum": 4},
        "serial": _nullable({"type": "string"}),
        "adoption": {"type": "string", "enum": ["pending", "adopted"]},
        "bound": {"type": "boolean", "description": "a device secret is bound"},
        "firmware": {"type": "string"}, "online": {"type": "boolean"},
        "last_seen": _nullable({"type": "string", "format": "date-time"}),
    }),
    "DeviceCreate": obj({"id": DEVICE_ID, "name": NAME, "heads": {"type": "integer"},
                         "serial": _nullable({"type": "string"})}, required=["id", "name"]),
    "Adopt": obj({"id": DEVICE_ID, "name": _nullable(NAME)}, required=["id"]),
    "Seat": obj({"name": NAME, "screens": {**IDS, "minItems": 1, "maxItems": 8}}),
    "Wall": obj({"name": NAME, "rows": {"type": "integer", "minimum": 1, "maximum": 16},
                 "cols": {"type": "integer", "minimum": 1, "maximum": 16}, "tiles": IDS,
                 "splice": {"type": "boolean"}}, required=["name", "rows", "cols", "tiles"]),
    "User": obj({"name": {"type": "string"}, "role": {"type": "string",
                                                      "enum": ["admin", "operator"]},
                 "enabled": {"type": "boolean"}, "lang": {"type": "string",
                                                          "enum": ["zh_CN", "en"]},
                 "groups": STR_LIST, "created_at": {"type": "string", "format": "date-time"},
                 "logged_in_at": IDS}),
    "UserCreate": obj({"name": {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"},
                       "password": {"type": "string", "minLength": 6, "maxLength": 128},
                       "role": {"type": "string", "enum": ["admin", "operator"]},
                       "enabled": {"type": "boolean"},
                       "lang": {"type": "string", "enum": ["zh_CN", "en"]},
                       "groups": STR_LIST}, required=["name", "password"]),
    "UserGroup": obj({"name": NAME, "members": STR_LIST}, required=["name"]),
    "DeviceGroup": obj({"name": NAME, "devices": SPECS}, required=["name"]),
    "GrantCreate": obj({
        "user": {"type": "string"}, "group": {"type": "string"},
        "scope": {"type": "string", "enum": ["view", "push", "fetch", "login"]},
        "access": {"type": "string", "enum": ["control", "view-only"]},
        "devices": SPECS, "device_groups": STR_LIST,
    }, required=["scope"], description="exactly one of user/group; devices and/or "
                                       "device_groups; access for view grants only"),
    "Grant": obj({"id": {"type": "integer"}, "scope": {"type": "string"},
                  "access": {"type": "string"}, "user": {"type": "string"},
                  "group": {"type": "string"}, "device": DEVICE_ID,
                  "device_group": {"type": "string"}}, required=["id", "scope", "access"]),
    "Hotkey": obj({"key": {"type": "string"}, "targets": IDS}),
    "Settings": obj({
        "chord": {"type": "string", "example": "Shift+O Shift+O"},
        "chord_window_ms": {"type": "integer", "minimum": 100, "maximum": 5000},
        "lang": {"type": "string", "enum": ["zh_CN", "en"]},
        "auto_close_ms": {"type": "integer", "minimum": 0, "maximum": 60000},
        "idle_close_s": {"type": "integer", "minimum": 0, "maximum": 86400},
        "idle_logout_s": {"type": "integer", "minimum": 0, "maximum": 86400},
    }),
    "RoutingRow": obj({
        "rx": DEVICE_ID, "name": {"type": "string"}, "seat": {"type": "string"},
        "user": _nullable({"type": "string"}), "online": {"type": "boolean"},
        "heads": {"type": "array", "items": obj({
            "head": {"type": "integer"}, "source": _nullable({"type": "string"}),
            "set_by": {"type": "string"}, "pushed": {"type": "boolean"}})},
    }),
    "AuditEntry": obj({
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"}, "seat": {"type": "string"}, "device": {"type": "string"},
        "action": {"type": "string"}, "target": {"type": "string"},
        "result": {"type": "string"}, "detail": {"type": "object"},
    }),
    "Deleted": obj({"deleted": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}),
}


def _op(summary: str, ok: J, *, body: J | None = None, status: str = "200",
        params: list[J] | None = None, extra: J | None = None) -> J:
    op: J = {"tags": ["admin"], "summary": summary, "security": ADMIN,
             "responses": {status: ok, **ERRORS, **(extra or {})}}
    if body is not None:
        op["requestBody"] = {"required": True, **json_body(body)}
    if params:
        op["parameters"] = params
    return op


def _list(name: str, schema: str) -> J:
    return json_body(obj({name: {"type": "array", "items": ref(schema)}}))


def _path_param(name: str) -> J:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: J, description: str = "") -> J:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


NOT_FOUND = {"404": err("no such item")}
CONFLICT = {"409": err("exists already, or the change would break a rule")}


def _crud(collection: str, item: str, schema: str, create: str, patch: J, what: str) -> J:
    """GET/POST on the collection, GET/PATCH/DELETE on an item named in the path."""
    one = json_body(ref(schema))
    return {
        f"{P}/{collection}": {
            "get": _op(f"List {what}s", _list(collection.replace("-", "_"), schema)),
            "post": _op(f"Create a {what}", one, body=ref(create), status="201",
                        extra=CONFLICT),
        },
        f"{P}/{collection}/{{{item}}}": {
            "parameters": [_path_param(item)],
            "get": _op(f"One {what}", one, extra=NOT_FOUND),
            "patch": _op(f"Change a {what} (fields given only)", one, body=patch,
                         extra={**NOT_FOUND, **CONFLICT}),
            "delete": _op(f"Delete a {what}", json_body(ref("Deleted")),
                          extra={**NOT_FOUND, **CONFLICT}),
        },
    }


AUDIT_PARAMS = [
    _query("user", {"type": "string"}, "the acting user (audit actor)"),
    _query("device", DEVICE_ID, "the device acted at or on"),
    _query("action", {"type": "string"}, "e.g. connect, push, login, user.update"),
    _query("since", {"type": "string", "format": "date-time"}, "inclusive, ISO 8601"),
    _query("until", {"type": "string", "format": "date-time"}, "exclusive, ISO 8601"),
    _query("limit", {"type": "integer", "minimum": 1}),
    _query("offset", {"type": "integer", "minimum": 0}),
]

PATHS: J = {
    f"{P}/devices": {
        "get": _op("List devices (adopted and pending)", _list("devices", "AdminDevice"),
                   params=[_query("kind", {"type": "string", "enum": ["tx", "rx"]}),
                           _query("state", {"type": "string", "enum": ["adopted", "pending"]})]),
        "post": _op("Pre-provision a device (it binds its secret on its first announce)",
                    json_body(ref("AdminDevice")), body=ref("DeviceCreate"), status="201",
                    extra=CONFLICT),
    },
    f"{P}/devices/{{device_id}}": {
        "parameters": [_path_param("device_id")],
        "get": _op("One device", json_body(ref("AdminDevice")), extra=NOT_FOUND),
        "patch": _op("Change a device: id (renumber), name, heads, serial (null: none)",
                     json_body(ref("AdminDevice")), body=_patch(ref("DeviceCreate")),
                     extra={**NOT_FOUND, **CONFLICT}),
        "delete": _op("Delete a device (not while it is a wall tile)", json_body(ref("Deleted")),
                      extra={**NOT_FOUND, **CONFLICT}),
    },
    f"{P}/devices/{{serial}}/adopt": {
        "parameters": [_path_param("serial")],
        "post": _op("Adopt a pending device: give it its ID and name (an unbound configured "
                    "ID may be taken over)", json_body(ref("AdminDevice")), body=ref("Adopt"),
                    extra={**NOT_FOUND, **CONFLICT}),
    },
    f"{P}/devices/{{device_id}}/reset": {
        "parameters": [_path_param("device_id")],
        "post": _op("Forget the device's secret; its next announce binds a new one",
                    json_body(ref("AdminDevice")), extra=NOT_FOUND),
    },
    f"{P}/devices/pending/{{serial}}": {
        "parameters": [_path_param("serial")],
        "delete": _op("Reject a pending device", json_body(ref("Deleted")), extra=NOT_FOUND),
    },
    **_crud("seats", "name", "Seat", "Seat", _patch(ref("Seat")), "seat"),
    **_crud("walls", "name", "Wall", "Wall", _patch(ref("Wall")),
            "video wall (PATCH {\"splice\": true|false} switches the splice)"),
    **_crud("users", "name", "User", "UserCreate",
            obj({"role": {"type": "string"}, "enabled": {"type": "boolean"},
                 "lang": {"type": "string"}, "groups": STR_LIST}, required=[]),
            "user (enabled: false disables it and ends its seat sessions)"),
    f"{P}/users/{{name}}/password": {
        "parameters": [_path_param("name")],
        "post": _op("Set a user's password (ends their admin tokens)",
                    json_body(obj({"user": {"type": "string"}, "password": {"type": "string"}})),
                    body=obj({"password": {"type": "string", "minLength": 6}}),
                    extra=NOT_FOUND),
    },
    **_crud("groups", "name", "UserGroup", "UserGroup", _patch(ref("UserGroup")),
            "user group"),
    **_crud("device-groups", "name", "DeviceGroup", "DeviceGroup", _patch(ref("DeviceGroup")),
            "device group"),
    f"{P}/grants": {
        "get": _op("List grants", _list("grants", "Grant"),
                   params=[_query("user", {"type": "string"}), _query("group", {"type": "string"}),
                           _query("scope", {"type": "string"})]),
        "post": _op("Grant a scope over devices, ranges and device groups (one row each)",
                    _list("grants", "Grant"), body=ref("GrantCreate"), status="201"),
    },
    f"{P}/grants/{{grant_id}}": {
        "parameters": [{"name": "grant_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "delete": _op("Revoke a grant", json_body(ref("Deleted")), extra=NOT_FOUND),
    },
    f"{P}/hotkeys": {"get": _op("List hotkeys", _list("hotkeys", "Hotkey"))},
    f"{P}/hotkeys/{{key}}": {
        "parameters": [_path_param("key")],
        "get": _op("One hotkey (not case-sensitive)", json_body(ref("Hotkey")), extra=NOT_FOUND),
        "put": _op("Create (201) or replace (200) a hotkey", json_body(ref("Hotkey")),
                   body=obj({"targets": IDS})),
        "delete": _op("Delete a hotkey", json_body(ref("Deleted")), extra=NOT_FOUND),
    },
    f"{P}/settings": {
        "get": _op("OSD settings", json_body(ref("Settings"))),
        "patch": _op("Change OSD settings (sent to every Rx)", json_body(ref("Settings")),
                     body=_patch(ref("Settings"))),
    },
    f"{P}/routing": {"get": _op("Desired routing of every Rx head, and sessions",
                                _list("routing", "RoutingRow"))},
    f"{P}/routing/{{rx_id}}/{{action}}": {
        "parameters": [_path_param("rx_id"), {
            "name": "action", "in": "path", "required": True,
            "schema": {"type": "string", "enum": ["connect", "push", "fetch", "disconnect"]}}],
        "post": _op("Switch an Rx as the admin (disconnect takes no body)",
                    json_body(ref("PushResult")), body=ref("TypedInput"), extra=NOT_FOUND),
    },
    f"{P}/audit": {
        "get": _op("Audit log, newest first",
                   json_body(obj({"total": {"type": "integer"}, "limit": {"type": "integer"},
                                  "offset": {"type": "integer"},
                                  "entries": {"type": "array", "items": ref("AuditEntry")}})),
                   params=AUDIT_PARAMS),
    },
    f"{P}/audit.csv": {
        "get": _op("Audit log as CSV (UTF-8 with BOM), oldest first",
                   {"description": "CSV", "content": {"text/csv": {"schema": {
                       "type": "string"}}}}, params=AUDIT_PARAMS),
    },
    f"{P}/config": {
        "get": _op("The whole configuration (docs/CONFIG_FORMAT.md)",
                   {"description": "YAML, or JSON with ?format=json", "content": {
                       "application/yaml": {"schema": {"type": "string"}},
                       "application/json": {"schema": {"type": "object"}}}},
                   params=[_query("format", {"type": "string", "enum": ["yaml", "json"]})]),
        "post": {
            **_op("Import a control-room document (YAML or JSON, at most 4 MiB)",
                  json_body(obj({"mode": {"type": "string"}, "counts": {"type": "object"}})),
                  params=[_query("mode", {"type": "string", "enum": ["merge", "replace"]})],
                  extra=CONFLICT),
            "requestBody": {"required": True, "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}}}},
        },
    },
}
