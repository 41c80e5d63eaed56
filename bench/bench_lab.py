"""Lab-scale benchmark: a whole control room of real processes on 127.0.0.1; prints JSON.

    .venv/bin/python bench/bench_lab.py [--tx 1000] [--rx 1000] [--timeout 1500]
        [--start-timeout 600] [--process-timeout 180] [--wait 60] [--pushes 5] [--keep]

1. Writes a topology (docs/CONFIG_FORMAT.md) with N Tx, M Rx (each Rx a seat of its own)
   and an operator whose view scope is every Tx and whose push scope is every Rx, and
   starts the lab headless with it (as ``Lab.start`` does: server, simulator, the
   controllers in ``kvm-rx --many`` processes of <= 250 each; only the lab's bound for each
   child to answer is raised, see `start_lab`).
2. ``push``: the operator logs in at the first Rx and connects to Tx 0001 (keys through
   the lab's simulator), then F2 ``all`` Enter. From the Enter (the key POST to the
   simulator) until every other Rx's head 1 shows ``0001:1``: the simulator stamps each
   head's last switch (``since``, its ``time.monotonic()``, the machine's CLOCK_MONOTONIC),
   its Rx state is read every 0.5 s. Then the same from Tx 0002, 0003, ... (``--pushes``,
   default 5, 3 s apart). p50/p99 over every Rx arrival of every push, and each push's
   own (``per_push``; the first is on a room that never switched). Goal p99 < 250 ms.
3. ``restart``: SIGKILL the server, start it again; until every controller reports its
   link up, adopted and the server reachable again (``GET /controllers`` of each host),
   while no simulated head changes (checked on every poll). Goal < 2 s (from the server
   answering again). Afterwards every controller's ``/osd`` is read once: converged, and
   its ``server_failures`` count grew (it did notice the crash).
4. ``rss``: RSS/peak/threads of every process (server, simulator, controller hosts, the
   lab's own up process).

Every wait is bounded; the whole run is bounded by --timeout (SIGALRM); the lab is stopped
(``lab.stop()``) on every way out, SIGTERM included. Exit 0 when every phase ran (goals
met or not), 1 when a phase failed (the JSON then has ``error``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from firmware_sim.lab import Lab, LabError, statefile  # noqa: E402
from firmware_sim.lab.client import controller_rows  # noqa: E402
from firmware_sim.lab.statefile import LabNotRunning  # noqa: E402
from firmware_sim.lab.supervisor import child_setup  # noqa: E402
from kvm_protocol.results import ResultCode  # noqa: E402
from tests.lab.driver import Seat  # noqa: E402

Json = dict[str, Any]
USER, PASSWORD = "bench", "bench-pass-1"
SOURCE = "0001:1"
GOALS = {"push_p99_ms": 250.0, "restart_in_sync_s": 2.0}
POLL_S = 0.02  # pause between simulator polls (a poll itself takes longer at 1,000 Rx)
PUSH_POLL_S = 0.5  # during a push: the switch times come from the simulator's stamps
SETTLE_S = 3.0  # between two pushes: the room's reports of the last one are in


class Abort(Exception):
    """The overall timeout or a signal: stop the run, stop the lab, report what we have."""


def _abort(signum: int, _frame: FrameType | None) -> None:
    raise Abort(f"stopped by {signal.Signals(signum).name}"
                + (" (the overall --timeout)" if signum == signal.SIGALRM else ""))


# --- the topology ------------------------------------------------------------------------

def tx_ids(n: int) -> list[str]:
    return [f"{i:04d}" for i in range(1, n + 1)]


def rx_ids(n: int) -> list[str]:
    return [f"{5000 + i:04d}" for i in range(1, n + 1)]


def topology(n_tx: int, n_rx: int) -> str:
    """The control-room YAML: N Tx, M single-seat Rx, one operator (view all Tx, push all Rx)."""
    if not 1 <= n_tx <= 4999 or not 1 <= n_rx <= 4999:
        raise ValueError("--tx and --rx must be 1..4999")
    tx, rx = tx_ids(n_tx), rx_ids(n_rx)
    lines = ["# kvm-seat lab-scale benchmark (bench/bench_lab.py); generated", "tx:"]
    lines += [f'  - {{id: "{i}", name: PC-{i}, serial: SIM-TX-{i}}}' for i in tx]
    lines.append("rx:")
    lines += [f'  - {{id: "{i}", name: Seat {i}, serial: SIM-RX-{i}}}' for i in rx]
    lines += [
        "users:",
        "  - {name: admin, role: admin}",
        f'  - {{name: {USER}, password: "{PASSWORD}"}}',
        "grants:",
        f'  - {{user: {USER}, scope: view, devices: ["{tx[0]}-{tx[-1]}"]}}',
        f'  - {{user: {USER}, scope: push, devices: ["{rx[0]}-{rx[-1]}"]}}',
        "settings: {lang: zh_CN, auto_close_ms: 1000, idle_close_s: 600}",
    ]
    return "\n".join(lines) + "\n"


# --- starting the lab --------------------------------------------------------------------

# `kvm-lab up` with its per-process start-up bound raised: at 250 controllers per host on a
# busy 2-core machine a host needs more than the lab's 30 s to open its control endpoint.
# Only how long the lab waits for its children changes, nothing that is measured.
BOOT = ("import sys; import firmware_sim.lab.up as up; "
        "up.START_TIMEOUT_S = max(up.START_TIMEOUT_S, float(sys.argv.pop(1))); "
        "from firmware_sim.lab import main; sys.exit(main())")


def start_lab(config: Path, data: Path, timeout: float, process_timeout: float) -> Lab:
    """`Lab.start(config, data)` (headless), with `process_timeout` s for each child to answer."""
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "logs" / "up.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", BOOT, str(process_timeout), "up", "--headless",
            "--data", str(data), "--config", str(config), "--ready-timeout", str(timeout - 40)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                preexec_fn=child_setup)  # the lab stops if we die
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = [line for line in log_path.read_text(errors="replace").splitlines()
                        if line.strip() and "password" not in line.lower()][-3:]
                raise LabError(f"kvm-lab up exited with status {proc.returncode} while "
                               f"starting: {' / '.join(tail)}")
            try:
                info = statefile.read(data)
            except LabNotRunning:
                info = None
            if info is not None and info.pid == proc.pid and info.ready:
                return Lab(data, info, proc)
            time.sleep(0.5)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
        raise LabError(f"the lab did not come up within {timeout:g} s: {' / '.join(tail)}")
    except BaseException:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        raise


# --- small helpers -----------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)


def summary_ms(values: list[float]) -> Json:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": pct(values, 50), "p99_ms": pct(values, 99),
            "max_ms": round(max(values), 1), "mean_ms": round(statistics.fmean(values), 1)}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(lab: Lab, seconds: float = 5.0) -> Json:
    """Share of one core each process uses while nothing happens (heartbeats, polling)."""
    pids = {name: c.get("pid") for name, c in lab.status()["children"].items()}
    pids["lab-up"] = lab.info.pid
    start = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    out: Json = {}
    for name, before in start.items():
        after = cpu_seconds(pids[name])
        if before is not None and after is not None:
            out[name] = round((after - before) / wall, 3)
    out["total_cores"] = round(sum(v for v in out.values()), 2)
    return out


def link_downs(data: Path) -> int:
    """Firmware link-down events the controller hosts logged (a sign of starvation)."""
    total = 0
    for path in (data / "logs").glob("rx-host-*.log"):
        with path.open(errors="replace") as f:
            total += sum(1 for line in f if "firmware link down" in line)
    return total


def proc_mem(pid: int | None) -> Json:
    """VmRSS/VmHWM (MB) and threads of a live process; {} when it is gone."""
    if not pid:
        return {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out: Json = {"pid": pid}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key.lower() + "_mb"] = round(int(value.split()[0]) / 1024, 1)
        elif key == "Threads":
            out["threads"] = int(value)
    return out


def heads(sim_state: Json) -> dict[str, list[str | None]]:
    return {r["id"]: [h.get("source") for h in r.get("heads", [])]
            for r in sim_state.get("rx", [])}


class Sim:
    """A keep-alive client of the simulator's state (one per thread)."""

    def __init__(self, lab: Lab) -> None:
        self.url = lab.info.sim_control_url + "/state"
        self.http = requests.Session()

    def heads(self) -> dict[str, list[str | None]]:
        return heads(self.state())

    def state(self) -> Json:
        """The simulator's Rx (``GET /state?only=rx``)."""
        resp = self.http.get(self.url, params={"only": "rx"}, timeout=10)
        resp.raise_for_status()
        doc: Json = resp.json()
        return doc

    def switched(self, source: str) -> dict[str, float]:
        """Rx ID → when (``time.monotonic``, the simulator's clock) head 1 took ``source``."""
        out: dict[str, float] = {}
        for rx in self.state().get("rx", []):
            first = (rx.get("heads") or [{}])[0]
            if first.get("source") == source and isinstance(first.get("since"), float):
                out[str(rx.get("id"))] = first["since"]
        return out


