"""Writes of the SensorThings API: POST with deep insert, PATCH/PUT, DELETE and the dataArray bulk extension.

Everything here runs in a worker thread on the synchronous engine, one transaction per request. Entities are
written through their owner modules (:mod:`cim_service.store.sta_entities`); observations through
:func:`cim_service.store.observations.write_batch` (binary COPY and the latest-value upsert), the path the MQTT
bridge uses. A body is checked before anything is written: unknown members, wrong types, missing mandatory
members and dangling ``@iot.id`` references are 400s naming the member.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import shapely.geometry
from sqlalchemy.engine import Connection

from cim_service.core import data_array
from cim_service.core.data_array import DataArray
from cim_service.errors import InvalidParameter, NotFound
from cim_service.sta.grammar import parse_instant
from cim_service.store import observations, sta_entities
from cim_service.store.observations import Observation, truncate_ms

TABLE_OF = {"Things": "thing", "Locations": "location", "HistoricalLocations": "historical_location",
            "Sensors": "sensor", "ObservedProperties": "observed_property", "Datastreams": "datastream",
            "FeaturesOfInterest": "feature_of_interest"}
SINGULAR = {"Thing": "Things", "Location": "Locations", "Sensor": "Sensors", "ObservedProperty": "ObservedProperties",
            "Datastream": "Datastreams", "FeatureOfInterest": "FeaturesOfInterest"}
MAX_TEXT = 100_000
GEO_TYPES = {"application/geo+json", "application/vnd.geo+json"}


@dataclass
class WriteLimits:
    """Bounds of accepted observation times (from the settings)."""

    max_future: timedelta
    max_past: timedelta


@dataclass
class Created:
    """What a request created: (entity set, id) pairs, and the observations (to publish after commit)."""

    entities: list[tuple[str, int]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


def _bad(member: str, msg: str) -> InvalidParameter:
    return InvalidParameter(f"body member '{member}': {msg}")


def _obj(body: Any, where: str) -> dict:
    if not isinstance(body, dict):
        raise _bad(where, "must be a JSON object")
    return body


def _text(body: dict, key: str, where: str, *, required: bool) -> str | None:
    if key not in body or body[key] is None:
        if required:
            raise _bad(f"{where}{key}", "is mandatory")
        return None
    v = body[key]
    if not isinstance(v, str):
        raise _bad(f"{where}{key}", "must be a string")
    if len(v) > MAX_TEXT or "\x00" in v:
        raise _bad(f"{where}{key}", f"must be at most {MAX_TEXT} characters, without NUL")
    return v


def _props(body: dict, key: str, where: str) -> dict | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _bad(f"{where}{key}", "must be a JSON object")
    if "\\u0000" in orjson.dumps(v).decode():
        raise _bad(f"{where}{key}", "must not contain NUL")
    return v



def _encoded_geometry(body: dict, member: str, where: str) -> dict:
    """Columns of a Location or FeatureOfInterest: name, description, a GeoJSON ``encodingType`` and its geometry."""
    enc = _text(body, "encodingType", where, required=True)
    if enc not in GEO_TYPES:
        raise _bad(f"{where}encodingType", f"must be one of {sorted(GEO_TYPES)}")
    return {"name": _text(body, "name", where, required=True),
            "description": _text(body, "description", where, required=True) or "",
            "encoding_type": enc, "geom": _geojson(body, member, where, required=True),
            "properties": _props(body, "properties", where)}


def _geojson(body: dict, key: str, where: str, *, required: bool) -> str | None:
    v = body.get(key)
    if v is None:
        if required:
            raise _bad(f"{where}{key}", "is mandatory")
        return None
    if isinstance(v, dict) and v.get("type") == "Feature":
        v = v.get("geometry")
    try:
        geom = shapely.geometry.shape(v)
    except Exception:  # shapely raises several types for bad GeoJSON
        raise _bad(f"{where}{key}", "must be a GeoJSON geometry") from None
    if geom.is_empty:
        raise _bad(f"{where}{key}", "must not be empty")
    coords = shapely.get_coordinates(geom)
    if not all(math.isfinite(c) for c in coords.ravel()) or (abs(coords[:, 0]) > 180).any() \
            or (abs(coords[:, 1]) > 90).any():
        raise _bad(f"{where}{key}", "coordinates must be WGS84 longitude/latitude")
    return orjson.dumps(shapely.geometry.mapping(geom)).decode()


def _instant(text: Any, member: str) -> datetime:
    if not isinstance(text, str):
        raise _bad(member, "must be an ISO 8601 time string")
    try:
        return parse_instant(text)
    except ValueError:
        raise _bad(member, f"invalid time {text[:40]!r}") from None


def _time_or_interval(value: Any, member: str) -> tuple[datetime, datetime | None]:
    if not isinstance(value, str):
        raise _bad(member, "must be an ISO 8601 time or interval string")
    if "/" in value:
        a, _, b = value.partition("/")
        start, end = _instant(a, member), _instant(b, member)
        if end < start:
            raise _bad(member, "the interval ends before it starts")
        return start, end
    return _instant(value, member), None


def _check_keys(body: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(k for k in body if k not in allowed and not k.endswith("@iot.navigationLink")
                     and k != "@iot.selfLink")
    if unknown:
        raise _bad(f"{where}{unknown[0]}", "is not a member of this entity")


def _ref_id(body: Any, where: str) -> int | None:
    """The ``@iot.id`` of a reference ``{"@iot.id": n}``, or None when ``body`` is a new entity."""
    body = _obj(body, where)
    if "@iot.id" in body:
        v = body["@iot.id"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > 2**63 - 1:
            raise _bad(f"{where}@iot.id", "must be a non-negative integer")
        return v
    return None


class Writer:
    """One write transaction of the API."""

    def __init__(self, conn: Connection, limits: WriteLimits):
        self.conn = conn
        self.limits = limits
        self.created = Created()
        self.now = datetime.now(UTC)

    # -- references ------------------------------------------------------------------------------------------------
    def _existing(self, es: str, ident: int, where: str) -> int:
        if es == "Observations":
            raise _bad(where, "observations cannot be referenced")
        if not sta_entities.exists(self.conn, TABLE_OF[es], ident):
            raise _bad(f"{where}@iot.id", f"no {es[:-1] if es != 'ObservedProperties' else 'ObservedProperty'} "
                                          f"with id {ident}")
        return ident

    def entity(self, es: str, body: Any, where: str, implied: dict[str, int] | None = None) -> int:
        """The id of ``body``: a reference to an existing entity, or a new one created (deep)."""
        ident = _ref_id(body, where)
        if ident is not None and len([k for k in body if not k.startswith("@iot.")]) == 0:
            return self._existing(es, ident, where)
        if ident is not None:
            raise _bad(f"{where}@iot.id", "a new entity cannot choose its id")
        return self.CREATE[es](self, body, where, implied or {})

    def _list(self, body: dict, key: str, where: str) -> list:
        v = body.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise _bad(f"{where}{key}", "must be a JSON array")
        if len(v) > 10_000:
            raise _bad(f"{where}{key}", "at most 10000 entities")
        return v

    # -- creators --------------------------------------------------------------------------------------------------
    def _thing(self, body: dict, where: str, implied: dict) -> int:
        _check_keys(body, {"name", "description", "properties", "Locations", "Datastreams",
                           "HistoricalLocations"}, where)
        if body.get("HistoricalLocations"):
            raise _bad(f"{where}HistoricalLocations", "are recorded by the service, not posted with a Thing")
        tid = sta_entities.insert_entity(self.conn, "thing", {
            "name": _text(body, "name", where, required=True),
            "description": _text(body, "description", where, required=True) or "",
            "properties": _props(body, "properties", where)})
        self.created.entities.append(("Things", tid))
        locs = [self.entity("Locations", b, f"{where}Locations[{i}]/")
                for i, b in enumerate(self._list(body, "Locations", where))]
        if implied.get("location_id"):
            locs.append(implied["location_id"])
        if locs:
            sta_entities.set_thing_locations(self.conn, tid, locs, replace=False)
        for i, b in enumerate(self._list(body, "Datastreams", where)):
            self.entity("Datastreams", b, f"{where}Datastreams[{i}]/", {"thing_id": tid})
        return tid

    def _location(self, body: dict, where: str, implied: dict) -> int:
        _check_keys(body, {"name", "description", "encodingType", "location", "properties", "Things"}, where)
        lid = sta_entities.insert_entity(self.conn, "location", _encoded_geometry(body, "location", where))
        self.created.entities.append(("Locations", lid))
        things = [self.entity("Things", b, f"{where}Things[{i}]/", {"location_id": lid})
                  for i, b in enumerate(self._list(body, "Things", where))]
        if implied.get("thing_id"):
            things.append(implied["thing_id"])
        existing = [t for t in things if ("Things", t) not in self.created.entities]
        sta_entities.link_location_things(self.conn, lid, existing)
        return lid

    def _historical_location(self, body: dict, where: str, implied: dict) -> int:
        _check_keys(body, {"time", "Thing", "Locations"}, where)
        thing = implied.get("thing_id")
        if thing is None:
            if "Thing" not in body:
                raise _bad(f"{where}Thing", "is mandatory")
            thing = self.entity("Things", body["Thing"], f"{where}Thing/")
        time = _instant(body["time"], f"{where}time") if body.get("time") is not None else self.now
        hid = sta_entities.insert_entity(self.conn, "historical_location", {"thing_id": thing, "time": time})
        self.created.entities.append(("HistoricalLocations", hid))
        locs = [self.entity("Locations", b, f"{where}Locations[{i}]/")
                for i, b in enumerate(self._list(body, "Locations", where))]
        if implied.get("location_id"):
            locs.append(implied["location_id"])
        if locs:
            sta_entities.link_historical_locations(self.conn, hid, locs)
        return hid

    def _sensor(self, body: dict, where: str, implied: dict) -> int:
        _check_keys(body, {"name", "description", "encodingType", "metadata", "properties", "Datastreams"}, where)
        sid = sta_entities.insert_entity(self.conn, "sensor", {
            "name": _text(body, "name", where, required=True),
            "description": _text(body, "description", where, required=True) or "",
            "encoding_type": _text(body, "encodingType", where, required=True),
            "metadata": _text(body, "metadata", where, required=True),
            "properties": _props(body, "properties", where)})
        self.created.entities.append(("Sensors", sid))
        for i, b in enumerate(self._list(body, "Datastreams", where)):
            self.entity("Datastreams", b, f"{where}Datastreams[{i}]/", {"sensor_id": sid})
        return sid

    def _observed_property(self, body: dict, where: str, implied: dict) -> int:
        _check_keys(body, {"name", "definition", "description", "properties", "Datastreams"}, where)
        oid = sta_entities.insert_entity(self.conn, "observed_property", {
            "name": _text(body, "name", where, required=True),
            "definition": _text(body, "definition", where, required=True),
            "description": _text(body, "description", where, required=True) or "",
            "properties": _props(body, "properties", where)})
        self.created.entities.append(("ObservedProperties", oid))
        for i, b in enumerate(self._list(body, "Datastreams", where)):
            self.entity("Datastreams", b, f"{where}Datastreams[{i}]/", {"observed_property_id": oid})
        return oid

    def _datastream_values(self, body: dict, where: str, *, required: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, col in (("name", "name"), ("description", "description"),
                         ("observationType", "observation_type")):
            if required or key in body:
                values[col] = _text(body, key, where, required=required)
        if required or "unitOfMeasurement" in body:
            uom = body.get("unitOfMeasurement")
            if not isinstance(uom, dict):
                raise _bad(f"{where}unitOfMeasurement", "must be an object {name, symbol, definition}")
            _check_keys(uom, {"name", "symbol", "definition"}, f"{where}unitOfMeasurement/")
            for key in ("name", "symbol", "definition"):
                values[f"unit_{key}"] = _text(uom, key, f"{where}unitOfMeasurement/", required=False)
        if "observedArea" in body:
            values["observed_area"] = _geojson(body, "observedArea", where, required=False)
        for key, cols in (("phenomenonTime", ("phenomenon_time_start", "phenomenon_time_end")),
                          ("resultTime", ("result_time_start", "result_time_end"))):
            if body.get(key) is not None:
                start, end = _time_or_interval(body[key], f"{where}{key}")
                values[cols[0]], values[cols[1]] = start, end or start
        if "properties" in body:
            values["properties"] = _props(body, "properties", where)
        return values

    def _datastream(self, body: dict, where: str, implied: dict) -> int:
        _check_keys(body, {"name", "description", "observationType", "unitOfMeasurement", "observedArea",
                           "phenomenonTime", "resultTime", "properties", "Thing", "Sensor", "ObservedProperty",
                           "Observations"}, where)
        values = self._datastream_values(body, where, required=True)
        for nav, col, es in (("Thing", "thing_id", "Things"), ("Sensor", "sensor_id", "Sensors"),
                             ("ObservedProperty", "observed_property_id", "ObservedProperties")):
            if col in implied:
                values[col] = implied[col]
            elif body.get(nav) is None:
                raise _bad(f"{where}{nav}", "is mandatory")
            else:
                values[col] = self.entity(es, body[nav], f"{where}{nav}/")
        did = sta_entities.insert_entity(self.conn, "datastream", values)
        self.created.entities.append(("Datastreams", did))
        obs = self._list(body, "Observations", where)
        if obs:
            self.write_observations([self.observation_row(b, f"{where}Observations[{i}]/", {"datastream_id": did})
                                     for i, b in enumerate(obs)])
        return did

    def _feature(self, body: dict, where: str, implied: dict) -> int:
        _check_keys(body, {"name", "description", "encodingType", "feature", "properties"}, where)
        fid = sta_entities.insert_entity(self.conn, "feature_of_interest", _encoded_geometry(body, "feature", where))
        self.created.entities.append(("FeaturesOfInterest", fid))
        return fid

    # -- observations ----------------------------------------------------------------------------------------------
    def _check_time(self, t: datetime, member: str) -> datetime:
        if t > self.now + self.limits.max_future or t < self.now - self.limits.max_past:
            raise _bad(member, "is outside the accepted window of observation times")
        return truncate_ms(t)

    def observation_row(self, body: Any, where: str, implied: dict) -> Observation:
        """Check one Observation body and build its row (a nested FeatureOfInterest is created)."""
        body = _obj(body, where.rstrip("/") or "body")
        _check_keys(body, {"phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters",
                           "Datastream", "FeatureOfInterest"}, where)
        ds = implied.get("datastream_id")
        if ds is None:
            if body.get("Datastream") is None:
                raise _bad(f"{where}Datastream", "is mandatory")
            ds = _ref_id(body["Datastream"], f"{where}Datastream/")
            if ds is None:
                raise _bad(f"{where}Datastream", "must reference an existing Datastream by @iot.id")
        if "result" not in body:
            raise _bad(f"{where}result", "is mandatory")
        extra: dict[str, Any] = {}
        if body.get("phenomenonTime") is not None:
            start, end = _time_or_interval(body["phenomenonTime"], f"{where}phenomenonTime")
            if end is not None:
                extra["phenomenonTimeEnd"] = end.strftime("%Y-%m-%dT%H:%M:%S.") + f"{end.microsecond // 1000:03d}Z"
        else:
            start = self.now
        start = self._check_time(start, f"{where}phenomenonTime")
        result_time = None
        if body.get("resultTime") is not None:
            result_time = truncate_ms(_instant(body["resultTime"], f"{where}resultTime"))
        if body.get("validTime") is not None:
            a, b = _time_or_interval(body["validTime"], f"{where}validTime")
            extra["validTime"] = [a.isoformat().replace("+00:00", "Z"), (b or a).isoformat().replace("+00:00", "Z")]
        if body.get("parameters") is not None:
            extra["parameters"] = _props(body, "parameters", where)
        result = body["result"]
        num = None
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            num = float(result)
            if not math.isfinite(num):
                raise _bad(f"{where}result", "must be finite")
        feature = None
        if body.get("FeatureOfInterest") is not None:
            feature = self.entity("FeaturesOfInterest", body["FeatureOfInterest"], f"{where}FeatureOfInterest/")
        return Observation(datastream_id=int(ds), phenomenon_time=start, result=num,
                           result_json=None if num is not None else result, result_time=result_time,
                           feature_id=feature, result_quality=body.get("resultQuality"), extra=extra or None)

    def write_observations(self, rows: list[Observation], *, where: str = "Datastream") -> None:
        """Write rows through the owner module's batch writer; FeaturesOfInterest are generated where missing."""
        if not rows:
            return
        ids = sorted({o.datastream_id for o in rows})
        if any(i > 2**31 - 1 for i in ids):
            raise _bad(where, "no such Datastream")
        features = sta_entities.datastream_features(self.conn, ids)
        missing = [i for i in ids if i not in features]
        if missing:
            raise _bad(where, f"no Datastream with id {missing[0]}")
        rows = [o if o.feature_id is not None or features[o.datastream_id] is None else
                Observation(o.datastream_id, o.phenomenon_time, o.result, o.result_json, o.result_time,
                            features[o.datastream_id], o.result_quality, o.extra) for o in rows]
        observations.ensure_partitions(self.conn, {o.phenomenon_time.date() for o in rows})
        bounds: dict[int, list[datetime]] = {}
        for o in rows:
            rt = o.result_time or o.phenomenon_time
            b = bounds.get(o.datastream_id)
            if b is None:
                bounds[o.datastream_id] = [o.phenomenon_time, o.phenomenon_time, rt, rt]
            else:
                b[0], b[1] = min(b[0], o.phenomenon_time), max(b[1], o.phenomenon_time)
                b[2], b[3] = min(b[2], rt), max(b[3], rt)
        observations.write_batch(self.conn.connection.driver_connection, rows)
        sta_entities.extend_datastream_times(self.conn, {k: tuple(v) for k, v in bounds.items()})
        self.created.observations.extend(rows)

    def _observation(self, body: dict, where: str, implied: dict) -> int:
        row = self.observation_row(body, where, implied)
        self.write_observations([row])
        self.created.entities.append(("Observations", row.id))
        return row.id

    CREATE: dict[str, Callable[..., int]] = {
        "Things": _thing, "Locations": _location, "HistoricalLocations": _historical_location, "Sensors": _sensor,
        "ObservedProperties": _observed_property, "Datastreams": _datastream, "Observations": _observation,
        "FeaturesOfInterest": _feature,
    }

    # -- updates and deletes ---------------------------------------------------------------------------------------
    def update(self, es: str, ident: int, body: Any) -> None:
        """PATCH (merge) ``body`` into the entity; NotFound when it does not exist."""
        body = dict(_obj(body, "body"))
        where = ""
        if "@iot.id" in body:
            if body.pop("@iot.id") != ident:
                raise _bad("@iot.id", "differs from the id in the path")
        for nav in _LINKED_FROM_OTHER_SIDE.get(es, ()):  # PUT bodies of clients carry them: changed elsewhere
            body.pop(nav, None)
        if es == "Observations":
            self._update_observation(ident, body)
            return
        table = TABLE_OF[es]
        values: dict[str, Any] = {}
        simple = {"name": "name", "description": "description", "encodingType": "encoding_type",
                  "metadata": "metadata", "definition": "definition"}
        navs: dict[str, Any] = {}
        allowed = {"Things": {"name", "description", "properties", "Locations"},
                   "Locations": {"name", "description", "encodingType", "location", "properties"},
                   "HistoricalLocations": {"time"},
                   "Sensors": {"name", "description", "encodingType", "metadata", "properties"},
                   "ObservedProperties": {"name", "definition", "description", "properties"},
                   "Datastreams": {"name", "description", "observationType", "unitOfMeasurement", "observedArea",
                                   "phenomenonTime", "resultTime", "properties", "Thing", "Sensor",
                                   "ObservedProperty"},
                   "FeaturesOfInterest": {"name", "description", "encodingType", "feature", "properties"}}[es]
        _check_keys(body, allowed, where)
        if es == "Datastreams":
            values = self._datastream_values(body, where, required=False)
            for nav, col, target in (("Thing", "thing_id", "Things"), ("Sensor", "sensor_id", "Sensors"),
                                     ("ObservedProperty", "observed_property_id", "ObservedProperties")):
                if nav in body:
                    values[col] = self.entity(target, body[nav], f"{nav}/")
        else:
            for key in body:
                if key in simple:
                    values[simple[key]] = _text(body, key, where, required=True)
                elif key == "properties":
                    values["properties"] = _props(body, key, where)
                elif key in ("location", "feature"):
                    values["geom"] = _geojson(body, key, where, required=True)
                elif key == "time":
                    values["time"] = _instant(body[key], "time")
                else:
                    navs[key] = body[key]
        if not sta_entities.update_entity(self.conn, table, ident, values):
            raise NotFound(f"no {es} with id {ident}")
        if "Locations" in navs:
            if not isinstance(navs["Locations"], list):
                raise _bad("Locations", "must be a JSON array")
            locs = [self.entity("Locations", b, f"Locations[{i}]/") for i, b in enumerate(navs["Locations"])]
            sta_entities.set_thing_locations(self.conn, ident, locs, replace=True)

    def _update_observation(self, ident: int, body: dict) -> None:
        _check_keys(body, {"result", "resultTime", "resultQuality", "parameters", "validTime"}, "")
        ds, t = observations.split_observation_id(ident)
        values: dict[str, Any] = {}
        if "result" in body:
            r = body["result"]
            if isinstance(r, (int, float)) and not isinstance(r, bool):
                values["result"], values["result_json"] = float(r), None
            else:
                values["result"], values["result_json"] = None, r
        if "resultTime" in body:
            values["result_time"] = None if body["resultTime"] is None else _instant(body["resultTime"], "resultTime")
        if "resultQuality" in body:
            values["result_quality"] = body["resultQuality"]
        if not observations.update_one(self.conn, ds, t, values):
            raise NotFound(f"no Observations with id {ident}")

    def delete(self, es: str, ident: int) -> None:
        """DELETE the entity (and what depends on it); NotFound when it does not exist."""
        if es == "Observations":
            ds, t = observations.split_observation_id(ident)
            if not observations.delete_one(self.conn, ds, t):
                raise NotFound(f"no Observations with id {ident}")
            return
        table = TABLE_OF[es]
        column = {"Things": "thing_id", "Sensors": "sensor_id", "ObservedProperties": "observed_property_id"}.get(es)
        datastreams = [ident] if es == "Datastreams" else \
            sta_entities.datastreams_of(self.conn, column, ident) if column else []
        if not sta_entities.delete_entity(self.conn, table, ident):
            raise NotFound(f"no {es} with id {ident}")
        # observations have no foreign key (COPY speed): removed with their datastreams
        observations.delete_datastreams(self.conn, datastreams)


