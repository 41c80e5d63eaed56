"""One simulator process carries 1,000 Tx and 1,000 Rx; links answer while all are connected."""

from __future__ import annotations

import selectors
import socket
import time

from firmware_sim.simulator import Simulator
from kvm_protocol.messages import DeviceKind, SwitchHead, SwitchResult, SwitchStatus
from kvm_protocol.session import LinkUp, Received, Session

N = 1000
BUDGET_S = 20.0


def test_thousand_tx_and_thousand_rx_in_one_process() -> None:
    cfg = {
        "latency_ms": [0, 20],
        "tx": [{"id": f"{i:04d}", "name": f"PC {i}"} for i in range(1, N + 1)],
        "rx": [{"id": str(5000 + i)} for i in range(1, N + 1)],
    }
    t0 = time.monotonic()
    sim = Simulator(cfg)
    sim.start()
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    try:
        started = time.monotonic() - t0
        ports = sim.ports()
        assert len(ports) == 2 * N and len({p["port"] for p in ports.values()}) == 2 * N
        # A host on every device's link (2,000 live sessions with heartbeats), all at once.
        chosen = sorted(ports)
        hosts: dict[socket.socket, tuple[str, Session, list[object]]] = {}
        for dev in chosen:
            s = socket.create_connection(("127.0.0.1", ports[dev]["port"]), timeout=5)
            s.setblocking(False)
            socks.append(s)
            sess = Session("host", time.monotonic())
            s.sendall(sess.data_to_send())
            hosts[s] = (dev, sess, [])
            sel.register(s, selectors.EVENT_READ)

        def pump(deadline: float, done: object) -> None:
            while time.monotonic() < deadline and not done():  # type: ignore[operator]
                for key, _ in sel.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    _dev, sess, events = hosts[sock]
                    data = sock.recv(65536)
                    events += sess.receive_data(data, time.monotonic())
                    out = sess.data_to_send()
                    if out:
                        sock.sendall(out)

        def all_up() -> bool:
            return all(any(isinstance(e, LinkUp) for e in ev) for _, _, ev in hosts.values())

        pump(t0 + BUDGET_S, all_up)
        assert all_up(), "not every link came up"
        up_at = time.monotonic() - t0
        for _, _sess, ev in hosts.values():
            up = next(e for e in ev if isinstance(e, LinkUp))
            assert up.identity.kind in (DeviceKind.TX, DeviceKind.RX)
        # Every connected Rx switches to a Tx; every one answers OK.
        seqs: dict[str, int] = {}
        for sock, (dev, sess, _ev) in hosts.items():
            if dev >= "5001":
                tx = f"{int(dev) - 5000:04d}"
                seqs[dev] = sess.send(SwitchHead(1, tx, 1), time.monotonic())
                sock.sendall(sess.data_to_send())

        def results() -> list[SwitchResult]:
            return [e.message for _, _, ev in hosts.values() for e in ev
                    if isinstance(e, Received) and isinstance(e.message, SwitchResult)]

        pump(t0 + BUDGET_S, lambda: len(results()) >= len(seqs))
        got = results()
        assert len(got) == len(seqs) and all(r.status is SwitchStatus.OK for r in got)
        state = sim.state()
        shown = [r for r in state["rx"] if r["heads"][0]["video"]]
        assert len(shown) == len(seqs)
        total = time.monotonic() - t0
        print(f"\nstart {started:.2f}s, {len(hosts)} links up at {up_at:.2f}s, "
              f"{len(seqs)} switches done at {total:.2f}s")
        assert total < BUDGET_S
    finally:
        sel.close()
        for s in socks:
            s.close()
        sim.stop()
