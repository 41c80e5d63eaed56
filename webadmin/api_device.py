"""Device side of the API (/api/v1/device/...), docs/API.md: the blueprint, the endpoints of
one device (announce, state report, watch), the encoded watch answers, the heartbeat fast
path (``unchanged_state``, ``LastSeenBatch``) and ``WatchMiddleware``. The batch endpoints
of device hosts (``POST /device/watches``, ``POST /device/states``) are in
``webadmin.api_device_batch``, registered on this blueprint."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import bindparam, func, or_, select, update

from webadmin import engine
from webadmin import models as m
from webadmin.api_common import (
    MAX_BODY,
    ApiError,
    Body,
    Services,
    db_session,
    json_body,
    no_unknown_args,
    query_int,
    services,
)
from webadmin.auth import (
    SECRET_RE,
    current_device,
    hash_secret,
    parse_device_header,
    secret_matches,
)
from webadmin.config import ServerConfig
from webadmin.routing import Waiter, WatchHub, audit, report_state, seen_due, state_changes
from webadmin.snapshot import Built, Config

bp = Blueprint("api_device", __name__, url_prefix="/api/v1/device")

SERIAL_RE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
SOURCE_RE = re.compile(r"^\d{4}:[1-4]$")
MAX_PENDING = 1000
DEFAULT_WATCH_S = 25
WATCH_PATH = "/api/v1/device/watch"
WATCHES_PATH = "/api/v1/device/watches"
log = logging.getLogger("webadmin.api")


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


def heartbeat_interval(cfg: ServerConfig) -> dt.timedelta:
    """How old ``last_seen`` may get before a heartbeat that changes nothing refreshes it."""
    return dt.timedelta(seconds=cfg.device_timeout_s / 4)


def apply_state(s: Any, dev: m.Device, req: StateReport, cfg: ServerConfig,
                now: dt.datetime | None = None) -> bool:
    """What a state report does to its (adopted, authenticated) device: ``report_state``.
    True when it wrote something (the caller commits). Both ``state`` and ``states`` use it."""
    return report_state(
        s, dev, online=req.online, network_up=req.network_up, stream_ok=req.stream_ok,
        heads=req.heads, min_interval=heartbeat_interval(cfg), now=now,
    )


Need = Literal["none", "refresh", "write"]


def heartbeat_need(stored: Any, req: StateReport, now: dt.datetime,
                   cfg: ServerConfig) -> Need:
    """What a report needs against the stored device (a ``Device`` or a row of
    ``_STATE_ROW``): ``"none"`` (nothing changes, ``last_seen`` is fresh), ``"refresh"``
    (nothing changes but ``last_seen`` is due: a ``LastSeenBatch`` may take it) or
    ``"write"`` (the reported state changes, or the device counts as offline until its
    ``last_seen`` is written): the decision ``apply_state`` takes, without writing."""
    if state_changes(stored, online=req.online, network_up=req.network_up,
                     stream_ok=req.stream_ok, heads=req.heads):
        return "write"
    if not seen_due(stored.last_seen, now, heartbeat_interval(cfg)):
        return "none"
    # A device that counts as offline now (never heard from, or silent for about its
    # timeout) is back with this report: its ``last_seen`` goes in at once. Left to the
    # ``LastSeenBatch`` it would stay offline up to a period longer, and a push or a
    # connect to it in that moment would be refused as 此设备不在线.
    last = stored.last_seen
    if last is None or now - last >= dt.timedelta(
            seconds=cfg.device_timeout_s - last_seen_period(cfg)):
        return "write"
    return "refresh"


def last_seen_period(cfg: ServerConfig) -> float:
    """Seconds between two writes of the ``LastSeenBatch`` (a tenth of the timeout, <= 1)."""
    return min(1.0, cfg.device_timeout_s / 10)


@bp.post("/state")
def state() -> Response:
    """Heartbeat and actual state; answers the device's current generation."""
    dev = current_device()
    req = parse_state(json_body(), dev.kind)
    s = db_session()
    if apply_state(s, dev, req, services().config):
        s.commit()
    return jsonify({"generation": int(dev.generation)})