#: to-many navigation members ignored by PATCH/PUT (they are set on the other entity: a Datastream names its Thing)
_LINKED_FROM_OTHER_SIDE = {
    "Things": ("Datastreams", "HistoricalLocations"), "Locations": ("Things", "HistoricalLocations"),
    "HistoricalLocations": ("Thing", "Locations"), "Sensors": ("Datastreams",), "ObservedProperties": ("Datastreams",),
    "Datastreams": ("Observations",), "Observations": ("Datastream", "FeatureOfInterest", "phenomenonTime"),
    "FeaturesOfInterest": ("Observations",),
}


# -- the dataArray extension ---------------------------------------------------------------------------------------
_COMPONENTS = {"phenomenonTime", "resultTime", "result", "resultQuality", "validTime", "parameters",
               "FeatureOfInterest/id"}
MAX_BULK_ROWS = 2_000_000


def parse_data_arrays(body: Any, limits: WriteLimits, now: datetime) -> list[Observation]:
    """Rows of a ``CreateObservations`` body: ``[{"Datastream": {"@iot.id": n}, "components": [...],
    "dataArray": [[...], ...]}, ...]``; a 400 names the array, row and component of the first fault."""
    if not isinstance(body, list):
        raise _bad("body", "must be a JSON array of {Datastream, components, dataArray}")
    rows: list[Observation] = []
    fast_parse = datetime.fromisoformat
    hi, lo = now + limits.max_future, now - limits.max_past
    for i, group in enumerate(body):
        where = f"[{i}]"
        group = _obj(group, where)
        _check_keys(group, {"Datastream", "components", "dataArray", "dataArray@iot.count", "MultiDatastream"}, "")
        if "MultiDatastream" in group:
            raise _bad(f"{where}/MultiDatastream", "MultiDatastreams are not supported")
        ds = _ref_id(group.get("Datastream") or {}, f"{where}/Datastream/")
        if ds is None:
            raise _bad(f"{where}/Datastream", "must reference a Datastream by @iot.id")
        comps = group.get("components")
        if not isinstance(comps, list) or not comps or not all(isinstance(c, str) for c in comps) \
                or len(set(comps)) != len(comps):
            raise _bad(f"{where}/components", "must be a list of distinct component names")
        unknown = [c for c in comps if c not in _COMPONENTS]
        if unknown:
            raise _bad(f"{where}/components", f"unknown component {unknown[0]!r}")
        if "result" not in comps:
            raise _bad(f"{where}/components", "must include 'result'")
        data = group.get("dataArray")
        if not isinstance(data, list):
            raise _bad(f"{where}/dataArray", "must be a JSON array of arrays")
        if len(rows) + len(data) > MAX_BULK_ROWS:
            raise _bad("body", f"at most {MAX_BULK_ROWS} observations in one request")
        ip = comps.index("phenomenonTime") if "phenomenonTime" in comps else None
        ir = comps.index("result")
        irt = comps.index("resultTime") if "resultTime" in comps else None
        iq = comps.index("resultQuality") if "resultQuality" in comps else None
        ifo = comps.index("FeatureOfInterest/id") if "FeatureOfInterest/id" in comps else None
        iv = comps.index("validTime") if "validTime" in comps else None
        ipa = comps.index("parameters") if "parameters" in comps else None
        n = len(comps)
        now_ms = truncate_ms(now)
        for j, row in enumerate(data):
            if type(row) is not list or len(row) != n:
                raise _bad(f"{where}/dataArray[{j}]", f"must be an array of {n} values")
            if ip is None:
                t = now_ms
            else:
                text = row[ip]
                try:
                    t = fast_parse(text)  # Python 3.11 reads Z and offsets
                    if t.tzinfo is None:
                        t = t.replace(tzinfo=UTC)
                except (TypeError, ValueError):
                    start, end = _time_or_interval(text, f"{where}/dataArray[{j}]/phenomenonTime")
                    if end is not None:
                        raise _bad(f"{where}/dataArray[{j}]/phenomenonTime",
                                   "intervals are not accepted in a dataArray") from None
                    t = start
                if t > hi or t < lo:
                    raise _bad(f"{where}/dataArray[{j}]/phenomenonTime",
                               "is outside the accepted window of observation times")
                if t.microsecond % 1000:
                    t = t.replace(microsecond=t.microsecond - t.microsecond % 1000)
            r = row[ir]
            tr = type(r)
            if tr is float or tr is int:
                num, rj = float(r), None
                if not math.isfinite(num):
                    raise _bad(f"{where}/dataArray[{j}]/result", "must be finite")
            else:
                num, rj = None, r
            rt = None
            if irt is not None and row[irt] is not None:
                rt = _instant(row[irt], f"{where}/dataArray[{j}]/resultTime")
            foi = None
            if ifo is not None and row[ifo] is not None:
                foi = row[ifo]
                if type(foi) is not int or foi < 0:
                    raise _bad(f"{where}/dataArray[{j}]/FeatureOfInterest/id", "must be an integer id")
            extra = None
            if iv is not None and row[iv] is not None:
                a, b = _time_or_interval(row[iv], f"{where}/dataArray[{j}]/validTime")
                extra = {"validTime": [a.isoformat(), (b or a).isoformat()]}
            if ipa is not None and row[ipa] is not None:
                if not isinstance(row[ipa], dict):
                    raise _bad(f"{where}/dataArray[{j}]/parameters", "must be an object")
                extra = {**(extra or {}), "parameters": row[ipa]}
            rows.append(Observation(ds, t, num, rj, rt, foi, None if iq is None else row[iq], extra))
    return rows


