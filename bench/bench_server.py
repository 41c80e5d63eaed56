"""Benchmark of the management server over HTTP on 127.0.0.1 (JSON on stdout).

    .venv/bin/python bench/bench_server.py [--tx 1000] [--rx 1000] [--users 500] [--quick]

Seeds a data directory (1,000 Tx, 1,000 Rx, 500 users), starts a real ``kvm-server``, then:
1. connect decision latency (p50/p99) over keep-alive HTTP, every answer a CONNECTED;
2. push ``all`` to every Rx while each Rx holds a watch: time from the push's answer
   to each watch's return (p50/p99/max);
3. every device (2,000) holding a watch while 50 operators switch: errors, server RSS;
4. in-process: snapshot build cost with a cold and a warm cache.
Everything is bounded in count and time and talks only to 127.0.0.1.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import requests  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from webadmin import models as m  # noqa: E402
from webadmin.auth import hash_secret  # noqa: E402
from webadmin.db import Database, init_data_dir, sqlite_url  # noqa: E402

PASSWORD = "bench-pass"


def secret(serial: str) -> str:
    return hashlib.sha256(f"bench:{serial}".encode()).hexdigest()


def auth(device_id: str) -> dict[str, str]:
    serial = f"B-{device_id}"
    return {"Authorization": f"Device {serial}:{secret(serial)}"}


def tx_ids(n: int) -> list[str]:
    return [f"{i:04d}" for i in range(1, n + 1)]


def rx_ids(n: int) -> list[str]:
    return [f"{5000 + i:04d}" for i in range(1, n + 1)]


def seed(data: Path, n_tx: int, n_rx: int, n_users: int) -> None:
    init_data_dir(data, "bench-admin")
    db = Database(sqlite_url(data))
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    now = m.utcnow()
    with db.begin() as s:
        rows = [
            {"id": d, "kind": "tx", "name": f"Tx {d}", "heads": 1, "serial": f"B-{d}",
             "adoption": "adopted", "credential_hash": hash_secret(secret(f"B-{d}")),
             "online": True, "last_seen": now, "reported_heads": [], "network_up": True,
             "stream_ok": True, "generation": 0, "firmware": "", "created_at": now}
            for d in tx_ids(n_tx)
        ] + [
            {"id": d, "kind": "rx", "name": f"Rx {d}", "heads": 1, "serial": f"B-{d}",
             "adoption": "adopted", "credential_hash": hash_secret(secret(f"B-{d}")),
             "online": True, "last_seen": now, "reported_heads": [], "network_up": True,
             "stream_ok": True, "generation": 0, "firmware": "", "created_at": now}
            for d in rx_ids(n_rx)
        ]
        s.execute(insert(m.Device), rows)
        s.execute(insert(m.User), [
            {"name": f"op{i}", "role": "operator", "password_hash": cheap, "enabled": True,
             "lang": "zh_CN", "created_at": now} for i in range(n_users)])
        group = m.UserGroup(name="operators")
        all_tx = m.DeviceGroup(name="all-tx")
        all_rx = m.DeviceGroup(name="all-rx")
        s.add_all([group, all_tx, all_rx])
        s.flush()
        pks = {d.id: d.pk for d in s.query(m.Device)}
        users = [u.pk for u in s.query(m.User).filter(m.User.role == "operator")]
        s.execute(insert(m.user_group_members),
                  [{"group_pk": group.pk, "user_pk": u} for u in users])
        s.execute(insert(m.device_group_members),
                  [{"group_pk": all_tx.pk, "device_pk": pks[d]} for d in tx_ids(n_tx)]
                  + [{"group_pk": all_rx.pk, "device_pk": pks[d]} for d in rx_ids(n_rx)])
        for scope, dg in (("view", all_tx), ("push", all_rx), ("fetch", all_rx)):
            s.add(m.Grant(scope=scope, user_group_pk=group.pk, device_group_pk=dg.pk))
    db.dispose()


class Server:
    def __init__(self, data: Path, sync: str) -> None:
        env = {**os.environ, "KVM_SERVER_DEVICE_TIMEOUT_S": "3600",
               "KVM_SERVER_LOG_LEVEL": "warning", "KVM_SERVER_SQLITE_SYNCHRONOUS": sync}
        with socket_port() as port:
            self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webadmin", "--data", str(data), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/api/v1/openapi.json", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise SystemExit("kvm-server did not start")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return -1.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class socket_port:
    """A free port on 127.0.0.1 (bound then released)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def session(pool: int = 10) -> requests.Session:
    s = requests.Session()
    s.mount("http://", HTTPAdapter(pool_connections=pool, pool_maxsize=pool))
    return s


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 2)


