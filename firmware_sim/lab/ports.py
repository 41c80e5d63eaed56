"""Small network helpers of the lab: free ports and bounded waits for endpoints."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import requests


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it; the caller binds it soon)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def http_answers(url: str, timeout: float = 1.0) -> bool:
    """True if something answers HTTP at `url` (any status)."""
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException:
        return False
    return True


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll `check` until true (→ True), `timeout` passes or `alive` turns false (→ False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if alive is not None and not alive():
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
