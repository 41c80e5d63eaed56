"""``webadmin.bodies.BodyFirst``: a body within its limit is read before the app runs."""

from __future__ import annotations

import io
from typing import Any

from webadmin.api_common import MAX_BODY
from webadmin.bodies import FORM_LIMIT, BodyFirst


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


def run(path: str, body: Socketish, headers: dict[str, str]) -> tuple[Any, list[str], Any]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["input"] = environ["wsgi.input"]
        start_response("200 OK", [])
        return [b"ok"]

    status: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "wsgi.input": body, **headers}
    out = BodyFirst(app, {"/big": 3 * MAX_BODY})(environ, lambda s, h: status.append(s))
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
    assert isinstance(got, io.BytesIO) and big.taken == MAX_BODY + 1
    form = Socketish(b"x" * FORM_LIMIT)
    got, _, _ = run("/hotkeys", form, {"CONTENT_LENGTH": str(FORM_LIMIT)})
    assert isinstance(got, io.BytesIO) and form.taken == FORM_LIMIT


def test_a_chunked_body_is_read_up_to_one_byte_over_its_limit() -> None:
    wire = Socketish(b"x" * (2 * MAX_BODY))
    got, _, _ = run("/api/v1/seat/login", wire, {"HTTP_TRANSFER_ENCODING": "chunked"})
    assert isinstance(got, io.BytesIO) and len(got.read()) == MAX_BODY + 1


def test_a_client_gone_before_its_body_gets_400_and_the_app_never_runs() -> None:
    got, status, out = run("/api/v1/seat/connect", Socketish(b"", fail=True),
                           {"CONTENT_LENGTH": "14"})
    assert got is None and status == ["400 BAD REQUEST"] and out == [b""]


def test_no_body_and_a_bad_length_pass_through_untouched() -> None:
    for headers in ({}, {"CONTENT_LENGTH": "0"}, {"CONTENT_LENGTH": "many"}):
        wire = Socketish(b"data")
        got, status, _ = run("/api/v1/seat/logout", wire, headers)
        assert got is wire and wire.taken == 0 and status == ["200 OK"]
