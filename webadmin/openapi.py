"""The OpenAPI 3.0 document of the REST API, served at ``/api/v1/openapi.json``.

Written by hand next to the parsers it describes; tests validate real responses against
its schemas. Other areas add their paths and schemas with ``add_part(app, paths, schemas)``
in ``create_app`` (next to their blueprint).
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from kvm_protocol.results import ResultCode

bp = Blueprint("openapi", __name__)

J = dict[str, Any]


def ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: J, required: list[str] | None = None, **extra: Any) -> J:
    return {"type": "object", "properties": props, "required": required or list(props),
            "additionalProperties": False, **extra}


def json_body(schema: J, description: str = "") -> J:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def batch_devices(props: J, required: list[str] | None = None) -> J:
    """The ``devices`` of a device host's batch request: each a credential plus `props`."""
    return {"type": "array", "minItems": 1, "maxItems": 256,
            "description": "serials unique within the body",
            "items": obj({"serial": {"type": "string", "maxLength": 64},
                          "secret": {"type": "string", "maxLength": 256,
                                     "description": "the device's 64 hex secret"},
                          **props}, required=["serial", "secret", *(required or [])])}


def batch_answers(answer: J, codes: list[str], *, required: bool = False) -> J:
    """A batch answer: per device its `answer` fields or an error with one of `codes`."""
    serial = {"serial": {"type": "string"}}
    error = obj({"code": {"type": "string", "enum": codes}, "message": {"type": "string"}})
    return obj({"answers": {"type": "array", "items": {"oneOf": [
        obj({**serial, **answer}, required=["serial", *answer] if required else None),
        obj({**serial, "error": error}, required=["serial", "error"] if required else None),
    ]}}})


def err(description: str) -> J:
    return json_body(ref("Error"), description)


DEVICE_ID = {"type": "string", "pattern": r"^\d{4}$", "example": "5001"}
SOURCE = {"type": "string", "pattern": r"^\d{4}:[1-4]$", "nullable": True, "example": "0001:1"}
SECRET = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
CODES = [c.value for c in ResultCode]

