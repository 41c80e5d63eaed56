"""An operator at a seat of a running lab: keys in, the OSD's answers out (bounded waits)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_sim.lab import Lab, LabError
from firmware_sim.lab.labstate import device
from kvm_protocol.keys import sequence_events, text_events
from kvm_protocol.results import ResultCode

Json = dict[str, Any]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "lab"
MODE_KEYS = {"connect": "F1", "push": "F2", "fetch": "F3"}
BUSY = {"正在处理…", "Working…"}  # shown while a request is on its way (osd.view)
HIGHLIGHT = {"yellow", "bright_yellow"}
LOGIN_FAILURES = {
    ResultCode.BAD_CREDENTIALS,
    ResultCode.SERVER_UNREACHABLE,
    ResultCode.NETWORK_DOWN,
    ResultCode.LOGIN_NOT_ALLOWED,
    ResultCode.RATE_LIMITED,
    ResultCode.ACCOUNT_DISABLED,
}


def poll(
    fetch: Callable[[], Any],
    pred: Callable[[Any], bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> Any:
    """Call `fetch` until `pred(value)`; AssertionError naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fetch()
        if pred(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


def sources(lab: Lab) -> dict[str, list[str | None]]:
    """What every Rx head actually shows, from the simulator: {rx: [source per head]}."""
    return {r["id"]: [h["source"] for h in r["heads"]] for r in lab.sim_state()["rx"]}


class Seat:
    """The keyboard and the OSD of one Rx (its seat's keyboard when the seat has several)."""

    def __init__(self, lab: Lab, rx: str, lang: str = "zh_CN", chord: str = "Shift+O Shift+O"):
        self.lab = lab
        self.rx = rx
        self.lang = lang
        self.chord = chord

    def text(self, code: ResultCode) -> str:
        return code.text(self.lang)  # type: ignore[arg-type]

    # --- looking ----------------------------------------------------------------------

    def osd(self) -> Json:
        osd = self.lab.osd(self.rx)
        if osd is None:
            raise AssertionError(f"the controller of {self.rx} does not answer")
        return osd

    def wait_osd(self, pred: Callable[[Json], bool], what: str, timeout: float = 10.0) -> Json:
        def fetch() -> Json | None:
            return self.lab.osd(self.rx)

        osd: Json = poll(fetch, lambda o: o is not None and pred(o), timeout, f"{self.rx}: {what}")
        return osd

    def source(self, head: int = 1) -> str | None:
        return sources(self.lab)[self.rx][head - 1]

    def rows(self) -> dict[str, str]:
        """The device list shown now: {id: colour}."""
        return {r["id"]: r["colour"] for r in self.osd().get("rows", [])}

    def refresh_until(
        self, pred: Callable[[dict[str, str]], bool], what: str, timeout: float = 20.0
    ) -> dict[str, str]:
        """Press F5 (refresh the device list) until the rows satisfy `pred` (bounded)."""

        def refreshed() -> dict[str, str]:
            self.keys("F5")
            return self.rows()

        rows: dict[str, str] = poll(refreshed, pred, timeout, f"{self.rx}: {what}", 0.25)
        return rows

    def shot(self, name: str) -> Path:
        return self.lab.screenshot(self.rx, ARTIFACTS / f"{name}.png")

    # --- typing -------------------------------------------------------------------------

    def _keys_in(self) -> int:
        return int(self.osd().get("stats", {}).get("keys_in", 0))

    def _send(self, events: int, send: Callable[[], None], what: str) -> None:
        """Send key events and wait until the controller has taken every one of them."""
        before = self._keys_in()
        send()
        self.wait_osd(
            lambda o: int(o.get("stats", {}).get("keys_in", 0)) >= before + events,
            f"the controller to take {what}",
        )

    def keys(self, spec: str) -> None:
        self._send(len(sequence_events(spec)), lambda: self.lab.keys(self.rx, spec), spec)

    def type(self, text: str) -> None:
        self._send(len(text_events(text)), lambda: self.lab.type(self.rx, text), repr(text))

    # --- login ----------------------------------------------------------------------------

    def attempt_login(self, user: str, password: str, timeout: float = 10.0) -> str:
        """Type user and password on a fresh login form, press Enter; the status it answers
        ("" when the menu opened). A failed attempt is cleared with the Clear button."""
        osd = self.wait_osd(lambda o: o["screen"] == "login", "the login screen")
        before = osd.get("status")
        self.type(user)
        self.keys("Tab")
        self.type(password)
        self.keys("Enter")
        failures = {self.text(c) for c in LOGIN_FAILURES}
        done = self.wait_osd(
            lambda o: (
                o["screen"] == "menu"
                or (o["status"] in failures and (o["status"] != before or before in failures))
            ),
            f"an answer to the login of {user}",
            timeout,
        )
        if done["screen"] == "menu":
            return ""
        status = str(done["status"])
        # Focus is on the password field after a failure: Tab Tab is the Clear button.
        self.keys("Tab Tab Enter")
        return status

    def login(self, user: str, password: str) -> None:
        status = self.attempt_login(user, password)
        assert status == "", f"{self.rx}: login of {user} failed: {status}"
        self.wait_osd(lambda o: o["screen"] == "menu" and o["user"] == user, f"{user} logged in")

    def ensure_logged_in(self, user: str, password: str) -> None:
        osd = self.osd()
        if osd["user"] == user and osd["screen"] != "login":
            return
        if osd["screen"] != "login":
            self.logout()
        self.login(user, password)

    def logout(self) -> None:
        """F12 from wherever the seat is (opening the menu first); waits for the login screen."""
        osd = self.osd()
        if osd["screen"] == "login":
            return
        if osd["screen"] == "closed":
            self.open_menu()
        self.keys("F12")
        self.wait_osd(lambda o: o["screen"] == "login", "the login screen after F12")

    # --- the menu -------------------------------------------------------------------------

    def open_menu(self) -> Json:
        osd = self.osd()
        if osd["screen"] == "menu":
            return osd
        assert osd["screen"] == "closed", f"{self.rx}: no menu to open from {osd['screen']}"
        self.keys(self.chord)
        return self.wait_osd(lambda o: o["screen"] == "menu", "the menu after the call-up chord")

    def act(self, mode: str, text: str, timeout: float = 10.0) -> str:
        """F1/F2/F3, type `text`, Enter; the feedback text the OSD shows."""
        self.open_menu()
        self.keys(MODE_KEYS[mode])
        self.wait_osd(
            lambda o: (
                o["mode"] == mode
                and o["input"] == ""
                and not o["feedback"]
                and o["screen"] == "menu"
            ),
            f"{mode} mode, empty input",
        )
        self.type(text)
        self.wait_osd(lambda o: o["input"] == text, f"input {text!r}")
        self.keys("Enter")
        osd = self.wait_osd(
            lambda o: bool(o["feedback"]) and o["feedback"] not in BUSY,
            f"feedback to {mode} {text!r}",
            timeout,
        )
        return str(osd["feedback"])

    def connect(self, text: str) -> str:
        return self.act("connect", text)

    def push(self, text: str) -> str:
        return self.act("push", text)

    def fetch(self, text: str) -> str:
        return self.act("fetch", text)

    def wait_closed(self, timeout: float = 5.0) -> Json:
        return self.wait_osd(lambda o: o["screen"] == "closed", "the OSD to close", timeout)

    def connected_to(self, tx: str, password: str = "123456", user: str = "hxfj") -> None:
        """Logged in as `user`, showing Tx `tx` head 1, OSD closed."""
        self.ensure_logged_in(user, password)
        if self.source() != f"{tx}:1":
            feedback = self.connect(tx)
            assert feedback == self.text(ResultCode.CONNECTED), feedback
        osd = self.osd()
        if osd["screen"] == "menu" and osd["feedback"] != self.text(ResultCode.CONNECTED):
            self.keys("Esc")
        self.wait_closed()
        poll(lambda: self.source(), lambda s: s == f"{tx}:1", 10, f"{self.rx} to show {tx}")


def lab_device(lab: Lab, dev_id: str) -> Json:
    return device(lab.state(), dev_id)


def log_tails(lab: Lab, lines: int = 40) -> str:
    """The end of every child's log, for failure messages."""
    logs = Path(lab.info.data_dir) / "logs"
    out = []
    for path in sorted(logs.glob("*.log")):
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        out.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(out)


__all__ = ["ARTIFACTS", "Lab", "LabError", "Seat", "lab_device", "log_tails", "poll", "sources"]
