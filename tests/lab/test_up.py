"""`kvm-lab up`'s preparation, without starting processes: data dir rules and host files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from firmware_sim.config import UNIX_DIR_MAX
from firmware_sim.lab.simconfig import DeviceRef, LabTopology
from firmware_sim.lab.up import CONTROLLERS_PER_HOST, LabRunner, UpError, UpOptions


def runner(tmp_path: Path, rx_count: int) -> LabRunner:
    r = LabRunner(UpOptions(data_dir=tmp_path / "data", headless=True))
    r.work.mkdir(parents=True)
    rx = [DeviceRef(f"{5001 + i}", f"SIM-RX-{5001 + i}", 1) for i in range(rx_count)]
    r.topology = LabTopology(tx=[], rx=rx)
    r.serial_ports = {d.id: f"socket://127.0.0.1:{20000 + i}" for i, d in enumerate(rx)}
    r.server_port = 8080
    return r


def test_at_most_250_controllers_per_process(tmp_path: Path) -> None:
    r = runner(tmp_path, 2 * CONTROLLERS_PER_HOST + 100)
    r.write_host_files()
    assert len(r.host_ports) == 3 and len(set(r.host_ports)) == 3
    sizes = []
    for i in range(3):
        doc = yaml.safe_load((r.work / f"rx-host-{i + 1}.yaml").read_text())
        assert doc["server"] == "http://127.0.0.1:8080"
        sizes.append(len(doc["controllers"]))
        first = doc["controllers"][0]
        assert first["serial"] == r.serial_ports[first["name"]]
        assert Path(first["state_dir"]).is_dir()
    assert sizes == [250, 250, 100]
    assert r.rx_host["5001"] == 0 and r.rx_host["5251"] == 1 and r.rx_host["5600"] == 2


def test_a_foreign_database_is_not_touched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "kvm.db").write_bytes(b"")
    with pytest.raises(UpError, match="did not set up"):
        LabRunner(UpOptions(data_dir=data)).prepare()


def test_another_topology_on_a_set_up_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "lab").mkdir(parents=True)
    room = Path(__file__).resolve().parents[2] / "examples" / "control-room.yaml"
    (data / "lab" / "setup.json").write_text(json.dumps(
        {"initialised": True, "config": str(room), "sha256": "x"}))
    other = room.with_name("small-room.yaml")
    with pytest.raises(UpError, match="first start only"):
        LabRunner(UpOptions(data_dir=data, config=other)).prepare()


def test_a_missing_topology_file(tmp_path: Path) -> None:
    with pytest.raises(UpError, match="not found"):
        LabRunner(UpOptions(data_dir=tmp_path / "d", config=tmp_path / "nope.yaml")).prepare()


def test_the_simulator_gets_a_private_socket_directory_removed_at_shutdown(
        tmp_path: Path) -> None:
    """The serial links are Unix sockets in a fresh short directory (a socket path has at
    most 107 bytes, whatever the data dir's length); shutdown removes it."""
    r = runner(tmp_path / ("long-" * 20), 2)
    r.write_configs()
    sim = yaml.safe_load((r.work / "sim.yaml").read_text())
    links = r.links_dir
    assert links is not None and sim["unix_dir"] == str(links)
    assert links.is_dir() and (links.stat().st_mode & 0o777) == 0o700
    assert len(str(links)) <= UNIX_DIR_MAX < len(str(r.work))
    r.shutdown()
    assert not links.exists()
