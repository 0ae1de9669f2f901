"""The one schema definition of the service's own tables (schema ``cim_meta``), as SQLAlchemy metadata.

The Alembic migrations (``store/alembic/versions``) create these tables step by step; a test runs Alembic's
autogenerate comparison between a migrated database and :data:`metadata` and requires no difference, so a
column added here without a migration (or the reverse) fails the suite. Each table has one owner module in
``cim_service.store`` holding every statement on it:

| table | owner |
|---|---|
| ``ingest_batch`` | ``store.batches`` |
| ``ingest_reject`` | ``store.rejects`` |
| ``layer_state`` | ``store.layer_state`` |
| ``api_key`` | ``store.api_keys`` |
| ``access_log`` | ``store.access_log`` |
| ``indicator_result`` | ``store.indicator_results`` |
| ``history_purge`` | ``store.history`` |

Layer tables (schema ``cim``) follow the catalog: see ``store.layer_tables``; their history tables (schema
``cim_hist``) too: see ``store.history``.
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

META_SCHEMA = "cim_meta"
metadata = sa.MetaData(schema=META_SCHEMA)

ingest_batch = sa.Table(
    "ingest_batch",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("file_sha256", sa.Text, nullable=False),
    sa.Column("source_crs", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # running | committed | failed | unchanged
    sa.Column("rows_read", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_duplicate", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_outside", sa.Integer, nullable=False, server_default="0"),
    sa.Column("options", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Index("ix_ingest_batch_layer_hash", "layer_id", "file_sha256"),
)

ingest_reject = sa.Table(
    "ingest_reject",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey(f"{META_SCHEMA}.ingest_batch.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("row_number", sa.Integer),
    sa.Column("field", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", JSONB),
    sa.Index("ix_ingest_reject_batch", "batch_id"),
)

layer_state = sa.Table(
    "layer_state",
    metadata,
    sa.Column("layer_id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("feature_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("minx", sa.Float), sa.Column("miny", sa.Float), sa.Column("maxx", sa.Float), sa.Column("maxy", sa.Float),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("key_prefix", sa.Text, nullable=False),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),  # sha256 hex of the whole key
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

access_log = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("principal", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("fields", sa.ARRAY(sa.Text)),
    sa.Column("detail", JSONB),
    sa.Column("client", sa.Text),
    sa.Index("ix_access_log_at", "at"),
)

indicator_result = sa.Table(
    "indicator_result",
    metadata,
    # key: 'indicator:<id>' or 'derived:<output>'; inputs: {layer_id: version} the result was computed from
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("inputs", JSONB, nullable=False),
    sa.Column("params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("result", JSONB, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"),
)


# -- OGC SensorThings (schema ``cim_sta``) -----------------------------------------------------------------------
# Entities of the SensorThings data model, the observations (partitioned by day on ``phenomenon_time``), the
# latest value per datastream, hourly aggregates and the dead letters of the MQTT bridge. Owners:
#
# | table | owner |
# |---|---|
# | ``thing``, ``location``, ``thing_location``, ``historical_location``, ``hist_location_location``, ``sensor``,
#   ``observed_property``, ``datastream``, ``feature_of_interest`` | ``store.sta_entities`` |
# | ``observation`` (and its partitions ``observation_pYYYYMMDD``), ``latest``, ``observation_hourly`` |
#   ``store.observations`` |
# | ``dead_letter`` | ``store.dead_letters`` |
# | ``alert_rule``, ``alert_watch``, ``alert_feed``, ``alert``, ``alert_change`` | ``store.alerts`` |
#
# ``observation`` is kept narrow (≤ 60 bytes a row on disk, indexes included): 8 columns, so the tuple header with
# its null bitmap stays 24 bytes; the Observation's ``@iot.id`` is not stored but derived from (datastream,
# phenomenon time in ms) by ``cim_sta.observation_id`` (see ``store.observations``).
STA_SCHEMA = "cim_sta"
sta_metadata = sa.MetaData(schema=STA_SCHEMA)
_ts = sa.DateTime(timezone=True)


def _id(big: bool = True) -> sa.Column:
    return sa.Column("id", sa.BigInteger if big else sa.Integer, sa.Identity(), primary_key=True)


def _fk(name: str, table: str, *, nullable: bool = False, big: bool = True, ondelete: str = "CASCADE") -> sa.Column:
    return sa.Column(name, sa.BigInteger if big else sa.Integer,
                     sa.ForeignKey(f"{STA_SCHEMA}.{table}.id", ondelete=ondelete), nullable=nullable)


def _jsonb(name: str = "properties") -> sa.Column:
    return sa.Column(name, JSONB)


sta_thing = sa.Table(
    "thing", sta_metadata, _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    _jsonb(),
    sa.Column("layer_id", sa.Text),       # the catalog layer whose feature this Thing is (null: created over STA)
    sa.Column("feature_key", sa.Text),    # that feature's feature_key
    sa.UniqueConstraint("layer_id", "feature_key", name="uq_thing_layer_feature"),
)

sta_location = sa.Table(
    "location", sta_metadata, _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("encoding_type", sa.Text, nullable=False, server_default="application/geo+json"),
    sa.Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
    _jsonb(),
    sa.Column("catalog_key", sa.Text, unique=True),  # '<layer_id>|<feature_key>' for a catalog feature's
    sa.Index("ix_sta_location_geom", "geom", postgresql_using="gist"),
)

sta_thing_location = sa.Table(
    "thing_location", sta_metadata,
    _fk("thing_id", "thing"), _fk("location_id", "location"),
    sa.PrimaryKeyConstraint("thing_id", "location_id"),
    sa.Index("ix_sta_thing_location_location", "location_id"),
)

sta_historical_location = sa.Table(
    "historical_location", sta_metadata, _id(),
    _fk("thing_id", "thing"),
    sa.Column("time", _ts, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_sta_historical_location_thing", "thing_id", "time"),
)

sta_hist_location_location = sa.Table(
    "hist_location_location", sta_metadata,
    _fk("historical_location_id", "historical_location"), _fk("location_id", "location"),
    sa.PrimaryKeyConstraint("historical_location_id", "location_id"),
    sa.Index("ix_sta_hist_location_location_location", "location_id"),
)

sta_sensor = sa.Table(
    "sensor", sta_metadata, _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("encoding_type", sa.Text, nullable=False, server_default="text/html"),
    sa.Column("metadata", sa.Text, nullable=False, server_default=""),
    _jsonb(),
    sa.Column("catalog_key", sa.Text, unique=True),  # '<layer_id>' for the sensor the catalog declares
)

sta_observed_property = sa.Table(
    "observed_property", sta_metadata, _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("definition", sa.Text, nullable=False, server_default=""),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    _jsonb(),
    sa.Column("catalog_key", sa.Text, unique=True),  # '<layer_id>/<property name>' when declared in the catalog
)

sta_feature_of_interest = sa.Table(
    "feature_of_interest", sta_metadata, _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("encoding_type", sa.Text, nullable=False, server_default="application/geo+json"),
    sa.Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
    _jsonb(),
    sa.Column("catalog_key", sa.Text, unique=True),  # '<layer_id>|<feature_key>' for a catalog feature's
    sa.Index("ix_sta_feature_of_interest_geom", "geom", postgresql_using="gist"),
)

sta_datastream = sa.Table(
    "datastream", sta_metadata,
    _id(big=False),  # integer: observation.datastream_id is 4 bytes
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("observation_type", sa.Text, nullable=False,
              server_default="http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"),
    sa.Column("unit_name", sa.Text), sa.Column("unit_symbol", sa.Text), sa.Column("unit_definition", sa.Text),
    _fk("thing_id", "thing"), _fk("sensor_id", "sensor"), _fk("observed_property_id", "observed_property"),
    sa.Column("observed_area", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
    sa.Column("phenomenon_time_start", _ts), sa.Column("phenomenon_time_end", _ts),
    sa.Column("result_time_start", _ts), sa.Column("result_time_end", _ts),
    _jsonb(),
    # the FeatureOfInterest of observations that name none (FROST: generated from the Thing's Location)
    _fk("feature_id", "feature_of_interest", nullable=True, ondelete="SET NULL"),
    sa.Column("catalog_key", sa.Text, unique=True),  # '<layer_id>|<feature_key>|<property name>' from the catalog
    sa.Index("ix_sta_datastream_thing", "thing_id"),
    sa.Index("ix_sta_datastream_sensor", "sensor_id"),
    sa.Index("ix_sta_datastream_observed_property", "observed_property_id"),
)

#: partitions are ``observation_pYYYYMMDD`` (one per UTC day), created ahead by ``store.observations``
sta_observation = sa.Table(
    "observation", sta_metadata,
    sa.Column("datastream_id", sa.Integer, nullable=False),
    sa.Column("phenomenon_time", _ts, nullable=False),  # truncated to the millisecond (part of the id)
    sa.Column("result", sa.Float),            # numeric results (OM_Measurement)
    sa.Column("result_time", _ts),            # null: equal to phenomenon_time
    sa.Column("feature_id", sa.BigInteger),   # null: the datastream's feature_id
    sa.Column("result_json", JSONB),          # non-numeric results (text, booleans, objects)
    sa.Column("result_quality", JSONB),
    # rarely used: {"phenomenonTimeEnd": ..., "validTime": [start, end], "parameters": {...}}
    sa.Column("extra", JSONB),
    sa.Index("ix_sta_observation_time", "phenomenon_time", postgresql_using="brin"),
    postgresql_partition_by="RANGE (phenomenon_time)",
)

sta_latest = sa.Table(
    "latest", sta_metadata,
    sa.Column("datastream_id", sa.Integer, primary_key=True),
    sa.Column("phenomenon_time", _ts, nullable=False),
    sa.Column("result", sa.Float),
    sa.Column("result_json", JSONB),
    sa.Column("result_time", _ts),
    sa.Column("received_at", _ts, nullable=False, server_default=sa.func.now()),
    postgresql_with={"fillfactor": 50},  # frequent updates stay HOT
)

sta_observation_hourly = sa.Table(
    "observation_hourly", sta_metadata,
    sa.Column("datastream_id", sa.Integer, nullable=False),
    sa.Column("hour", _ts, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("min", sa.Float), sa.Column("max", sa.Float), sa.Column("sum", sa.Float),
    sa.Column("first", sa.Float), sa.Column("last", sa.Float),
    sa.PrimaryKeyConstraint("datastream_id", "hour"),
)

sta_dead_letter = sa.Table(
    "dead_letter", sta_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("received_at", _ts, nullable=False, server_default=sa.func.now()),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("client", sa.Text),
    sa.Index("ix_sta_dead_letter_received_at", "received_at"),
)


# -- alerts (schema ``cim_sta``; owner ``store.alerts``): rules synced from the rules file at start, the alert
# layer's feed, alerts (active: ``cleared_at`` null; at most one level and one offline alert per datastream) and
# their changes. Written by the trigger ``cim_sta.alert_evaluate`` on ``latest`` (migration 0005).
sta_alert_rule = sa.Table(
    "alert_rule", sta_metadata, _id(big=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("property", sa.Text, nullable=False),
    sa.Column("op_key", sa.Text, nullable=False),     # the ObservedProperty's catalog_key '<layer>/<property>'
    sa.Column("kind_field", sa.Text),
    sa.Column("site_kind", sa.Text, nullable=False, server_default=""),  # '': the rule's default levels
    sa.Column("sign", sa.Float, nullable=False, server_default="1"),     # 1: above, -1: below
    sa.Column("warning", sa.Float), sa.Column("alarm", sa.Float),
    sa.Column("hysteresis", sa.Float, nullable=False, server_default="0"),
    sa.Column("offline_s", sa.Float),
    sa.UniqueConstraint("op_key", "site_kind", name="uq_alert_rule_kind"),
)

sta_alert_watch = sa.Table(
    "alert_watch", sta_metadata,  # the datastreams a rule watches (sync_rules, and a trigger on new datastreams)
    sa.Column("datastream_id", sa.Integer, sa.ForeignKey(f"{STA_SCHEMA}.datastream.id", ondelete="CASCADE"),
              primary_key=True, autoincrement=False),
    sa.Column("op_key", sa.Text, nullable=False),
)

sta_alert_feed = sa.Table(
    "alert_feed", sta_metadata,
    sa.Column("id", sa.Integer, primary_key=True, server_default="1", autoincrement=False),
    sa.Column("layer_id", sa.Text), sa.Column("feed_sql", sa.Text), sa.Column("bump_sql", sa.Text),
    sa.Column("town_sql", sa.Text),
    sa.CheckConstraint("id = 1", name="alert_feed_id_check"),
)

sta_alert = sa.Table(
    "alert", sta_metadata, _id(),
    sa.Column("datastream_id", sa.Integer, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("property", sa.Text, nullable=False),
    sa.Column("feature_id", sa.BigInteger), sa.Column("feature_key", sa.Text),
    sa.Column("site_kind", sa.Text), sa.Column("town", sa.Text),
    sa.Column("severity", sa.Text, nullable=False),  # warning | alarm | offline
    sa.Column("raised_at", _ts, nullable=False), sa.Column("updated_at", _ts, nullable=False),
    sa.Column("cleared_at", _ts),
    sa.Column("value", sa.Float), sa.Column("peak_value", sa.Float), sa.Column("peak_at", _ts),
    sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False)),
    sa.Index("ux_alert_active_level", "datastream_id", unique=True,
             postgresql_where=sa.text("cleared_at IS NULL AND severity <> 'offline'")),
    sa.Index("ux_alert_active_offline", "datastream_id", unique=True,
             postgresql_where=sa.text("cleared_at IS NULL AND severity = 'offline'")),
    sa.Index("ix_alert_active", "datastream_id", postgresql_where=sa.text("cleared_at IS NULL")),
    sa.Index("ix_alert_raised_at", "raised_at"),
    sa.Index("ix_alert_geom", "geom", postgresql_using="gist"),
)

sta_alert_change = sa.Table(
    "alert_change", sta_metadata, _id(),
    _fk("alert_id", "alert"),
    sa.Column("at", _ts, nullable=False),
    sa.Column("change", sa.Text, nullable=False),  # raised | escalated | deescalated | updated | cleared
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("recorded_at", _ts, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_alert_change_alert", "alert_id", "id"),
)


history_purge = sa.Table(
    "history_purge",
    metadata,
    # one row per layer and purge: versions that ended before ``before`` were deleted; history begins there
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("layer_id", sa.Text, nullable=False),
    sa.Column("before", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rows_deleted", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_history_purge_layer", "layer_id"),
)
