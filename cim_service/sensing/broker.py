"""The MQTT broker: the configured one (``CIM_MQTT_URL``) or a project-local Eclipse Mosquitto.

When ``CIM_MQTT_URL`` is unset the project runs its own broker, like its own PostgreSQL cluster
(``store/localdb.py``): ``/usr/sbin/mosquitto`` with its configuration, password file, persistence folder and log
under ``.cim/mosquitto/``, listening on loopback only, on ``CIM_LOCAL_MQTT_PORT`` (18839; a free port when another
server holds it). Anonymous clients are refused: the service account ``cim`` has a generated password kept in
``.cim/mosquitto/service.secret`` (mode 0600); more device accounts are added with :meth:`LocalBroker.add_user`.

The broker keeps QoS 1 messages of persistent sessions (the bridge's) across restarts, and queues up to
:data:`MAX_QUEUED` of them per offline client, so readings published while the bridge or the database is away
are delivered when it is back.
"""

from __future__ import annotations

import getpass
import os
import secrets
import signal
import subprocess
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from cim_service.core.settings import Settings
from cim_service.store.localserver import folder_lock, free_port, port_open

if TYPE_CHECKING:
    pass

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")
SERVICE_USER = "cim"
MAX_QUEUED = 5_000_000
INSTALL_HINT = "Eclipse Mosquitto is not installed: `apt-get install -y mosquitto mosquitto-clients` (Debian)"


class BrokerError(RuntimeError):
    """The project-local broker cannot be configured or started."""


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and as whom to connect."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        """Parse ``mqtt://user:password@host:port`` (``mqtts://`` for TLS)."""
        u = urlsplit(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(f"not an MQTT URL: {u.scheme}://{u.hostname or ''}")
        return cls(host=u.hostname, port=u.port or (8883 if u.scheme == "mqtts" else 1883),
                   username=unquote(u.username) if u.username else None,
                   password=unquote(u.password) if u.password else None, tls=u.scheme == "mqtts")

    def url(self) -> str:
        """The endpoint as a URL (with its credentials)."""
        auth = ""
        if self.username:
            auth = quote(self.username, safe="") + (f":{quote(self.password, safe='')}" if self.password else "") + "@"
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}"


def resolve_mqtt_url(settings: Settings) -> str:
    """The broker URL of ``settings``: the configured one, else the project-local broker's (started if needed)."""
    if settings.mqtt_url:
        return settings.mqtt_url
    return LocalBroker.from_settings(settings).start()


