"""`Lab`: drive a running lab from Python (tests) or from the `kvm-lab` commands.

A `Lab` is found through its data dir's state file (`Lab.attach`) or started as a
`kvm-lab up --headless` child process (`Lab.start`). It talks to the simulator
(keys, faults, frames), to the controller hosts (OSD state and overlay) and to the
up process's control endpoint (server and controller supervision).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import requests

from firmware_sim.lab import statefile
from firmware_sim.lab.statefile import DEFAULT_DATA, LabInfo, LabNotRunning
from firmware_sim.lab.supervisor import child_setup
from kvm_protocol.keys import KeyEvent, KeySyntaxError, sequence_events, text_events

Json = dict[str, Any]
T = TypeVar("T")

FAULTS = (
    "network-down",
    "network-up",
    "power-off",
    "power-on",
    "video-off",
    "video-on",
    "stream-fault",
    "stream-ok",
)
SERVER_ACTIONS = ("stop", "start", "kill")
CONTROLLER_ACTIONS = ("kill", "start")


def controller_rows(http: requests.Session, host_urls: Iterable[str],
                    timeout: float = 5.0) -> list[Json]:
    """The ``GET /controllers`` rows of every controller host that answers (one request per
    host); the controllers of a host that does not answer are simply not in the list."""
    out: list[Json] = []
    for url in host_urls:
        try:
            rows = http.get(url + "/controllers", timeout=timeout).json()["controllers"]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            continue
        out += [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
    return out


class LabError(RuntimeError):
    """A lab command that failed; the message is meant for the person who typed it."""


class Lab:
    """A running lab. Every call is bounded by `timeout` seconds per request."""

    def __init__(
        self, data_dir: Path, info: LabInfo, proc: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.info = info
        self.proc = proc
        self.timeout = 10.0
        self._http = requests.Session()

    # --- finding / starting ---------------------------------------------------

    @classmethod
    def attach(cls, data_dir: Path = DEFAULT_DATA) -> Lab:
        """The lab already running on `data_dir`; LabNotRunning if there is none."""
        return cls(data_dir, statefile.read(data_dir))

    @classmethod
    def start(
        cls,
        config: Path | None = None,
        data_dir: Path = DEFAULT_DATA,
        *,
        port: int | None = None,
        timeout: float = 180.0,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Lab:
        """Start `kvm-lab up --headless` as a child and return once it is up and in sync.
        `env`: more environment for the lab's processes (e.g. ``KVM_SERVER_*`` settings)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "firmware_sim.lab",
            "up",
            "--headless",
            "--data",
            str(data_dir),
        ]
        if config is not None:
            argv += ["--config", str(config)]
        if port is not None:
            argv += ["--port", str(port)]
        argv += extra_args or []
        log_path = log_path or data_dir / "logs" / "up.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
                # The lab stops (cleanly, on SIGTERM) if the process that started it dies.
                preexec_fn=child_setup,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise LabError(
                    f"kvm-lab up exited with status {code} while starting; see {log_path}:\n"
                    + _tail(log_path)
                )
            try:
                info = statefile.read(data_dir)
            except LabNotRunning:
                info = None
            if info is not None and info.pid == proc.pid and info.ready:
                return cls(data_dir, info, proc)
            time.sleep(0.2)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise LabError(
            f"the lab did not come up within {timeout:g} s; see {log_path}:\n" + _tail(log_path)
        )

    def stop(self, timeout: float = 60.0) -> None:
        """Ask the up process to stop everything and wait until it has (bounded)."""
        with contextlib.suppress(LabError):
            self._control("POST", "/down", {})
        deadline = time.monotonic() + timeout
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(10)
            return
        while time.monotonic() < deadline and statefile.pid_alive(self.info.pid):
            time.sleep(0.1)
        if statefile.pid_alive(self.info.pid):
            raise LabError(f"the lab (pid {self.info.pid}) did not stop within {timeout:g} s")

    def close(self) -> None:
        self._http.close()

    # --- HTTP plumbing --------------------------------------------------------

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            resp = self._http.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise LabError(f"{what}: no answer from {url} ({exc.__class__.__name__})") from None
        if resp.status_code >= 400:
            raise LabError(f"{what}: {_error_text(resp)}")
        return resp

    def _json(self, method: str, url: str, what: str, **kwargs: Any) -> Json:
        resp = self._request(method, url, what, **kwargs)
        try:
            body = resp.json()
        except ValueError:
            raise LabError(f"{what}: {url} answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise LabError(f"{what}: {url} answered {type(body).__name__}, expected an object")
        return body

    def _sim(self, method: str, path: str, what: str, **kwargs: Any) -> Json:
        return self._json(method, self.info.sim_control_url + path, what, **kwargs)

    def _control(self, method: str, path: str, body: Json | None = None) -> Json:
        return self._json(method, self.info.control_url + path, f"lab {path.strip('/')}", json=body)

    # --- checking input ---------------------------------------------------------

    def check_rx(self, rx: str) -> str:
        if rx not in self.info.rx:
            raise LabError(f"no Rx {rx!r} in this lab (Rx: {_id_range(self.info.rx)})")
        return rx

    def check_device(self, device: str) -> str:
        if device not in self.info.rx and device not in self.info.tx:
            raise LabError(
                f"no device {device!r} in this lab "
                f"(Tx: {_id_range(self.info.tx)}; Rx: {_id_range(self.info.rx)})"
            )
        return device

    # --- the seat keyboard ------------------------------------------------------

    def send_events(self, rx: str, events: list[KeyEvent]) -> None:
        """Key presses/releases on the seat keyboard of `rx`, in order."""
        self.check_rx(rx)
        body = {
            "rx": rx,
            "events": [
                {"usage": e.usage, "mods": int(e.mods), "pressed": e.pressed} for e in events
            ],
        }
        self._sim("POST", "/keys", f"keys on {rx}", json=body)

    def keys(self, rx: str, spec: str) -> None:
        """Key names / chords, e.g. ``"Shift+O Shift+O F1 1 Enter"``."""
        try:
            events = sequence_events(spec)
        except KeySyntaxError as exc:
            raise LabError(f"bad keys {spec!r}: {exc}") from None
        self.send_events(rx, events)

    def type(self, rx: str, text: str) -> None:
        """Type `text` on the seat keyboard of `rx` (US layout)."""
        if not text:
            raise LabError("nothing to type")
        try:
            events = text_events(text)
        except KeySyntaxError as exc:
            raise LabError(f"cannot type {text!r}: {exc}") from None
        self.send_events(rx, events)

    # --- faults -------------------------------------------------------------------

    def fault(self, device: str, kind: str) -> None:
        """Inject a fault (see FAULTS) into the simulated `device`."""
        self.check_device(device)
        if kind not in FAULTS:
            raise LabError(f"unknown fault {kind!r}; one of: {', '.join(FAULTS)}")
        self._sim(
            "POST", "/fault", f"fault {kind} on {device}", json={"device": device, "fault": kind}
        )

    def garbage(self, device: str, count: int = 64) -> None:
        """Inject `count` random bytes into the serial link of `device`."""
        self.check_device(device)
        if device in self.info.tx:
            raise LabError(
                f"nothing reads the serial link of Tx {device} in the lab: the Tx gateway "
                "reports Tx state to the server instead (docs/LAB.md); inject garbage into an Rx"
            )
        if not 1 <= count <= 65536:
            raise LabError("garbage byte count must be 1..65536")
        self._sim(
            "POST", "/garbage", f"garbage on {device}", json={"device": device, "count": count}
        )

    # --- supervision ----------------------------------------------------------------

    def server(self, action: str) -> Json:
        """Stop, start or SIGKILL the management server process."""
        if action not in SERVER_ACTIONS:
            raise LabError(f"server action must be one of: {', '.join(SERVER_ACTIONS)}")
        return self._control("POST", "/server", {"action": action})

    def controller(self, rx: str, action: str) -> Json:
        """SIGKILL or restart the controller host process that holds `rx`."""
        self.check_rx(rx)
        if action not in CONTROLLER_ACTIONS:
            raise LabError(f"controller action must be one of: {', '.join(CONTROLLER_ACTIONS)}")
        return self._control("POST", "/controller", {"rx": rx, "action": action})

    def status(self) -> Json:
        """The up process's view of its children and of the Tx gateway."""
        return self._control("GET", "/status")

    def tx_reported(self, tx: str) -> bool:
        """The server has the Tx's current state (the gateway posted what the simulator shows;
        for a Tx that is off the network: it has stopped reporting)."""
        from firmware_sim.tx_gateway import reports_from_sim_state

        self.check_device(tx)
        sim = self.sim_state()
        ids = [t.get("id") for t in sim.get("tx", [])]
        reports = dict(zip(ids, reports_from_sim_state(sim), strict=True))
        posted = self.status().get("gateway", {}).get("posted", {})
        report = reports.get(tx)
        if report is None:
            raise LabError(f"the simulator has no Tx {tx}")
        if not report.reachable:
            return tx not in posted
        return bool(posted.get(tx) == report.state_body())

    def wait_tx_reported(self, tx: str, timeout: float = 10.0) -> None:
        """Wait (bounded) until the server has the current state of Tx `tx` (see tx_reported)."""
        deadline = time.monotonic() + timeout
        while not self.tx_reported(tx):
            if time.monotonic() >= deadline:
                raise LabError(f"the server did not learn the state of Tx {tx} in {timeout:g} s")
            time.sleep(0.1)

    # --- observing --------------------------------------------------------------------

    def sim_state(self) -> Json:
        return self._sim("GET", "/state", "simulator state")

    def osd(self, rx: str) -> Json | None:
        """The OSD of `rx` as its controller reports it, or None while its controller is down."""
        self.check_rx(rx)
        url = self.info.runtime_url_for(rx)
        try:
            resp = self._http.get(f"{url}/osd", params={"rx": rx}, timeout=self.timeout)
        except requests.RequestException:
            return None
        if resp.status_code != 200:
            return None
        try:
            body = resp.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def state(self) -> Json:
        """Every device, as `kvm-lab state --json` prints it (see docs/LAB.md)."""
        from firmware_sim.lab.labstate import merge_state

        sim = self.sim_state()
        osds = {rx: self.osd(rx) for rx in self.info.rx}
        return merge_state(sim, osds)

    def wait_for(
        self,
        predicate: Callable[[Json], T],
        timeout: float = 10.0,
        interval: float = 0.1,
        what: str = "condition",
    ) -> T:
        """Poll `state()` until `predicate(state)` is truthy; return that value (bounded)."""
        deadline = time.monotonic() + timeout
        last: Json | None = None
        while True:
            last = self.state()
            value = predicate(last)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise LabError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    # --- pictures -------------------------------------------------------------------

    def frame_png(self, rx: str, head: int = 1) -> bytes:
        """The simulator's video frame of one head of `rx` (PNG)."""
        self.check_rx(rx)
        resp = self._request(
            "GET",
            f"{self.info.sim_control_url}/frame",
            f"frame of {rx}",
            params={"rx": rx, "head": head},
        )
        return resp.content

    def overlay_png(self, rx: str, size: tuple[int, int] | None = None) -> bytes | None:
        """The controller's OSD overlay plane of `rx` (RGBA PNG), None if it has none now."""
        self.check_rx(rx)
        url = self.info.runtime_url_for(rx)
        params = {"rx": rx}
        if size is not None:
            params.update(w=str(size[0]), h=str(size[1]))
        try:
            resp = self._http.get(f"{url}/osd.png", params=params, timeout=self.timeout)
        except requests.RequestException:
            return None
        return resp.content if resp.status_code == 200 and resp.content else None

    def screenshot(self, rx: str, path: Path, head: int = 1) -> Path:
        """Write what the person at `rx` sees (video frame + OSD plane) to `path` as PNG."""
        from firmware_sim.lab.picture import PictureError, compose_png, png_size

        frame = self.frame_png(rx, head)
        try:
            size = png_size(frame)
            overlay = self.overlay_png(rx, size) if self._overlay_visible(rx, head) else None
            data = compose_png(frame, overlay)
        except PictureError as exc:
            raise LabError(f"screenshot of {rx}: {exc}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def _overlay_visible(self, rx: str, head: int) -> bool:
        """The Rx shows the OSD plane (on head 1) only while its controller told it to."""
        if head != 1:
            return False
        for dev in self.sim_state().get("rx", []):
            if isinstance(dev, dict) and dev.get("id") == rx:
                return bool(dev.get("overlay"))
        return False


def _id_range(ids: list[str]) -> str:
    if not ids:
        return "none"
    return f"{ids[0]}-{ids[-1]}" if len(ids) > 2 else ", ".join(ids)


def _error_text(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)
        if err:
            return str(err)
    return f"HTTP {resp.status_code}"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