SCHEMAS: J = {
    "Error": obj({"error": obj({
        "code": {"type": "string", "enum": [
            "BAD_JSON", "VALIDATION", "UNKNOWN_FIELD", "TOO_LARGE", "UNAUTHORIZED", "FORBIDDEN",
            "NOT_FOUND", "METHOD_NOT_ALLOWED", "CONFLICT", "RATE_LIMITED", "PENDING", "INTERNAL",
        ]},
        "message": {"type": "string"},
    })}),
    "Texts": obj({"zh_CN": {"type": "string"}, "en": {"type": "string"}}),
    "ResultCode": {"type": "string", "enum": CODES},
    "Result": obj({"result": ref("ResultCode"), "text": ref("Texts")}),
    "TypedInput": obj({"input": {"type": "string", "maxLength": 4096,
                                 "description": "what the operator typed: IDs, hotkeys, all"}}),
    "PushResult": obj(
        {
            "result": ref("ResultCode"),
            "text": ref("Texts"),
            "targets": {"type": "array", "items": obj({
                "id": DEVICE_ID, "result": ref("ResultCode"), "text": ref("Texts")})},
            "summary": {**ref("Texts"),
                        "description": "push_summary() per language, when a target failed"},
        },
        required=["result", "text"],
    ),
    "LoginRequest": obj({"user": {"type": "string", "maxLength": 64},
                         "password": {"type": "string", "maxLength": 256}}),
    "LoginResult": obj(
        {
            "result": ref("ResultCode"),
            "text": ref("Texts"),
            "user": {"type": "string"},
            "role": {"type": "string", "enum": ["admin", "operator"]},
            "lang": {"type": "string", "enum": ["zh_CN", "en"]},
        },
        required=["result", "text"],
    ),
    "DeviceList": obj(
        {
            "mode": {"type": "string", "enum": ["connect", "push", "fetch"]},
            "rows": {"type": "array", "items": obj({
                "id": DEVICE_ID, "name": {"type": "string"},
                "colour": {"type": "string", "enum": ["grey", "yellow", "red"]},
                "online": {"type": "boolean"}})},
            "result": {**ref("ResultCode"), "description": "only NOT_LOGGED_IN"},
            "text": ref("Texts"),
        },
        required=["mode", "rows"],
    ),
    "Announce": obj(
        {
            "serial": {"type": "string", "pattern": r"^[A-Za-z0-9._:/-]{1,64}$"},
            "kind": {"type": "string", "enum": ["tx", "rx"]},
            "heads": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
            "firmware": {"type": "string", "maxLength": 64},
            "secret": {**SECRET, "description": "256-bit random secret the device keeps"},
        },
        required=["serial", "kind", "secret"],
    ),
    "AnnouncePending": obj({"state": {"type": "string", "enum": ["pending"]}}),
    "AnnounceAdopted": obj({
        "state": {"type": "string", "enum": ["adopted"]}, "id": DEVICE_ID,
        "name": {"type": "string"}, "heads": {"type": "integer", "minimum": 1, "maximum": 4}}),
    "StateReport": obj(
        {
            "online": {"type": "boolean"},
            "network_up": {"type": "boolean", "description": "Rx only"},
            "stream_ok": {"type": "boolean", "description": "Tx only"},
            "heads": {"type": "array", "maxItems": 4, "items": obj(
                {"head": {"type": "integer", "minimum": 1, "maximum": 4},
                 "video": {"type": "boolean", "default": True},
                 "source": {**SOURCE, "description": "Rx only: what the head actually shows"}},
                required=["head"])},
        },
        required=["online"],
    ),
    "Generation": obj({"generation": {"type": "integer", "minimum": 0}}),
    # Not "Settings": that is the admin API's schema of the same values (openapi_admin).
    "WatchSettings": obj({
        "chord": {"type": "string"}, "chord_window_ms": {"type": "integer"},
        "lang": {"type": "string", "enum": ["zh_CN", "en"]},
        "auto_close_ms": {"type": "integer"}, "idle_close_s": {"type": "integer"},
        "idle_logout_s": {"type": "integer", "description": "0 = off"},
        "login_hidden": {"type": "boolean", "description": "wall tiles only (true): no login "
                         "screen until the chord calls it up"}},
        required=["chord", "chord_window_ms", "lang", "auto_close_ms", "idle_close_s",
                  "idle_logout_s"]),
    "Watch": obj({
        "generation": {"type": "integer", "minimum": 0},
        "routing": {"type": "array", "description": "Rx: one entry per head; Tx: empty",
                    "items": obj({"head": {"type": "integer", "minimum": 1, "maximum": 4},
                                  "source": SOURCE, "set_by": {"type": "string"},
                                  "pushed": {"type": "boolean"}})},
        "session": {**obj({"user": {"type": "string"},
                           "role": {"type": "string", "enum": ["admin", "operator"]},
                           "lang": {"type": "string", "enum": ["zh_CN", "en"]},
                           "keys_allowed": {"type": "boolean"}}), "nullable": True},
        "settings": ref("WatchSettings"),
        "seat": {**obj({"name": {"type": "string"},
                        "screens": {"type": "array", "items": DEVICE_ID}}), "nullable": True},
        "id": DEVICE_ID,
        "name": {"type": "string"},
    }),
    "WatchesRequest": obj(
        {
            "timeout": {"type": "integer", "minimum": 0, "maximum": 60, "default": 25},
            "devices": batch_devices({
                "generation": {"type": "integer", "minimum": -1, "default": -1,
                               "description": "last generation seen"}}),
        },
        required=["devices"],
    ),
    "Watches": batch_answers({"watch": ref("Watch")}, ["UNAUTHORIZED", "PENDING"]),
    "StatesRequest": obj(
        {
            "devices": batch_devices({"state": ref("StateReport")}, required=["state"]),
        },
        required=["devices"],
    ),
    "States": batch_answers({"generation": {"type": "integer", "minimum": 0}},
                            ["UNAUTHORIZED", "PENDING", "VALIDATION", "UNKNOWN_FIELD"],
                            required=True),
    "TokenRequest": obj({"user": {"type": "string", "maxLength": 64},
                         "password": {"type": "string", "maxLength": 256}}),
    "Token": obj({"token": {"type": "string"},
                  "expires_at": {"type": "string", "format": "date-time"},
                  "expires_in": {"type": "integer"}}),
}

DEVICE_AUTH: list[J] = [{"device": []}]
COMMON_ERRORS: J = {
    "400": err("bad JSON, wrong types, unknown fields"),
    "401": err("missing or wrong credentials"),
    "413": err("body larger than 64 KiB"),
}
DEVICE_ERRORS: J = {**COMMON_ERRORS, "403": err("PENDING (not adopted) or FORBIDDEN")}


def _action(summary: str, schema: str) -> J:
    return {"post": {
        "tags": ["seat"], "summary": summary, "security": DEVICE_AUTH,
        "requestBody": {"required": True, **json_body(ref("TypedInput"))},
        "responses": {"200": json_body(ref(schema), "the decision, with its texts"),
                      **DEVICE_ERRORS},
    }}


