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
Locations and HistoricalLocations stay readable).

The catalog is the truth of the catalog-made Datastreams: :func:`undeclared_datastreams` names those the
declaration no longer makes (a property removed from the layer's ``sensing:``, a feature whose kind no longer
senses it, a feature that left the layer), and :func:`delete_datastream_rows` removes them;
:func:`cim_service.store.sensing_sync.sync` runs both after :func:`sync_layer`, with their readings.
Datastreams created through the API (no ``catalog_key``) are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.core.catalog import LayerSpec
from cim_service.store.db import Session

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


def _declared_keys_sql(spec: LayerSpec) -> tuple[str, dict[str, Any]]:
    """SQL of the catalog keys of every Datastream the layer's declaration makes now (and its bound values)."""
    parts, params = [], {"layer": spec.id}
    for j, prop in enumerate(spec.sensing.observed_properties if spec.sensing else []):
        conds = []
        for i, (field, values) in enumerate(prop.where.items()):
            spec.field(field)
            conds.append(f't."{field}"::text = ANY(:w{j}_{i})')
            params[f"w{j}_{i}"] = [str(v) for v in values]
        params[f"p{j}"] = prop.name
        parts.append(f"SELECT :layer || '|' || t.feature_key || '|' || :p{j} AS k FROM {spec.qualified_table} t "
                     f"WHERE {' AND '.join(conds) or 'TRUE'}")
    return " UNION ALL ".join(parts) or "SELECT NULL::text AS k WHERE FALSE", params


def undeclared_datastreams(conn: Connection, spec: LayerSpec) -> list[int]:
    """Ids of the layer's catalog-made Datastreams that its declaration no longer makes (see the module doc)."""
    declared, params = _declared_keys_sql(spec)
    return conn.execute(sa.text(
        f"""
        WITH declared AS MATERIALIZED ({declared})
        SELECT d.id FROM {DATASTREAM} d JOIN {THING} th ON th.id = d.thing_id
         WHERE th.layer_id = :layer AND d.catalog_key IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM declared x WHERE x.k = d.catalog_key)
         ORDER BY d.id
        """), params).scalars().all()


def delete_datastream_rows(conn: Connection, spec: LayerSpec, ids: list[int]) -> int:
    """Delete Datastreams ``ids`` (their readings are the caller's: ``store.observations``) and the layer's
    catalog-made ObservedProperties that are no longer declared nor used; return the Datastreams deleted."""
    n = 0
    if ids:
        n = conn.execute(sa.text(f"DELETE FROM {DATASTREAM} WHERE id = ANY(:ids)"), {"ids": list(ids)}).rowcount
    declared = [f"{spec.id}/{p.name}" for p in (spec.sensing.observed_properties if spec.sensing else [])]
    conn.execute(sa.text(
        f"""
        DELETE FROM {OBSERVED_PROPERTY} op
         WHERE op.catalog_key LIKE :prefix AND NOT (op.catalog_key = ANY(:declared))
           AND NOT EXISTS (SELECT 1 FROM {DATASTREAM} d WHERE d.observed_property_id = op.id)
        """), {"prefix": spec.id.replace("_", "\\_") + "/%", "declared": declared})
    return n


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


async def datastream_layers(session: Session, datastream_ids: list[int]) -> dict[int, str | None]:
    """Datastream id -> the catalog layer of its Thing (None: an entity made over the API); unknown ids absent."""
    rows = await session.fetch(
        f"SELECT d.id, th.layer_id FROM {DATASTREAM} d JOIN {THING} th ON th.id = d.thing_id "
        "WHERE d.id = ANY($1::int4[])", list(datastream_ids))
    return {int(r["id"]): r["layer_id"] for r in rows}


# -- writes of the SensorThings API (POST, PATCH, DELETE over /sta/v1.1) ----------------------------------------------
_TABLES = {"thing": THING, "location": LOCATION, "historical_location": HISTORICAL_LOCATION, "sensor": SENSOR,
           "observed_property": OBSERVED_PROPERTY, "datastream": DATASTREAM,
           "feature_of_interest": FEATURE_OF_INTEREST}
