"""The OpenAPI 3.0 document of the REST API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)

DOCUMENT: dict[str, Any] = {"openapi": "3.0.3", "info": {"title": "kvm-seat", "version": "1"},
                            "paths": {}}


@bp.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    return jsonify(DOCUMENT)