PATHS: J = {
    "/api/v1/device/announce": {"post": {
        "tags": ["device"], "summary": "First contact; binds the device secret",
        "requestBody": {"required": True, **json_body(ref("Announce"))},
        "responses": {
            "200": json_body(ref("AnnounceAdopted"), "adopted: ID, name, heads"),
            "202": json_body(ref("AnnouncePending"), "waits for an admin to adopt it"),
            "409": err("serial bound to another secret, or registered as another kind"),
            "429": err("too many pending devices"),
            **COMMON_ERRORS,
        },
    }},
    "/api/v1/device/state": {"post": {
        "tags": ["device"], "summary": "Heartbeat and actual state", "security": DEVICE_AUTH,
        "requestBody": {"required": True, **json_body(ref("StateReport"))},
        "responses": {"200": json_body(ref("Generation"), "the device's generation"),
                      **DEVICE_ERRORS},
    }},
    "/api/v1/device/states": {"post": {
        "tags": ["device"],
        "summary": "Heartbeats and actual states of many devices of one process (credentials "
                   "in the body)",
        "requestBody": {"required": True, **json_body(ref("StatesRequest"))},
        "responses": {
            "200": json_body(ref("States"), "per device, in the request's order: its "
                                            "generation, or why it was refused"),
            "400": err("bad JSON, wrong types, unknown fields (nothing applied)"),
            "413": err("body larger than 256 KiB"),
            "503": err("the database failed; nothing applied, post the batch again"),
        },
    }},
    "/api/v1/device/watch": {"get": {
        "tags": ["device"], "summary": "Long poll for desired routing, session and settings",
        "security": DEVICE_AUTH,
        "parameters": [
            {"name": "generation", "in": "query", "schema": {"type": "integer", "minimum": -1},
             "description": "last generation seen; omitted = answer at once"},
            {"name": "timeout", "in": "query",
             "schema": {"type": "integer", "minimum": 0, "maximum": 60, "default": 25}},
        ],
        "responses": {"200": json_body(ref("Watch"), "at once if newer, else on change or "
                                                     "at the timeout"), **DEVICE_ERRORS},
    }},
    "/api/v1/device/watches": {"post": {
        "tags": ["device"],
        "summary": "One long poll for many Rx of a controller host (credentials in the body)",
        "requestBody": {"required": True, **json_body(ref("WatchesRequest"))},
        "responses": {
            "200": json_body(ref("Watches"), "the devices that are behind or refused (every "
                                             "device with timeout 0); [] at the timeout"),
            "400": err("bad JSON, wrong types, unknown fields"),
            "413": err("body larger than 64 KiB"),
        },
    }},
    "/api/v1/seat/login": {"post": {
        "tags": ["seat"], "summary": "Log a user in at the seat of this Rx",
        "security": DEVICE_AUTH,
        "requestBody": {"required": True, **json_body(ref("LoginRequest"))},
        "responses": {"200": json_body(ref("LoginResult"), "NETWORK_OK, BAD_CREDENTIALS, "
                                       "LOGIN_NOT_ALLOWED, ACCOUNT_DISABLED or RATE_LIMITED"),
                      **DEVICE_ERRORS},
    }},
    "/api/v1/seat/logout": {"post": {
        "tags": ["seat"], "summary": "F12: disconnect every screen of the seat, end the session",
        "security": DEVICE_AUTH,
        "requestBody": {"required": False,
                        **json_body({"type": "object", "additionalProperties": False})},
        "responses": {"200": json_body(ref("Result"), "LOGGED_OUT or NOT_LOGGED_IN"),
                      **DEVICE_ERRORS},
    }},
    "/api/v1/seat/devices": {"get": {
        "tags": ["seat"], "summary": "The OSD device list of a mode", "security": DEVICE_AUTH,
        "parameters": [{"name": "mode", "in": "query", "schema": {
            "type": "string", "enum": ["connect", "push", "fetch"], "default": "connect"}}],
        "responses": {"200": json_body(ref("DeviceList"), "rows sorted by ID"),
                      **DEVICE_ERRORS},
    }},
    "/api/v1/seat/connect": _action("F1: switch this Rx to a Tx", "Result"),
    "/api/v1/seat/push": _action("F2: send what this Rx shows to other Rx", "PushResult"),
    "/api/v1/seat/fetch": _action("F3: show what another Rx shows", "Result"),
    "/api/v1/admin/token": {"post": {
        "tags": ["admin"], "summary": "Admin user + password -> bearer token",
        "requestBody": {"required": True, **json_body(ref("TokenRequest"))},
        "responses": {
            "200": json_body(ref("Token"), "use as Authorization: Bearer <token>"),
            "401": err("wrong user name or password"),
            "403": err("not an admin"),
            "429": err("5 failures per user per minute"),
            "400": err("bad body"),
        },
    }},
    "/api/v1/openapi.json": {"get": {
        "tags": ["meta"], "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.0 document"}},
    }},
}


def base_document() -> J:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "kvm-seat management server",
            "version": "1",
            "description": "See docs/API.md. Every error is {\"error\": {\"code\", "
                           "\"message\"}}; operator decisions answer 200 with a result code.",
        },
        "servers": [{"url": "/"}],
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "device": {"type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "Device <serial>:<secret>"},
                "admin": {"type": "http", "scheme": "bearer",
                          "description": "token from POST /api/v1/admin/token"},
            },
        },
    }


def add_part(app: Flask, paths: J, schemas: J | None = None) -> None:
    """Merge another area's paths and component schemas into the served document."""
    doc = document(app)
    doc["paths"].update(paths)
    doc["components"]["schemas"].update(schemas or {})


def document(app: Flask) -> J:
    """The app's document (built on first use, then extended by ``add_part``)."""
    doc = app.extensions.get("openapi")
    if doc is None:
        doc = app.extensions["openapi"] = base_document()
    return doc


@bp.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    return jsonify(document(current_app))
