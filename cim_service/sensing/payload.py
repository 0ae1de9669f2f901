"""Reading an MQTT message as a SensorThings Observation: topic, JSON, types, times, units.

Pure functions (no broker, no database): :func:`parse` turns one message into an
:class:`~cim_service.store.observations.Observation` or raises :class:`Rejected` with a reason code, which the
bridge counts and keeps in the dead-letter table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from cim_service.store.observations import Columns, Observation, truncate_ms
from cim_service.store.sta_entities import DatastreamInfo

#: the inbound topic of SensorThings' MQTT extension (MQTT wildcards cover whole levels only: the bridge
#: subscribes ``v1.1/+/Observations`` and reads the id from the second level)
TOPIC_RE = re.compile(r"^v1\.1/Datastreams\((\d{1,10})\)/Observations$")
SUBSCRIPTION = "v1.1/+/Observations"
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
MAX_PAYLOAD = 64 * 1024
KNOWN_KEYS = {"phenomenonTime", "result", "resultTime", "resultQuality", "validTime", "parameters",
              "FeatureOfInterest", "unitOfMeasurement", "Datastream", "@iot.id"}


class Rejected(ValueError):
    """A message that is no acceptable Observation; ``reason`` is a short code (metrics label)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_PREFIX, _SUFFIX = "v1.1/Datastreams(", ")/Observations"


def datastream_of(topic: str) -> int:
    """Datastream id named by an inbound topic, or :class:`Rejected` (``topic``)."""
    if topic.startswith(_PREFIX) and topic.endswith(_SUFFIX):
        digits = topic[len(_PREFIX):-len(_SUFFIX)]
        if 0 < len(digits) <= 10 and digits.isascii() and digits.isdigit():
            ds = int(digits)
            if ds <= 2**31 - 1:
                return ds
    m = TOPIC_RE.match(topic)
    if not m or int(m.group(1)) > 2**31 - 1:
        raise Rejected("topic", "expected v1.1/Datastreams(<id>)/Observations")
    return int(m.group(1))


