"""The SensorThings entities in ``cim_sta``: Things, Locations, HistoricalLocations, Sensors, ObservedProperties,
Datastreams and FeaturesOfInterest, and their link tables.

Tables: ``cim_sta.thing``, ``cim_sta.location``, ``cim_sta.thing_location``, ``cim_sta.historical_location``,
``cim_sta.hist_location_location``, ``cim_sta.sensor``, ``cim_sta.observed_property``, ``cim_sta.datastream``,
``cim_sta.feature_of_interest``.

:func:`sync_layer` makes the features of a sensing layer (``sensing:`` in its YAML) into Things, in the
transaction of the ingest that changed the layer: one Thing per feature (unique by layer id and feature key),
its Location and FeatureOfInterest at the feature's point, the layer's Sensor, one ObservedProperty per declared
property, one Datastream per feature and property. Rows the catalog made carry a ``catalog_key``
(``<layer>``, ``<layer>/<property>``, ``<layer>|<feature_key>[|<property>]``), so a second sync updates them
in place. A moved feature gets a HistoricalLocation. Things of features that left the layer are kept (their
history stays readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.core.catalog import LayerSpec

THING = "cim_sta.thing"
LOCATION = "cim_sta.location"
THING_LOCATION = "cim_sta.thing_location"
HISTORICAL_LOCATION = "cim_sta.historical_location"
HIST_LOCATION_LOCATION = "cim_sta.hist_location_location"
SENSOR = "cim_sta.sensor"
OBSERVED_PROPERTY = "cim_sta.observed_property"
DATASTREAM = "cim_sta.datastream"
FEATURE_OF_INTEREST = "cim_sta.feature_of_interest"


@dataclass
class SyncReport:
    """Rows written by :func:`sync_layer`."""

    things: int
    datastreams: int
    moved: int


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def sync_layer(conn: Connection, spec: LayerSpec) -> SyncReport:
    """Create or update the SensorThings entities of every feature of the sensing layer ``spec``."""
    sensing = spec.sensing
    if sensing is None:
        raise ValueError(f"layer {spec.id} declares no sensing")
    table = spec.qualified_table
    fields = ", ".join(f"'{f}', t.\"{f}\"" for f in spec.field_names)
    conn.execute(sa.text(
        f"""
        INSERT INTO {SENSOR} (name, description, encoding_type, metadata, properties, catalog_key)
        VALUES (:name, :description, :encoding_type, :metadata, CAST(:props AS jsonb), :key)
        ON CONFLICT (catalog_key) DO UPDATE SET name = excluded.name, description = excluded.description,
          encoding_type = excluded.encoding_type, metadata = excluded.metadata, properties = excluded.properties
        """), {**sensing.sensor.model_dump(), "props": _json({"layer": spec.id}), "key": spec.id})
    for prop in sensing.observed_properties:
        conn.execute(sa.text(
            f"""
            INSERT INTO {OBSERVED_PROPERTY} (name, definition, description, properties, catalog_key)
            VALUES (:name, :definition, :description, CAST(:props AS jsonb), :key)
            ON CONFLICT (catalog_key) DO UPDATE SET name = excluded.name, definition = excluded.definition,
              description = excluded.description, properties = excluded.properties
            """), {"name": prop.name, "definition": prop.definition, "description": prop.description,
                   "props": _json({"title_zh": prop.title_zh, "title_en": prop.title_en, "layer": spec.id}),
                   "key": f"{spec.id}/{prop.name}"})
    # Things: one per feature
    things = conn.execute(sa.text(
        f"""
        INSERT INTO {THING} (name, description, properties, layer_id, feature_key)
        SELECT :title || ' ' || t.feature_key, :description,
               jsonb_build_object('layer', CAST(:layer AS text), 'feature_id', t.id, 'fields',
                                  jsonb_strip_nulls(jsonb_build_object({fields}))),
               :layer, t.feature_key
          FROM {table} t
        ON CONFLICT (layer_id, feature_key) DO UPDATE
           SET name = excluded.name, description = excluded.description, properties = excluded.properties
         WHERE {THING}.properties IS DISTINCT FROM excluded.properties OR {THING}.name <> excluded.name
        """), {"title": spec.title_zh, "description": spec.title_en, "layer": spec.id}).rowcount
    # Locations at the feature's point; a moved feature's Thing gets a HistoricalLocation
    moved = conn.execute(sa.text(
        f"""
        WITH up AS (
          INSERT INTO {LOCATION} AS l (name, description, encoding_type, geom, catalog_key)
          SELECT :title || ' ' || t.feature_key, :title, 'application/geo+json', t.geom, :layer || '|' || t.feature_key
            FROM {table} t
          ON CONFLICT (catalog_key) DO UPDATE SET geom = excluded.geom
           WHERE NOT ST_Equals(l.geom, excluded.geom) OR l.geom IS NULL
          RETURNING l.id, l.catalog_key, (xmax <> 0) AS updated
        ), moved AS (
          SELECT th.id AS thing_id, up.id AS location_id
            FROM up JOIN {THING} th ON th.layer_id = :layer
                                   AND th.feature_key = substr(up.catalog_key, length(:layer) + 2)
           WHERE up.updated
        ), hist AS (
          INSERT INTO {HISTORICAL_LOCATION} (thing_id, time) SELECT thing_id, now() FROM moved RETURNING id, thing_id
        ), hl AS (
          INSERT INTO {HIST_LOCATION_LOCATION} (historical_location_id, location_id)
          SELECT hist.id, moved.location_id FROM hist JOIN moved USING (thing_id)
        )
        SELECT count(*) FROM moved
        """), {"layer": spec.id, "title": spec.title_zh}).scalar_one()
    conn.execute(sa.text(
        f"""
        INSERT INTO {FEATURE_OF_INTEREST} AS f (name, description, encoding_type, geom, catalog_key)
        SELECT :title || ' ' || t.feature_key, :title, 'application/geo+json', t.geom, :layer || '|' || t.feature_key
          FROM {table} t
        ON CONFLICT (catalog_key) DO UPDATE SET geom = excluded.geom
         WHERE NOT ST_Equals(f.geom, excluded.geom) OR f.geom IS NULL
        """), {"layer": spec.id, "title": spec.title_zh})
    # links, and a HistoricalLocation for every Thing linked to its Location in this sync
    conn.execute(sa.text(
        f"""
        WITH pairs AS (
          SELECT th.id AS thing_id, l.id AS location_id
            FROM {THING} th JOIN {LOCATION} l ON l.catalog_key = th.layer_id || '|' || th.feature_key
           WHERE th.layer_id = :layer
        ), linked AS (
          INSERT INTO {THING_LOCATION} (thing_id, location_id) SELECT thing_id, location_id FROM pairs
          ON CONFLICT DO NOTHING RETURNING thing_id, location_id
        ), hist AS (
          INSERT INTO {HISTORICAL_LOCATION} (thing_id, time) SELECT thing_id, now() FROM linked
          RETURNING id, thing_id
        )
        INSERT INTO {HIST_LOCATION_LOCATION} (historical_location_id, location_id)
        SELECT hist.id, linked.location_id FROM hist JOIN linked USING (thing_id)
        """), {"layer": spec.id})
    # Datastreams: feature x property (where the property's `where` admits the feature)
    datastreams = 0
    for prop in sensing.observed_properties:
        conds, params = [], {}
        for i, (field, values) in enumerate(prop.where.items()):
            conds.append(f't."{field}"::text = ANY(:w{i})')
            params[f"w{i}"] = [str(v) for v in values]
        where = " AND ".join(conds) or "TRUE"
        datastreams += conn.execute(sa.text(
            f"""
            INSERT INTO {DATASTREAM} AS d (name, description, observation_type, unit_name, unit_symbol,
                                          unit_definition, thing_id, sensor_id, observed_property_id, feature_id,
                                          properties, catalog_key)
            SELECT :pname || ' ' || t.feature_key, :pdesc,
                   'http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement',
                   :uname, :usymbol, :udef, th.id, s.id, op.id, f.id,
                   jsonb_build_object('layer', CAST(:layer AS text), 'property', CAST(:pkey AS text),
                                      'minimum', CAST(:pmin AS float8), 'maximum', CAST(:pmax AS float8)),
                   :layer || '|' || t.feature_key || '|' || :pkey
              FROM {table} t
              JOIN {THING} th ON th.layer_id = :layer AND th.feature_key = t.feature_key
              JOIN {SENSOR} s ON s.catalog_key = :layer
              JOIN {OBSERVED_PROPERTY} op ON op.catalog_key = :layer || '/' || :pkey
              LEFT JOIN {FEATURE_OF_INTEREST} f ON f.catalog_key = :layer || '|' || t.feature_key
             WHERE {where}
            ON CONFLICT (catalog_key) DO UPDATE
               SET name = excluded.name, description = excluded.description, unit_name = excluded.unit_name,
                   unit_symbol = excluded.unit_symbol, unit_definition = excluded.unit_definition,
                   feature_id = excluded.feature_id, properties = excluded.properties
             WHERE (d.name, d.description, d.unit_name, d.unit_symbol, d.unit_definition, d.feature_id, d.properties)
                   IS DISTINCT FROM (excluded.name, excluded.description, excluded.unit_name, excluded.unit_symbol,
                                     excluded.unit_definition, excluded.feature_id, excluded.properties)
            """), {"pname": prop.title_zh or prop.name, "pdesc": prop.description or prop.name,
                   "uname": prop.unit.name, "usymbol": prop.unit.symbol, "udef": prop.unit.definition,
                   "layer": spec.id, "pkey": prop.name, "pmin": prop.minimum, "pmax": prop.maximum,
                   **params}).rowcount
    return SyncReport(things=things, datastreams=datastreams, moved=moved)


def thing_count(conn: Connection, layer_id: str) -> int:
    """Number of Things made from a layer's features."""
    return conn.execute(sa.text(f"SELECT count(*) FROM {THING} WHERE layer_id = :l"), {"l": layer_id}).scalar_one()