def controllers(http: requests.Session, lab: Lab) -> dict[str, Json]:
    """Rx ID → the summary its host gives (link_up, adopted, server_ok), every host;
    a host that is not answering leaves its controllers out (not in sync)."""
    return {str(row["rx"]): row for row in controller_rows(http, lab.info.runtime_urls, 10)
            if row.get("rx")}


def osd_sweep(lab: Lab) -> dict[str, Json | None]:
    """Every controller's /osd, one thread per host (untimed; for checks after a phase)."""
    found: dict[str, Json | None] = {}
    by_host: dict[str, list[str]] = {}
    for rx in lab.info.rx:
        by_host.setdefault(lab.info.runtime_url_for(rx), []).append(rx)

    def sweep(url: str, rxs: list[str]) -> None:
        http = requests.Session()
        for rx in rxs:
            try:
                resp = http.get(url + "/osd", params={"rx": rx}, timeout=10)
                found[rx] = resp.json() if resp.status_code == 200 else None
            except (requests.RequestException, ValueError):
                found[rx] = None

    threads = [threading.Thread(target=sweep, args=item, daemon=True) for item in by_host.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return found


# --- phase 1: push all -------------------------------------------------------------------

def connect_first(seat: Seat, tx: str, deadline: float) -> int:
    """Log in and connect the seat to `tx`; again while the server still has the Tx offline
    (a precondition of the measurement, not part of it). Returns the attempts made."""
    offline = ResultCode.OFFLINE.text("zh_CN")
    attempts = 0
    while True:
        attempts += 1
        try:
            seat.connected_to(tx, password=PASSWORD, user=USER)
            return attempts
        except AssertionError as exc:
            if offline not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(2)


def push_once(lab: Lab, seat: Seat, sim: Sim, tx: str, wait_s: float) -> Json:
    """Connect the seat to `tx`, then F2 ``all`` Enter; when each other Rx's head 1 took
    ``tx:1`` (ms after the Enter, from the simulator's stamps)."""
    source = f"{tx}:1"
    t0 = time.monotonic()
    attempts = connect_first(seat, tx, t0 + wait_s)
    login_connect_s = time.monotonic() - t0
    seat.open_menu()
    seat.keys("F2")
    seat.wait_osd(lambda o: o["mode"] == "push" and o["input"] == "" and not o["feedback"],
                  "push mode, empty input")
    seat.type("all")
    seat.wait_osd(lambda o: o["input"] == "all", "input 'all'")
    before = sim.heads()
    targets = {rx for rx, hs in before.items()
               if rx != seat.rx and (hs[:1] or [None])[0] != source}
    arrived: dict[str, float] = {}
    polls: list[float] = []
    t_enter = time.monotonic()
    lab.keys(seat.rx, "Enter")
    t_sent = time.monotonic()
    deadline = t_enter + wait_s
    # The simulator stamps each switch with its monotonic clock (the machine's
    # CLOCK_MONOTONIC, as ours): arrival = that stamp - the Enter. So the state is read
    # only now and then, and only its Rx: reading it back to back delayed the very
    # switches being measured.
    while len(arrived) < len(targets) and time.monotonic() < deadline:
        time.sleep(PUSH_POLL_S)
        p0 = time.monotonic()
        switched = sim.switched(source)
        polls.append((time.monotonic() - p0) * 1000)
        for rx in targets - arrived.keys():
            if rx in switched:
                arrived[rx] = max(0.0, switched[rx] - t_enter) * 1000
    osd = lab.osd(seat.rx) or {}
    return {"source": source, "targets": len(targets), "times": list(arrived.values()),
            "missing": sorted(targets - arrived.keys()), "polls": polls,
            "enter_post_ms": round((t_sent - t_enter) * 1000, 1),
            "feedback": osd.get("feedback"), "login_and_connect_s": round(login_connect_s, 2),
            "connect_attempts": attempts}


def _push_row(run: Json) -> Json:
    """One push of ``push_once`` as the results list it (no arrival: no p50/p99)."""
    got = summary_ms(run["times"])
    return {"source": run["source"], "targets": run["targets"], "missing": len(run["missing"]),
            "p50_ms": got.get("p50_ms"), "p99_ms": got.get("p99_ms"),
            "last_ms": round(max(run["times"]), 1) if run["times"] else None,
            "feedback": run["feedback"], "enter_post_ms": run["enter_post_ms"],
            "connect_attempts": run["connect_attempts"]}


def bench_push(lab: Lab, seat_rx: str, sources: list[str], wait_s: float) -> Json:
    """One push to ``all`` per Tx of `sources`, SETTLE_S apart; the figure is over every
    Rx arrival of every push (the first push, on a room that never switched, included)."""
    seat = Seat(lab, seat_rx)
    sim = Sim(lab)
    runs: list[Json] = []
    for i, tx in enumerate(sources):
        if i:
            time.sleep(SETTLE_S)
        runs.append(push_once(lab, seat, sim, tx, wait_s))
    times = [t for run in runs for t in run["times"]]
    missing = [rx for run in runs for rx in run["missing"]]
    result: Json = {
        "pushes": len(runs),
        "targets": sum(run["targets"] for run in runs),
        "arrived": len(times), "missing": len(missing), "missing_sample": missing[:10],
        "arrival_ms": summary_ms(times),
        "last_ms": round(max(times), 1) if times else None,
        "per_push": [_push_row(run) for run in runs],
        "poll_ms": summary_ms([p for run in runs for p in run["polls"]]),
    }
    result["met"] = bool(times) and not missing and result["arrival_ms"]["p99_ms"] < GOALS[
        "push_p99_ms"]
    return result


# --- phase 2: server SIGKILL + restart ---------------------------------------------------

class Watcher(threading.Thread):
    """Polls the controller hosts (and the simulator once a second) until stopped (bounded)."""

    def __init__(self, lab: Lab, before: dict[str, list[str | None]], until: float) -> None:
        super().__init__(daemon=True)
        self.lab, self.before, self.until = lab, before, until
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.sweeps: list[tuple[float, float, bool]] = []  # (start, end, all in sync)
        self.first_down: dict[str, float] = {}
        self.back: dict[str, float] = {}  # first server_ok after having been seen down
        self.changes: list[Json] = []
        self.errors: list[str] = []

    def run(self) -> None:
        http, sim = requests.Session(), Sim(self.lab)
        n = len(self.lab.info.rx)
        sim_due = 0.0
        while not self.stop_event.is_set() and time.monotonic() < self.until:
            t0 = time.monotonic()
            try:
                rows = controllers(http, self.lab)
                # The simulator's state only once a second: a read of a 1,000-Rx state costs
                # it ~0.1 s of CPU; every switch in between is caught by its `since` stamp.
                now_heads: dict[str, list[str | None]] = {}
                if t0 >= sim_due:
                    now_heads, sim_due = sim.heads(), t0 + 1.0
            except (requests.RequestException, ValueError) as exc:
                self.errors.append(f"{exc.__class__.__name__}: {exc}"[:200])
                time.sleep(0.1)
                continue
            t1 = time.monotonic()
            with self.lock:
                ok = 0
                for rx, row in rows.items():
                    good = bool(row.get("link_up") and row.get("adopted") and row.get("server_ok"))
                    ok += good
                    if not row.get("server_ok"):
                        self.first_down.setdefault(rx, t1)
                    elif rx in self.first_down:
                        self.back.setdefault(rx, t1)
                for rx, hs in now_heads.items():
                    if hs != self.before.get(rx) and len(self.changes) < 50:
                        self.changes.append({"rx": rx, "was": self.before.get(rx), "now": hs,
                                             "t": round(t1, 3)})
                self.sweeps.append((t0, t1, ok == n and len(rows) == n))
            time.sleep(0.05)


def bench_restart(lab: Lab, wait_s: float) -> Json:
    sim = Sim(lab)
    http = requests.Session()
    ready = time.monotonic() + 30
    while time.monotonic() < ready:  # start from a calm, fully connected room
        rows = controllers(http, lab)
        if len(rows) == len(lab.info.rx) and all(r.get("server_ok") for r in rows.values()):
            break
        time.sleep(0.2)
    before_osd = osd_sweep(lab)
    before = sim.heads()
    old_pid = lab.status()["children"]["server"]["pid"]
    watcher = Watcher(lab, before, time.monotonic() + wait_s + 60)
    watcher.start()
    time.sleep(0.3)
    t_kill = time.monotonic()
    lab.server("kill")
    t_start = time.monotonic()
    lab.server("start")
    t_up = time.monotonic()
    deadline = t_up + wait_s
    t_sync: float | None = None
    while time.monotonic() < deadline:
        with watcher.lock:
            done = [end for start, end, ok in watcher.sweeps if ok and start >= t_up]
        if done:
            t_sync = done[0]
            break
        time.sleep(0.05)
    time.sleep(1.0)  # look for late screen changes a little longer
    watcher.stop_event.set()
    watcher.join(30)
    after_osd = osd_sweep(lab)
    after_state = sim.state()
    after = heads(after_state)
    for rx in after_state.get("rx", []):   # any head switched since the kill, by its stamp
        stamps = [h.get("since") for h in rx.get("heads", [])]
        moved = [t for t in stamps if isinstance(t, float) and t >= t_kill]
        if moved and not any(c["rx"] == rx.get("id") for c in watcher.changes):
            watcher.changes.append({"rx": rx.get("id"), "was": before.get(rx.get("id")),
                                    "now": after.get(rx.get("id")), "t": round(min(moved), 3)})
    noticed = sum(
        1 for rx in lab.info.rx
        if (after_osd.get(rx) or {}).get("stats", {}).get("server_failures", 0)
        > (before_osd.get(rx) or {}).get("stats", {}).get("server_failures", 0))
    converged = sum(1 for rx in lab.info.rx if (after_osd.get(rx) or {}).get("converged"))
    changed = sorted(rx for rx in before if after.get(rx) != before[rx])
    back = [(t - t_up) * 1000 for t in watcher.back.values()]
    sweep_ms = [(e - s) * 1000 for s, e, _ in watcher.sweeps]
    result: Json = {
        "controllers": len(lab.info.rx),
        "server_down_s": round(t_start - t_kill, 3),
        "server_start_s": round(t_up - t_start, 2),  # start command until it answers again
        "in_sync_after_up_s": round(t_sync - t_up, 2) if t_sync else None,
        "in_sync_after_kill_s": round(t_sync - t_kill, 2) if t_sync else None,
        "seen_down": len(watcher.first_down),
        "back_after_up_ms": summary_ms(back),
        "noticed_crash": noticed,
        "converged_after": converged,
        "screens_changed_during": watcher.changes[:10],
        "screens_changed_count": len(watcher.changes),
        "screens_changed_after": changed[:10],
        "poll_sweep_ms": summary_ms(sweep_ms),
        "poll_errors": watcher.errors[:5],
        "server_pid_before_after": [old_pid, lab.status()["children"]["server"]["pid"]],
    }
    result["met"] = (t_sync is not None and t_sync - t_up < GOALS["restart_in_sync_s"]
                     and not watcher.changes and not changed)
    return result


# --- RSS ---------------------------------------------------------------------------------

def rss(lab: Lab) -> Json:
    out: Json = {name: proc_mem(child.get("pid"))
                 for name, child in lab.status()["children"].items()}
    out["lab-up"] = proc_mem(lab.info.pid)
    hosts = [v for k, v in out.items() if k.startswith("rx-host") and v]
    if hosts:
        out["controller_hosts_total_mb"] = round(sum(h["vmrss_mb"] for h in hosts), 1)
        out["per_controller_kb"] = round(
            out["controller_hosts_total_mb"] * 1024 / max(1, len(lab.info.rx)), 1)
    return out


# --- main --------------------------------------------------------------------------------

def run(args: argparse.Namespace, result: Json) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-lab-"))
    result["data_dir"] = str(work)
    lab: Lab | None = None
    try:
        config = work / "room.yaml"
        config.write_text(topology(args.tx, args.rx), encoding="utf-8")
        t0 = time.monotonic()
        lab = start_lab(config, work / "data", args.start_timeout, args.process_timeout)
        result["lab_start_s"] = round(time.monotonic() - t0, 1)
        result["hosts"] = len(lab.info.runtime_urls)
        print(f"bench_lab: lab up in {result['lab_start_s']} s", file=sys.stderr, flush=True)
        running: Lab = lab
        phases: list[tuple[str, Callable[[], Json]]] = [
            ("push", lambda: bench_push(running, running.info.rx[0],
                                        tx_ids(args.tx)[:args.pushes], args.wait)),
            ("rss", lambda: rss(running)),
            ("idle_cpu", lambda: idle_cpu(running)),
            ("restart", lambda: bench_restart(running, args.wait)),
        ]
        for name, fn in phases:
            t = time.monotonic()
            result[name] = fn()
            print(f"bench_lab: {name} done in {time.monotonic() - t:.1f} s",
                  file=sys.stderr, flush=True)
        result["rss_after_restart"] = {"server": proc_mem(
            lab.status()["children"]["server"]["pid"])}
    except BaseException as exc:
        result["error"] = f"{exc.__class__.__name__}: {exc}"[:2000]
        raise
    finally:
        # Nothing interrupts the stop (it is bounded itself; PDEATHSIG covers a SIGKILL).
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if lab is not None:
            t = time.monotonic()
            try:
                lab.stop()
            except (LabError, OSError) as exc:
                result["stop_error"] = str(exc)
            result["lab_stop_s"] = round(time.monotonic() - t, 1)
            lab.close()
        logs = work / "data" / "logs"
        if logs.is_dir():
            result["link_downs_logged"] = link_downs(work / "data")
            if "error" in result:
                result["error"] += (f" [{result['link_downs_logged']} firmware link-down events "
                                    "in the controller hosts' logs]")
                result["log_tails"] = {
                    # (never the lab's one-time admin password: a throw-away lab, still)
                    p.name: [line[:200] for line in p.read_text(errors="replace").splitlines()
                             if "password" not in line.lower()][-3:]
                    for p in sorted(logs.glob("*.log"))}
        if args.keep:
            print(f"bench_lab: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--tx", type=int, default=1000, help="Tx in the room (1..4999)")
    p.add_argument("--rx", type=int, default=1000, help="Rx in the room, one seat each (1..4999)")
    p.add_argument("--timeout", type=float, default=1500, help="bound of the whole run, s")
    p.add_argument("--start-timeout", type=float, default=600, help="bound of the lab start, s")
    p.add_argument("--process-timeout", type=float, default=180,
                   help="bound of each lab child (server, simulator, controller host) to "
                        "answer at start, s (the lab's own is 30)")
    p.add_argument("--wait", type=float, default=60, help="bound of each measurement, s")
    p.add_argument("--pushes", type=int, default=5,
                   help="pushes to all, each from the next Tx (1..--tx)")
    p.add_argument("--keep", action="store_true", help="keep the lab's data dir and logs")
    args = p.parse_args(argv)
    if not (1 <= args.tx <= 4999 and 2 <= args.rx <= 4999):
        p.error("--tx must be 1..4999 and --rx 2..4999 (one Rx pushes to the others)")
    if not 1 <= args.pushes <= min(args.tx, 20):
        p.error("--pushes must be 1..20 and at most --tx (each push shows a new Tx)")
    if args.start_timeout < 60 or args.timeout < args.start_timeout:
        p.error("--start-timeout must be >= 60 and --timeout >= --start-timeout")
    result: Json = {"sizes": {"tx": args.tx, "rx": args.rx}, "goals": GOALS,
                    "lab_process_timeout_s": args.process_timeout,
                    "python": sys.version.split()[0], "cpus": os.cpu_count(),
                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, _abort)
    signal.alarm(int(args.timeout))
    status = 0
    try:
        run(args, result)
    except (Abort, LabError, AssertionError, requests.RequestException, OSError) as exc:
        result.setdefault("error", f"{exc.__class__.__name__}: {exc}"[:2000])
        status = 1
    except Exception as exc:  # reported in the JSON with its traceback, never a bare crash
        result.setdefault("error", f"{exc.__class__.__name__}: {exc}"[:2000])
        result["traceback"] = traceback.format_exc()[-3000:]
        status = 1
    finally:
        signal.alarm(0)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return status


if __name__ == "__main__":
    sys.exit(main())