#: columns the API writes, by table; geometry columns take GeoJSON text, jsonb columns Python values
WRITABLE: dict[str, dict[str, str]] = {
    "thing": {"name": "text", "description": "text", "properties": "jsonb"},
    "location": {"name": "text", "description": "text", "encoding_type": "text", "geom": "geom",
                 "properties": "jsonb"},
    "historical_location": {"thing_id": "int8", "time": "timestamptz"},
    "sensor": {"name": "text", "description": "text", "encoding_type": "text", "metadata": "text",
               "properties": "jsonb"},
    "observed_property": {"name": "text", "definition": "text", "description": "text", "properties": "jsonb"},
    "datastream": {"name": "text", "description": "text", "observation_type": "text", "unit_name": "text",
                   "unit_symbol": "text", "unit_definition": "text", "thing_id": "int8", "sensor_id": "int8",
                   "observed_property_id": "int8", "observed_area": "geom", "phenomenon_time_start": "timestamptz",
                   "phenomenon_time_end": "timestamptz", "result_time_start": "timestamptz",
                   "result_time_end": "timestamptz", "properties": "jsonb", "feature_id": "int8"},
    "feature_of_interest": {"name": "text", "description": "text", "encoding_type": "text", "geom": "geom",
                            "properties": "jsonb"},
}


def _value_sql(column: str, kind: str) -> str:
    if kind == "geom":
        return f"ST_SetSRID(ST_GeomFromGeoJSON(:{column}), 4326)"
    if kind == "jsonb":
        return f"CAST(:{column} AS jsonb)"
    return f"CAST(:{column} AS {kind})"


def _bind(table: str, values: dict[str, Any]) -> dict[str, Any]:
    cols = WRITABLE[table]
    unknown = set(values) - set(cols)
    if unknown:
        raise ValueError(f"not writable columns of {table}: {sorted(unknown)}")
    return {c: (_json(v) if cols[c] == "jsonb" and v is not None else v) for c, v in values.items()}


def insert_entity(conn: Connection, table: str, values: dict[str, Any]) -> int:
    """Insert one entity row of ``table`` (a key of :data:`WRITABLE`); return its id."""
    params = _bind(table, values)
    cols = list(params)
    sql = (f"INSERT INTO {_TABLES[table]} ({', '.join(cols)}) "
           f"VALUES ({', '.join(_value_sql(c, WRITABLE[table][c]) for c in cols)}) RETURNING id")
    return conn.execute(sa.text(sql), params).scalar_one()


def update_entity(conn: Connection, table: str, entity_id: int, values: dict[str, Any]) -> bool:
    """Update columns of one entity row; False when there is no such row."""
    params = _bind(table, values)
    if not params:
        return exists(conn, table, entity_id)
    sets = ", ".join(f"{c} = {_value_sql(c, WRITABLE[table][c])}" for c in params)
    return conn.execute(sa.text(f"UPDATE {_TABLES[table]} SET {sets} WHERE id = :_id"),
                        {**params, "_id": entity_id}).rowcount > 0


def delete_entity(conn: Connection, table: str, entity_id: int) -> bool:
    """Delete one entity row (its dependants go by the foreign keys' cascades); False when there is none."""
    return conn.execute(sa.text(f"DELETE FROM {_TABLES[table]} WHERE id = :id"), {"id": entity_id}).rowcount > 0


def exists(conn: Connection, table: str, entity_id: int) -> bool:
    """Tell whether the entity row exists."""
    return conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {_TABLES[table]} WHERE id = :id)"),
                        {"id": entity_id}).scalar_one()


def datastreams_of_thing(conn: Connection, thing_id: int) -> list[int]:
    """Ids of the Datastreams of a Thing (their observations have no foreign key and are deleted with them)."""
    return list(conn.execute(sa.text(f"SELECT id FROM {DATASTREAM} WHERE thing_id = :t"), {"t": thing_id}).scalars())


def datastreams_of(conn: Connection, column: str, entity_id: int) -> list[int]:
    """Ids of the Datastreams whose ``column`` (thing_id, sensor_id, observed_property_id) is ``entity_id``."""
    if column not in ("thing_id", "sensor_id", "observed_property_id"):
        raise ValueError(column)
    return list(conn.execute(sa.text(f"SELECT id FROM {DATASTREAM} WHERE {column} = :e"), {"e": entity_id}).scalars())


def set_thing_locations(conn: Connection, thing_id: int, location_ids: list[int], *, replace: bool) -> None:
    """Link a Thing to Locations (replacing its current ones if ``replace``) and record a HistoricalLocation."""
    if replace:
        conn.execute(sa.text(f"DELETE FROM {THING_LOCATION} WHERE thing_id = :t"), {"t": thing_id})
    conn.execute(sa.text(
        f"INSERT INTO {THING_LOCATION} (thing_id, location_id) SELECT :t, unnest(CAST(:l AS bigint[])) "
        "ON CONFLICT DO NOTHING"), {"t": thing_id, "l": location_ids})
    hist = conn.execute(sa.text(f"INSERT INTO {HISTORICAL_LOCATION} (thing_id, time) VALUES (:t, now()) RETURNING id"),
                        {"t": thing_id}).scalar_one()
    conn.execute(sa.text(
        f"INSERT INTO {HIST_LOCATION_LOCATION} (historical_location_id, location_id) "
        "SELECT :h, unnest(CAST(:l AS bigint[])) ON CONFLICT DO NOTHING"), {"h": hist, "l": location_ids})


