"""Credentials: operator/admin passwords (argon2id), device secrets (SHA-256), admin tokens.

The hashing functions are plain; the decorators (``admin_required``, ``device_required``)
are the Flask side: they authenticate the request and put the caller on ``flask.g``
(``g.admin`` / ``g.device``, ORM objects of the request's session).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import Blueprint, Response, g, has_app_context, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from webadmin import models as m
from webadmin.api_common import ApiError, Body, db_session, json_body, services
from webadmin.db import gevent_patched
from webadmin.routing import audit, rate_limited, record_failure

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)
# Verified against when the user does not exist, so that both paths cost the same.
_DUMMY_HASH = _hasher.hash("kvm-seat: no such user")

SECRET_RE = re.compile(r"^[0-9a-fA-F]{64}$")


# --- passwords ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted, slow: ~0.1 s of CPU). In a request that called
    ``hash_passwords_first`` with it, the hash made there."""
    if has_app_context():
        made = g.get(_HASHED)
        if made and password in made:
            return made.pop(password)  # type: ignore[no-any-return]
    return _hasher.hash(password)


_HASHED = "kvm_hashed_first"   # flask.g: password -> its hash, made by hash_passwords_first


def hash_passwords_first(s: Session, passwords: Iterable[str | None]) -> None:
    """Hash the new `passwords` of this request now, in gevent's thread pool, so that the
    request's ``hash_password`` calls take the results.

    Under ``kvm-server`` every request is a greenlet of one thread: hashed in the request's
    write transaction, each password stopped every device's and seat's request for its
    ~0.1 s (an import of 12 users: over a second). Waiting for the pool lets them run, so
    no transaction may be open meanwhile: `s` (the request's session, nothing written yet)
    ends its read transaction first; its objects reload on use. Without gevent (the CLI,
    the tests' apps) this does nothing."""
    todo = {p for p in passwords if p}
    if not todo or not gevent_patched():
        return
    s.rollback()
    made = g.setdefault(_HASHED, {})
    for password in todo - made.keys():
        made[password] = _offload(_hasher.hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; a missing hash costs as much as a wrong password."""
    try:
        return _offload(_hasher.verify, password_hash or _DUMMY_HASH, password) and bool(
            password_hash
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _offload(fn: Callable[..., T], *args: Any) -> T:
    """Run a CPU-heavy call in gevent's thread pool when gevent is active (argon2 drops the GIL),
    so a login does not stall every long poll of the server for its ~50 ms."""
    if not gevent_patched():
        return fn(*args)
    import gevent

    return cast(T, gevent.get_hub().threadpool.apply(fn, args))


# --- device secrets and tokens -----------------------------------------------------------


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a device secret: a 256-bit random value needs no slow hash."""
    return hashlib.sha256(secret.lower().encode("ascii")).hexdigest()


def secret_matches(stored_hash: str | None, secret: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    if not stored_hash:
        return False
    return hmac.compare_digest(stored_hash, hash_secret(secret))


def new_token() -> tuple[str, str]:
    """A fresh admin bearer token and the SHA-256 hex that is stored instead of it."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode("ascii")).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


# --- Flask decorators --------------------------------------------------------------------


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "UNAUTHORIZED", "Authorization: Bearer <token> required")
    return value.strip()


def current_admin() -> m.User:
    """The admin user of this request (validates the bearer token; raises ApiError)."""
    cached = g.get("admin")
    if cached is not None:
        return cast(m.User, cached)
    token = _bearer()
    s = db_session()
    row = s.scalar(select(m.AdminToken).where(m.AdminToken.token_hash == token_hash(token)))
    now = m.utcnow()
    if row is None or row.expires_at <= now:
        raise ApiError(401, "UNAUTHORIZED", "unknown or expired token")
    user = row.user
    if not user.enabled:
        raise ApiError(401, "UNAUTHORIZED", "this user is disabled")
    if user.role != "admin":
        raise ApiError(403, "FORBIDDEN", "admins only")
    g.admin = user
    return user


def admin_required(view: F) -> F:
    """Views of the admin API: a valid bearer token of an enabled admin, else 401/403 JSON.

    The admin's ``User`` row is ``flask.g.admin``.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_admin()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def parse_device_header(header: str) -> tuple[str, str]:
    """``Device <serial>:<secret>`` → (serial, secret); ApiError 401 when malformed."""
    scheme, _, value = header.partition(" ")
    serial, sep, secret = value.strip().rpartition(":")
    if scheme != "Device" or not sep or not serial or not SECRET_RE.match(secret):
        raise ApiError(401, "UNAUTHORIZED", "Authorization: Device <serial>:<secret> required")
    return serial, secret


def current_device() -> m.Device:
    """The adopted device calling (validates its credential; raises ApiError 401/403)."""
    cached = g.get("device")
    if cached is not None:
        return cast(m.Device, cached)
    serial, secret = parse_device_header(request.headers.get("Authorization", ""))
    dev = db_session().scalar(select(m.Device).where(m.Device.serial == serial))
    refusal = device_refusal(dev, secret)
    if refusal is not None:
        raise refusal
    assert dev is not None
    g.device = dev
    return dev


def device_refusal(dev: m.Device | None, secret: str) -> ApiError | None:
    """Why the device stored under the serial presented (None: no such serial) may not call
    with `secret` (64 hex characters): 401 UNAUTHORIZED (unknown, no credential, wrong
    secret) or 403 PENDING (not adopted yet); None when it may."""
    # Compare even when the device is unknown, so timing does not tell which serials exist.
    ok = secret_matches(dev.credential_hash if dev else hash_secret("0" * 64), secret)
    if dev is None or not dev.credential_hash or not ok:
        return ApiError(401, "UNAUTHORIZED", "unknown device or wrong secret")
    if dev.adoption != "adopted" or dev.id is None:
        return ApiError(403, "PENDING", "this device waits for an admin to adopt it")
    return None


def device_required(view: F) -> F:
    """Views called by devices: ``Authorization: Device <serial>:<secret>`` of an adopted device."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_device()
        return view(*args, **kwargs)

    return cast(F, wrapper)


# --- POST /api/v1/admin/token -----------------------------------------------------------

bp = Blueprint("admin_token", __name__, url_prefix="/api/v1/admin")
TOKEN_PLACE = "admin-token"  # noqa: S105 - a rate-limit bucket name


def parse_token_request(data: dict[str, Any]) -> tuple[str, str]:
    b = Body(data)
    user = b.string("user", max_len=64)
    password = b.string("password", max_len=256)
    b.done()
    return user, password


@bp.post("/token")
def issue_token() -> tuple[Response, int]:
    """Admin user + password → bearer token (operators 403; 5 failures per user a minute)."""
    name, password = parse_token_request(json_body())
    s = db_session()
    now = m.utcnow()
    if rate_limited(s, name, TOKEN_PLACE, now):
        audit(s, actor=name, action="token", result="RATE_LIMITED")
        s.commit()
        raise ApiError(429, "RATE_LIMITED", "too many failed attempts, wait a minute")
    user = s.scalar(select(m.User).where(m.User.name == name))
    stored = user.password_hash if user else None
    s.rollback()  # no read transaction across the (yielding) slow hash; see api_seat.login
    if not verify_password(stored, password) or user is None:
        record_failure(s, name, TOKEN_PLACE, now)
        audit(s, actor=name, action="token", result="UNAUTHORIZED")
        s.commit()
        raise ApiError(401, "UNAUTHORIZED", "wrong user name or password")
    if not user.enabled:
        audit(s, actor=name, action="token", result="UNAUTHORIZED")
        s.commit()
        raise ApiError(401, "UNAUTHORIZED", "this user is disabled")
    if user.role != "admin":
        audit(s, actor=name, action="token", result="FORBIDDEN")
        s.commit()
        raise ApiError(403, "FORBIDDEN", "only admins get API tokens")
    token, digest = new_token()
    ttl = services().config.admin_token_ttl_s
    expires = now + dt.timedelta(seconds=ttl)
    s.add(m.AdminToken(token_hash=digest, user_pk=user.pk, created_at=now, expires_at=expires))
    audit(s, actor=name, action="token", result="OK")
    s.commit()
    return jsonify({"token": token, "expires_at": expires.isoformat(), "expires_in": ttl}), 200
