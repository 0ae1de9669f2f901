"""Fixtures of the sensing tests: datastreams of the demo, a bridge on the session broker, publishing helpers."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from cim_service.core.settings import Settings
from cim_service.sensing.bridge import Bridge
from cim_service.sensing.broker import MqttEndpoint

MOSQUITTO_PUB = "/usr/bin/mosquitto_pub"


@pytest.fixture(scope="session")
def depth_streams(demo_database_url, engine) -> list[int]:
    """Ids of the water-depth datastreams of the demo's waterlogging sensors."""
    with engine.connect() as conn:
        ids = conn.execute(sa.text(
            "SELECT d.id FROM cim_sta.datastream d JOIN cim_sta.observed_property p ON p.id = d.observed_property_id "
            "WHERE p.catalog_key = 'waterlogging_sensors/water_depth' ORDER BY d.id")).scalars().all()
    assert len(ids) > 10
    return list(ids)


@pytest.fixture
def sensing_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"sensor_batch_wait_ms": 50, "sensor_rate_per_s": 1000.0,
                                       "sensor_rate_burst": 10_000.0})


@pytest.fixture
def bridge_factory(demo_database_url, mqtt_url, sensing_settings) -> Callable[..., Bridge]:
    started: list[Bridge] = []

    def make(client_id: str | None = None, settings: Settings | None = None, **kw) -> Bridge:
        b = Bridge(settings or sensing_settings, demo_database_url, mqtt_url,
                   client_id=client_id or f"test-bridge-{uuid.uuid4().hex[:8]}", **kw)
        b.start()
        assert b.wait_subscribed(10), "bridge did not subscribe"
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def mosquitto_pub(mqtt_url: str, topic: str, message: bytes | str, qos: int = 1) -> None:
    ep = MqttEndpoint.parse(mqtt_url)
    data = message.encode() if isinstance(message, str) else message
    subprocess.run([MOSQUITTO_PUB, "-h", ep.host, "-p", str(ep.port), "-u", ep.username, "-P", ep.password,
                    "-q", str(qos), "-t", topic, "-s"], input=data, check=True, timeout=20)


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)
