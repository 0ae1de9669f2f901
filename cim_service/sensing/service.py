"""The data plane inside ``cim serve``: the MQTT bridge and the maintenance of the observations tables.

Started from the app's lifespan (in a thread: it may start the project-local broker). One process of a host runs
it: with several workers, the first to take the lock file ``<home>/sensing.lock`` runs the bridge, the others
none (one persistent MQTT session, one writer). Every ``CIM_ALERT_SWEEP_S`` (30 s) it raises the alerts of
sensors gone silent (``sensing.alerts.sweep``); every ``MAINTENANCE_S`` it creates the partitions of the coming
days and folds days older than ``CIM_SENSOR_RAW_DAYS`` into hourly aggregates (the same as ``cim sensors
compact``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from cim_service.core.settings import Settings
from cim_service.sensing import alerts
from cim_service.sensing.bridge import Bridge
from cim_service.sensing.broker import resolve_mqtt_url
from cim_service.store import observations
from cim_service.store.db import make_engine

log = logging.getLogger("cim.sensing")
MAINTENANCE_S = 3600.0


def maintain(engine: sa.engine.Engine, settings: Settings, now: datetime | None = None
             ) -> observations.CompactionReport:
    """Create the partitions from the raw retention to three days ahead; compact what is older."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        report = observations.compact(conn, now=now, raw_days=settings.sensor_raw_days)
        with conn.begin():
            observations.ensure_partitions_around(conn, now, back_days=settings.sensor_raw_days)
    return report


class SensingService:
    """Bridge + maintenance thread of one service process."""

    def __init__(self, settings: Settings, database_url: str, *,
                 on_committed: Callable[[int], None] | None = None,
                 on_rejected: Callable[[str, int], None] | None = None):
        self.settings = settings
        self.database_url = database_url
        self.on_committed = on_committed
        self.on_rejected = on_rejected
        self.bridge: Bridge | None = None
        self._lockfile = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine = None

    def _take_lock(self) -> bool:
        home = self.settings.home
        home.mkdir(parents=True, exist_ok=True)
        fh = open(home / "sensing.lock", "w")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.write(str(os.getpid()))
        fh.flush()
        self._lockfile = fh
        return True

    def start(self) -> bool:
        """Start the bridge and the maintenance (False: another process of this home runs them)."""
        if not self._take_lock():
            log.info("sensing runs in another process of %s", self.settings.home)
            return False
        self._engine = make_engine(self.database_url, pool_size=1, max_overflow=0)
        try:
            maintain(self._engine, self.settings)
        except sa.exc.OperationalError as exc:
            log.warning("sensing maintenance postponed: %s", str(exc).splitlines()[0])
        url = resolve_mqtt_url(self.settings)
        self.bridge = Bridge(self.settings, self.database_url, url, on_committed=self.on_committed,
                             on_rejected=self.on_rejected).start(wait_s=5.0)
        self._thread = threading.Thread(target=self._maintenance, name="cim-sensing-maintenance", daemon=True)
        self._thread.start()
        return True

    def _maintenance(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.settings.alert_sweep_s):
            try:  # the offline sweep of the alerts, every CIM_ALERT_SWEEP_S
                raised = alerts.sweep(self._engine)
                if raised:
                    log.info("%d sensors went offline", raised)
            except Exception:  # noqa: BLE001 - tried again at the next round
                log.exception("offline sweep of the alerts failed")
            if time.monotonic() - last < MAINTENANCE_S:
                continue
            last = time.monotonic()
            try:
                report = maintain(self._engine, self.settings)
                if report.days_compacted:
                    log.info("compacted %d days of observations", len(report.days_compacted))
            except Exception:  # noqa: BLE001 - tried again at the next round
                log.exception("sensing maintenance failed")

    def stop(self) -> None:
        """Stop the bridge (the broker keeps what is not acknowledged) and the maintenance."""
        self._stop.set()
        if self.bridge is not None:
            self.bridge.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._engine is not None:
            self._engine.dispose()
        if self._lockfile is not None:
            self._lockfile.close()