def fast_data_array(body: Any, limits: WriteLimits, now: datetime) -> DataArray | None:
    """The column-wise reading of a ``CreateObservations`` body (:mod:`cim_service.core.data_array`), or None
    when the body needs the general one (:func:`parse_data_arrays`, which also names the first fault exactly)."""
    now_ms = int(truncate_ms(now).timestamp() * 1000)
    lo = int((now - limits.max_past).timestamp() * 1000)
    hi = int((now + limits.max_future).timestamp() * 1000)
    try:
        arr = data_array.read(body, now_ms=now_ms, lo_ms=lo, hi_ms=hi, max_faults=1)
    except data_array.BodyError:
        return None
    if arr.faults or arr.general:
        return None
    return arr


def write_data_array(conn: Connection, arr: DataArray) -> Any:
    """Write the rows of ``arr`` through the single batch writer; return the ``@iot.id`` of every row (in order).

    Rows without a FeatureOfInterest observe their datastream's (generated from its Thing's Location if need be);
    each datastream's phenomenon and result times are widened in one statement.
    """
    import numpy as np

    if not len(arr):
        return np.empty(0, dtype=np.int64)
    uniq, inverse = np.unique(arr.datastream, return_inverse=True)
    ids = [int(i) for i in uniq]
    features = sta_entities.datastream_features(conn, ids)
    missing = [i for i in ids if i not in features]
    if missing:
        raise _bad("Datastream", f"no Datastream with id {missing[0]}")
    default = np.array([features[i] or -1 for i in ids], dtype=np.int64)[inverse]
    feature = np.where(arr.feature >= 0, arr.feature, default)
    cols = observations.Columns(arr.datastream, arr.t_ms, arr.result, feature)
    observations.ensure_partitions(conn, cols.days())
    observations.write_batch(conn.connection.driver_connection, columns=cols)
    lo = np.full(len(uniq), np.iinfo(np.int64).max)
    hi = np.full(len(uniq), np.iinfo(np.int64).min)
    np.minimum.at(lo, inverse, arr.t_ms)
    np.maximum.at(hi, inverse, arr.t_ms)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    bounds = {}
    for i, d in enumerate(ids):
        a = epoch + timedelta(milliseconds=int(lo[i]))
        b = epoch + timedelta(milliseconds=int(hi[i]))
        bounds[d] = (a, b, a, b)
    sta_entities.extend_datastream_times(conn, bounds)
    return cols.ids()
