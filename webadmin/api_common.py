"""What every API blueprint shares: JSON errors, the request's DB session, body parsing.

Parse at the edge: each request kind has a small parser (in its blueprint module) built on
``Body``, which raises ``RequestError`` — a 4xx with a stable code — for bad JSON, wrong
types, missing or unknown fields. Views never see an unchecked value.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from kvm_protocol.results import LANGS, ResultCode
from webadmin.config import ServerConfig
from webadmin.db import Database
from webadmin.routing import WatchHub
from webadmin.snapshot import SnapshotCache

MAX_BODY = 64 * 1024
API_PREFIX = "/api/"

log = logging.getLogger("webadmin.api")


class ApiError(Exception):
    """An error answer: HTTP `status`, stable `code` (docs/API.md), human `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class RequestError(ApiError):
    """The request itself is malformed (parse errors): always a 4xx."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(status, code, message)


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


@dataclass
class Services:
    """The app's domain objects (no Flask inside): config, DB, snapshot cache, watch hub."""

    config: ServerConfig
    db: Database
    cache: SnapshotCache
    hub: WatchHub


def services() -> Services:
    """The Services of the current app (``app.extensions["kvm"]``)."""
    return current_app.extensions["kvm"]  # type: ignore[no-any-return]


# --- the request's database session ------------------------------------------------------


def db_session() -> Session:
    """The SQLAlchemy session of this request (closed at teardown)."""
    s = g.get("db_session")
    if s is None:
        s = current_app.extensions["kvm_db"].session()
        g.db_session = s
    return s  # type: ignore[no-any-return]


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()


# --- errors ------------------------------------------------------------------------------

_HTTP_CODES = {
    400: "VALIDATION",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "TOO_LARGE",
    415: "BAD_JSON",
    429: "RATE_LIMITED",
}


def _is_api() -> bool:
    return request.path.startswith(API_PREFIX)


def _handle_api_error(exc: ApiError) -> tuple[Response, int]:
    return error_response(exc.status, exc.code, exc.message)


def _handle_http(exc: HTTPException) -> Any:
    if not _is_api():
        return exc
    status = exc.code or 500
    code = _HTTP_CODES.get(status, "INTERNAL" if status >= 500 else "VALIDATION")
    message = {
        404: f"no such endpoint: {request.path}",
        405: f"method {request.method} not allowed here",
        413: f"request body larger than {request.max_content_length or MAX_BODY} bytes",
    }.get(status, exc.description or exc.name)
    return error_response(status, code, message)


def _handle_unexpected(exc: Exception) -> Any:
    if isinstance(exc, HTTPException):
        return _handle_http(exc)
    if isinstance(exc, OperationalError):
        log.error("database error: %s", exc.__class__.__name__, exc_info=exc)
        if _is_api():
            return error_response(503, "INTERNAL", "database unavailable, try again")
        raise exc
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    if not _is_api():
        raise exc
    return error_response(500, "INTERNAL", "internal error (logged on the server)")


def init_app(app: Flask) -> None:
    """Install JSON error handling and session teardown for /api/ (body limits:
    ``webadmin.bodies``)."""
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(Exception, _handle_unexpected)
    app.teardown_appcontext(_close_session)


# --- body parsing ------------------------------------------------------------------------


def json_body(limit: int = MAX_BODY) -> dict[str, Any]:
    """The request body as a JSON object (BAD_JSON / TOO_LARGE / VALIDATION on failure).

    A view that accepts more than ``MAX_BODY`` is marked ``@takes_body(N)``
    (``webadmin.bodies``, which sets ``request.max_content_length``) and passes `limit`."""
    raw = request.get_data(cache=True)  # raises 413 past max_content_length
    if len(raw) > limit:
        raise RequestError("TOO_LARGE", f"request body larger than {limit} bytes", 413)
    if not raw.strip():
        raise RequestError("BAD_JSON", "request body is empty; a JSON object is expected")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError("BAD_JSON", "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise RequestError("BAD_JSON", f"invalid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise RequestError("BAD_JSON", "JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise RequestError("VALIDATION", "the body must be a JSON object")
    return value


class Body:
    """Typed access to a JSON object; ``done()`` rejects fields nobody asked for."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path
        self._seen: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str) -> NoReturn:
        raise RequestError("VALIDATION", f"{self._name(key)}: {message}")

    def _get(self, key: str, required: bool) -> Any:
        self._seen.add(key)
        if key not in self.data:
            if required:
                self.fail(key, "is required")
            return None
        return self.data[key]

    def string(
        self, key: str, *, required: bool = True, max_len: int = 256, default: Any = None
    ) -> Any:
        value = self._get(key, required)
        if value is None and not required:
            return default
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {_type(value)}")
        if len(value) > max_len:
            self.fail(key, f"longer than {max_len} characters")
        return value

    def integer(
        self, key: str, *, lo: int, hi: int, required: bool = True, default: Any = None
    ) -> Any:
        value = self._get(key, required)
        if value is None and not required:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, got {_type(value)}")
        if not lo <= value <= hi:
            self.fail(key, f"must be between {lo} and {hi}, got {value}")
        return value

    def boolean(self, key: str, *, required: bool = True, default: Any = None) -> Any:
        value = self._get(key, required)
        if value is None and not required:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_type(value)}")
        return value

    def choice(self, key: str, choices: Iterable[str], *, required: bool = True) -> Any:
        options = tuple(choices)
        value = self.string(key, required=required)
        if value is not None and value not in options:
            self.fail(key, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def array(self, key: str, *, max_items: int, required: bool = True) -> Any:
        value = self._get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, list):
            self.fail(key, f"must be a list, got {_type(value)}")
        if len(value) > max_items:
            self.fail(key, f"has more than {max_items} items")
        return value

    def objects(self, key: str, *, max_items: int, required: bool = True) -> Any:
        items = self.array(key, max_items=max_items, required=required) or []
        out: list[Body] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{key}[{i}]", f"must be an object, got {_type(item)}")
            out.append(Body(item, self._name(f"{key}[{i}]")))
        return out

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            names = ", ".join(self._name(k) for k in unknown)
            raise RequestError("UNKNOWN_FIELD", f"unknown field(s): {names}")


def parse_object(data: dict[str, Any]) -> Body:
    return Body(data)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "object"}.get(type(value), type(value).__name__)


def query_int(name: str, *, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi] (VALIDATION names it otherwise)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if not (raw.isdigit() or (raw.startswith("-") and raw[1:].isdigit())) or len(raw) > 19:
        raise RequestError("VALIDATION", f"query parameter {name} must be an integer, got {raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise RequestError("VALIDATION", f"query parameter {name} must be between {lo} and {hi}")
    return value


def no_unknown_args(*allowed: str) -> None:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise RequestError("UNKNOWN_FIELD", f"unknown query parameter(s): {', '.join(unknown)}")


# --- result bodies -----------------------------------------------------------------------


_TEXTS: dict[ResultCode, dict[str, str]] = {}


def texts(code: ResultCode) -> dict[str, str]:
    """``{"zh_CN": ..., "en": ...}`` for a result code (a fresh dict: callers may change it)."""
    cached = _TEXTS.get(code)
    if cached is None:
        cached = _TEXTS[code] = {lang: code.text(lang) for lang in LANGS}
    return dict(cached)
