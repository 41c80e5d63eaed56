"""Server configuration: a YAML file validated by ``kvm_protocol.yamlconf``, then environment
overrides (``KVM_SERVER_<KEY>``), then command-line overrides.

    data_dir: /var/lib/kvm-seat     # holds kvm.db (SQLite) and secret_key
    database_url: null              # default sqlite:///<data_dir>/kvm.db; or postgresql://...
    host: 127.0.0.1
    port: 8080
    device_timeout_s: 10            # a device not heard from for this long is offline
    long_poll_max_s: 60             # upper bound of ?timeout= on device/watch
    log_level: info
    log_format: json                # json | text (key=value)
    admin_token_ttl_s: 43200
    sqlite_synchronous: full        # full: commits survive power loss; normal: process crash only
    check_lock_holds: false         # development aid: log greenlets that yield holding the
                                    # write lock (webadmin.lockcheck; the lab's tests)

An environment value is read as a YAML scalar (``KVM_SERVER_PORT=9000`` is the integer
9000) and validated like the file, so errors name the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from kvm_protocol.yamlconf import (
    Bool,
    Check,
    ConfigError,
    Enum,
    Int,
    Invalid,
    Maybe,
    Option,
    Problem,
    Section,
    Str,
    load_yaml,
    validate,
)

ENV_PREFIX = "KVM_SERVER_"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: str = "kvm-data"
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    device_timeout_s: int = 10
    long_poll_max_s: int = 60
    log_level: str = "info"
    log_format: str = "json"
    admin_token_ttl_s: int = 12 * 3600
    sqlite_synchronous: str = "full"
    check_lock_holds: bool = False

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def secret_key_file(self) -> Path:
        return self.data_path / "secret_key"

    def db_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        from webadmin.db import sqlite_url

        return self.database_url or sqlite_url(self.data_path)

    def with_overrides(self, **values: Any) -> ServerConfig:
        """A copy with the given keys replaced (validated like the file)."""
        data = asdict(self)
        data.update({k: v for k, v in values.items() if v is not None})
        return from_mapping(data)


def _url(value: str) -> str:
    if not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")):
        raise Invalid(f"{value!r} is not a sqlite:// or postgresql:// URL")
    return value


def _schema() -> Section[ServerConfig]:
    d = ServerConfig()
    return Section(
        {
            "data_dir": Option(Str(min_len=1), default=d.data_dir),
            "database_url": Option(Maybe(Check(Str(min_len=1), _url)), default=None),
            "host": Option(Str(min_len=1, max_len=255), default=d.host),
            "port": Option(Int(0, 65535), default=d.port),
            "device_timeout_s": Option(Int(1, 3600), default=d.device_timeout_s),
            "long_poll_max_s": Option(Int(1, 600), default=d.long_poll_max_s),
            "log_level": Option(Enum("debug", "info", "warning", "error"), default=d.log_level),
            "log_format": Option(Enum("json", "text"), default=d.log_format),
            "admin_token_ttl_s": Option(Int(60, 30 * 86400), default=d.admin_token_ttl_s),
            "sqlite_synchronous": Option(Enum("full", "normal"), default=d.sqlite_synchronous),
            "check_lock_holds": Option(Bool(), default=d.check_lock_holds),
        },
        into=ServerConfig,
    )


KEYS = tuple(f.name for f in fields(ServerConfig))


def from_mapping(data: Mapping[str, Any]) -> ServerConfig:
    """Validate a mapping (as from YAML); ConfigError names each bad key and value."""
    return validate(_schema(), dict(data))


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``KVM_SERVER_<KEY>`` values, parsed as YAML scalars; unknown names are errors."""
    out: dict[str, Any] = {}
    problems = []
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in KEYS:
            problems.append(Problem(name, f"unknown setting (known: {', '.join(KEYS)})"))
            continue
        try:
            value = load_yaml(raw, name=name) if raw.strip() else None
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        out[key] = value
    if problems:
        raise ConfigError(problems)
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """File (optional) < environment < `overrides` (command line); validated as a whole."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = load_yaml(Path(path))
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([Problem("", f"{path}: expected a mapping at the top level")])
        data.update(loaded)
    from_env = env_overrides(os.environ if env is None else env)
    data.update(from_env)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return from_mapping(data)
    except ConfigError as e:
        # Say where a bad value came from when it was the environment.
        problems = [
            replace(p, path=f"{ENV_PREFIX}{p.path.upper()} ({p.path})")
            if p.path in from_env and p.path not in (overrides or {})
            else p
            for p in e.problems
        ]
        raise ConfigError(problems) from None
