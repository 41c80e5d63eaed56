"""`kvm-lab up`: set up the data dir, start every process, keep them supervised, stop them all.

Process layout (all on 127.0.0.1):

    kvm-lab up ─┬─ kvm-server --config DATA/lab/server.yaml --data DATA --port P   (web UI + REST)
                ├─ kvm-sim run --config DATA/lab/sim.yaml ...                   (Tx/Rx hardware)
                ├─ kvm-rx --many DATA/lab/rx-host-1.yaml ...   (≤ 250 controllers each)
                ├─ thread: Tx gateway (stands in for each Tx's own network agent)
                ├─ thread: control endpoint (server/controller supervision, down)
                └─ main thread: the window of seat 5001, or a headless wait loop
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import requests

from firmware_sim import tx_gateway
from firmware_sim.config import UNIX_DIR_MAX
from firmware_sim.lab import statefile
from firmware_sim.lab.client import controller_rows
from firmware_sim.lab.control import Command, CommandError, ControlServer
from firmware_sim.lab.ports import free_port, http_answers, port_free, wait_until
from firmware_sim.lab.simconfig import LabTopology, TopologyError, load_topology
from firmware_sim.lab.statefile import LabInfo
from firmware_sim.lab.supervisor import Child, Supervisor

log = logging.getLogger("kvm.lab")

Json = dict[str, Any]
CONTROLLERS_PER_HOST = 250
# The controller hosts run at a lower priority than the simulator. In a real room every
# controller and every device has a CPU of its own; here the simulator is one process (one
# thread) standing in for all the hardware, and at 1,000 Rx the four hosts' threads took
# most of the CPU from it during a push: it sat runnable with switches waiting in its
# sockets (docs/LAB.md, "Priorities"). The server keeps the normal priority.
HOST_NICE = 10
SETUP_FILE = "setup.json"
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "control-room.yaml"
DEVICE_TIMEOUT_S = 8  # the lab server's device timeout (offline after this silence)
GATEWAY_HEARTBEAT_S = 3.0  # like a controller's 3-5 s: two can be missed in DEVICE_TIMEOUT_S
START_TIMEOUT_S = 30.0  # one process to answer on its port


class UpError(RuntimeError):
    """The lab cannot start; the message says what to do."""


@dataclass
class UpOptions:
    data_dir: Path
    config: Path | None = None
    headless: bool = False
    port: int | None = None
    ready_timeout: float = 120.0


def _say(msg: str) -> None:
    print(msg, flush=True)


def _tool(name: str) -> list[str]:
    """argv prefix for one of the project's console scripts (next to our interpreter first)."""
    local = Path(sys.executable).with_name(name)
    if local.exists():
        return [str(local)]
    found = shutil.which(name)
    if found is None:
        raise UpError(f"cannot find the {name} command; run ./dev setup")
    return [found]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class LabRunner:
    """One `kvm-lab up`: owns the children, the gateway thread and the control endpoint."""

    def __init__(self, opts: UpOptions) -> None:
        self.opts = opts
        self.data = opts.data_dir.resolve()
        self.work = self.data / "lab"
        self.logs = self.data / "logs"
        self.sup = Supervisor()
        self.stop_event = threading.Event()
        self.control: ControlServer | None = None
        self.gateway: tx_gateway.TxGateway | None = None
        self.topology: LabTopology | None = None
        self.config_path: Path | None = None
        self.server_port = 0
        self.sim_port = 0
        self.host_ports: list[int] = []
        self.rx_host: dict[str, int] = {}
        self.http = requests.Session()   # keep-alive to the controller hosts
        self.http.trust_env = False
        self.serial_ports: dict[str, str] = {}
        self.links_dir: Path | None = None   # the simulator's Unix sockets (links_dir())
        self.info: LabInfo | None = None
        self._reported_dead: set[tuple[str, int]] = set()
        self._shut = False

    # --- urls ---------------------------------------------------------------------

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def host_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.host_ports[index]}"

    # --- data dir -------------------------------------------------------------------

    def _check_not_running(self) -> None:
        try:
            info = statefile.read(self.data)
        except statefile.LabNotRunning:
            return
        raise UpError(
            f"a lab is already up on {self.data} (pid {info.pid}); stop it with: "
            f"kvm-lab down --data {self.opts.data_dir}"
        )

    def prepare(self) -> None:
        """First start: init the data dir and import the topology. Later starts: reuse both."""
        self._check_not_running()
        self.data.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        setup_path = self.work / SETUP_FILE
        setup: Json = {}
        if setup_path.exists():
            try:
                setup = json.loads(setup_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise UpError(f"{setup_path} is damaged ({exc}); use a new --data dir") from None
        elif (self.data / "kvm.db").exists():
            raise UpError(
                f"{self.data} holds a database that the lab did not set up; "
                "use an empty or new --data dir"
            )

        if setup.get("config"):
            recorded = Path(setup["config"])
            if self.opts.config is not None and self.opts.config.resolve() != recorded:
                raise UpError(
                    f"{self.data} was set up from {recorded}; the topology is imported on "
                    f"first start only. Use a new --data dir for {self.opts.config}"
                )
            self.config_path = recorded
        else:
            self.config_path = (self.opts.config or DEFAULT_CONFIG).resolve()
        if not self.config_path.is_file():
            raise UpError(f"topology file {self.config_path} not found")
        try:
            self.topology = load_topology(self.config_path)
        except TopologyError as exc:
            raise UpError(f"{self.config_path}: {exc}") from None

        if not setup.get("initialised"):
            self._admin_init()
            setup = {"initialised": True}
            self._write_setup(setup_path, setup)
        if not setup.get("config"):
            _say(f"Importing the control room from {self.config_path} ...")
            self._admin(
                ["import", "--data", str(self.data), str(self.config_path)], "import the topology"
            )
            setup = {
                **setup,
                "config": str(self.config_path),
                "sha256": _sha256(self.config_path),
                "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            self._write_setup(setup_path, setup)
        elif setup.get("sha256") != _sha256(self.config_path):
            _say(
                f"note: {self.config_path} changed since it was imported; the database keeps the "
                "imported version (the simulator follows the file)"
            )

    def _write_setup(self, path: Path, setup: Json) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(setup, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def _admin(self, args: list[str], what: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603 - our own console script
                [*_tool("kvm-admin"), *args],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise UpError(f"kvm-admin did not {what} within 120 s") from None
        if done.returncode != 0:
            raise UpError(f"kvm-admin could not {what}:\n{(done.stderr or done.stdout).strip()}")
        return done.stdout

    def _admin_init(self) -> None:
        out = self._admin(["init", "--data", str(self.data)], "initialise the data dir")
        bar = "=" * 72
        _say(f"\n{bar}\n  First start: the data dir {self.data} is new.\n")
        for line in out.strip().splitlines():
            _say(f"  {line}")
        _say(
            f"\n  This is shown ONCE. Keep the admin password; it is not stored anywhere.\n{bar}\n"
        )

    # --- files for the children -------------------------------------------------------

    def write_configs(self) -> None:
        assert self.topology is not None
        import yaml

        sim_config = dict(self.topology.sim_config)
        self.links_dir = links_dir()
        if self.links_dir is not None:
            sim_config["unix_dir"] = str(self.links_dir)
        (self.work / "sim.yaml").write_text(
            yaml.safe_dump(sim_config, sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )
        (self.work / "server.yaml").write_text(
            yaml.safe_dump(
                {"device_timeout_s": DEVICE_TIMEOUT_S, "log_format": "text"}, sort_keys=False
            ),
            encoding="utf-8",
        )

    def write_host_files(self) -> None:
        """One `kvm-rx --many` file per ≤ 250 Rx, pointing at the simulator's serial endpoints."""
        assert self.topology is not None
        import yaml

        rx = self.topology.rx
        self.rx_host = {}
        hosts = [rx[i : i + CONTROLLERS_PER_HOST] for i in range(0, len(rx), CONTROLLERS_PER_HOST)]
        for index, group in enumerate(hosts):
            entries = []
            for dev in group:
                state_dir = self.work / "rx" / dev.id
                state_dir.mkdir(parents=True, exist_ok=True)
                entries.append(
                    {
                        "name": dev.id,
                        "serial": self.serial_ports[dev.id],
                        "state_dir": str(state_dir),
                    }
                )
                self.rx_host[dev.id] = index
            (self.work / f"rx-host-{index + 1}.yaml").write_text(
                yaml.safe_dump(
                    {"server": self.server_url, "controllers": entries}, sort_keys=False
                ),
                encoding="utf-8",
            )
        self.host_ports = [free_port() for _ in hosts]

    # --- children ---------------------------------------------------------------------

    def _server_child(self) -> Child:
        return Child(
            "server",
            [
                *_tool("kvm-server"),
                "--config",
                str(self.work / "server.yaml"),
                "--data",
                str(self.data),
                "--port",
                str(self.server_port),
            ],
            log_path=self.logs / "server.log",
        )

    def start_server(self) -> None:
        child = self.sup.children.get("server") or self.sup.add(self._server_child())
        child.start()
        if not wait_until(
            lambda: http_answers(self.server_url + "/api/v1/openapi.json"),
            START_TIMEOUT_S,
            alive=child.alive,
        ):
            raise UpError(
                f"the management server did not come up on {self.server_url}; see {child.log_path}"
            )

    def start_sim(self) -> None:
        ports_file = self.work / "sim-ports.json"
        ports_file.unlink(missing_ok=True)
        child = self.sup.add(
            Child(
                "sim",
                [
                    *_tool("kvm-sim"),
                    "run",
                    "--config",
                    str(self.work / "sim.yaml"),
                    "--control-port",
                    "0",
                    "--ports-file",
                    str(ports_file),
                ],
                log_path=self.logs / "sim.log",
            )
        )
        child.start()
        if not wait_until(ports_file.exists, START_TIMEOUT_S, alive=child.alive):
            raise UpError(f"the simulator did not come up; see {child.log_path}")
        self.serial_ports, control_url = _read_ports_file(ports_file)
        if control_url is None or not control_url.startswith("http://127.0.0.1:"):
            raise UpError(f"the simulator's ports file {ports_file} names no control URL")
        self.sim_port = int(control_url.rsplit(":", 1)[1].rstrip("/"))
        if not wait_until(
            lambda: http_answers(self.sim_url + "/state"), START_TIMEOUT_S, alive=child.alive
        ):
            raise UpError(f"the simulator's control server does not answer; see {child.log_path}")
        assert self.topology is not None
        missing = [
            d.id for d in (*self.topology.tx, *self.topology.rx) if d.id not in self.serial_ports
        ]
        if missing:
            raise UpError(f"the simulator published no serial endpoint for {', '.join(missing)}")

    def start_hosts(self) -> None:
        for index, port in enumerate(self.host_ports):
            child = self.sup.add(
                Child(
                    f"rx-host-{index + 1}",
                    [
                        *_tool("kvm-rx"),
                        "--many",
                        str(self.work / f"rx-host-{index + 1}.yaml"),
                        "--control-port",
                        str(port),
                    ],
                    log_path=self.logs / f"rx-host-{index + 1}.log",
                    nice=HOST_NICE,
                )
            )
            child.start()
        for index, _port in enumerate(self.host_ports):
            child = self.sup[f"rx-host-{index + 1}"]
            if not wait_until(
                partial(http_answers, self.host_url(index) + "/controllers"),
                START_TIMEOUT_S,
                alive=child.alive,
            ):
                raise UpError(
                    f"the controllers of {child.name} did not come up; see {child.log_path}"
                )

    def start_gateway(self) -> None:
        assert self.topology is not None
        serials = [d.serial for d in self.topology.tx]
        try:
            secrets_by_serial = tx_gateway.load_secrets(self.work / "tx-secrets.json", serials)
        except ValueError as exc:
            raise UpError(str(exc)) from None
        session = requests.Session()
        sim_url = self.sim_url

        def read_reports() -> list[tx_gateway.TxReport]:
            resp = session.get(sim_url + "/state", params={"only": "tx"}, timeout=2.0)
            resp.raise_for_status()
            return tx_gateway.reports_from_sim_state(resp.json())

        self.gateway = tx_gateway.TxGateway(
            self.server_url, read_reports, secrets_by_serial, heartbeat_s=GATEWAY_HEARTBEAT_S
        )
        self.gateway.start()

    # --- readiness --------------------------------------------------------------------

    def sync_problems(self) -> list[str]:
        """What is not yet up and in sync (empty when everything is)."""
        from firmware_sim.lab.labstate import sync_problems

        assert self.topology is not None and self.gateway is not None
        try:
            sim = requests.get(self.sim_url + "/state", timeout=2.0).json()
        except (requests.RequestException, ValueError):
            return ["the simulator does not answer"]
        # One request per controller host (its summary of every controller), not one per Rx:
        # at 1,000 Rx a sweep of single /osd calls cost the hosts and this process seconds.
        # A host that does not answer leaves its controllers at None: "does not answer".
        osds: dict[str, Json | None] = dict.fromkeys(self.rx_host)
        hosts = [self.host_url(i) for i in sorted(set(self.rx_host.values()))]
        for row in controller_rows(self.http, hosts):
            if row.get("name") in osds:
                osds[row["name"]] = row
        return sync_problems(
            sim, osds, self.gateway.reporting(), {d.serial: d.id for d in self.topology.tx}
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.opts.ready_timeout
        problems: list[str] = []
        while time.monotonic() < deadline and not self.stop_event.is_set():
            problems = self.sync_problems()
            if not problems:
                return
            dead = self.sup.dead()
            if dead:
                raise UpError(f"{dead[0].name} exited during start-up; see {dead[0].log_path}")
            time.sleep(0.2)
        if self.stop_event.is_set():
            raise UpError("stopped while starting")
        shown = "; ".join(problems[:8]) + (
            f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        )
        raise UpError(f"not in sync after {self.opts.ready_timeout:g} s: {shown}")

    # --- start / publish / stop ---------------------------------------------------------

    def start(self) -> None:
        self.prepare()
        assert self.topology is not None
        if self.opts.port is not None and not port_free(self.opts.port):
            raise UpError(f"port {self.opts.port} is in use; pick another --port or leave it out")
        self.server_port = self.opts.port or free_port()
        self.write_configs()
        _say(f"Starting the management server on {self.server_url} ...")
        self.start_server()
        _say(f"Starting the simulator ({len(self.topology.tx)} Tx, {len(self.topology.rx)} Rx) ...")
        self.start_sim()
        self.start_gateway()
        self.write_host_files()
        _say(
            f"Starting {len(self.topology.rx)} controllers "
            f"in {len(self.host_ports)} process(es) ..."
        )
        self.start_hosts()
        self.control = ControlServer()
        self.control.start()
        self.publish(ready=False)
        _say("Waiting until every device is up and in sync ...")
        self.wait_ready()
        self.publish(ready=True)

    def publish(self, *, ready: bool) -> None:
        assert (
            self.topology is not None and self.control is not None and self.config_path is not None
        )
        self.info = LabInfo(
            pid=os.getpid(),
            data_dir=str(self.data),
            config=str(self.config_path),
            control_url=self.control.url,
            server_url=self.server_url,
            sim_control_url=self.sim_url,
            runtime_urls=[self.host_url(i) for i in range(len(self.host_ports))],
            rx_host=dict(self.rx_host),
            tx=[d.id for d in self.topology.tx],
            rx=[d.id for d in self.topology.rx],
            serial_ports=dict(self.serial_ports),
            ready=ready,
            headless=self.opts.headless,
        )
        statefile.write(self.data, self.info)

    def banner(self) -> None:
        assert self.topology is not None
        d = self.opts.data_dir
        k = "kvm-lab" if d == statefile.DEFAULT_DATA else f"kvm-lab --data {d}"
        rx = self.topology.rx[0].id
        window = (
            "" if self.opts.headless else f"\n  Window:         monitor and keyboard of Rx {rx}"
        )
        example = self.config_path == DEFAULT_CONFIG
        user, password = ("hxfj", "123456") if example else ("USER", "PASSWORD")
        tx_id = self.topology.tx[0].id if self.topology.tx else "0001"
        tx = tx_id.lstrip("0")
        steps = [
            (f"{k} type {rx} {user}", "the login screen: user name"),
            (f"{k} keys {rx} Tab", "to the password field"),
            (f"{k} type {rx} {password}", "password"),
            (f"{k} keys {rx} Enter", "log in: the OSD menu opens in Connect mode"),
            (f'{k} keys {rx} "F1 {tx} Enter"', f"connect to Tx {tx_id} (the OSD closes after 1 s)"),
            (f'{k} keys {rx} "Shift+O Shift+O"', "open the OSD again (the default call-up chord)"),
            (f"{k} state", "every device, its screens and OSD (--json too)"),
            (f"{k} screenshot {rx} shot.png", "what the monitor shows"),
            (f"{k} down", "stop the lab (or Ctrl-C here)"),
        ]
        width = max(len(cmd) for cmd, _ in steps) + 2
        lines = "\n".join(f"  {cmd:<{width}}# {what}" for cmd, what in steps)
        _say(
            f"\nThe lab is up: {len(self.topology.tx)} Tx, {len(self.topology.rx)} Rx."
            f"\n  Admin web UI:   {self.server_url}/   (user admin, password from the first start)"
            f"\n  Topology:       {self.config_path}"
            f"\n  State file:     {self.data / statefile.STATE_FILE}"
            f"\n  Logs:           {self.logs}{window}"
            f"\nDrive it from another shell (docs/LAB.md):\n{lines}\n"
        )

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        if self.gateway is not None:
            self.gateway.stop()
        if self.control is not None:
            self.control.close()
        self.sup.stop_all(timeout=10.0)
        if self.links_dir is not None:
            shutil.rmtree(self.links_dir, ignore_errors=True)
        statefile.remove(self.data, os.getpid())

    # --- commands from the control endpoint ---------------------------------------------

    def execute(self, cmd: Command) -> Json:
        if cmd.name == "status":
            return self.status()
        if cmd.name == "down":
            self.stop_event.set()
            return {"stopping": True}
        if cmd.name == "server":
            return self._server_action(cmd.args["action"])
        if cmd.name == "controller":
            return self._controller_action(cmd.args["rx"], cmd.args["action"])
        raise CommandError(f"unknown command {cmd.name!r}", 404)

    def status(self) -> Json:
        children = {
            name: {
                "pid": c.pid,
                "alive": c.alive(),
                "returncode": c.returncode(),
                "starts": c.starts,
            }
            for name, c in self.sup.children.items()
        }
        gw = self.gateway
        return {
            "children": children,
            "gateway": {
                "reporting": sorted(gw.reporting()) if gw else [],
                "posted": self._posted_by_id(),
                "last_error": gw.last_error if gw else None,
            },
        }

    def _posted_by_id(self) -> Json:
        """Tx ID → the state the server last accepted from the gateway for it."""
        if self.gateway is None or self.topology is None:
            return {}
        ids = {d.serial: d.id for d in self.topology.tx}
        return {ids.get(serial, serial): body for serial, body in self.gateway.posted().items()}

    def _server_action(self, action: str) -> Json:
        child = self.sup["server"]
        if action == "kill":
            child.kill()
        elif action == "stop":
            child.stop()
        else:
            try:
                self.start_server()
            except UpError as exc:
                raise CommandError(str(exc), 500) from None
        return {"server": {"alive": child.alive(), "pid": child.pid}}

    def _controller_action(self, rx: str, action: str) -> Json:
        if rx not in self.rx_host:
            raise CommandError(f"no Rx {rx!r} in this lab", 404)
        index = self.rx_host[rx]
        child = self.sup[f"rx-host-{index + 1}"]
        if action == "kill":
            child.kill()
        else:
            child.start()
            if not wait_until(
                lambda: http_answers(self.host_url(index) + "/controllers"),
                START_TIMEOUT_S,
                alive=child.alive,
            ):
                raise CommandError(f"{child.name} did not come back; see {child.log_path}", 500)
        held = sorted(r for r, i in self.rx_host.items() if i == index)
        return {
            "controller": {
                "process": child.name,
                "alive": child.alive(),
                "pid": child.pid,
                "rx": held,
            }
        }

    # --- the main loop ------------------------------------------------------------------

    def poll(self) -> None:
        """Run queued control commands; report children that died without being asked to."""
        assert self.control is not None
        self.control.drain(self.execute)
        for child in self.sup.dead():
            key = (child.name, child.pid or 0)
            if key not in self._reported_dead:
                self._reported_dead.add(key)
                _say(
                    f"lab: {child.name} (pid {child.pid}) exited with status {child.returncode()}; "
                    f"see {child.log_path}"
                )

    def run_headless(self) -> None:
        assert self.control is not None
        while not self.stop_event.is_set():
            self.control.drain(self.execute, timeout=0.2)
            self.poll()



def _have_display() -> bool:
    """A window can be opened: an X/Wayland display, or an SDL driver chosen explicitly."""
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))


def links_dir() -> Path | None:
    """A new short directory for the simulator's serial-link sockets (``unix://DIR/ID``: a
    frame costs both ends about a third of TCP on the loopback, and a push to 1,000 Rx is
    4,000 frames); None, and TCP ports, when the temporary directory's path is too long
    for a socket path (docs/LAB.md)."""
    path = Path(tempfile.mkdtemp(prefix="kvm-lab-links-"))
    if len(str(path)) > UNIX_DIR_MAX:
        path.rmdir()
        return None
    return path


def _read_ports_file(path: Path) -> tuple[dict[str, str], str | None]:
    """The simulator's ports file: (device ID → serial URL, control URL)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UpError(f"cannot read the simulator's ports file {path}: {exc}") from None
    devices = raw.get("devices") if isinstance(raw, dict) else None
    if not isinstance(devices, dict):
        raise UpError(f"{path} is not a ports file (expected devices: ID → {{url}})")
    out: dict[str, str] = {}
    for key, value in devices.items():
        if isinstance(value, dict) and isinstance(value.get("url"), str):
            out[str(key)] = value["url"]
    control = raw.get("control_url")
    return out, control if isinstance(control, str) else None


def run_up(opts: UpOptions) -> int:
    """The foreground `kvm-lab up`; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="lab: %(message)s")
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    runner = LabRunner(opts)

    def on_signal(signum: int, _frame: object) -> None:
        runner.stop_event.set()

    previous = {
        s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        try:
            runner.start()
        except UpError:
            runner.shutdown()
            raise
        if runner.stop_event.is_set():
            runner.shutdown()
            return 0
        if not opts.headless and not _have_display():
            _say("No display here (DISPLAY is not set): running headless; "
                 "drive the lab with `kvm-lab keys/type/state/screenshot`.")
            opts.headless = True
        runner.banner()
        if opts.headless:
            runner.run_headless()
        else:
            from firmware_sim.lab.window import run_window

            run_window(runner)
        _say("Stopping the lab ...")
    finally:
        runner.shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
    _say("The lab is down.")
    return 0
