"""The embedded default database: a project-local PostgreSQL + PostGIS cluster.

When ``CIM_DATABASE_URL`` is unset the service runs its own cluster with its data directory under the
project (``.cim/pgdata``), listening on loopback only, on its own port. PostgreSQL refuses to run as root,
so when we are root the server binaries run as the ``postgres`` system user and the data directory belongs
to it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from cim_service.core.settings import Settings
from cim_service.store.localserver import folder_lock, port_open

DB_NAME = "cim"
DB_USER = "cim"
POSTGIS_HINT = (
    "PostGIS is not installed for PostgreSQL {major}: install it with "
    "`apt-get update && apt-get install -y postgresql-{major}-postgis-3` (Debian/Ubuntu)"
)


class LocalDatabaseError(RuntimeError):
    """The project-local cluster cannot be created or started."""


def resolve_database_url(settings: Settings) -> str:
    """Database URL of ``settings``: the configured one, else the project-local cluster's (asks its server)."""
    if settings.database_url:
        return settings.database_url
    return LocalCluster.from_settings(settings).url()


def find_pg_bindir() -> Path:
    """Return the newest PostgreSQL server bin directory on this machine."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
        candidates.extend(v / "bin" for v in versions)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise LocalDatabaseError(
        "no PostgreSQL server found (initdb, pg_ctl): install it with "
        "`apt-get install -y postgresql postgresql-15-postgis-3`, or set CIM_DATABASE_URL"
    )


def postgis_available(bindir: Path) -> bool:
    """Tell whether the PostGIS extension files are installed for this server."""
    sharedir = subprocess.run(
        [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip() if (bindir / "pg_config").exists() else ""
    share = Path(sharedir) if sharedir else Path(f"/usr/share/postgresql/{bindir.parent.name}")
    return any((share / "extension").glob("postgis.control"))


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in a folder of the project."""

    home: Path
    port: int
    #: False: PostgreSQL's built-in defaults (work_mem 4 MB, ...), like a user's own server; tests and
    #: benchmarks use it to check that the SQL does not depend on the tuning
    tuned: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalCluster:
        """Build the cluster description from settings."""
        return cls(home=Path(settings.home), port=settings.local_db_port)

    @property
    def datadir(self) -> Path:
        """Data directory of the cluster."""
        return self.home / "pgdata"

    @property
    def logfile(self) -> Path:
        """Server log file."""
        return self.home / "postgres.log"

    def url(self, dbname: str = DB_NAME) -> str:
        """Connection URL of the cluster's running server (loopback TCP, the port it runs on).

        :class:`LocalDatabaseError` when the cluster does not exist or its server is not running: the configured
        port then names no server of ours (nothing, or another checkout's cluster, may listen there), so no URL is
        made up from it.
        """
        port = self.running_port()
        if port is None:
            raise LocalDatabaseError(self._not_running())
        return f"postgresql://{DB_USER}@127.0.0.1:{port}/{dbname}"

    def _not_running(self) -> str:
        """Why there is no URL, and what to do."""
        state = "is not running" if (self.datadir / "PG_VERSION").exists() else "does not exist yet"
        taken = (f"; port {self.port} is held by another server, not this cluster" if self.port_in_use() else "")
        return (f"the project-local cluster in {self.datadir} {state}{taken}: start it with `cim db start` "
                f"(or set CIM_DATABASE_URL)")

    # -- process helpers -------------------------------------------------------------------------
    def _run_as_owner(self, args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the ``postgres`` user when we are root."""
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)

    def _owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:  # pragma: no cover - depends on the machine
            raise LocalDatabaseError(
                "running as root needs the `postgres` system user (apt package postgresql)"
            ) from exc
        return entry.pw_uid, entry.pw_gid

    def _lock(self) -> AbstractContextManager[None]:
        """Serialise start/stop between processes (tests and servers start concurrently)."""
        return folder_lock(self.home)

    def running_port(self) -> int | None:
        """Port of this cluster's running server (from ``postmaster.pid``), or None when it is not running."""
        pidfile = self.datadir / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 4 or not lines[3].strip().isdigit():
            return None
        port = int(lines[3])
        bindir = find_pg_bindir()
        ready = subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False)
        return port if ready.returncode == 0 else None

    def is_running(self) -> bool:
        """Tell whether the cluster's server answers."""
        return self.running_port() is not None

    def port_in_use(self) -> bool:
        """Tell whether something listens on the configured port of 127.0.0.1."""
        return port_open(self.port)

    def status(self) -> dict[str, object]:
        """Describe the cluster for `cim db status`."""
        port = self.running_port()
        return {
            "datadir": str(self.datadir),
            "initialised": (self.datadir / "PG_VERSION").exists(),
            "running": port is not None,
            "url": self.url() if port is not None else "none (not running)",
        }

    def _initdb(self, bindir: Path) -> None:
        owner = self._owner()
        self.datadir.mkdir(parents=True, exist_ok=True)
        if owner:
            # the postgres user must reach the folder and own the data directory
            for parent in [self.home, *self.home.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
            os.chown(self.home, *owner)
            os.chown(self.datadir, *owner)
        os.chmod(self.datadir, 0o700)
        res = self._run_as_owner(
            [str(bindir / "initdb"), "-D", str(self.datadir), "-U", DB_USER, "-E", "UTF8",
             "--locale=C.UTF-8", "-A", "trust"]
        )
        if res.returncode != 0:
            raise LocalDatabaseError(f"initdb failed in {self.datadir}: {res.stderr.strip() or res.stdout.strip()}")
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# minhang-cim project-local cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.datadir}'\n"
            )
            if self.tuned:
                fh.write(
                    "max_connections = 200\n"
                    "shared_buffers = 512MB\n"
                    "work_mem = 32MB\n"
                    "maintenance_work_mem = 256MB\n"
                    "synchronous_commit = on\n"
                    "jit = off\n"
                    "max_wal_size = 2GB\n"
                )

    def start(self, timeout: float = 60.0) -> str:
        """Create the cluster if needed, start it, make sure the database and PostGIS exist; return the URL."""
        bindir = find_pg_bindir()
        if not postgis_available(bindir):
            raise LocalDatabaseError(POSTGIS_HINT.format(major=bindir.parent.name))
        with self._lock():
            if not (self.datadir / "PG_VERSION").exists():
                self._initdb(bindir)
            running = self.running_port()
            if running is not None:
                self.port = running  # started earlier, possibly on another port: use it
            else:
                self._check_port_free()
                logfile = self.logfile
                owner = self._owner()
                logfile.touch(exist_ok=True)
                if owner:
                    os.chown(logfile, *owner)
                res = self._run_as_owner(
                    [str(bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(logfile), "-w",
                     "-t", str(int(timeout)), "-o", f"-p {self.port}", "start"]
                )
                if res.returncode != 0:
                    tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
                    raise LocalDatabaseError(f"pg_ctl start failed: {res.stderr.strip()}\n{tail}")
            self._wait_ready(bindir, timeout)
            self._ensure_database(bindir)
        return self.url()

    def _check_port_free(self) -> None:
        """Refuse to start when another server already listens on our port."""
        if self.port_in_use():
            raise LocalDatabaseError(
                f"port {self.port} on 127.0.0.1 is taken by another server (not this project's cluster in "
                f"{self.datadir}); stop it or choose another port with CIM_LOCAL_DB_PORT"
            )

    def _wait_ready(self, bindir: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
            ).returncode == 0:
                return
            time.sleep(0.2)
        raise LocalDatabaseError(f"the local cluster did not become ready within {timeout:.0f} s; see {self.logfile}")

    def _psql(self, bindir: Path, sql: str, dbname: str = "postgres") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, "-d", dbname,
             "-v", "ON_ERROR_STOP=1", "-tAc", sql],
            capture_output=True, text=True, check=False,
        )

    def _ensure_database(self, bindir: Path) -> None:
        exists = self._psql(bindir, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'")
        if exists.returncode != 0:
            raise LocalDatabaseError(f"cannot query the local cluster: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            res = self._psql(bindir, f"CREATE DATABASE {DB_NAME}")
            if res.returncode != 0 and "already exists" not in res.stderr:
                raise LocalDatabaseError(f"CREATE DATABASE failed: {res.stderr.strip()}")
        res = self._psql(bindir, "CREATE EXTENSION IF NOT EXISTS postgis", dbname=DB_NAME)
        if res.returncode != 0:
            raise LocalDatabaseError(
                f"{POSTGIS_HINT.format(major=bindir.parent.name)} (server said: {res.stderr.strip()})"
            )

    def stop(self) -> bool:
        """Stop the cluster; return whether it was running."""
        if not (self.datadir / "PG_VERSION").exists():
            return False
        bindir = find_pg_bindir()
        with self._lock():
            if not self.is_running():
                return False
            res = self._run_as_owner([str(bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"])
            if res.returncode != 0:
                raise LocalDatabaseError(f"pg_ctl stop failed: {res.stderr.strip()}")
            return True
