"""The lab's stand-in for the network agent inside each real Tx.

A real Tx reports its own state (online, stream, video per head) to the management
server. The simulator's Tx have no network stack, so in the lab one thread reads
the simulator's state (``GET /state``) and, for every Tx that is powered and on the
network, announces it with its serial and its own secret (kept in the lab's data
dir) and posts its state on change and as a heartbeat. A Tx that is powered off or
whose network is down stops reporting, exactly like a real one: the server then
marks it offline after its device timeout.

`GatewayCore` decides what to send (no I/O, driven by the caller's clock);
`TxGateway` is the thread with one keep-alive HTTP session.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import requests

log = logging.getLogger("kvm.lab.tx_gateway")

Json = dict[str, Any]
BATCH = 256  # Tx per state request (the server's bound)


@dataclass(frozen=True, slots=True)
class TxReport:
    """What the agent of one Tx would know about itself."""

    serial: str
    heads: int
    firmware: str
    reachable: bool  # powered and network up: it can talk to the server
    stream_ok: bool = True
    video: tuple[bool, ...] = (True,)

    def state_body(self) -> Json:
        """Body of ``POST /api/v1/device/state`` for this Tx (docs/API.md)."""
        return {
            "online": True,
            "stream_ok": self.stream_ok,
            "heads": [{"head": i + 1, "video": v} for i, v in enumerate(self.video)],
        }

    def announce_body(self, secret: str) -> Json:
        return {
            "serial": self.serial,
            "kind": "tx",
            "heads": self.heads,
            "firmware": self.firmware,
            "secret": secret,
        }


@dataclass(frozen=True, slots=True)
class Send:
    """One request the gateway should make for `serial`."""

    kind: Literal["announce", "state"]
    serial: str
    body: Json


Outcome = Literal["ok", "pending", "conflict", "unauthorized", "failed"]


@dataclass
class _Tx:
    announced: bool = False
    last_body: Json | None = None
    last_sent: float = -1e9
    retry_at: float = 0.0
    failures: int = 0
    gave_up: bool = False


@dataclass
class GatewayCore:
    """Decides, per tick, which announces and state posts to make. Pure: no clock, no I/O."""

    secret_of: Mapping[str, str]
    heartbeat_s: float = 2.0
    retry_max_s: float = 5.0
    _tx: dict[str, _Tx] = field(default_factory=dict)

    def plan(self, now: float, reports: Iterable[TxReport]) -> list[Send]:
        sends: list[Send] = []
        for report in reports:
            tx = self._tx.setdefault(report.serial, _Tx())
            if not report.reachable:
                # A powered-off or unplugged Tx says nothing; it announces again
                # when it comes back, as a real one does after power-up.
                tx.announced = False
                tx.last_body = None
                continue
            if tx.gave_up or now < tx.retry_at:
                continue
            secret = self.secret_of.get(report.serial)
            if secret is None:
                continue
            if not tx.announced:
                sends.append(Send("announce", report.serial, report.announce_body(secret)))
                continue
            body = report.state_body()
            if body != tx.last_body or now - tx.last_sent >= self.heartbeat_s:
                sends.append(Send("state", report.serial, body))
        return sends

    def result(self, now: float, send: Send, outcome: Outcome) -> None:
        """Record what the server answered to `send`."""
        tx = self._tx.setdefault(send.serial, _Tx())
        if outcome == "ok":
            tx.failures = 0
            tx.retry_at = 0.0
            if send.kind == "announce":
                tx.announced = True
                tx.last_body = None
            else:
                tx.last_body = send.body
                tx.last_sent = now
            return
        if outcome == "conflict":
            # The serial is bound to another secret: only an admin can reset it.
            tx.gave_up = True
            return
        if outcome == "unauthorized":
            tx.announced = False
        tx.failures += 1
        tx.retry_at = now + min(self.retry_max_s, 0.25 * 2 ** min(tx.failures, 5))

    def reporting(self) -> set[str]:
        """Serials whose last state post was accepted."""
        return {s for s, tx in self._tx.items() if tx.announced and tx.last_body is not None}

    def posted(self) -> dict[str, Json]:
        """The last state the server accepted, per serial still reporting."""
        return {
            s: tx.last_body
            for s, tx in self._tx.items()
            if tx.announced and tx.last_body is not None
        }

    def given_up(self) -> set[str]:
        return {s for s, tx in self._tx.items() if tx.gave_up}


def reports_from_sim_state(state: object) -> list[TxReport]:
    """The Tx of the simulator's ``GET /state`` answer as `TxReport`s; ValueError if malformed."""
    if not isinstance(state, dict) or not isinstance(state.get("tx"), list):
        raise ValueError("the simulator state has no list 'tx'")
    reports: list[TxReport] = []
    for i, tx in enumerate(state["tx"]):
        if not isinstance(tx, dict):
            raise ValueError(f"tx[{i}] is not an object")
        serial, video = tx.get("serial"), tx.get("video")
        if not isinstance(serial, str) or not serial:
            raise ValueError(f"tx[{i}] has no serial")
        if not isinstance(video, list) or not video:
            raise ValueError(f"tx[{i}].video is not a list")
        reports.append(
            TxReport(
                serial=serial,
                heads=len(video),
                firmware=str(tx.get("firmware") or ""),
                reachable=bool(tx.get("power")) and bool(tx.get("network")),
                stream_ok=bool(tx.get("stream_ok", True)),
                video=tuple(bool(v) for v in video),
            )
        )
    return reports


