"""The batch endpoints of device hosts (docs/API.md), on ``api_device``'s blueprint:
``POST /api/v1/device/watches`` (one long poll for many Rx of one process, waiting in
``BatchWait`` outside Flask like a single watch) and ``POST /api/v1/device/states`` (the
state reports of many devices in one request). The single-device endpoints, the watch
answers and ``WatchMiddleware`` are in ``webadmin.api_device``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request
from sqlalchemy import bindparam, select

from webadmin import models as m
from webadmin.api_common import (
    ApiError,
    Body,
    RequestError,
    Services,
    db_session,
    json_body,
    services,
)
from webadmin.api_device import (
    DEFAULT_WATCH_S,
    WAIT_KEY,
    StateReport,
    WatchMiddleware,
    _json,
    answer,
    apply_state,
    bp,
    encode,
    heartbeat_need,
    parse_state,
)
from webadmin.auth import SECRET_RE, device_refusal, secret_matches
from webadmin.bodies import takes_body
from webadmin.routing import Waiter
from webadmin.snapshot import Built

STATES_PATH = "/api/v1/device/states"
MAX_BATCH = 256  # devices in one POST /device/watches or /device/states
MAX_STATES_BODY = 256 * 1024  # POST /device/states: 256 dual-head states (the rest: 64 KiB)
_D = m.Device.__table__.c
log = logging.getLogger("webadmin.api")


# --- parsers -----------------------------------------------------------------------------


def _batch_items(b: Body) -> list[Body]:
    """The ``devices`` of a batch body: 1 to MAX_BATCH objects."""
    items: list[Body] = b.objects("devices", max_items=MAX_BATCH)
    if not items:
        b.fail("devices", f"must list 1-{MAX_BATCH} devices")
    return items


def _credential(d: Body, seen: set[str]) -> tuple[str, str]:
    """(serial, secret) of one entry of a batch; a serial already in `seen` is refused."""
    serial = d.string("serial", max_len=64)
    if serial in seen:
        d.fail("serial", f"{serial!r} is listed twice")
    seen.add(serial)
    return serial, d.string("secret", max_len=256)


@dataclass(frozen=True)
class BatchDevice:
    serial: str
    secret: str
    since: int  # the generation the device has; -1: answer it at once


def parse_watches(data: dict[str, Any], long_poll_max_s: int) -> tuple[int, list[BatchDevice]]:
    """``POST /device/watches`` body → (timeout, devices). A secret that is not 64 hex
    characters is not refused here: it is a wrong secret (an UNAUTHORIZED entry)."""
    b = Body(data)
    timeout = b.integer("timeout", lo=0, hi=long_poll_max_s, required=False,
                        default=min(DEFAULT_WATCH_S, long_poll_max_s))
    devices: list[BatchDevice] = []
    seen: set[str] = set()
    for d in _batch_items(b):
        serial, secret = _credential(d, seen)
        since = d.integer("generation", lo=-1, hi=2**62, required=False, default=-1)
        d.done()
        devices.append(BatchDevice(serial, secret, since))
    b.done()
    return timeout, devices


@dataclass(frozen=True)
class StatesEntry:
    serial: str
    secret: str
    state: dict[str, Any]  # a POST /device/state body, parsed per device (``parse_state``)


def parse_states(data: dict[str, Any]) -> list[StatesEntry]:
    """``POST /device/states`` body → its entries. Only the envelope is checked here: a
    secret that is not 64 hex characters is a wrong secret and a bad ``state`` a bad report
    (error entries of their devices)."""
    b = Body(data)
    entries: list[StatesEntry] = []
    seen: set[str] = set()
    for d in _batch_items(b):
        if "state" not in d.data:
            d.fail("state", "is required")
        state = d.data["state"]
        if not isinstance(state, dict):
            d.fail("state", "must be an object (a POST /device/state body)")
        rest = Body({k: v for k, v in d.data.items() if k != "state"}, d.path)
        serial, secret = _credential(rest, seen)
        rest.done()
        entries.append(StatesEntry(serial, secret, state))
    b.done()
    return entries


# --- POST /device/watches ----------------------------------------------------------------


_GENERATIONS = select(_D.pk, _D.generation).where(_D.pk.in_(bindparam("pks", expanding=True)))


def _entry(serial: str, key: bytes, value: bytes) -> bytes:
    name = json.dumps(serial, ensure_ascii=False).encode("utf-8")
    return b'{"serial":%s,"%s":%s}' % (name, key, value)


@dataclass(frozen=True)
class BatchMember:
    """A device of a batch watch: its ID and pk when it may watch, else its error entry."""

    serial: str
    since: int
    dev_id: str = ""
    pk: int = 0
    error: tuple[str, str] | None = None  # (code, message)


_NOT_RX = ("UNAUTHORIZED", "only Rx devices watch here (a Tx uses GET /device/watch)")


def _batch_members(s: Any, built: Built, devices: Sequence[BatchDevice]) -> list[BatchMember]:
    """Authenticate every device of a batch as ``_watching_device`` does: against the
    snapshot's credentials, and the rest with one query for ``device_refusal``'s precise
    UNAUTHORIZED / PENDING."""
    creds = built.config.credentials
    found: dict[str, BatchMember] = {}
    unsure: list[BatchDevice] = []
    for d in devices:
        cred = creds.get(d.serial)
        if not SECRET_RE.match(d.secret):
            found[d.serial] = BatchMember(d.serial, d.since, error=(
                "UNAUTHORIZED", "unknown device or wrong secret"))
        elif cred is not None and secret_matches(cred.credential_hash, d.secret):
            found[d.serial] = BatchMember(d.serial, d.since, cred.id, cred.pk,
                                          None if cred.kind == "rx" else _NOT_RX)
        else:
            unsure.append(d)
    if unsure:
        rows = {dev.serial: dev for dev in s.scalars(
            select(m.Device).where(m.Device.serial.in_([d.serial for d in unsure])))}
        for d in unsure:
            dev = rows.get(d.serial)
            refusal = device_refusal(dev, d.secret)
            if refusal is not None:
                found[d.serial] = BatchMember(d.serial, d.since,
                                              error=(refusal.code, refusal.message))
                continue
            assert dev is not None and dev.id is not None
            found[d.serial] = BatchMember(d.serial, d.since, dev.id, dev.pk,
                                          None if dev.kind == "rx" else _NOT_RX)
    return [found[d.serial] for d in devices]


class BatchWait:
    """A batch watch (``POST /device/watches``) that waits outside the Flask request.

    It waits on one event of its own, which ``WatchHub.add_waker`` puts on the waiter of
    each of its devices: a push that changes 250 of them wakes it once. A wake-up that
    handed over the generations of the devices it concerns is answered from the in-memory
    snapshot without a query; anything else (an admin change, the timeout, the server
    stopping) reads the batch's generations in one query. ``send_early`` is not used: the
    batch is one answer anyway.
    """

    def __init__(self, svc: Services, members: Sequence[BatchMember], deadline: float) -> None:
        self.svc, self.members, self.deadline = svc, members, deadline
        self.since = {b.dev_id: b.since for b in members if b.error is None}
        self.pks = {b.dev_id: b.pk for b in members if b.error is None}
        self.refused = any(b.error is not None for b in members)
        self.send_early: Any = None
        self.event = threading.Event()
        self.waiters: dict[str, Waiter] = {}

    def hook(self, device_ids: Iterable[str]) -> None:
        """Register (again) on the waiters of these devices; before reading generations."""
        hub = self.svc.hub
        for d in device_ids:
            old = self.waiters.get(d)
            if old is not None:
                hub.remove_waker(old, self.event.set)
            waiter = self.waiters[d] = hub.register(d)
            hub.add_waker(waiter, self.event.set)

    def unhook(self) -> None:
        hub = self.svc.hub
        for waiter in self.waiters.values():
            hub.remove_waker(waiter, self.event.set)
        self.waiters.clear()

    def read(self, s: Any) -> dict[str, int | None]:
        """The stored generation of every device of the batch (None: its row is gone)."""
        if not self.pks:
            return {}
        stored = {int(pk): int(gen) for pk, gen in s.connection().execute(
            _GENERATIONS, {"pks": list(self.pks.values())})}
        return {d: stored.get(pk) for d, pk in self.pks.items()}

    def due(self, gens: Mapping[str, int | None]) -> bool:
        """True when one of `gens` is to be answered: behind, or its device is gone."""
        return any(g is None or g > self.since[d] for d, g in gens.items())

    def payload(self, built: Built, gens: Mapping[str, int | None], *, every: bool) -> bytes:
        """``{"answers": [...]}``: the refused devices, the devices of `gens` that are
        behind or gone, and with `every` all of `gens`; each watch entry is the device's
        encoded watch answer as it is."""
        hub = self.svc.hub
        out: list[bytes] = []
        for b in self.members:
            if b.error is not None:
                out.append(_entry(b.serial, b"error", encode(
                    {"code": b.error[0], "message": b.error[1]})))
            elif b.dev_id in gens:
                gen = gens[b.dev_id]
                if gen is None:
                    out.append(_entry(b.serial, b"error", encode(
                        {"code": "UNAUTHORIZED", "message": "this device was removed"})))
                elif every or gen > b.since:
                    out.append(_entry(b.serial, b"watch",
                                      answer(hub, built, b.dev_id, gen)))
        return b'{"answers":[' + b",".join(out) + b"]}"

    def finish(self) -> tuple[str, bytes]:
        svc, hub = self.svc, self.svc.hub
        try:
            while True:
                if not hub.closed:
                    self.event.wait(max(0.0, self.deadline - time.monotonic()))
                self.event.clear()  # a notify from now on sets it again
                notified = [d for d, w in self.waiters.items() if w.event.is_set()]
                handed = {d: self.waiters[d].generation for d in notified}
                if notified and None not in handed.values() and not hub.closed:
                    behind = {d: g for d, g in handed.items()
                              if g is not None and g > self.since[d]}
                    latest = svc.cache.latest() if behind else None
                    if latest is not None:
                        return "200 OK", self.payload(latest, behind, every=False)
                with svc.db.session() as s:
                    self.hook(notified)
                    gens = self.read(s)
                    if (hub.closed or time.monotonic() >= self.deadline
                            or self.due(gens)):
                        return "200 OK", self.payload(svc.cache.build(s, live=False), gens,
                                                      every=False)
        finally:
            self.unhook()


@bp.post("/watches")
def watches() -> Response:
    """One long poll for many Rx of one controller host (docs/API.md): answers at once
    when ``timeout`` is 0, a device is refused or a device is behind; else waits in
    ``BatchWait`` (outside Flask, like ``watch``) until one of them changes or the timeout."""
    svc = services()
    timeout, devices = parse_watches(json_body(), svc.config.long_poll_max_s)
    s = db_session()
    members = _batch_members(s, svc.cache.build(s, live=False), devices)
    wait = BatchWait(svc, members, time.monotonic() + timeout)
    try:
        # Register first, then read in a new transaction (as ``watch`` does).
        wait.hook(wait.pks)  # every device that may watch
        s.rollback()
        gens = wait.read(s)
        if timeout == 0 or wait.refused or wait.due(gens):
            wait.unhook()
            return _json(wait.payload(svc.cache.build(s, live=False), gens,
                                      every=timeout == 0))
    except BaseException:
        wait.unhook()
        raise
    request.environ[WAIT_KEY] = wait
    return Response(b"", 200)  # replaced by WatchMiddleware with the answer after the wait


# --- POST /device/states -----------------------------------------------------------------


_STATE_ROWS = select(
    _D.serial, _D.pk, _D.kind, _D.adoption, _D.id, _D.credential_hash, _D.online,
    _D.network_up, _D.stream_ok, _D.reported_heads, _D.last_seen, _D.generation,
).where(_D.serial.in_(bindparam("serials", expanding=True)))
_WRONG = ("UNAUTHORIZED", "unknown device or wrong secret")


def _refusal(row: Any, secret: str) -> tuple[str, str] | None:
    """``device_refusal`` for a row of ``_STATE_ROWS`` (None: no such serial): (code,
    message) when the device may not report with `secret`, None when it may."""
    if not SECRET_RE.match(secret):
        return _WRONG
    if (row is not None and row.adoption == "adopted" and row.id is not None
            and secret_matches(row.credential_hash, secret)):
        return None
    stored = None if row is None else m.Device(
        credential_hash=row.credential_hash, adoption=row.adoption, id=row.id)
    refusal = device_refusal(stored, secret)  # never added to a session: nothing is written
    return None if refusal is None else (refusal.code, refusal.message)


def _error(exc: ApiError) -> bytes:
    return encode({"code": exc.code, "message": exc.message})


@bp.post("/states")
@takes_body(MAX_STATES_BODY)
def states() -> Response:
    """The heartbeats of many devices of one process (docs/API.md): each entry does what
    ``POST /device/state`` does for its device, and answers what it answers.

    One query reads every device of the batch. Reports that change nothing write nothing
    (a due ``last_seen`` goes to the ``LastSeenBatch`` when it runs, as in
    ``unchanged_state``); the others are applied with ``apply_state`` in one write
    transaction. When that transaction fails, the whole request answers 503 (the client
    posts the batch again; nothing of it was applied but ``last_seen`` refreshes)."""
    entries = parse_states(json_body(MAX_STATES_BODY))
    svc = services()
    cfg = svc.config
    s = db_session()
    rows = {r.serial: r for r in s.connection().execute(
        _STATE_ROWS, {"serials": [e.serial for e in entries]})}
    s.rollback()  # the read is done; writes (if any) take their own transaction
    paths: WatchMiddleware | None = current_app.extensions.get("kvm_device_paths")
    seen_later = None if paths is None else paths.last_seen
    now = m.utcnow()
    out: list[bytes] = [b""] * len(entries)
    writes: list[tuple[int, StatesEntry, StateReport, str]] = []
    for i, e in enumerate(entries):
        row = rows.get(e.serial)
        refusal = _refusal(row, e.secret)
        if refusal is not None or row is None:
            refusal = refusal or _WRONG
            out[i] = _entry(e.serial, b"error", encode(
                {"code": refusal[0], "message": refusal[1]}))
            continue
        try:
            req = parse_state(e.state, row.kind)
        except RequestError as exc:
            out[i] = _entry(e.serial, b"error", _error(exc))
            continue
        need = heartbeat_need(row, req, now, cfg)
        if need == "write" or (need == "refresh" and (seen_later is None
                                                      or not seen_later.running)):
            writes.append((i, e, req, row.kind))
            continue
        if need == "refresh":
            assert seen_later is not None
            seen_later.add(int(row.pk), now)
        out[i] = _entry(e.serial, b"generation", b"%d" % int(row.generation))
    if writes:
        _write_states(svc, writes, out, now)
    return _json(b'{"answers":[' + b",".join(out) + b"]}")


def _write_states(svc: Services,
                  writes: Sequence[tuple[int, StatesEntry, StateReport, str]],
                  out: list[bytes], now: dt.datetime) -> None:
    """Apply the reports of `writes` (index in `out`, entry, report, the kind it was parsed
    for) in one write transaction and fill in their answers; ApiError 503 when it fails."""
    try:
        with svc.db.begin() as ws:
            serials = [e.serial for _, e, _, _ in writes]
            devs = {d.serial: d for d in ws.scalars(
                select(m.Device).where(m.Device.serial.in_(serials)))}
            for i, e, req, kind in writes:
                dev = devs.get(e.serial)
                # Checked again in the write transaction: an admin may have reset it since.
                refusal = device_refusal(dev, e.secret)
                if refusal is not None or dev is None or dev.kind != kind:
                    exc = refusal or ApiError(401, *_WRONG)
                    out[i] = _entry(e.serial, b"error", _error(exc))
                    continue
                apply_state(ws, dev, req, svc.config, now)
                out[i] = _entry(e.serial, b"generation", b"%d" % int(dev.generation))
    except Exception as exc:
        log.error("writing device states failed: %s", exc.__class__.__name__, exc_info=exc)
        raise ApiError(503, "INTERNAL", "database unavailable, try again") from None