@dataclass
class LocalBroker:
    """A Mosquitto broker in a folder of the project."""

    home: Path
    port: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBroker:
        """Build the broker description from settings."""
        return cls(home=Path(settings.home) / "mosquitto", port=settings.local_mqtt_port)

    # -- files --------------------------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        """Configuration file."""
        return self.home / "mosquitto.conf"

    @property
    def passwd(self) -> Path:
        """Password file (hashed)."""
        return self.home / "passwd"

    @property
    def secret(self) -> Path:
        """The service account's password (0600)."""
        return self.home / "service.secret"

    @property
    def pidfile(self) -> Path:
        """Pid of the running broker."""
        return self.home / "mosquitto.pid"

    @property
    def portfile(self) -> Path:
        """Port the broker was started on."""
        return self.home / "port"

    @property
    def logfile(self) -> Path:
        """Broker log."""
        return self.home / "mosquitto.log"

    @property
    def datadir(self) -> Path:
        """Persistence folder (the retained and queued messages)."""
        return self.home / "data"

    def _lock(self) -> AbstractContextManager[None]:
        return folder_lock(self.home)

    def service_password(self) -> str:
        """The service account's password, generated (0600) on first use."""
        if not self.secret.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24))
        os.chmod(self.secret, 0o600)
        return self.secret.read_text().strip()

    def _users(self) -> dict[str, str]:
        """Plain user -> password of every account (service and devices), kept 0600 beside the hashed file."""
        plain = self.home / "users.secret"
        users = {SERVICE_USER: self.service_password()}
        if plain.exists():
            for line in plain.read_text().splitlines():
                if ":" in line:
                    name, pw = line.split(":", 1)
                    users[name] = pw
        return users

    def _write_passwd(self, users: dict[str, str]) -> None:
        if not MOSQUITTO_PASSWD.exists():
            raise BrokerError(INSTALL_HINT)
        tmp = self.home / "passwd.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{name}:{pw}\n" for name, pw in users.items())
        res = subprocess.run([str(MOSQUITTO_PASSWD), "-U", str(tmp)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise BrokerError(f"mosquitto_passwd failed: {res.stderr.strip() or res.stdout.strip()}")
        os.replace(tmp, self.passwd)

    def add_user(self, name: str, password: str) -> None:
        """Add or change a device account; a running broker reloads its password file."""
        if not name or ":" in name or "\n" in name or "\n" in password:
            raise ValueError("user names hold no ':' or newline, passwords no newline")
        with self._lock():
            users = self._users()
            users[name] = password
            plain = self.home / "users.secret"
            fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.writelines(f"{n}:{p}\n" for n, p in users.items() if n != SERVICE_USER)
            self._write_passwd(users)
            pid = self._pid()
            if pid:
                os.kill(pid, signal.SIGHUP)

    def _write_conf(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "# minhang-cim project-local broker (written by cim broker start)\n"
            "per_listener_settings false\n"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.passwd}\n"
            "persistence true\n"
            f"persistence_location {self.datadir}/\n"
            "autosave_interval 60\n"
            f"pid_file {self.pidfile}\n"
            f"log_dest file {self.logfile}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "connection_messages true\n"
            # keep what offline persistent sessions (the bridge) have not acknowledged
            f"max_queued_messages {MAX_QUEUED}\n"
            "max_queued_bytes 0\n"
            # MQTT 3.1.1 clients: many unacknowledged messages in flight (MQTT 5 clients say their own maximum)
            "max_inflight_messages 0\n"
            "max_packet_size 1048576\n"
            "persistent_client_expiration 14d\n"
            f"user {getpass.getuser()}\n"
        )

    # -- process ------------------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"mosquitto" in cmdline and str(self.conf).encode() in cmdline else None

    def running_port(self) -> int | None:
        """Port of this project's running broker, or None."""
        if self._pid() is None:
            return None
        try:
            port = int(self.portfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return port if port_open(port) else None

    def url(self) -> str:
        """URL of the broker (service account), on the port it runs on if it runs."""
        port = self.running_port() or self.port
        return MqttEndpoint("127.0.0.1", port, SERVICE_USER, self.service_password()).url()

    def start(self, timeout: float = 20.0) -> str:
        """Configure the broker if needed, start it unless it runs, return its URL."""
        if not MOSQUITTO.exists():
            raise BrokerError(INSTALL_HINT)
        with self._lock():
            running = self.running_port()
            if running is not None:
                self.port = running
                return self.url()
            if port_open(self.port):
                self.port = free_port()  # another server holds the configured port
            self._write_passwd(self._users())
            self._write_conf()
            self.portfile.write_text(str(self.port))
            res = subprocess.run([str(MOSQUITTO), "-c", str(self.conf), "-d"], capture_output=True, text=True,
                                 check=False)
            if res.returncode != 0:
                raise BrokerError(f"mosquitto did not start: {res.stderr.strip()} {self._log_tail()}")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._pid() is not None and port_open(self.port):
                    return self.url()
                time.sleep(0.05)
            raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s; "
                              f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "log: " + self.logfile.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the broker (it saves its persistent sessions); return whether it was running."""
        with self._lock():
            pid = self._pid()
            if pid is None:
                return False
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._pid() is None:
                    return True
                time.sleep(0.05)
            raise BrokerError(f"mosquitto (pid {pid}) did not stop within {timeout:.0f} s")

    def status(self) -> dict[str, object]:
        """Describe the broker for `cim broker status`."""
        port = self.running_port()
        return {"home": str(self.home), "configured": self.conf.exists(), "running": port is not None,
                "port": port or self.port, "pid": self._pid(),
                "url": MqttEndpoint("127.0.0.1", port or self.port, SERVICE_USER, "***").url()}