def login(http: requests.Session, url: str, rx: str, user: str) -> None:
    r = http.post(url + "/api/v1/seat/login", headers=auth(rx),
                  json={"user": user, "password": PASSWORD}, timeout=30)
    assert r.json()["result"] == "NETWORK_OK", r.text


def bench_connect(srv: Server, n: int) -> dict[str, Any]:
    http = session()
    login(http, srv.url, "5001", "op0")
    lat: list[float] = []
    codes: dict[str, int] = {}
    for i in range(n):
        tx = str(1 + i % 2)
        t0 = time.perf_counter()
        r = http.post(srv.url + "/api/v1/seat/connect", headers=auth("5001"),
                      json={"input": tx}, timeout=30)
        lat.append((time.perf_counter() - t0) * 1000)
        code = r.json()["result"]
        codes[code] = codes.get(code, 0) + 1
    same = []
    for _ in range(min(n, 200)):  # a refused decision (SAME_SOURCE) writes only the audit
        t0 = time.perf_counter()
        http.post(srv.url + "/api/v1/seat/connect", headers=auth("5001"),
                  json={"input": str(1 + (n - 1) % 2)}, timeout=30)
        same.append((time.perf_counter() - t0) * 1000)
    return {"requests": n, "results": codes, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "max_ms": pct(lat, 100), "same_source_p50_ms": pct(same, 50),
            "same_source_p99_ms": pct(same, 99)}


def bench_push_all(srv: Server, n_rx: int) -> dict[str, Any]:
    http = session()
    login(http, srv.url, "5001", "op1")
    http.post(srv.url + "/api/v1/seat/connect", headers=auth("5001"), json={"input": "3"},
              timeout=30)
    targets = rx_ids(n_rx)[1:]
    gens: dict[str, int] = {}
    returned: dict[str, float] = {}
    errors: list[str] = []

    def prime(rx: str) -> None:
        r = requests.get(f"{srv.url}/api/v1/device/watch?timeout=0", headers=auth(rx),
                         timeout=60)
        gens[rx] = r.json()["generation"]

    pool = gevent.pool.Pool(200)
    pool.map(prime, targets)

    def hold(rx: str) -> None:
        try:
            r = requests.get(f"{srv.url}/api/v1/device/watch?generation={gens[rx]}&timeout=60",
                             headers=auth(rx), timeout=90)
            returned[rx] = time.perf_counter()
            if r.status_code != 200 or r.json()["generation"] <= gens[rx]:
                errors.append(f"{rx}: {r.status_code}")
        except requests.RequestException as e:
            errors.append(f"{rx}: {e.__class__.__name__}")

    watchers = [gevent.spawn(hold, rx) for rx in targets]
    gevent.sleep(3.0)  # let every watch reach the server and wait
    t_req = time.perf_counter()
    r = http.post(srv.url + "/api/v1/seat/push", headers=auth("5001"), json={"input": "all"},
                  timeout=60)
    t_answer = time.perf_counter()
    gevent.joinall(watchers, timeout=70)
    body = r.json()
    pushed = sum(1 for t in body.get("targets", []) if t["result"] == "PUSHED")
    after = [(t - t_answer) * 1000 for t in returned.values()]
    since_req = [(t - t_req) * 1000 for t in returned.values()]
    return {"watches": len(targets), "released": len(returned), "errors": len(errors),
            "pushed": pushed, "push_request_ms": round((t_answer - t_req) * 1000, 1),
            "release_after_answer_p50_ms": pct(after, 50),
            "release_after_answer_p99_ms": pct(after, 99),
            "release_since_request_p99_ms": pct(since_req, 99),
            "release_since_request_max_ms": pct(since_req, 100)}