STATE_PATH = "/api/v1/device/state"
_D = m.Device.__table__.c
_STATE_ROW = select(
    _D.pk, _D.kind, _D.adoption, _D.id, _D.credential_hash, _D.online, _D.network_up, _D.stream_ok,
    _D.reported_heads, _D.last_seen, _D.generation,
).where(_D.serial == bindparam("serial"))


_REFRESH_SEEN = (
    update(m.Base.metadata.tables["devices"])
    .where(_D.pk == bindparam("b_pk"),
           or_(_D.last_seen.is_(None), _D.last_seen < bindparam("b_at", type_=m.UTCDateTime)))
    .values(last_seen=bindparam("b_at", type_=m.UTCDateTime))
)


class LastSeenBatch:
    """``last_seen`` refreshes of heartbeats that change nothing, written together.

    With a heartbeat every 2-5 s and ``device_timeout_s`` 8-10 s, almost every heartbeat of
    an idle device is due to refresh ``last_seen`` (older than a quarter of the timeout):
    written one by one that is a commit (an fsync with ``synchronous=FULL``) per heartbeat.
    While ``running`` (kvm-server starts it), such a heartbeat is answered at once and its
    device's time is kept here; every ``period_s`` one transaction writes them all (one
    ``UPDATE`` executemany, never moving a ``last_seen`` back). ``last_seen`` is in no cached
    part, so no version moves. A stored ``last_seen`` then lags by at most ``period_s``
    (kept below a tenth of the timeout); a crash loses at most that much liveness, which
    the devices' next heartbeats restore.
    """

    def __init__(self, database: Any, period_s: float) -> None:
        self.db = database
        self.period_s = period_s
        self.flushes = 0  # transactions written (tests, benchmarks)
        self._pending: dict[int, dt.datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def add(self, pk: int, at: dt.datetime) -> None:
        with self._lock:
            self._pending[pk] = at

    def flush(self) -> int:
        """Write the pending refreshes now; returns how many devices."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            with self.db.begin() as s:
                s.connection().execute(
                    _REFRESH_SEEN, [{"b_pk": pk, "b_at": at} for pk, at in batch.items()])
        except Exception:
            with self._lock:  # tried again at the next flush; newer times win
                self._pending = {**batch, **self._pending}
            raise
        self.flushes += 1
        return len(batch)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="kvm-last-seen",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and write what is pending."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.flush()
            except Exception:  # logged; the refreshes stay pending
                log.exception("writing last_seen refreshes failed")


def unchanged_state(svc: Services, environ: dict[str, Any], body: bytes,
                    batch: LastSeenBatch | None = None) -> bytes | None:
    """The answer to a ``device/state`` report that changes nothing, or None.

    The heartbeat of an idle device: an adopted device with a valid credential reports
    exactly its stored state. Its ``last_seen`` needs no refresh (fresher than
    ``device_timeout_s / 4``), or the refresh is left to `batch` when it runs. Then nothing
    is written now and the answer is what ``state`` gives (``{"generation": N}``), from one
    prebuilt query and no Flask request. Anything else (a change, a refresh due without a
    batch, a bad body or credential) gives None and goes the ordinary way, with its exact
    errors.
    """
    try:
        data = json.loads(body.decode("utf-8"))
        serial, secret = parse_device_header(environ.get("HTTP_AUTHORIZATION", ""))
    except (ValueError, RecursionError, ApiError):
        return None
    if not isinstance(data, dict) or svc.db.engine is None:
        return None
    with svc.db.engine.connect() as conn:
        row = conn.execute(_STATE_ROW, {"serial": serial}).first()
    if (row is None or row.adoption != "adopted" or row.id is None
            or not secret_matches(row.credential_hash, secret)):
        return None
    try:
        req = parse_state(data, row.kind)
    except ApiError:
        return None
    now = m.utcnow()
    need = heartbeat_need(row, req, now, svc.config)
    if need == "write":
        return None
    if need == "refresh":
        if batch is None or not batch.running:
            return None
        batch.add(int(row.pk), now)
    return b'{"generation":%d}\n' % int(row.generation)


def watch_body(built: Built, dev_id: str, generation: int) -> dict[str, Any]:
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
    settings = dict(cfg.settings)
    if kind == "rx" and dev_id in wall_tiles(cfg):
        settings["login_hidden"] = True   # no login screen over the wall's picture at rest
    return {
        "generation": generation,
        "routing": routing,
        "session": session,
        "settings": settings,
        "seat": seat,
        "id": dev_id,
        "name": cfg.names.get(dev_id, ""),
    }


def wall_tiles(cfg: Config) -> frozenset[str]:
    """The Rx that are tiles of a video wall (once per configuration)."""
    tiles: frozenset[str] | None = cfg.memo.get("wall-tiles")
    if tiles is None:
        tiles = cfg.memo["wall-tiles"] = frozenset(t for w in cfg.walls for t in w.tiles)
    return tiles


def encode(body: dict[str, Any]) -> bytes:
    """JSON as ``jsonify`` writes it here (compact, UTF-8, keys in order)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_ROUTINGS_KEPT = 4096  # encoded routing lists kept per configuration (then started afresh)


def encode_answer(built: Built, dev_id: str, generation: int) -> bytes:
    """``encode(watch_body(built, dev_id, generation))``, byte for byte, from parts that are
    encoded once: the device's settings/seat/ID/name part once per configuration version,
    its routing list once per distinct routing (after a push to 999 Rx, all of them share
    one). A test checks both give the same bytes for any room state."""
    cfg = built.config
    memo = cfg.memo
    tail = memo.get(("watch-tail", dev_id))
    if tail is None:
        body = watch_body(built, dev_id, generation)
        tail = memo[("watch-tail", dev_id)] = b"".join(
            b',"%s":%s' % (k.encode(), encode(body[k])) for k in ("settings", "seat", "id", "name")
        ) + b"}"
    if cfg.kinds.get(dev_id, "tx") != "rx":
        return b'{"generation":%d,"routing":[],"session":null%s' % (generation, tail)
    heads = cfg.heads.get(dev_id, 1)
    routes = built.snap.routing.get(dev_id, ())[:heads]
    routings: dict[Any, bytes] = memo.setdefault("watch-routing", {})
    routing = routings.get((heads, routes))
    if routing is None:
        if len(routings) >= _ROUTINGS_KEPT:
            routings.clear()
        routing = routings[(heads, routes)] = encode(
            watch_body(built, dev_id, generation)["routing"])
    session = b"null"
    if built.session_user(dev_id) is not None:
        session = encode(watch_body(built, dev_id, generation)["session"])
    return b'{"generation":%d,"routing":%s,"session":%s%s' % (
        generation, routing, session, tail)


def answer(hub: WatchHub, built: Built, dev_id: str, generation: int) -> bytes:
    """The encoded watch answer, built once per (device, generation, snapshot versions)."""
    key = (generation, built.versions[0], built.versions[2])
    return hub.answer(dev_id, key, lambda: encode_answer(built, dev_id, generation))


def _json(body: bytes) -> Response:
    return Response(body, mimetype="application/json")


def _watching_device(built: Built) -> tuple[str, int]:
    """(ID, pk) of the adopted device calling, checked against the snapshot's credentials;
    anything else goes through ``current_device`` for its precise 401/403."""
    serial, secret = parse_device_header(request.headers.get("Authorization", ""))
    cred = built.config.credentials.get(serial)
    if cred is not None and secret_matches(cred.credential_hash, secret):
        return cred.id, cred.pk
    dev = current_device()
    assert dev.id is not None
    return dev.id, dev.pk


@bp.get("/watch")
def watch() -> Response:
    """Long poll: returns when the device's generation exceeds ?generation=, or at ?timeout=.

    Answers at once when the device is behind (or ``timeout=0``). Otherwise the request
    leaves Flask (its context and DB session are released) and waits in ``WatchWait``:
    a watch woken by a commit of this process answers from the in-memory snapshot with the
    generation the commit handed over (no query); on a timeout, or a wake-up that carried
    no generation (an admin change, another process), it reads the database again.
    """
    no_unknown_args("generation", "timeout")
    svc = services()
    since = query_int("generation", default=-1, lo=-1, hi=2**62)
    timeout = query_int(
        "timeout", default=min(DEFAULT_WATCH_S, svc.config.long_poll_max_s), lo=0,
        hi=svc.config.long_poll_max_s,
    )
    s = db_session()
    dev_id, dev_pk = _watching_device(svc.cache.build(s, live=False))
    wait = WatchWait(svc, dev_id, dev_pk, since, time.monotonic() + timeout)
    # Register first, then read in a new transaction: a change committed after the read
    # still wakes us.
    waiter = svc.hub.register(dev_id)
    s.rollback()
    gen = _generation(s, dev_pk)
    if gen > since or timeout == 0:
        return _json(answer(svc.hub, svc.cache.build(s, live=False), dev_id, gen))
    wait.waiter = waiter
    request.environ[WAIT_KEY] = wait
    return Response(b"", 200)  # replaced by WatchMiddleware with the answer after the wait


SEND_EARLY = "kvm.send_early"
"""WSGI environ key: a callable ``(status, headers, body) -> bool`` given by kvm-server's
HTTP handler (``webadmin.__main__``) that writes a complete answer to this request's
socket now, from any greenlet and without blocking (what the socket does not take now is
written by the request's own greenlet later). True if it took the answer; the server then
ignores the body the application returns, which must be the same."""


def _answer_headers(payload: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]


WAIT_KEY = "kvm.watch_wait"
"""WSGI environ key: the ``DeviceWait`` a watch view leaves for ``WatchMiddleware``."""


class DeviceWait(Protocol):
    """What ``WatchMiddleware`` runs after Flask is done with a watch request."""

    svc: Services
    send_early: Any  # set by the middleware: the server's SEND_EARLY, or None

    def finish(self) -> tuple[str, bytes]:
        """Wait, then the HTTP status and JSON body of the answer."""
        ...


class WatchWait:
    """A watch that waits outside the Flask request (see ``WatchMiddleware``)."""

    def __init__(self, svc: Services, dev_id: str, dev_pk: int, since: int,
                 deadline: float) -> None:
        self.svc, self.dev_id, self.dev_pk = svc, dev_id, dev_pk
        self.since, self.deadline = since, deadline
        self.waiter: Waiter | None = None
        self.send_early: Any = None  # the server's SEND_EARLY, when it offers one
        self._early: tuple[str, bytes] | None = None

    def release(self, generation: int) -> None:
        """Early release (``WatchHub.release_woken``, run by the first woken watch): write
        this watch's answer now when it is the in-memory one a woken watch gives."""
        if self._early is not None or generation <= self.since or self.svc.hub.closed:
            return
        latest = self.svc.cache.latest()
        if latest is None:
            return
        try:
            payload = answer(self.svc.hub, latest, self.dev_id, generation)
            if self.send_early("200 OK", _answer_headers(payload), payload):
                self._early = ("200 OK", payload)
        except Exception as exc:  # this watch then answers by itself
            log.error("early watch release failed: %s", exc.__class__.__name__, exc_info=exc)

    def _wait(self, waiter: Waiter) -> bool:
        hub = self.svc.hub
        timeout = max(0.0, self.deadline - time.monotonic())
        if self.send_early is None:
            return waiter.wait(timeout)
        hub.attach(waiter, self.release)
        try:
            woke = waiter.wait(timeout)
            hub.release_woken()  # the first woken watch answers every woken watch
        finally:
            hub.detach(waiter, self.release)
        return woke

    def finish(self) -> tuple[str, bytes]:
        """Wait, then the HTTP status and JSON body of the answer."""
        svc = self.svc
        waiter = self.waiter
        while True:
            if waiter is not None:
                woke = self._wait(waiter)
                if self._early is not None:
                    return self._early  # already written by the early release
                if woke and waiter.generation is not None and waiter.generation > self.since:
                    latest = svc.cache.latest()
                    if latest is not None:
                        return "200 OK", answer(svc.hub, latest, self.dev_id, waiter.generation)
                if svc.hub.closed:
                    self.deadline = 0.0  # stopping: answer now, the device goes elsewhere
            with svc.db.session() as s:
                waiter = svc.hub.register(self.dev_id)
                gen = s.connection().scalar(_GENERATION, {"pk": self.dev_pk})
                if gen is None:
                    return "401 UNAUTHORIZED", encode(
                        {"error": {"code": "UNAUTHORIZED", "message": "this device was removed"}})
                if gen > self.since or time.monotonic() >= self.deadline:
                    built = svc.cache.build(s, live=False)
                    return "200 OK", answer(svc.hub, built, self.dev_id, int(gen))


class WatchMiddleware:
    """WSGI wrapper that lets a device watch wait after Flask is done with the request.

    A waiting watch then holds a greenlet and its socket, no request context, session or
    connection; when it is released, only the answer is written (the answer was encoded once
    for every watch of the device). Under kvm-server the answers of the watches woken by one
    commit are written in one go by the first of them (``SEND_EARLY``). A batch watch
    (``POST /device/watches``) waits here the same way (``api_device_batch.BatchWait``). A
    state report that changes nothing is answered here too (``unchanged_state``). Any other
    request passes straight through.
    """

    def __init__(self, wsgi_app: Any, svc: Services | None = None) -> None:
        self.wsgi_app = wsgi_app
        self.svc = svc
        self.heartbeats_unchanged = 0  # answered by ``unchanged_state`` (tests, benchmarks)
        self.last_seen = None if svc is None else LastSeenBatch(
            svc.db, last_seen_period(svc.config))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO")
        if path == STATE_PATH and environ.get("REQUEST_METHOD") == "POST":
            return self._state(environ, start_response)
        if path != WATCH_PATH and path != WATCHES_PATH:
            return self.wsgi_app(environ, start_response)
        started: list[Any] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers, exc_info]
            return _no_write

        body = self.wsgi_app(environ, start)
        wait: DeviceWait | None = environ.pop(WAIT_KEY, None)
        if wait is None or not started or not started[0].startswith("200"):
            start_response(*started)
            return body
        if hasattr(body, "close"):
            body.close()
        wait.send_early = environ.get(SEND_EARLY)
        try:
            with wait.svc.hub.active():
                status, payload = wait.finish()
        except Exception as exc:  # the answer must be JSON whatever happens
            log.error("watch failed: %s", exc.__class__.__name__, exc_info=exc)
            status, payload = "503 SERVICE UNAVAILABLE", encode(
                {"error": {"code": "INTERNAL", "message": "database unavailable, try again"}})
        start_response(status, _answer_headers(payload))
        return [payload]


    def _state(self, environ: dict[str, Any], start_response: Any) -> Any:
        """A heartbeat that changes nothing is answered here (``unchanged_state``); any
        other state report goes to Flask with its body intact."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if self.svc is None or not 0 < length <= MAX_BODY:
            return self.wsgi_app(environ, start_response)
        stream = environ["wsgi.input"]   # read already, into memory (webadmin.bodies)
        body = stream.read(length)
        stream.seek(0)                   # for Flask, if the ordinary path takes it
        try:
            payload = (unchanged_state(self.svc, environ, body, self.last_seen)
                       if len(body) == length else None)
        except Exception as exc:  # the ordinary path answers (or reports the failure)
            log.error("heartbeat fast path failed: %s", exc.__class__.__name__, exc_info=exc)
            payload = None
        if payload is None:
            return self.wsgi_app(environ, start_response)
        self.heartbeats_unchanged += 1
        # The headers Flask gives the same answer (its session machinery adds the Vary).
        start_response("200 OK", [*_answer_headers(payload), ("Vary", "Cookie")])
        return [payload]


def _no_write(_data: bytes) -> None:  # pragma: no cover - Flask never calls write()
    raise RuntimeError("write() is not supported on device watches")


@bp.record_once
def _install_watch_middleware(state: Any) -> None:
    """Registering this blueprint wraps the app's WSGI callable with ``WatchMiddleware``
    (also kept as ``app.extensions["kvm_device_paths"]``)."""
    middleware = WatchMiddleware(state.app.wsgi_app, state.app.extensions.get("kvm"))
    state.app.wsgi_app = middleware
    state.app.extensions["kvm_device_paths"] = middleware


_GENERATION = select(m.Device.__table__.c.generation).where(
    m.Device.__table__.c.pk == bindparam("pk"))


def _generation(s: Any, dev_pk: int) -> int:
    gen = s.connection().scalar(_GENERATION, {"pk": dev_pk})
    if gen is None:
        raise ApiError(401, "UNAUTHORIZED", "this device was removed")
    return int(gen)


# The batch endpoints register their views on ``bp``: imported last, as that module imports
# this one (and before any app registers ``bp``).
from webadmin import api_device_batch  # noqa: E402, F401
