"""Request bodies: how large each may be, and reading them before any view runs.

Every request is a greenlet of one process under ``kvm-server``; reading a socket lets the
others run. A view that read its body *after* starting a write transaction therefore held
SQLite's write lock while its client was slow to send the rest, and SQLite's wait for that
lock (a sleep inside the library) froze every other request until it gave up: 503s for the
whole room (seen in the lab, reproduced by ``tests/webadmin/test_server_process.py``).
``BodyFirst`` reads a body in full before Flask sees the request, so no view ever waits
for its client.

Limits: an API request takes at most ``MAX_BODY`` (64 KiB), a web form ``FORM_LIMIT``; a
view that takes more says so with ``@takes_body(N)``. A body over its limit is not read:
Flask answers 413 from its ``Content-Length``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask, current_app, request

from webadmin.api_common import API_PREFIX, MAX_BODY

FORM_LIMIT = 1024 * 1024   # bytes of a posted web form
_ATTR = "kvm_body_limit"

F = TypeVar("F", bound=Callable[..., Any])


def takes_body(limit: int) -> Callable[[F], F]:
    """Mark a view that accepts a body of up to `limit` bytes (more than its default).
    Put it under the route decorator: ``@bp.post(...)`` then ``@takes_body(N)``."""

    def mark(view: F) -> F:
        setattr(view, _ATTR, limit)
        return view

    return mark


def default_limit(path: str) -> int:
    return MAX_BODY if path.startswith(API_PREFIX) else FORM_LIMIT


def _limit_body() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    request.max_content_length = getattr(view, _ATTR, None) or default_limit(request.path)


class BodyFirst:
    """WSGI wrapper: the body of a request within its limit is read before the app runs
    (into memory; the app reads it from there). The limits of the views marked with
    ``takes_body`` are looked up by path (their routes have no variable parts)."""

    def __init__(self, wsgi_app: Any, limits: Mapping[str, int]) -> None:
        self.wsgi_app = wsgi_app
        self.limits = dict(limits)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0   # the app refuses it
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            length = -1
        if length:
            path = environ.get("PATH_INFO", "")
            limit = self.limits.get(path) or default_limit(path)
            if length < 0:   # chunked: one byte more than allowed shows the app it is too large
                length = limit + 1
            elif length > limit:
                length = 0   # not read: the app answers 413 from Content-Length
            if length:
                try:
                    body = environ["wsgi.input"].read(length)
                except OSError:   # the client went away; nobody reads the answer
                    start_response("400 BAD REQUEST", [("Content-Length", "0")])
                    return [b""]
                environ["wsgi.input"] = io.BytesIO(body)
        return self.wsgi_app(environ, start_response)


def install(app: Flask) -> None:
    """Set each request's body limit, and read bodies first (call after every blueprint
    is registered: the wrapper goes outside the others)."""
    app.before_request(_limit_body)
    limits = {rule.rule: getattr(app.view_functions[rule.endpoint], _ATTR)
              for rule in app.url_map.iter_rules()
              if hasattr(app.view_functions.get(rule.endpoint), _ATTR)}
    app.wsgi_app = BodyFirst(app.wsgi_app, limits)  # type: ignore[method-assign]