# -- readers for the bridge, the simulator and tests ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DatastreamInfo:
    """What the MQTT bridge checks a reading against."""

    id: int
    unit_symbol: str | None
    unit_name: str | None
    observation_type: str
    feature_id: int | None
    minimum: float | None
    maximum: float | None


def datastream_infos(conn: Connection, ids: list[int] | None = None) -> dict[int, DatastreamInfo]:
    """Datastream id -> :class:`DatastreamInfo` (all, or the given ids)."""
    sql = (f"SELECT id, unit_symbol, unit_name, observation_type, feature_id, "
           f"(properties->>'minimum')::float8 AS mn, (properties->>'maximum')::float8 AS mx FROM {DATASTREAM}")
    params: dict[str, Any] = {}
    if ids is not None:
        sql += " WHERE id = ANY(:ids)"
        params["ids"] = ids
    return {r[0]: DatastreamInfo(*r) for r in conn.execute(sa.text(sql), params).all()}


def catalog_datastreams(conn: Connection, layer_id: str) -> list[dict[str, Any]]:
    """Datastreams of a layer's features: id, feature key, property name, the feature's lon/lat and fields."""
    rows = conn.execute(sa.text(
        f"""
        SELECT d.id, th.feature_key, d.properties->>'property' AS property, ST_X(l.geom) AS lon, ST_Y(l.geom) AS lat,
               th.properties->'fields' AS fields
          FROM {DATASTREAM} d JOIN {THING} th ON th.id = d.thing_id
          JOIN {LOCATION} l ON l.catalog_key = th.layer_id || '|' || th.feature_key
         WHERE th.layer_id = :layer ORDER BY d.id
        """), {"layer": layer_id}).mappings()
    return [dict(r) for r in rows]


def things_of_layer(conn: Connection, layer_id: str) -> list[dict[str, Any]]:
    """Things of a layer's features with their location as GeoJSON, ordered by feature key."""
    rows = conn.execute(sa.text(
        f"""
        SELECT th.id, th.name, th.feature_key, th.properties, ST_AsGeoJSON(l.geom) AS location,
               (SELECT count(*) FROM {DATASTREAM} d WHERE d.thing_id = th.id) AS datastreams,
               (SELECT count(*) FROM {HISTORICAL_LOCATION} h WHERE h.thing_id = th.id) AS historical_locations
          FROM {THING} th
          LEFT JOIN {THING_LOCATION} tl ON tl.thing_id = th.id LEFT JOIN {LOCATION} l ON l.id = tl.location_id
         WHERE th.layer_id = :layer ORDER BY th.feature_key
        """), {"layer": layer_id}).mappings()
    return [dict(r) for r in rows]
