"""``webadmin.bodies.BodyFirst``: a body within its limit is read before the app runs."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask, request

from webadmin.api_common import MAX_BODY
from webadmin.bodies import FORM_LIMIT, BodyFirst, install, takes_body


class Socketish(io.RawIOBase):
    """A request body as the server's input stream: records what was read; may fail."""

    def __init__(self, data: bytes, fail: bool = False) -> None:
        self.data, self.fail, self.taken = data, fail, 0

    def read(self, n: int = -1) -> bytes:
        if self.fail:
            raise ConnectionResetError("the client went away")
        n = len(self.data) - self.taken if n < 0 else n
        chunk = self.data[self.taken:self.taken + n]
        self.taken += len(chunk)
        return chunk


def run(path: str, body: Socketish, headers: dict[str, str],
        answered: list[list[tuple[str, str]]] | None = None) -> tuple[Any, list[str], Any]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["input"] = environ["wsgi.input"]
        start_response("200 OK", [])
        return [b"ok"]

    status: list[str] = []

    def start_response(s: str, h: list[tuple[str, str]]) -> None:
        status.append(s)
        if answered is not None:
            answered.append(h)

    environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "wsgi.input": body, **headers}
    out = BodyFirst(app, {"/big": 3 * MAX_BODY})(environ, start_response)
    return seen.get("input"), status, out


def test_a_body_within_its_limit_is_in_memory_before_the_app_runs() -> None:
    wire = Socketish(b'{"input": "1"}')
    got, status, _ = run("/api/v1/seat/connect", wire, {"CONTENT_LENGTH": "14"})
    assert status == ["200 OK"] and isinstance(got, io.BytesIO)
    assert got.read() == b'{"input": "1"}' and wire.taken == 14


def test_the_limit_is_the_paths_own_or_the_default() -> None:
    over_api = Socketish(b"x" * (MAX_BODY + 1))
    got, _, _ = run("/api/v1/seat/login", over_api, {"CONTENT_LENGTH": str(MAX_BODY + 1)})
    assert got is over_api and over_api.taken == 0   # not read: the app answers 413
    big = Socketish(b"x" * (MAX_BODY + 1))
    got, _, _ = run("/big", big, {"CONTENT_LENGTH": str(MAX_BODY + 1)})
    assert big.taken == MAX_BODY + 1 and got.read() == b"x" * (MAX_BODY + 1)
    got.close()
    form = Socketish(b"x" * FORM_LIMIT)
    got, _, _ = run("/hotkeys", form, {"CONTENT_LENGTH": str(FORM_LIMIT)})
    assert form.taken == FORM_LIMIT and len(got.read()) == FORM_LIMIT
    got.close()


def test_a_large_body_waits_in_a_file_closed_at_the_end_of_the_request() -> None:
    app = Flask(__name__)
    bodies: list[Any] = []

    @app.post("/import")
    @takes_body(3 * FORM_LIMIT)
    def imported() -> str:
        bodies.append(request.environ["wsgi.input"])
        return str(len(request.get_data()))

    install(app)
    data = bytes(range(256)) * (2 * FORM_LIMIT // 256)
    resp = app.test_client().post("/import", data=data)
    assert resp.text == str(len(data))
    assert not isinstance(bodies[0], io.BytesIO) and bodies[0].closed
    assert app.test_client().post("/import", data=b"small").text == "5"


def test_a_chunked_body_is_read_up_to_one_byte_over_its_limit() -> None:
    wire = Socketish(b"x" * (2 * MAX_BODY))
    got, _, _ = run("/api/v1/seat/login", wire, {"HTTP_TRANSFER_ENCODING": "chunked"})
    assert len(got.read()) == MAX_BODY + 1   # the app sees that it is too large
    got.close()


def test_a_client_gone_before_its_body_gets_400_and_the_app_never_runs() -> None:
    headers: list[list[tuple[str, str]]] = []
    got, status, out = run("/api/v1/seat/connect", Socketish(b"", fail=True),
                           {"CONTENT_LENGTH": "14"}, headers)
    assert got is None and status == ["400 BAD REQUEST"] and out == [b""]
    assert ("Connection", "close") in headers[0], "no next request on an unread body"


def test_a_larger_body_may_only_be_taken_on_a_route_without_variables() -> None:
    app = Flask(__name__)

    @app.post("/import/<name>")
    @takes_body(3 * MAX_BODY)
    def imported(name: str) -> str:
        return name

    with pytest.raises(AssertionError, match="/import/<name>"):
        install(app)


def test_no_body_and_a_bad_length_pass_through_untouched() -> None:
    for headers in ({}, {"CONTENT_LENGTH": "0"}, {"CONTENT_LENGTH": "many"}):
        wire = Socketish(b"data")
        got, status, _ = run("/api/v1/seat/logout", wire, headers)
        assert got is wire and wire.taken == 0 and status == ["200 OK"]