def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise Rejected("bad_type", f"{name} must be an ISO 8601 time text")
    try:
        t = datetime.fromisoformat(value)  # Python 3.11: any ISO 8601 form, 'Z' included
    except ValueError:
        raise Rejected("bad_type", f"{name} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise Rejected("bad_type", f"{name} needs a time zone (e.g. Z or +08:00)")
    if t.tzinfo is not UTC or t.microsecond % 1000:
        t = truncate_ms(t)
    return t


def _interval(value: Any, name: str) -> tuple[datetime, datetime | None]:
    if isinstance(value, str) and "/" in value:
        a, b = value.split("/", 1)
        start, end = _time(a, name), _time(b, name)
        if end < start:
            raise Rejected("bad_type", f"{name} interval ends before it starts")
        return start, end
    return _time(value, name), None


def parse(topic: str, payload: bytes, info: DatastreamInfo | None, *, now: datetime, max_past: timedelta,
          max_future: timedelta, ds: int | None = None) -> Observation:
    """The Observation of one message on ``topic`` (datastream ``ds`` when known); ``info`` is its datastream
    (None: unknown)."""
    if ds is None:
        ds = datastream_of(topic)
    if len(payload) > MAX_PAYLOAD:
        raise Rejected("too_large", f"payload above {MAX_PAYLOAD} bytes")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Rejected("not_json", "payload is not JSON (UTF-8)") from None
    if not isinstance(doc, dict):
        raise Rejected("bad_type", "payload must be a JSON object")
    if "result" not in doc:
        raise Rejected("bad_type", "result is missing")
    if info is None:
        raise Rejected("unknown_datastream", f"no datastream {ds}")
    result, result_json = doc["result"], None
    if info.observation_type == MEASUREMENT:
        if isinstance(result, bool) or not isinstance(result, int | float) or not math.isfinite(result):
            raise Rejected("bad_type", "result of an OM_Measurement datastream must be a finite number")
        result = float(result)
        if (info.minimum is not None and result < info.minimum) or (info.maximum is not None and
                                                                    result > info.maximum):
            raise Rejected("out_of_range", f"result {result} outside [{info.minimum}, {info.maximum}]")
    else:
        if isinstance(result, int | float) and not isinstance(result, bool) and math.isfinite(result):
            result = float(result)
        else:
            result, result_json = None, result
    unit = doc.get("unitOfMeasurement")
    params = doc.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise Rejected("bad_type", "parameters must be an object")
    if unit is None and isinstance(params, dict):
        unit = params.get("unit")
    if unit is not None:
        said = unit.get("symbol") if isinstance(unit, dict) else unit
        names = {v for v in (info.unit_symbol, info.unit_name) if v}
        if not isinstance(said, str) or (names and said not in names):
            raise Rejected("unit", f"unit {said!r} contradicts the datastream's {info.unit_symbol!r}")
    if "phenomenonTime" in doc and doc["phenomenonTime"] is not None:
        ptime, pend = _interval(doc["phenomenonTime"], "phenomenonTime")
    else:
        ptime, pend = truncate_ms(now), None
    if ptime > now + max_future:
        raise Rejected("time_range", "phenomenonTime is in the future")
    if ptime < now - max_past:
        raise Rejected("time_range", "phenomenonTime is older than the raw retention")
    rtime = _time(doc["resultTime"], "resultTime") if doc.get("resultTime") is not None else None
    extra: dict[str, Any] = {}
    if pend is not None:
        extra["phenomenonTimeEnd"] = pend.isoformat()
    if doc.get("validTime") is not None:
        vs, ve = _interval(doc["validTime"], "validTime")
        extra["validTime"] = [vs.isoformat(), (ve or vs).isoformat()]
    if params:
        extra["parameters"] = params
    feature = doc.get("FeatureOfInterest")
    feature_id = None
    if feature is not None:
        fid = feature.get("@iot.id") if isinstance(feature, dict) else None
        if isinstance(fid, bool) or not isinstance(fid, int) or not 0 < fid < 2**63:
            raise Rejected("bad_type", "FeatureOfInterest must be {\"@iot.id\": <id>} over MQTT")
        feature_id = fid
    return Observation(datastream_id=ds, phenomenon_time=ptime, result=result, result_json=result_json,
                       result_time=None if rtime == ptime else rtime, feature_id=feature_id,
                       result_quality=doc.get("resultQuality"), extra=extra or None)


def created_json(o: Observation, base_url: str = "") -> bytes:
    """The SensorThings JSON of a created Observation (what subscribers receive)."""
    oid = o.id
    pt = o.phenomenon_time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if o.extra and "phenomenonTimeEnd" in o.extra:
        pt = f"{pt}/{o.extra['phenomenonTimeEnd'].replace('+00:00', 'Z')}"
    doc: dict[str, Any] = {
        "@iot.id": oid,
        "@iot.selfLink": f"{base_url}/sta/v1.1/Observations({oid})",
        "phenomenonTime": pt,
        "resultTime": (o.result_time or o.phenomenon_time).astimezone(UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z"),
        "result": o.result if o.result_json is None else o.result_json,
        "Datastream@iot.navigationLink": f"{base_url}/sta/v1.1/Observations({oid})/Datastream",
    }
    if o.result_quality is not None:
        doc["resultQuality"] = o.result_quality
    if o.extra and "parameters" in o.extra:
        doc["parameters"] = o.extra["parameters"]
    return orjson.dumps(doc)


def created_columns(cols: Columns, base_url: str = "") -> Iterator[tuple[str, bytes]]:
    """(topic, SensorThings JSON) of each created numeric Observation of ``cols``: :func:`created_json`'s document
    for these rows, the times formatted column-wise by numpy."""
    import numpy as np

    if not len(cols):
        return
    times = np.datetime_as_string(cols.t_ms.astype("datetime64[ms]"), unit="ms")
    ids = cols.ids().tolist()
    for d, oid, t, r in zip(cols.datastream.tolist(), ids, times.tolist(), cols.result.tolist(), strict=True):
        link = f"{base_url}/sta/v1.1/Observations({oid})"
        yield (f"v1.1/Datastreams({d})/Observations",
               f'{{"@iot.id":{oid},"@iot.selfLink":"{link}","phenomenonTime":"{t}Z","resultTime":"{t}Z",'
               f'"result":{r!r},"Datastream@iot.navigationLink":"{link}/Datastream"}}'.encode())
