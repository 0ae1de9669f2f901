"""``GET /alerts`` and ``GET /alerts/{id}``: the alerts of the sensing layers (``store.alerts``), as JSON.

Alerts are raised, escalated, de-escalated, updated and cleared by the trigger on the latest readings; the same
alerts are the OGC API Features collection of the catalog's ``alert_feed`` layer (``/collections/<it>/items``,
with bbox, datetime, CQL2, CRS and formats). Access follows the alert's sensing layer: alerts of a public layer
are public; others need a key that may read that layer (else they are absent, and ``/alerts/{id}`` is 404).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response

from cim_service.auth import Principal, can_read_layer, get_principal
from cim_service.core.catalog import Access, Catalog, Role
from cim_service.errors import InvalidParameter, NotFound, error_responses
from cim_service.features import formats
from cim_service.features.params import parse_numbers
from cim_service.features.temporal import parse_instant
from cim_service.indicators.asof import PLAN_TZ
from cim_service.metrics import ALERTS_ACTIVE
from cim_service.routes.features import base_url
from cim_service.sensing import alerts as rules_mod
from cim_service.store import alerts as store
from cim_service.store.db import Session

log = logging.getLogger("cim.alert")
router = APIRouter(tags=["Alerts"], responses=error_responses(400, 404, 503))
STATES = ("active", "cleared", "all")
MAX_LIMIT = 1000
MAX_OFFSET = 100_000
MAX_LIST = 50
#: the member of the ``/alerts`` body holding the page of alerts
LIST_KEY = "alerts"


async def startup(app: FastAPI) -> None:
    """Write the alert rules and the alert layer's feed to the database (the trigger reads them)."""
    settings, catalog, rules = app.state.settings, app.state.catalog, app.state.alert_rules

    def install() -> None:
        with app.state.engine.begin() as conn:
            rules_mod.install(conn, catalog, rules, settings)

    try:
        await asyncio.to_thread(install)
    except sa.exc.OperationalError as exc:
        log.warning("alert rules not written (database unavailable): %s", str(exc).splitlines()[0])


async def update_metrics(app: FastAPI) -> None:
    """Set the ``cim_alerts_active`` gauge from the database (before ``/metrics`` renders)."""
    try:
        counts = await app.state.db.run(store.fetch_active_counts)
    except Exception:  # noqa: BLE001 - /metrics answers without the gauge's update rather than failing
        log.warning("active alerts not counted for /metrics", exc_info=True)
        return
    for severity, n in counts.items():
        ALERTS_ACTIVE.labels(severity).set(n)


