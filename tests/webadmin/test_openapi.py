"""The served OpenAPI document describes what the server really answers."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.webadmin.conftest import ADMIN_PASSWORD, Room, device_auth, secret_of


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable: true`` becomes ``anyOf [..., null]``."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


class Checker:
    def __init__(self, client: FlaskClient) -> None:
        resp = client.get("/api/v1/openapi.json")
        assert resp.status_code == 200
        self.doc = resp.get_json()
        self.components = to_json_schema(self.doc["components"])
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, path: str, method: str, resp: TestResponse) -> Any:
        op = self.doc["paths"][path][method]
        status = str(resp.status_code)
        assert status in op["responses"], f"{method} {path} answered undocumented {status}"
        schema = op["responses"][status]["content"]["application/json"]["schema"]
        body = resp.get_json()
        jsonschema.Draft202012Validator(
            {**to_json_schema(schema), "components": self.components}
        ).validate(body)
        self.seen.add((path, method, status))
        return body


@pytest.fixture
def checker(client: FlaskClient) -> Checker:
    return Checker(client)


def test_document_is_openapi_3(checker: Checker) -> None:
    doc = checker.doc
    assert doc["openapi"].startswith("3.0")
    for path in ("/api/v1/device/announce", "/api/v1/device/state", "/api/v1/device/watch",
                 "/api/v1/seat/login", "/api/v1/seat/logout", "/api/v1/seat/devices",
                 "/api/v1/seat/connect", "/api/v1/seat/push", "/api/v1/seat/fetch",
                 "/api/v1/admin/token"):
        assert path in doc["paths"]
    # Every $ref points at a schema that exists.
    names = set(doc["components"]["schemas"])

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [
                r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for r in refs(doc):
        assert r.removeprefix("#/components/schemas/") in names


def test_device_responses_conform(checker: Checker, client: FlaskClient, room: Room) -> None:
    c = checker
    announce = "/api/v1/device/announce"
    body = {"serial": "NEW-1", "kind": "rx", "heads": 1, "firmware": "x",
            "secret": secret_of("NEW-1")}
    c.check(announce, "post", client.post(announce, json=body))
    c.check(announce, "post", client.post(announce, json={**body, "secret": "ab" * 32}))
    c.check(announce, "post", client.post(announce, json={"serial": "SIM-RX-5001", "kind": "rx",
                                                          "secret": secret_of("SIM-RX-5001")}))
    c.check(announce, "post", client.post(announce, json={**body, "x": 1}))
    state = "/api/v1/device/state"
    c.check(state, "post", client.post(state, headers=room.headers("5001"), json={
        "online": True, "network_up": True,
        "heads": [{"head": 1, "source": None, "video": False}]}))
    c.check(state, "post", client.post(state, headers=device_auth("NEW-1"),
                                       json={"online": True}))
    c.check(state, "post", client.post(state, json={"online": True}))
    watch = "/api/v1/device/watch"
    room.login(client, "5002", "hxfj")
    room.act(client, "5002", "connect", "1")
    for device in ("5002", "5003", "0001", "5004", "5011"):   # 5011: a wall tile
        c.check(watch, "get", client.get(f"{watch}?timeout=0", headers=room.headers(device)))
    c.check(watch, "get", client.get(f"{watch}?timeout=99", headers=room.headers("5001")))


def test_seat_responses_conform(checker: Checker, client: FlaskClient, room: Room) -> None:
    c = checker
    h = room.headers("5001")
    c.check("/api/v1/seat/connect", "post",
            client.post("/api/v1/seat/connect", headers=h, json={"input": "1"}))
    c.check("/api/v1/seat/devices", "get", client.get("/api/v1/seat/devices", headers=h))
    for password in ("bad", "123456"):
        c.check("/api/v1/seat/login", "post", client.post(
            "/api/v1/seat/login", headers=h, json={"user": "hxfj", "password": password}))
    for mode in ("connect", "push", "fetch"):
        c.check("/api/v1/seat/devices", "get",
                client.get(f"/api/v1/seat/devices?mode={mode}", headers=h))
    for action, typed in [("connect", "1"), ("connect", "6"), ("push", "2"), ("push", "3,5"),
                          ("push", "all"), ("fetch", "2"), ("fetch", "zz")]:
        path = f"/api/v1/seat/{action}"
        c.check(path, "post", client.post(path, headers=h, json={"input": typed}))
    c.check("/api/v1/seat/push", "post",
            client.post("/api/v1/seat/push", headers=h, json={"input": 1}))
    c.check("/api/v1/seat/fetch", "post",
            client.post("/api/v1/seat/fetch", headers=room.headers("0001"), json={"input": "1"}))
    c.check("/api/v1/seat/logout", "post", client.post("/api/v1/seat/logout", headers=h))
    c.check("/api/v1/seat/connect", "post", client.post(
        "/api/v1/seat/connect", headers=h, data=b"x" * 70000,
        content_type="application/json"))


def test_token_responses_conform(checker: Checker, client: FlaskClient, room: Room) -> None:
    c = checker
    path = "/api/v1/admin/token"
    body = c.check(path, "post", client.post(path, json={"user": "admin",
                                                         "password": ADMIN_PASSWORD}))
    assert body["token"]
    c.check(path, "post", client.post(path, json={"user": "hxfj", "password": "123456"}))
    c.check(path, "post", client.post(path, json={"user": "admin", "password": "no"}))
    c.check(path, "post", client.post(path, json={"user": "admin"}))
