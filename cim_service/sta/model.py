"""The SensorThings data model over the ``cim_sta`` tables: entity sets, their properties and navigation.

Every SQL identifier of the STA read path comes from here (table names from their owner modules in
``cim_service.store``, columns written below); user input only ever chooses among these declarations.
A property is an SQL expression over the entity's alias ``{t}`` and a kind (``text``, ``number``, ``time``,
``interval``, ``geom``, ``json``, ``result``); a navigation is a predicate joining a source alias ``{s}`` to a
target alias ``{d}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cim_service.store import observations, sta_entities

OBS_ID = "cim_sta.observation_id({t}.datastream_id, {t}.phenomenon_time)"
ISO = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"


def iso(expr: str) -> str:
    """SQL rendering a timestamptz as an ISO 8601 UTC instant with milliseconds."""
    return f"to_char(({expr}) AT TIME ZONE 'UTC', {ISO})"


def iso_interval(start: str, end: str) -> str:
    """SQL rendering ``start/end`` (or the instant alone when they are equal, null when start is null)."""
    return (f"CASE WHEN ({start}) IS NULL THEN NULL WHEN ({end}) IS NULL OR ({end}) = ({start}) THEN {iso(start)} "
            f"ELSE {iso(start)} || '/' || {iso(end)} END")


@dataclass(frozen=True)
class Prop:
    """One property of an entity: its SQL value, kind and JSON rendering."""

    name: str
    sql: str                       # value in filters/orderby (``{t}`` is the alias)
    kind: str
    out: str | None = None         # JSON value in responses (default: ``sql``)
    start: str | None = None       # for intervals: start and end
    end: str | None = None
    writable: str | None = None    # column written by POST/PATCH (None: computed or special)
    subfields: dict[str, str] = field(default_factory=dict)  # unitOfMeasurement/name -> column expression


@dataclass(frozen=True)
class Nav:
    """A navigation property: ``Datastreams`` of a Thing, ``Thing`` of a Datastream."""

    name: str
    target: str                    # entity set name
    many: bool
    pred: str                      # SQL joining source ``{s}`` to target ``{d}``


@dataclass(frozen=True)
class EntitySet:
    """One entity set (``Things``) of the service."""

    name: str                      # Things
    singular: str                  # Thing
    table: str                     # cim_sta.thing
    id_sql: str                    # @iot.id expression
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...]

    def prop(self, name: str) -> Prop | None:
        """The property ``name``, or None."""
        for p in self.props:
            if p.name == name:
                return p
        return None

    def nav(self, name: str) -> Nav | None:
        """The navigation property ``name``, or None."""
        for n in self.navs:
            if n.name == name:
                return n
        return None


def _text(name: str, column: str | None = None) -> Prop:
    column = column or name
    return Prop(name, f"{{t}}.{column}", "text", writable=column)


def _json(name: str, column: str) -> Prop:
    return Prop(name, f"{{t}}.{column}", "json", writable=column)


def _geom(name: str, column: str) -> Prop:
    return Prop(name, f"{{t}}.{column}", "geom", out=f"ST_AsGeoJSON({{t}}.{column}, 9)::json", writable=column)


_T, _L, _TL = sta_entities.THING, sta_entities.LOCATION, sta_entities.THING_LOCATION
_HL, _HLL = sta_entities.HISTORICAL_LOCATION, sta_entities.HIST_LOCATION_LOCATION
_S, _OP, _DS, _FOI = sta_entities.SENSOR, sta_entities.OBSERVED_PROPERTY, sta_entities.DATASTREAM, \
    sta_entities.FEATURE_OF_INTEREST
_OBS = observations.TABLE
#: the FeatureOfInterest of an observation: its own, else its datastream's
OBS_FEATURE = f"coalesce({{t}}.feature_id, (SELECT x.feature_id FROM {_DS} x WHERE x.id = {{t}}.datastream_id))"

ENTITY_SETS: dict[str, EntitySet] = {e.name: e for e in (
    EntitySet("Things", "Thing", _T, "{t}.id",
              (_text("name"), _text("description"), _json("properties", "properties")),
              (Nav("Locations", "Locations", True,
                   f"EXISTS (SELECT 1 FROM {_TL} l WHERE l.thing_id = {{s}}.id AND l.location_id = {{d}}.id)"),
               Nav("HistoricalLocations", "HistoricalLocations", True, "{d}.thing_id = {s}.id"),
               Nav("Datastreams", "Datastreams", True, "{d}.thing_id = {s}.id"))),
    EntitySet("Locations", "Location", _L, "{t}.id",
              (_text("name"), _text("description"), _text("encodingType", "encoding_type"),
               _geom("location", "geom"), _json("properties", "properties")),
              (Nav("Things", "Things", True,
                   f"EXISTS (SELECT 1 FROM {_TL} l WHERE l.location_id = {{s}}.id AND l.thing_id = {{d}}.id)"),
               Nav("HistoricalLocations", "HistoricalLocations", True,
                   f"EXISTS (SELECT 1 FROM {_HLL} l WHERE l.location_id = {{s}}.id "
                   f"AND l.historical_location_id = {{d}}.id)"))),
    EntitySet("HistoricalLocations", "HistoricalLocation", _HL, "{t}.id",
              (Prop("time", "{t}.time", "time", out=iso("{t}.time"), writable="time"),),
              (Nav("Thing", "Things", False, "{d}.id = {s}.thing_id"),
               Nav("Locations", "Locations", True,
                   f"EXISTS (SELECT 1 FROM {_HLL} l WHERE l.historical_location_id = {{s}}.id "
                   f"AND l.location_id = {{d}}.id)"))),
    EntitySet("Sensors", "Sensor", _S, "{t}.id",
              (_text("name"), _text("description"), _text("encodingType", "encoding_type"),
               _text("metadata"), _json("properties", "properties")),
              (Nav("Datastreams", "Datastreams", True, "{d}.sensor_id = {s}.id"),)),
    EntitySet("ObservedProperties", "ObservedProperty", _OP, "{t}.id",
              (_text("name"), _text("definition"), _text("description"), _json("properties", "properties")),
              (Nav("Datastreams", "Datastreams", True, "{d}.observed_property_id = {s}.id"),)),
    EntitySet("Datastreams", "Datastream", _DS, "{t}.id",
              (_text("name"), _text("description"), _text("observationType", "observation_type"),
               Prop("unitOfMeasurement", "NULL", "json",
                    out="json_build_object('name', {t}.unit_name, 'symbol', {t}.unit_symbol, "
                        "'definition', {t}.unit_definition)",
                    subfields={"name": "{t}.unit_name", "symbol": "{t}.unit_symbol",
                               "definition": "{t}.unit_definition"}),
               _geom("observedArea", "observed_area"),
               Prop("phenomenonTime", "{t}.phenomenon_time_start", "interval",
                    out=iso_interval("{t}.phenomenon_time_start", "{t}.phenomenon_time_end"),
                    start="{t}.phenomenon_time_start", end="{t}.phenomenon_time_end"),
               Prop("resultTime", "{t}.result_time_start", "interval",
                    out=iso_interval("{t}.result_time_start", "{t}.result_time_end"),
                    start="{t}.result_time_start", end="{t}.result_time_end"),
               _json("properties", "properties")),
              (Nav("Thing", "Things", False, "{d}.id = {s}.thing_id"),
               Nav("Sensor", "Sensors", False, "{d}.id = {s}.sensor_id"),
               Nav("ObservedProperty", "ObservedProperties", False, "{d}.id = {s}.observed_property_id"),
               Nav("Observations", "Observations", True, "{d}.datastream_id = {s}.id"))),
    EntitySet("Observations", "Observation", _OBS, OBS_ID,
              (Prop("phenomenonTime", "{t}.phenomenon_time", "time",
                    out=f"CASE WHEN {{t}}.extra ? 'phenomenonTimeEnd' THEN {iso('{t}.phenomenon_time')} || '/' || "
                        f"({{t}}.extra->>'phenomenonTimeEnd') ELSE {iso('{t}.phenomenon_time')} END"),
               Prop("resultTime", "coalesce({t}.result_time, {t}.phenomenon_time)", "time",
                    out=iso("coalesce({t}.result_time, {t}.phenomenon_time)")),
               Prop("result", "coalesce(to_jsonb({t}.result), {t}.result_json)", "result",
                    out="coalesce(to_json({t}.result), {t}.result_json::json)"),
               Prop("resultQuality", "{t}.result_quality", "json"),
               Prop("validTime", "{t}.extra->'validTime'", "json",
                    out="CASE WHEN {t}.extra ? 'validTime' THEN ({t}.extra->'validTime'->>0) || '/' || "
                        "({t}.extra->'validTime'->>1) END"),
               Prop("parameters", "{t}.extra->'parameters'", "json")),
              (Nav("Datastream", "Datastreams", False, "{d}.id = {s}.datastream_id"),
               Nav("FeatureOfInterest", "FeaturesOfInterest", False,
                   "{d}.id = " + OBS_FEATURE.replace("{t}", "{s}")))),
    EntitySet("FeaturesOfInterest", "FeatureOfInterest", _FOI, "{t}.id",
              (_text("name"), _text("description"), _text("encodingType", "encoding_type"),
               _geom("feature", "geom"), _json("properties", "properties")),
              (Nav("Observations", "Observations", True, OBS_FEATURE.replace("{t}", "{d}") + " = {s}.id"),)),
)}

#: the SQL predicate hiding rows that belong to a layer the caller may not read; ``{h}`` is a text[] parameter
HIDDEN: dict[str, str] = {
    "Things": "{t}.layer_id = ANY({h})",
    "Locations": "split_part({t}.catalog_key, '|', 1) = ANY({h})",
    "HistoricalLocations": f"EXISTS (SELECT 1 FROM {_T} x WHERE x.id = {{t}}.thing_id AND x.layer_id = ANY({{h}}))",
    "Sensors": "{t}.catalog_key = ANY({h})",
    "ObservedProperties": "split_part({t}.catalog_key, '/', 1) = ANY({h})",
    "Datastreams": "split_part({t}.catalog_key, '|', 1) = ANY({h})",
    "Observations": f"EXISTS (SELECT 1 FROM {_DS} x WHERE x.id = {{t}}.datastream_id "
                    f"AND split_part(x.catalog_key, '|', 1) = ANY({{h}}))",
    "FeaturesOfInterest": "split_part({t}.catalog_key, '|', 1) = ANY({h})",
}


def entity_set(name: str) -> EntitySet | None:
    """The entity set named ``name`` (``Things``), or None."""
    return ENTITY_SETS.get(name)
