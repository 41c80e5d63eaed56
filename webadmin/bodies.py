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
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask, current_app, request

from webadmin.api_common import API_PREFIX, MAX_BODY

FORM_LIMIT = 1024 * 1024   # bytes of a posted web form
READ_FIRST = "kvm.body"    # environ key: the body BodyFirst read (closed by ``install``'s hook)
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
    (the app reads it from there): up to ``MAX_BODY`` into memory, a larger one into a
    temporary file (so that a large upload costs no memory before anyone is signed in),
    closed at the end of the request (``install``). The limits of the views marked with
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
        if not length:
            return self.wsgi_app(environ, start_response)
        try:
            body = _take(environ["wsgi.input"], length)
        except OSError:   # gone, or a malformed chunk: no further request on this connection
            start_response("400 BAD REQUEST", [("Content-Length", "0"), ("Connection", "close")])
            return [b""]
        environ["wsgi.input"] = environ[READ_FIRST] = body
        return self.wsgi_app(environ, start_response)


def _take(stream: Any, length: int) -> Any:
    """Up to `length` bytes of `stream`, as a file positioned at their start."""
    if length <= MAX_BODY:
        return io.BytesIO(stream.read(length))
    spool = tempfile.SpooledTemporaryFile(max_size=MAX_BODY)  # noqa: SIM115 - closed by caller
    try:
        while length > 0 and (chunk := stream.read(min(length, MAX_BODY))):
            spool.write(chunk)
            length -= len(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _close_body(_exc: BaseException | None) -> None:
    # Every view that reads a body runs in Flask, so its request's end is the body's.
    body = request.environ.get(READ_FIRST)
    if body is not None:
        body.close()


def install(app: Flask) -> None:
    """Set each request's body limit, read bodies first, close them at the request's end
    (call after every blueprint is registered: the wrapper goes outside the others)."""
    app.before_request(_limit_body)
    app.teardown_request(_close_body)
    limits = {}
    for rule in app.url_map.iter_rules():
        limit = getattr(app.view_functions.get(rule.endpoint), _ATTR, None)
        if limit is not None:
            # BodyFirst looks limits up by path: a route with variable parts would not match.
            assert not rule.arguments, f"@takes_body on {rule.rule}: a route with variables"
            limits[rule.rule] = limit
    app.wsgi_app = BodyFirst(app.wsgi_app, limits)  # type: ignore[method-assign]