def _list(text: str | None, parameter: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if text is None:
        return ()
    items = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not items or len(items) > MAX_LIST or any(len(v) > 100 for v in items):
        raise InvalidParameter(f"parameter {parameter!r}: expected 1 to {MAX_LIST} comma-separated values")
    bad = [v for v in items if allowed is not None and v not in allowed]
    if bad:
        raise InvalidParameter(f"parameter {parameter!r}: {bad[0]!r} is not one of {', '.join(allowed or ())}")
    return items


def _instant(text: str | None, parameter: str, *, end: bool) -> datetime | None:
    if text is None or text.strip() in ("", ".."):
        return None
    value = parse_instant(text, parameter)
    if isinstance(value, datetime):
        return value
    day = value if not end else date.fromordinal(value.toordinal() + 1)  # a whole day: to = the next midnight
    return datetime.combine(day, time(0), tzinfo=PLAN_TZ).astimezone(UTC)


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    v = parse_numbers(text, "bbox")
    if len(v) != 4:
        raise InvalidParameter("parameter 'bbox': expected 4 numbers minLon,minLat,maxLon,maxLat (CRS84)")
    if not (-180 <= v[0] <= 180 and -180 <= v[2] <= 180 and -90 <= v[1] <= 90 and -90 <= v[3] <= 90):
        raise InvalidParameter("parameter 'bbox': longitudes must lie in -180..180 and latitudes in -90..90")
    if v[0] > v[2] or v[1] > v[3]:
        raise InvalidParameter("parameter 'bbox': the lower corner must not exceed the upper corner")
    return v[0], v[1], v[2], v[3]


class AlertQuery:
    """The validated query parameters of ``GET /alerts``."""

    def __init__(
        self,
        request: Request,
        principal: Annotated[Principal, Depends(get_principal)],
        state: Annotated[str, Query(description="active (default), cleared or all.")] = "active",
        severity: Annotated[str | None, Query(description="warning, alarm, offline (comma-separated).")] = None,
        layer: Annotated[str | None, Query(description="Sensing layer ids (comma-separated).")] = None,
        town: Annotated[str | None, Query(description="Town names, e.g. 莘庄镇 (comma-separated).")] = None,
        bbox: Annotated[str | None, Query(description="minLon,minLat,maxLon,maxLat (CRS84).")] = None,
        from_: Annotated[str | None, Query(alias="from", description="Raised at or after (RFC 3339 or a date, "
                                                                     "Asia/Shanghai).")] = None,
        to: Annotated[str | None, Query(description="Raised before (a date: to its end).")] = None,
        limit: Annotated[str | None, Query(description=f"Alerts per page, 1-{MAX_LIMIT} (default 100).")] = None,
        offset: Annotated[str | None, Query(description=f"Alerts skipped, 0-{MAX_OFFSET}.")] = None,
        f: Annotated[str | None, Query(description="json (the only format).")] = None,
    ):
        if f is not None and f != "json":
            raise InvalidParameter(f"parameter 'f': {f[:20]!r} is not supported; use json")
        if state not in STATES:
            raise InvalidParameter(f"parameter 'state': {state[:20]!r} is not one of {', '.join(STATES)}")
        catalog: Catalog = request.app.state.catalog
        sensing = [s.id for s in catalog.sensing_layers]
        readable = tuple(s.id for s in catalog.sensing_layers if can_read_layer(s, principal))
        wanted = _list(layer, "layer", tuple(sensing))
        start, end = _instant(from_, "from", end=False), _instant(to, "to", end=True)
        if start is not None and end is not None and start >= end:
            raise InvalidParameter("parameters 'from' and 'to': 'from' must come before 'to'")
        self.filter = store.AlertFilter(
            state=state, severities=_list(severity, "severity", store.SEVERITIES),
            layers=tuple(x for x in (wanted or readable) if x in readable), towns=_list(town, "town"),
            bbox=_bbox(bbox), start=start, end=end, limit=_int(limit, "limit", 1, MAX_LIMIT, 100),
            offset=_int(offset, "offset", 0, MAX_OFFSET, 0))
        self.raw = {k: v for k, v in (("state", state if state != "active" else None), ("severity", severity),
                                      ("layer", layer), ("town", town), ("bbox", bbox), ("from", from_),
                                      ("to", to)) if v is not None}


def _int(text: str | None, parameter: str, lo: int, hi: int, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameter(f"parameter {parameter!r}: {text[:20]!r} is not an integer") from None
    if not lo <= value <= hi:
        raise InvalidParameter(f"parameter {parameter!r}: must lie in {lo}..{hi}")
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render(row: dict[str, Any], catalog: Catalog, base: str) -> dict[str, Any]:
    """One alert as JSON: its attributes, point, the layer's titles and links."""
    spec = catalog.get(row["layer_id"]) if row["layer_id"] in catalog else None
    feed = catalog.role(Role.alert_feed)
    links = [{"href": f"{base}/alerts/{row['id']}", "rel": "self", "type": "application/json"},
             {"href": f"{base}/sta/v1.1/Datastreams({row['datastream_id']})", "rel": "datastream",
              "type": "application/json"},
             {"href": f"{base}/sta/v1.1/Datastreams({row['datastream_id']})/Observations", "rel": "observations",
              "type": "application/json"}]
    if spec is not None and row["feature_id"] is not None:
        links.append({"href": f"{base}/collections/{spec.id}/items/{row['feature_id']}", "rel": "feature",
                      "type": "application/geo+json"})
    if feed is not None and spec is not None and spec.access is Access.public and row["lon"] is not None:
        links.append({"href": f"{base}/collections/{feed.id}/items/{row['id']}", "rel": "alternate",
                      "type": "application/geo+json", "title": "this alert as a feature"})
    unit = None
    if spec is not None and spec.sensing is not None:
        unit = next((p.unit.symbol for p in spec.sensing.observed_properties if p.name == row["property"]), None)
    return {
        "id": row["id"], "rule": row["rule"], "severity": row["severity"], "state": row["state"],
        "layer": row["layer_id"],
        "layer_title": {"zh": spec.title_zh, "en": spec.title_en} if spec else None,
        "feature_id": row["feature_id"], "feature_key": row["feature_key"], "datastream": row["datastream_id"],
        "property": row["property"], "unit": unit, "site_kind": row["site_kind"], "town": row["town"],
        "value": row["value"], "peak_value": row["peak_value"], "peak_at": _iso(row["peak_at"]),
        "time": _iso(row["updated_at"]), "raised_at": _iso(row["raised_at"]), "updated_at": _iso(row["updated_at"]),
        "cleared_at": _iso(row["cleared_at"]), "lon": row["lon"], "lat": row["lat"], "links": links,
    }


@router.get("/alerts", summary="Alerts of the sensing layers (active by default), newest first")
async def list_alerts(request: Request, q: Annotated[AlertQuery, Depends()]) -> Response:
    """A page of alerts with their feature's point, the layer's titles and links; filters are validated (400)."""
    flt = q.filter
    base = base_url(request)
    if not flt.layers:
        rows, matched = [], 0
    else:
        async def fetch(session: Session) -> tuple[list[dict[str, Any]], int]:
            return await store.fetch_alerts(session, flt)

        rows, matched = await request.app.state.db.run(fetch)
    catalog = request.app.state.catalog
    page = dict(q.raw, limit=str(flt.limit))
    links = [{"href": f"{base}/alerts?{urlencode({**page, 'offset': flt.offset})}", "rel": "self",
              "type": "application/json"}]
    if flt.offset + len(rows) < matched:
        links.append({"href": f"{base}/alerts?{urlencode({**page, 'offset': flt.offset + flt.limit})}",
                      "rel": "next", "type": "application/json"})
    if flt.offset > 0:
        links.append({"href": f"{base}/alerts?{urlencode({**page, 'offset': max(0, flt.offset - flt.limit)})}",
                      "rel": "prev", "type": "application/json"})
    feed = catalog.role(Role.alert_feed)
    if feed is not None:
        links.append({"href": f"{base}/collections/{feed.id}", "rel": "collection", "type": "application/json",
                      "title": "the alerts as an OGC API Features collection"})
    body = {LIST_KEY: [render(r, catalog, base) for r in rows], "numberMatched": matched,
            "numberReturned": len(rows), "timeStamp": _iso(datetime.now(UTC)), "links": links}
    return formats.json_response(body)


@router.get("/alerts/{alertId}", summary="One alert with its history of changes")
async def get_alert(request: Request, principal: Annotated[Principal, Depends(get_principal)],
                    alertId: Annotated[str, Path(description="Alert id.")]) -> Response:  # noqa: N803
    """The alert and every change of it (raised, escalated, deescalated, updated, cleared), oldest first."""
    try:
        alert_id = int(alertId)
        if not 0 < alert_id < 2**63:
            raise ValueError
    except ValueError:
        raise NotFound(f"alert {alertId[:40]!r} not found") from None

    async def fetch(session: Session) -> dict[str, Any] | None:
        return await store.fetch_alert(session, alert_id)

    row = await request.app.state.db.run(fetch)
    catalog: Catalog = request.app.state.catalog
    if row is None or row["layer_id"] not in catalog or not can_read_layer(catalog.get(row["layer_id"]), principal):
        raise NotFound(f"alert {alert_id} not found")
    body = render(row, catalog, base_url(request))
    body["history"] = [{"time": _iso(c["at"]), "change": c["change"], "severity": c["severity"],
                        "value": c["value"], "recorded_at": _iso(c["recorded_at"])} for c in row["history"]]
    return formats.json_response(body)
