"""Device side of the API (/api/v1/device/...): announce, state reports, watch (docs/API.md)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select

from webadmin import engine
from webadmin import models as m
from webadmin.api_common import (
    ApiError,
    Body,
    db_session,
    json_body,
    no_unknown_args,
    query_int,
    services,
)
from webadmin.auth import SECRET_RE, current_device, hash_secret, secret_matches
from webadmin.routing import audit, report_state
from webadmin.snapshot import Built

bp = Blueprint("api_device", __name__, url_prefix="/api/v1/device")

SERIAL_RE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
SOURCE_RE = re.compile(r"^\d{4}:[1-4]$")
MAX_PENDING = 1000
DEFAULT_WATCH_S = 25


# --- parsers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Announce:
    serial: str
    kind: str
    heads: int
    firmware: str
    secret: str


def parse_announce(data: dict[str, Any]) -> Announce:
    b = Body(data)
    serial = b.string("serial", max_len=64)
    if not SERIAL_RE.match(serial):
        b.fail("serial", "1-64 characters of A-Z a-z 0-9 . _ : / -")
    kind = b.choice("kind", ("tx", "rx"))
    heads = b.integer("heads", lo=1, hi=4, required=False, default=1)
    firmware = b.string("firmware", max_len=64, required=False, default="")
    secret = b.string("secret", max_len=64)
    if not SECRET_RE.match(secret):
        b.fail("secret", "must be 64 hexadecimal characters (a 256-bit random secret)")
    b.done()
    return Announce(serial, kind, heads, firmware, secret.lower())


@dataclass(frozen=True)
class StateReport:
    online: bool
    network_up: bool | None
    stream_ok: bool | None
    heads: list[dict[str, Any]]


def parse_state(data: dict[str, Any], kind: str) -> StateReport:
    b = Body(data)
    online = b.boolean("online")
    network_up = b.boolean("network_up", required=False) if kind == "rx" else None
    stream_ok = b.boolean("stream_ok", required=False) if kind == "tx" else None
    heads: list[dict[str, Any]] = []
    seen: set[int] = set()
    for h in b.objects("heads", max_items=4, required=False):
        head = h.integer("head", lo=1, hi=4)
        if head in seen:
            h.fail("head", f"head {head} is listed twice")
        seen.add(head)
        entry: dict[str, Any] = {"head": head, "video": h.boolean("video", required=False,
                                                                default=True)}
        if kind == "rx":
            source = h.string("source", max_len=6, required=False)
            if source is not None and not SOURCE_RE.match(source):
                h.fail("source", "must be \"<tx id>:<head>\" such as \"0001:1\", or null")
            entry["source"] = source
        h.done()
        heads.append(entry)
    b.done()
    return StateReport(online, network_up, stream_ok, sorted(heads, key=lambda e: e["head"]))


# --- views -------------------------------------------------------------------------------


def _adopted_body(dev: m.Device) -> dict[str, Any]:
    return {"state": "adopted", "id": dev.id, "name": dev.name, "heads": dev.heads}


@bp.post("/announce")
def announce() -> tuple[Response, int]:
    """First contact of a device; binds its secret; tells it whether it is adopted."""
    req = parse_announce(json_body())
    s = db_session()
    dev = s.scalar(select(m.Device).where(m.Device.serial == req.serial))
    actor = f"device:{req.serial}"
    if dev is None:
        pending = s.scalar(select(func.count()).where(m.Device.adoption == "pending"))
        if (pending or 0) >= MAX_PENDING:
            raise ApiError(429, "RATE_LIMITED", "too many devices wait for adoption")
        dev = m.Device(
            kind=req.kind, heads=req.heads, serial=req.serial, adoption="pending",
            credential_hash=hash_secret(req.secret), firmware=req.firmware,
        )
        s.add(dev)
        audit(s, actor=actor, action="announce", result="PENDING", target=req.kind,
              detail={"heads": req.heads, "firmware": req.firmware})
        s.commit()
        return jsonify({"state": "pending"}), 202
    if dev.kind != req.kind:
        raise ApiError(409, "CONFLICT", f"serial {req.serial} is registered as a {dev.kind}")
    if dev.credential_hash is None:
        # Pre-provisioned by an admin: the first announce binds the secret.
        dev.credential_hash = hash_secret(req.secret)
        audit(s, actor=actor, action="announce", result="BOUND", device=dev.id or "")
    elif not secret_matches(dev.credential_hash, req.secret):
        audit(s, actor=actor, action="announce", result="CONFLICT", device=dev.id or "")
        s.commit()
        raise ApiError(409, "CONFLICT",
                       "this serial is bound to another secret; an admin must reset the device")
    if dev.firmware != req.firmware:
        dev.firmware = req.firmware
    if dev.adoption == "pending" and dev.heads != req.heads:
        dev.heads = req.heads
    s.commit()
    if dev.adoption == "adopted" and dev.id is not None:
        return jsonify(_adopted_body(dev)), 200
    return jsonify({"state": "pending"}), 202


@bp.post("/state")
def state() -> Response:
    """Heartbeat and actual state; answers the device's current generation."""
    dev = current_device()
    req = parse_state(json_body(), dev.kind)
    svc = services()
    s = db_session()
    wrote = report_state(
        s, dev, online=req.online, network_up=req.network_up, stream_ok=req.stream_ok,
        heads=req.heads, min_interval=dt.timedelta(seconds=svc.config.device_timeout_s / 4),
    )
    if wrote:
        s.commit()
    return jsonify({"generation": int(dev.generation)})