def bench_soak(srv: Server, n_tx: int, n_rx: int, seconds: float, operators: int) -> dict[str, Any]:
    devices = tx_ids(n_tx) + rx_ids(n_rx)
    stop_at = time.monotonic() + seconds
    errors: list[str] = []
    counts = {"watch_returns": 0, "switches": 0}

    def watcher(dev: str) -> None:
        gen = -1
        while time.monotonic() < stop_at:
            try:
                r = requests.get(f"{srv.url}/api/v1/device/watch?generation={gen}&timeout=20",
                                 headers=auth(dev), timeout=40)
                if r.status_code != 200:
                    errors.append(f"watch {dev} {r.status_code}")
                    return
                gen = r.json()["generation"]
                counts["watch_returns"] += 1
            except requests.RequestException as e:
                errors.append(f"watch {dev} {e.__class__.__name__}")
                return

    rss_peak = [srv.rss_mib()]

    def operator(i: int) -> None:
        http = session(2)
        rx = rx_ids(n_rx)[-(i + 1)]
        login(http, srv.url, rx, f"op{10 + i}")
        k = 0
        while time.monotonic() < stop_at:
            k += 1
            r = http.post(srv.url + "/api/v1/seat/connect", headers=auth(rx),
                          json={"input": str(1 + (i + k) % 50)}, timeout=30)
            if r.status_code != 200 or r.json()["result"] not in ("CONNECTED", "SAME_SOURCE"):
                errors.append(f"op{i} {r.status_code} {r.text[:80]}")
            counts["switches"] += 1
            gevent.sleep(0.2)

    watchers = [gevent.spawn(watcher, d) for d in devices]
    gevent.sleep(5.0)
    ops = [gevent.spawn(operator, i) for i in range(operators)]
    while time.monotonic() < stop_at:
        gevent.sleep(1.0)
        rss_peak.append(srv.rss_mib())
    gevent.joinall(ops, timeout=60)
    gevent.joinall(watchers, timeout=60)
    return {"watches": len(devices), "operators": operators, "seconds": seconds,
            "switches": counts["switches"], "watch_returns": counts["watch_returns"],
            "errors": len(errors), "error_samples": errors[:5],
            "server_rss_mib_peak": round(max(rss_peak), 1)}


def bench_snapshot(data: Path) -> dict[str, Any]:
    from webadmin.snapshot import SnapshotCache

    db = Database(sqlite_url(data))
    cache = SnapshotCache(3600)
    with db.session() as s:
        t0 = time.perf_counter()
        cache.build(s)
        cold = (time.perf_counter() - t0) * 1000
        warm = []
        for _ in range(50):
            t0 = time.perf_counter()
            cache.build(s)
            warm.append((time.perf_counter() - t0) * 1000)
    db.dispose()
    return {"cold_build_ms": round(cold, 1), "warm_build_p50_ms": pct(warm, 50),
            "warm_build_p99_ms": pct(warm, 99)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tx", type=int, default=1000)
    p.add_argument("--rx", type=int, default=1000)
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--connects", type=int, default=1000)
    p.add_argument("--soak-seconds", type=float, default=30)
    p.add_argument("--sync", choices=["full", "normal"], default="full",
                   help="the server's sqlite_synchronous")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    a = p.parse_args()
    if a.quick:
        a.tx, a.rx, a.users, a.connects, a.soak_seconds = 60, 60, 60, 100, 5
    out: dict[str, Any] = {"sizes": {"tx": a.tx, "rx": a.rx, "users": a.users},
                           "sqlite_synchronous": a.sync}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        seed(data, a.tx, a.rx, a.users)
        out["seed_s"] = round(time.perf_counter() - t0, 1)
        out["snapshot"] = bench_snapshot(data)
        srv = Server(data, a.sync)
        try:
            out["rss_mib_idle"] = round(srv.rss_mib(), 1)
            out["connect"] = bench_connect(srv, a.connects)
            out["push_all"] = bench_push_all(srv, a.rx)
            out["soak"] = bench_soak(srv, a.tx, a.rx, a.soak_seconds, 50)
        finally:
            srv.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
