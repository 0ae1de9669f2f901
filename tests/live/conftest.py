"""Fixtures of the live-state tests: a service running the MQTT bridge on the session broker."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from cim_service.core.settings import Settings
from cim_service.sensing.broker import MqttEndpoint

MOSQUITTO_PUB = "/usr/bin/mosquitto_pub"


@pytest.fixture(scope="session")
def depth_sensors(demo_database_url, engine) -> list[tuple[int, int, str]]:
    """(datastream id, feature id, site kind) of the demo's waterlogging sensors' water depth."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT d.id, w.id, w.site_kind FROM cim.waterlogging_sensors w "
            "JOIN cim_sta.datastream d ON d.catalog_key = 'waterlogging_sensors|' || w.feature_key || '|water_depth' "
            "ORDER BY w.id")).all()
    assert len(rows) > 10
    return [tuple(r) for r in rows]


@pytest.fixture
def live_settings(settings: Settings, mqtt_url: str, tmp_path) -> Settings:
    return settings.model_copy(update={"sensor_batch_wait_ms": 20, "sensor_rate_per_s": 1000.0,
                                       "sensor_rate_burst": 10_000.0, "sensor_bridge": True, "mqtt_url": mqtt_url,
                                       "home": tmp_path, "gap_refresh": False})


def publish(mqtt_url: str, datastream: int, payload: str) -> None:
    """Publish one reading with Debian's ``mosquitto_pub`` (QoS 1), as a device does."""
    ep = MqttEndpoint.parse(mqtt_url)
    subprocess.run([MOSQUITTO_PUB, "-h", ep.host, "-p", str(ep.port), "-u", ep.username, "-P", ep.password,
                    "-q", "1", "-t", f"v1.1/Datastreams({datastream})/Observations", "-s"],
                   input=payload.encode(), check=True, timeout=20)


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)
