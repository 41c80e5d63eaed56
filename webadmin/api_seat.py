"""Operator side of the API (/api/v1/seat/...), called by an Rx's controller for its seat.

Operator decisions are answers, not errors: 200 with a result code and its zh_CN/en texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from kvm_protocol.results import LANGS, ResultCode, push_summary
from webadmin import engine, routing
from webadmin import models as m
from webadmin.api_common import (
    ApiError,
    Body,
    RequestError,
    db_session,
    json_body,
    no_unknown_args,
    services,
    texts,
)
from webadmin.auth import current_device, parse_device_header, secret_matches, verify_password
from webadmin.db import IMMEDIATE
from webadmin.snapshot import Built

bp = Blueprint("api_seat", __name__, url_prefix="/api/v1/seat")

R = ResultCode
MAX_TYPED = 4096  # longer than any valid input; the engine answers UNKNOWN_TARGET past its limit
MODES = ("connect", "push", "fetch")


# --- parsers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    user: str
    password: str


def parse_login(data: dict[str, Any]) -> Login:
    b = Body(data)
    user = b.string("user", max_len=64)
    password = b.string("password", max_len=256)
    b.done()
    return Login(user, password)


def parse_typed(data: dict[str, Any]) -> str:
    b = Body(data)
    text = b.string("input", max_len=MAX_TYPED)
    b.done()
    return str(text)


def parse_empty() -> None:
    """Logout takes no fields: an empty body or ``{}``."""
    if request.get_data(cache=True).strip():
        Body(json_body()).done()


# --- helpers -----------------------------------------------------------------------------


def result_body(code: ResultCode, **extra: Any) -> dict[str, Any]:
    return {"result": code.value, "text": texts(code), **extra}


def _rx() -> m.Device:
    dev = current_device()
    if dev.kind != "rx":
        raise ApiError(403, "FORBIDDEN", "seat calls come from a receiver (Rx)")
    return dev


def _seat_rx(built: Built) -> str:
    """The ID of the Rx calling, checked against the snapshot's credentials (no query);
    anything else goes through ``current_device`` for its precise 401/403."""
    serial, secret = parse_device_header(request.headers.get("Authorization", ""))
    cred = built.config.credentials.get(serial)
    if cred is not None and secret_matches(cred.credential_hash, secret):
        rx_id, kind = cred.id, cred.kind
    else:
        dev = current_device()
        rx_id, kind = str(dev.id), dev.kind
    if kind != "rx":
        raise ApiError(403, "FORBIDDEN", "seat calls come from a receiver (Rx)")
    return rx_id


def _built(*, lock: bool = False) -> Built:
    return services().cache.build(db_session(), lock=lock)


def _commit_and_notify(notify: set[str] | frozenset[str] = frozenset()) -> None:
    svc = services()
    routing.commit(db_session(), svc.cache, svc.hub, notify)


# --- views -------------------------------------------------------------------------------


@bp.post("/login")
def login() -> Response:
    dev = _rx()
    req = parse_login(json_body())
    s = db_session()
    rx_id = str(dev.id)
    password_hash = s.scalar(select(m.User.password_hash).where(m.User.name == req.user))
    # End the read transaction first: under gevent the slow hash yields to other requests,
    # and a SQLite read snapshot that others wrote past could not be upgraded to a write.
    s.rollback()
    password_ok = verify_password(password_hash, req.password)
    built = _built(lock=True)
    res = routing.login(s, built, user=req.user, password_ok=password_ok, rx_id=rx_id)
    _commit_and_notify(res.notify)
    if res.code is not R.NETWORK_OK:
        return jsonify(result_body(res.code))
    who = built.snap.users[req.user]
    return jsonify(result_body(
        res.code, user=req.user, role=who.role, lang=built.config.langs.get(req.user, "zh_CN"),
    ))


@bp.post("/logout")
def logout() -> Response:
    built = _built(lock=True)
    rx_id = _seat_rx(built)
    parse_empty()
    res = routing.logout(db_session(), built, rx_id=rx_id)
    _commit_and_notify(res.notify)
    return jsonify(result_body(res.code))


@bp.get("/devices")
def devices() -> Response:
    no_unknown_args("mode")
    mode = request.args.get("mode", "connect")
    if mode not in MODES:
        raise RequestError("VALIDATION", f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    built = _built()
    rx_id = _seat_rx(built)
    user = built.session_user(rx_id)
    if user is None:
        return jsonify(result_body(R.NOT_LOGGED_IN, mode=mode, rows=[]))
    rows = engine.device_rows(built.snap, user, rx_id, mode)  # type: ignore[arg-type]
    _note_activity(built, rx_id)
    return jsonify({
        "mode": mode,
        "rows": [{"id": r.id, "name": r.name, "colour": r.colour, "online": r.online}
                 for r in rows],
    })


def _note_activity(built: Built, rx_id: str) -> None:
    """A read-only call still counts as the seat's activity (idle logout): written in a short
    transaction of its own, at most every ``routing.ACTIVITY_RESOLUTION`` per seat."""
    s = db_session()
    recent = routing.activity_is_recent(s, built, rx_id)
    s.rollback()  # end the read transaction: a SQLite read snapshot is not upgraded to a write
    if not recent:
        s.connection(execution_options={IMMEDIATE: True})
        routing.record_activity(s, built, rx_id, m.utcnow())
        s.commit()


def _act(action: str) -> Response:
    s = db_session()
    built = _built(lock=True)
    rx_id = _seat_rx(built)
    text = parse_typed(json_body())
    user = built.session_user(rx_id)
    if user is None:
        routing.audit(s, actor="", action=action, result=R.NOT_LOGGED_IN.value,
                      seat=built.seat(rx_id).name, device=rx_id, target=text)
        _commit_and_notify()
        return jsonify(result_body(R.NOT_LOGGED_IN))
    decide = {"connect": engine.connect, "push": engine.push, "fetch": engine.fetch}[action]
    outcome = decide(built.snap, user, rx_id, text)
    routing.record_activity(s, built, rx_id)
    notify = routing.apply_outcome(
        s, built, outcome, actor=user, rx_id=rx_id, action=action, text=text
    )
    _commit_and_notify(notify)
    extra: dict[str, Any] = {}
    if action == "push" and outcome.targets:
        # One texts dict per result code, shared by the targets with that code (a push to
        # `all` has a thousand targets and a handful of codes); the body is only encoded.
        by_code = {code: texts(code) for code in {t.code for t in outcome.targets}}
        extra["targets"] = [
            {"id": t.target, "result": t.code.value, "text": by_code[t.code]}
            for t in outcome.targets
        ]
        failures = [(t.target, t.code) for t in outcome.targets if not t.code.ok]
        if failures and len(outcome.targets) > 1:
            extra["summary"] = {lang: push_summary(failures, lang) for lang in LANGS}
    return jsonify(result_body(outcome.code, **extra))


@bp.post("/connect")
def connect() -> Response:
    return _act("connect")


@bp.post("/push")
def push() -> Response:
    return _act("push")


@bp.post("/fetch")
def fetch() -> Response:
    return _act("fetch")
