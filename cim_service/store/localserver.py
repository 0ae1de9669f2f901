"""What the project-local servers (the PostgreSQL cluster, the Mosquitto broker) share: a folder lock and ports.

Both live in a folder under ``CIM_HOME`` and are started by whichever process needs them first (tests, `cim
serve`, `cim db start`, `cim broker start`); the folder lock serialises their start and stop across processes.
"""

from __future__ import annotations

import fcntl
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def folder_lock(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``home/.lock`` (created with its folder) for the duration of the block."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """Tell whether something listens on ``port`` of 127.0.0.1."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