def load_secrets(path: Path, serials: Iterable[str]) -> dict[str, str]:
    """Each Tx's own 256-bit secret, generated once and kept in `path` (mode 0600)."""
    known: dict[str, str] = {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict):
            known = {str(k): str(v) for k, v in raw.items()}
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read Tx secrets {path}: {exc}") from None
    changed = False
    for serial in serials:
        if serial not in known:
            known[serial] = secrets.token_hex(32)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(known, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    return known


def _outcome(resp: requests.Response, kind: str) -> Outcome:
    if resp.status_code == 200:
        return "ok"
    if resp.status_code == 202 and kind == "announce":
        return "pending"
    if resp.status_code == 409:
        return "conflict"
    if resp.status_code in (401, 403):
        return "unauthorized"
    return "failed"


def _entry_outcome(entry: Any) -> Outcome:
    """The outcome of one device's entry in a ``device/states`` answer."""
    if not isinstance(entry, dict):
        return "failed"
    if isinstance(entry.get("generation"), int):
        return "ok"
    error = entry.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return "unauthorized" if code in ("UNAUTHORIZED", "PENDING") else "failed"


class TxGateway:
    """Thread: every `poll_s` read the Tx reports and make the requests `GatewayCore` plans."""

    def __init__(
        self,
        server_url: str,
        read_reports: Callable[[], list[TxReport]],
        secrets_by_serial: Mapping[str, str],
        *,
        poll_s: float = 0.5,
        heartbeat_s: float = 2.0,
        timeout_s: float = 2.0,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.read_reports = read_reports
        self.core = GatewayCore(secrets_by_serial, heartbeat_s=heartbeat_s)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.ticks = 0
        self._warned: set[tuple[str, str]] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tx-gateway", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def reporting(self) -> set[str]:
        with self._lock:
            return self.core.reporting()

    def posted(self) -> dict[str, Json]:
        with self._lock:
            return self.core.posted()

    def _warn_once(self, serial: str, what: str) -> None:
        if (serial, what) not in self._warned:
            self._warned.add((serial, what))
            log.warning("Tx %s: %s", serial, what)

    def tick(self, session: requests.Session) -> None:
        """One round: read the simulator, send what is due (bounded by the number of Tx)."""
        try:
            reports = self.read_reports()
        except (requests.RequestException, ValueError) as exc:
            self.last_error = f"cannot read the simulator state: {exc}"
            return
        with self._lock:
            sends = self.core.plan(time.monotonic(), reports)
        # The state posts go together, BATCH Tx a request (``POST /device/states``): as
        # single posts, 1,000 Tx cost the server ~0.4 of a core in heartbeats alone.
        states = [send for send in sends if send.kind == "state"]
        done = [(send, self._send(session, send)) for send in sends if send.kind != "state"
                if not self._stop.is_set()]
        for i in range(0, len(states), BATCH):
            if self._stop.is_set():
                break
            batch = states[i:i + BATCH]
            done += zip(batch, self._send_states(session, batch), strict=True)
        for send, outcome in done:
            if outcome == "pending":
                self._warn_once(
                    send.serial, "the server holds this serial as pending (not in the topology?)"
                )
            elif outcome == "conflict":
                self._warn_once(
                    send.serial,
                    "the server has another secret for this serial; an admin must reset it",
                )
            with self._lock:
                self.core.result(time.monotonic(), send, outcome)
        self.ticks += 1

    def _send(self, session: requests.Session, send: Send) -> Outcome:
        try:
            if send.kind == "announce":
                resp = session.post(
                    f"{self.server_url}/api/v1/device/announce",
                    json=send.body,
                    timeout=self.timeout_s,
                )
            else:
                secret = self.core.secret_of[send.serial]
                resp = session.post(
                    f"{self.server_url}/api/v1/device/state",
                    json=send.body,
                    headers={"Authorization": f"Device {send.serial}:{secret}"},
                    timeout=self.timeout_s,
                )
        except requests.RequestException as exc:
            self.last_error = f"{send.kind} {send.serial}: {exc}"
            return "failed"
        outcome = _outcome(resp, send.kind)
        if outcome == "failed":
            self.last_error = (
                f"{send.kind} {send.serial}: HTTP {resp.status_code} {resp.text[:200]}"
            )
        return outcome

    def _send_states(self, session: requests.Session, sends: list[Send]) -> list[Outcome]:
        """Post the states of `sends` in one request; the outcome of each, in order."""
        body = {"devices": [{"serial": s.serial, "secret": self.core.secret_of[s.serial],
                             "state": s.body} for s in sends]}
        try:
            resp = session.post(f"{self.server_url}/api/v1/device/states", json=body,
                                timeout=self.timeout_s)
            answers = resp.json().get("answers") if resp.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError) as exc:
            self.last_error = f"state of {len(sends)} Tx: {exc}"
            return ["failed"] * len(sends)
        if not isinstance(answers, list):
            self.last_error = f"state of {len(sends)} Tx: HTTP {resp.status_code} {resp.text[:200]}"
            return ["failed"] * len(sends)
        by_serial = {a.get("serial"): a for a in answers if isinstance(a, dict)}
        return [_entry_outcome(by_serial.get(s.serial)) for s in sends]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    self.tick(session)
                except Exception as exc:  # keep the lab's Tx alive whatever one round does
                    self.last_error = f"gateway round failed: {exc!r}"
                    log.exception("Tx gateway round failed")
                self._stop.wait(self.poll_s)
