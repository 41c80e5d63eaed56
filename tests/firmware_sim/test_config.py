"""Config validation: every problem names its key path; defaults fill the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware_sim.config import build_fabric, load_config, parse_config
from kvm_protocol.yamlconf import ConfigError
from tests.firmware_sim.conftest import room_config


def test_defaults() -> None:
    cfg = parse_config({"tx": [{"id": "0001"}], "rx": [{"id": 5001}]})
    fabric = build_fabric(cfg)
    tx, rx = fabric.tx["0001"], fabric.rx["5001"]
    assert (tx.serial, tx.name, tx.heads, tx.video, tx.power, tx.stream_ok) == (
        "SIM-TX-0001", "TX-0001", 1, [True], True, True)
    assert (rx.serial, len(rx.heads), rx.network) == ("SIM-RX-5001", 1, True)
    assert cfg.latency_ms == (0.0, 20.0) and cfg.base_port == 0


def test_empty_config_is_an_empty_room() -> None:
    assert build_fabric(parse_config(None)).snapshot()["tx"] == []


def test_yaml_file_with_leading_zero_ids(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "latency_ms: [1, 2]\n"
        "tx:\n  - {id: 0010, name: 调度台, heads: 2, video: [true, false], stream: fault}\n"
        "rx:\n  - {id: 5001, heads: 2, power: off}\n",
        encoding="utf-8",
    )
    fabric = build_fabric(load_config(path))
    assert fabric.tx["0010"].name == "调度台"
    assert fabric.tx["0010"].video == [True, False]
    assert fabric.tx["0010"].stream_ok is False
    assert fabric.rx["5001"].power is False


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tx": [{"id": "0001", "heads": 7}]}, "tx[0].heads: 7 is not in 1..4"),
        ({"tx": [{"id": "5001"}]}, "tx[0].id: '5001' is not a Tx ID"),
        ({"tx": [{"id": 1}]}, "tx[0].id: expected a 4-digit ID in quotes"),
        ({"rx": [{"id": "0001"}]}, "rx[0].id: '0001' is not an Rx ID"),
        ({"tx": [{"id": "0001", "heads": 2, "video": [True]}]},
         "tx[0].video: has 1 entries for 2 head(s)"),
        ({"tx": [{"id": "0001", "colour": "red"}]}, "tx[0].colour: unknown key"),
        ({"tx": [{"id": "0001"}, {"id": "0001"}]}, "tx[1].id: 0001 is listed twice"),
        ({"tx": [{"id": "0001", "stream": "maybe"}]}, "tx[0].stream: expected ok or fault"),
        ({"seats": [{"name": "s", "screens": ["5001", "5999"]}]},
         "seats[0].screens[1]: no Rx 5999"),
        ({"seats": [{"name": "s", "screens": ["5001", "5001"]}]},
         "seats[0].screens[1]: '5001' is listed twice"),
        ({"seats": [{"name": "s", "screens": [f"50{i:02d}" for i in range(1, 10)]}]},
         "seats[0].screens: takes at most 8 item(s)"),
        ({"seats": [{"name": "5001", "screens": ["5002"]}]}, "seats[0].name: '5001' is an Rx ID"),
        ({"walls": [{"name": "w", "rows": 2, "cols": 2, "tiles": ["5011", "5012"]}]},
         "walls[0].tiles: needs rows x cols = 4 Rx IDs, got 2"),
        ({"latency_ms": [20, 5]}, "latency_ms: low 20 is above high 5"),
        ({"latency_ms": "fast"}, "latency_ms: expected milliseconds"),
        ({"base_port": 60000}, "base_port: 60000 is not in 0..55536"),
        ({"unix_dir": "links"}, "unix_dir: 'links' is not an absolute directory path"),
        ({"unix_dir": "/tmp/" + "x" * 100}, "unix_dir: "),
        ({"unix_dir": "/tmp/links", "pty": True}, "unix_dir: give either unix_dir, pty or"),
        ({"rx": [{"id": "5001", "serial": "SIM-TX-0001"}], "tx": [{"id": "0001"}]},
         "rx[0].serial: SIM-TX-0001 is also the serial of 0001"),
    ],
)
def test_problems_name_the_key_path(change: dict[str, Any], expected: str) -> None:
    cfg = room_config()
    cfg.update(change)
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert expected in str(info.value)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"tx": [{"id": "0001", "heads": 0}], "rx": [{"id": "1"}], "junk": 1})
    text = str(info.value)
    assert "tx[0].heads" in text and "rx[0].id" in text and "junk: unknown key" in text


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tx: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line"):
        load_config(bad)


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "SIMULATOR.md").read_text("utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    fabric = build_fabric(load_config(path))
    assert fabric.tx["0001"].video == [True, False]
    assert fabric.seats["seat-A"].screens == ["5001", "5002"]
