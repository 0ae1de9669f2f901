"""The real frost-sta-client (written for FROST-Server) drives `cim serve` unchanged over HTTP Basic auth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import frost_sta_client as fsc
import geojson
import pytest
import requests

from cim_service.store import observations
from tests.routes.serving import cim_serve

STA = "/sta/v1.1"


@pytest.fixture(scope="module")
def server(settings, tmp_path_factory) -> Iterator[str]:
    """`cim serve` on a free loopback port against the session database (no MQTT bridge: HTTP only here)."""
    logs = tmp_path_factory.mktemp("sta-serve")
    with cim_serve(settings.database_url, settings.home, logs, env={"CIM_SENSOR_BRIDGE": "off"}) as url:
        yield url


def _service(url: str, key: str | None) -> fsc.SensorThingsService:
    auth = fsc.AuthHandler(username="frost", password=key) if key else None
    return fsc.SensorThingsService(url + STA, auth_handler=auth)


def test_frost_client_creates_posts_and_queries(server, keys, engine):
    service = _service(server, keys["sensor"])
    location = fsc.Location(name="虹桥路积水点", description="low kerb at the bus stop",
                            encoding_type="application/geo+json", location=geojson.Point((121.3712, 31.1951)))
    thing = fsc.Thing(name="frost-client station", description="created by frost-sta-client",
                      properties={"site": "bus_stop"}, locations=[location])
    unit = fsc.UnitOfMeasurement(name="centimetre", symbol="cm", definition="http://qudt.org/vocab/unit/CentiM")
    sensor = fsc.Sensor(name="ultrasonic gauge", description="depth gauge", encoding_type="text/html",
                        metadata="https://example.invalid/gauge")
    prop = fsc.ObservedProperty(name="water depth", definition="http://example.invalid/depth",
                                description="standing water")
    datastream = fsc.Datastream(name="frost-client depth", description="depth at the kerb",
                                observation_type="http://www.opengis.net/def/observationType/OGC-OM/2.0/"
                                                 "OM_Measurement",
                                unit_of_measurement=unit, sensor=sensor, observed_property=prop)
    thing.datastreams = [datastream]
    service.create(thing)
    assert isinstance(thing.id, int)

    datastreams = service.things().find(thing.id).get_datastreams().query().list()
    ds = datastreams.entities[0]
    assert ds.name == "frost-client depth" and ds.unit_of_measurement.symbol == "cm"

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    created = []
    for i in range(12):
        obs = fsc.Observation(result=float(i * 3), phenomenon_time=(start + timedelta(seconds=30 * i)).isoformat(),
                              datastream=ds)
        service.create(obs)
        created.append(obs.id)
    assert created[0] == observations.observation_id(ds.id, start)
    with engine.connect() as conn:
        assert observations.count(conn, ds.id) == 12
        assert observations.latest(conn, ds.id)["result"] == 33.0

    # the dataArray extension through the client's DataArrayDocument
    dav = fsc.DataArrayValue()
    dav.datastream = ds
    dav.components = {fsc.DataArrayValue.Property.PHENOMENON_TIME, fsc.DataArrayValue.Property.RESULT}
    for i in range(5):
        dav.add_observation(fsc.Observation(result=100.0 + i, phenomenon_time=(
            start + timedelta(minutes=7, seconds=i)).isoformat(), datastream=ds))
    doc = fsc.DataArrayDocument()
    doc.add_data_array_value(dav)
    links = service.observations().create(doc)
    assert len(links) == 5
    with engine.connect() as conn:
        assert observations.count(conn, ds.id) == 17

    # queries with filters, ordering and expands, as a FROST user writes them
    hits = service.things().query().filter("name eq 'frost-client station'") \
        .expand("Datastreams($expand=Observations($top=3;$orderby=phenomenonTime desc)),Locations").list()
    assert [t.id for t in hits.entities] == [thing.id]
    expanded = hits.entities[0].datastreams.entities[0].observations.entities
    assert [o.result for o in expanded] == [104.0, 103.0, 102.0]
    assert hits.entities[0].locations.entities[0].location["coordinates"] == [121.3712, 31.1951]

    high = service.observations().query().filter(f"result ge 100 and Datastream/@iot.id eq {ds.id}") \
        .orderby("result", "ASC").list()
    assert [o.result for o in high.entities] == [100.0, 101.0, 102.0, 103.0, 104.0]

    near = service.things().query().filter(
        "geo.intersects(Locations/location, geography'POLYGON((121.37 31.19, 121.38 31.19, 121.38 31.20, "
        "121.37 31.20, 121.37 31.19))')").list()
    assert thing.id in [t.id for t in near.entities]

    # paging: the client follows @iot.nextLink when iterating
    paged = service.observations().query().filter(f"Datastream/@iot.id eq {ds.id}").top(4).list()
    assert len([o for o in paged]) == 17

    # update and delete through the client
    thing.description = "updated by frost-sta-client"
    service.update(thing)
    assert service.things().find(thing.id).description == "updated by frost-sta-client"
    service.delete(service.things().find(thing.id))
    assert requests.get(f"{server}{STA}/Things({thing.id})", timeout=10).status_code == 404
    with engine.connect() as conn:
        assert observations.count(conn, ds.id) == 0


def test_frost_client_without_the_scope_is_refused(server, keys):
    thing = fsc.Thing(name="refused", description="no scope")
    for key in (None, keys["analyst"], "cim_not_a_key"):
        with pytest.raises(Exception) as err:
            _service(server, key).create(thing)
        assert any(code in str(err.value) for code in ("401", "403")), err.value