def _settings_body(st: m.Settings) -> dict[str, Any]:
    return {
        "chord": st.chord,
        "chord_window_ms": st.chord_window_ms,
        "lang": st.lang,
        "auto_close_ms": st.auto_close_ms,
        "idle_close_s": st.idle_close_s,
        "idle_logout_s": st.idle_logout_s,
    }


def watch_body(built: Built, dev_id: str, generation: int, settings: m.Settings) -> dict[str, Any]:
    """What a device's watch returns: its desired routing, its seat's session, settings."""
    cfg = built.config
    kind = cfg.kinds.get(dev_id, "tx")
    routing: list[dict[str, Any]] = []
    session: dict[str, Any] | None = None
    seat: dict[str, Any] | None = None
    if kind == "rx":
        routes = built.snap.routing.get(dev_id, ())
        for head in range(1, cfg.heads.get(dev_id, 1) + 1):
            r = routes[head - 1] if head <= len(routes) else None
            routing.append({
                "head": head,
                "source": None if r is None else f"{r.tx_id}:{r.tx_head}",
                "set_by": "" if r is None else r.set_by,
                "pushed": False if r is None else r.pushed,
            })
        user = built.session_user(dev_id)
        if user is not None and user in built.snap.users:
            who = built.snap.users[user]
            session = {
                "user": user,
                "role": who.role,
                "lang": cfg.langs.get(user, "zh_CN"),
                "keys_allowed": engine.keys_allowed(built.snap, user, dev_id),
            }
        st = built.seat(dev_id)
        seat = {"name": st.name, "screens": list(st.screens)}
    return {
        "generation": generation,
        "routing": routing,
        "session": session,
        "settings": _settings_body(settings),
        "seat": seat,
        "id": dev_id,
        "name": cfg.names.get(dev_id, ""),
    }


@bp.get("/watch")
def watch() -> Response:
    """Long poll: returns when the device's generation exceeds ?generation=, or at ?timeout=."""
    no_unknown_args("generation", "timeout")
    svc = services()
    since = query_int("generation", default=-1, lo=-1, hi=2**62)
    timeout = query_int(
        "timeout", default=min(DEFAULT_WATCH_S, svc.config.long_poll_max_s), lo=0,
        hi=svc.config.long_poll_max_s,
    )
    dev = current_device()
    dev_id, dev_pk = dev.id, dev.pk
    assert dev_id is not None
    # Register first, then read: a change committed after the read still wakes us.
    event = svc.hub.register(dev_id)
    s = db_session()
    s.rollback()  # end the request's read transaction: see commits made after it
    gen = _generation(s, dev_pk)
    if gen <= since and timeout > 0:
        s.close()  # hold no connection while waiting
        event.wait(timeout)
        gen = _generation(s, dev_pk)
    built = svc.cache.build(s)
    settings = s.get(m.Settings, 1) or m.Settings()
    body = watch_body(built, dev_id, gen, settings)
    s.rollback()
    return jsonify(body)


def _generation(s: Any, dev_pk: int) -> int:
    gen = s.scalar(select(m.Device.generation).where(m.Device.pk == dev_pk))
    if gen is None:
        raise ApiError(401, "UNAUTHORIZED", "this device was removed")
    return int(gen)

