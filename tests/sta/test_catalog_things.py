"""The features of the catalog's sensing layers are Things of the API (demo data, synced by the ingest)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.sta.conftest import STA


def test_sensing_layer_features_are_things_with_datastreams(demo_database_url, api, engine, catalog):
    for spec in catalog.sensing_layers:
        with engine.connect() as conn:
            n = conn.execute(sa.text("SELECT count(*) FROM cim_sta.thing WHERE layer_id = :l"),
                             {"l": spec.id}).scalar_one()
            features = conn.execute(sa.text(f"SELECT count(*) FROM {spec.qualified_table}")).scalar_one()
        assert n == features > 0, spec.id
        doc = api.get(f"{STA}/Things", params={"$filter": f"properties/layer eq '{spec.id}'", "$count": "true",
                                               "$top": "2", "$expand": "Datastreams($expand=ObservedProperty),"
                                                                       "Locations"}).json()
        assert doc["@iot.count"] == n
        thing = doc["value"][0]
        units = {d["ObservedProperty"]["name"]: d["unitOfMeasurement"]["symbol"] for d in thing["Datastreams"]}
        declared = {p.name: p.unit.symbol for p in spec.sensing.observed_properties}
        assert set(units.values()) <= set(declared.values()) and units
        assert thing["Locations"][0]["location"]["type"] == "Point"