def link_location_things(conn: Connection, location_id: int, thing_ids: list[int]) -> None:
    """Make ``location_id`` the current Location of each Thing (a HistoricalLocation each)."""
    for thing_id in thing_ids:
        set_thing_locations(conn, thing_id, [location_id], replace=True)


def link_historical_locations(conn: Connection, historical_location_id: int, location_ids: list[int]) -> None:
    """Attach Locations to a HistoricalLocation."""
    conn.execute(sa.text(
        f"INSERT INTO {HIST_LOCATION_LOCATION} (historical_location_id, location_id) "
        "SELECT :h, unnest(CAST(:l AS bigint[])) ON CONFLICT DO NOTHING"),
        {"h": historical_location_id, "l": location_ids})


def datastream_features(conn: Connection, ids: list[int]) -> dict[int, int | None]:
    """Datastream id -> its FeatureOfInterest id, creating one from its Thing's Location where it has none.

    As FROST-Server does: an Observation posted without a FeatureOfInterest observes its Thing's Location; one
    feature is generated per Location (``properties.generatedFromLocation``) and kept on the datastream, so later
    observations, and the other datastreams of the same place, reuse it. Unknown ids are absent.
    """
    rows = conn.execute(sa.text(f"SELECT id, feature_id FROM {DATASTREAM} WHERE id = ANY(:ids) FOR UPDATE"),
                        {"ids": ids}).all()
    out = {r[0]: r[1] for r in rows}
    for ds_id in [k for k, v in out.items() if v is None]:
        feature = conn.execute(sa.text(
            f"""
            WITH loc AS (
              SELECT l.id, l.name, l.description, l.encoding_type, l.geom FROM {DATASTREAM} d
                JOIN {THING_LOCATION} tl ON tl.thing_id = d.thing_id JOIN {LOCATION} l ON l.id = tl.location_id
               WHERE d.id = :d ORDER BY l.id LIMIT 1
            ), old AS (
              SELECT f.id FROM {FEATURE_OF_INTEREST} f, loc
               WHERE f.properties @> jsonb_build_object('generatedFromLocation', loc.id) ORDER BY f.id LIMIT 1
            ), new AS (
              INSERT INTO {FEATURE_OF_INTEREST} (name, description, encoding_type, geom, properties)
              SELECT name, description, encoding_type, geom, jsonb_build_object('generatedFromLocation', id)
                FROM loc WHERE NOT EXISTS (SELECT 1 FROM old) RETURNING id
            )
            UPDATE {DATASTREAM} SET feature_id = coalesce((SELECT id FROM old), (SELECT id FROM new))
             WHERE id = :d RETURNING feature_id
            """), {"d": ds_id}).scalar_one_or_none()
        out[ds_id] = feature
    return out


def extend_datastream_times(conn: Connection, bounds: dict[int, tuple[Any, Any, Any, Any]]) -> None:
    """Widen each Datastream's phenomenonTime and resultTime to cover newly written observations (one statement).

    ``bounds``: datastream id -> (phenomenon start, phenomenon end, result start, result end).
    """
    if not bounds:
        return
    ids = sorted(bounds)
    cols = list(zip(*(bounds[i] for i in ids), strict=True))
    conn.execute(sa.text(
        f"""
        UPDATE {DATASTREAM} AS d SET
          phenomenon_time_start = least(d.phenomenon_time_start, b.ps),
          phenomenon_time_end = greatest(d.phenomenon_time_end, b.pe),
          result_time_start = least(d.result_time_start, b.rs),
          result_time_end = greatest(d.result_time_end, b.re)
          FROM unnest(CAST(:d AS int4[]), CAST(:ps AS timestamptz[]), CAST(:pe AS timestamptz[]),
                      CAST(:rs AS timestamptz[]), CAST(:re AS timestamptz[])) AS b(id, ps, pe, rs, re)
         WHERE d.id = b.id
           AND (d.phenomenon_time_start IS NULL OR d.result_time_start IS NULL OR d.phenomenon_time_start > b.ps
                OR d.phenomenon_time_end < b.pe OR d.result_time_start > b.rs OR d.result_time_end < b.re)
        """), {"d": ids, "ps": list(cols[0]), "pe": list(cols[1]), "rs": list(cols[2]), "re": list(cols[3])})

