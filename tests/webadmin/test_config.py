"""Server configuration: YAML + environment + overrides, errors name the key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvm_protocol.yamlconf import ConfigError
from webadmin.config import ServerConfig, load_config


def test_defaults_and_file(tmp_path: Path) -> None:
    assert load_config(env={}) == ServerConfig()
    cfg_file = tmp_path / "server.yaml"
    cfg_file.write_text("data_dir: /srv/kvm\nport: 9000\ndevice_timeout_s: 5\n")
    cfg = load_config(cfg_file, env={})
    assert (cfg.data_dir, cfg.port, cfg.device_timeout_s, cfg.host) == (
        "/srv/kvm", 9000, 5, "127.0.0.1")
    assert cfg.db_url() == "sqlite:////srv/kvm/kvm.db"


def test_environment_then_command_line_win(tmp_path: Path) -> None:
    cfg_file = tmp_path / "server.yaml"
    cfg_file.write_text("port: 9000\nhost: 0.0.0.0\n")
    cfg = load_config(cfg_file, env={"KVM_SERVER_PORT": "9100", "KVM_SERVER_LOG_LEVEL": "debug"},
                      overrides={"host": "127.0.0.2", "port": None})
    assert (cfg.port, cfg.host, cfg.log_level) == (9100, "127.0.0.2", "debug")


@pytest.mark.parametrize(
    ("yaml_text", "env", "needle"),
    [
        ("port: 70000\n", {}, "port: 70000 is not in"),
        ("port: '80'\n", {}, "port"),
        ("log_level: loud\n", {}, "log_level"),
        ("colour: red\n", {}, "colour: unknown key"),
        ("database_url: mysql://x\n", {}, "database_url"),
        ("- a\n", {}, "mapping"),
        ("port: [\n", {}, "line"),
        ("", {"KVM_SERVER_PORT": "eighty"}, "KVM_SERVER_PORT (port)"),
        ("", {"KVM_SERVER_NOPE": "1"}, "KVM_SERVER_NOPE"),
        ("sqlite_synchronous: off\n", {}, "sqlite_synchronous"),
    ],
)
def test_errors_name_key_and_value(tmp_path: Path, yaml_text: str, env: dict[str, str],
                                   needle: str) -> None:
    cfg_file = tmp_path / "server.yaml"
    cfg_file.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, env=env)
    assert needle in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", env={})
