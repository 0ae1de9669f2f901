"""Fixtures of the alert tests: the demo's depth sensors, a service with the MQTT bridge, readings written as the
writers write them (``observations.write_batch``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from cim_service.core.settings import Settings
from cim_service.store import observations
from cim_service.store.db import libpq_url
from cim_service.store.observations import Observation
from tests.live.conftest import depth_sensors, live_settings  # noqa: F401 - fixtures shared with the live tests


@pytest.fixture
def alert_settings(live_settings: Settings) -> Settings:  # noqa: F811
    """The live service's settings (the bridge on the session broker)."""
    return live_settings


class Writer:
    """Write readings of datastreams as the bridge does (COPY + latest upsert, one transaction), in time order."""

    def __init__(self, url: str):
        self.url = libpq_url(url)
        self.t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    def write(self, datastream: int, *values: float) -> None:
        with psycopg.connect(self.url) as conn:
            for v in values:
                self.t += timedelta(seconds=1)
                with conn.transaction():
                    observations.write_batch(conn, [Observation(datastream, self.t, float(v))])


@pytest.fixture
def writer(demo_database_url) -> Writer:
    return Writer(demo_database_url)


def fresh_sensor(engine, sensors, used: set[int] = set()) -> tuple[int, int, str]:  # noqa: B006 - one per session
    """A depth sensor (datastream, feature id, site kind) with no alert and no reading yet in this session."""
    with engine.connect() as conn:
        busy = set(conn.execute(sa.text("SELECT datastream_id FROM cim_sta.latest")).scalars())
    for ds, fid, kind in sensors:
        if ds not in busy and ds not in used:
            used.add(ds)
            return ds, fid, kind
    raise AssertionError("no unused depth sensor left")
