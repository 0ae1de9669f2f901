"""Alerts: ``cim_sta.alert_rule``, ``cim_sta.alert_watch``, ``cim_sta.alert_feed``, ``cim_sta.alert``,
``cim_sta.alert_change``.

The rules of the rules file (``sensing.alerts``) are written to ``alert_rule`` by the service at start
(:func:`sync_rules`): one row per rule and site kind (``site_kind`` '' holds the rule's own levels), and the
datastreams they watch to ``alert_watch`` (a trigger on ``cim_sta.datastream`` adds new ones). Every
writer of readings upserts ``cim_sta.latest``; the statement-level trigger ``cim_sta.alert_evaluate()``
(migration 0005) evaluates the new latest values against the rules in the writer's transaction: an alert is
raised, escalated (warning → alarm), de-escalated, updated (a new peak) or cleared, with hysteresis; each change is
a row of ``alert_change`` and a ``NOTIFY cim_alert_changed`` whose payload is :data:`PAYLOAD_KEYS` (JSON). The
offline sweep (:func:`sweep`, SQL ``cim_sta.alert_sweep(now)``) raises ``offline`` alerts for silent datastreams;
their next reading clears them.

The catalog's layer with the ``alert_feed`` role (the OGC API collection of alerts) is fed by the same trigger:
:func:`sync_feed` stores the statements writing its rows from ``alert`` (``feed_sql``), bumping its version
(``bump_sql``, from ``store.layer_state``) and finding the town of a new alert (``town_sql``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.core.catalog import LayerSpec
from cim_service.store import layer_state
from cim_service.store.db import Session
from cim_service.store.sta_entities import DATASTREAM, OBSERVED_PROPERTY

RULE = "cim_sta.alert_rule"
WATCH = "cim_sta.alert_watch"
FEED = "cim_sta.alert_feed"
ALERT = "cim_sta.alert"
CHANGE = "cim_sta.alert_change"
CHANNEL = "cim_alert_changed"
#: advisory lock serialising the sync of the rules and the feed (services starting at once)
SYNC_LOCK = 7_310_115
#: members of a ``cim_alert_changed`` payload (the contract with the /events stream)
PAYLOAD_KEYS = ("id", "change", "severity", "layer", "feature_id", "datastream", "property", "value", "time")
SEVERITIES = ("warning", "alarm", "offline")
CHANGES = ("raised", "escalated", "deescalated", "updated", "cleared")

#: what a field of the alert layer may hold: field name -> SQL over the alert row ``a``
FEED_COLUMNS = {
    "rule": "a.rule",
    "severity": "a.severity",
    "state": "CASE WHEN a.cleared_at IS NULL THEN 'active' ELSE 'cleared' END",
    "layer": "a.layer_id",
    "feature_id": "a.feature_id",
    "sensor_key": "a.feature_key",
    "datastream": "a.datastream_id",
    "property": "a.property",
    "value": "a.value",
    "peak_value": "a.peak_value",
    "peak_at": "a.peak_at",
    "site_kind": "a.site_kind",
    "town": "a.town",
    "raised_at": "a.raised_at",
    "changed_at": "a.updated_at",
    "cleared_at": "a.cleared_at",
}


@dataclass(frozen=True)
class RuleRow:
    """One row of ``alert_rule``: a rule's levels for one site kind ('' = its own levels)."""

    rule: str
    layer_id: str
    property: str
    kind_field: str | None
    site_kind: str
    sign: float
    warning: float | None
    alarm: float | None
    hysteresis: float
    offline_s: float | None

    @property
    def op_key(self) -> str:
        """The ObservedProperty's ``catalog_key`` (``store.sta_entities``)."""
        return f"{self.layer_id}/{self.property}"


def sync_rules(conn: Connection, rows: Sequence[RuleRow]) -> None:
    """Replace the rules by ``rows`` (in the caller's transaction; writers see the old or the new set)."""
    names = [f.name for f in fields(RuleRow)]
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SYNC_LOCK})
    conn.execute(sa.text(f"DELETE FROM {RULE}"))
    if rows:
        conn.execute(sa.text(
            f"INSERT INTO {RULE} ({', '.join(names)}, op_key) VALUES ({', '.join(':' + n for n in names)}, :op_key)"),
            [{**dict(zip(names, astuple(r), strict=True)), "op_key": r.op_key} for r in rows])
    conn.execute(sa.text(f"DELETE FROM {WATCH}"))
    conn.execute(sa.text(
        f"INSERT INTO {WATCH} (datastream_id, op_key) SELECT d.id, op.catalog_key FROM {DATASTREAM} d "
        f"JOIN {OBSERVED_PROPERTY} op ON op.id = d.observed_property_id "
        f"WHERE op.catalog_key IN (SELECT op_key FROM {RULE})"))


def rules(conn: Connection) -> list[dict[str, Any]]:
    """The rule rows in the database."""
    return [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {RULE} ORDER BY rule, site_kind")).mappings()]


def offline_s_sql(op_key_placeholder: str) -> str:
    """A scalar subquery of the offline time of the rule of an observed property (NULL: no rule, or none)."""
    return f"(SELECT r.offline_s FROM {RULE} r WHERE r.op_key = {op_key_placeholder} AND r.site_kind = '')"


def level_severity_sql(datastream_expr: str) -> str:
    """A scalar subquery of a datastream's active level alert severity (``warning`` / ``alarm``; NULL: none)."""
    return (f"(SELECT a.severity FROM {ALERT} a WHERE a.datastream_id = {datastream_expr} "
            "AND a.cleared_at IS NULL AND a.severity <> 'offline')")


def offline_alert_sql(datastream_expr: str) -> str:
    """A boolean subquery: whether a datastream has an active ``offline`` alert (the sweep raised it)."""
    return (f"EXISTS (SELECT 1 FROM {ALERT} a WHERE a.datastream_id = {datastream_expr} "
            "AND a.cleared_at IS NULL AND a.severity = 'offline')")


# -- the alert layer's feed ------------------------------------------------------------------------------------
def feed_sql(spec: LayerSpec, public_layers: Sequence[str]) -> str:
    """The statement writing the alert layer's rows of the alerts ``$1`` (bigint[]) from ``alert``.

    Only alerts of ``public_layers`` and with a point are fed (the collection is as public as its layer).
    """
    unknown = [f.name for f in spec.fields if f.name not in FEED_COLUMNS]
    if unknown:
        raise ValueError(f"layer {spec.id}: fields {unknown} are not alert attributes; known: "
                         f"{', '.join(FEED_COLUMNS)}")
    names = [f.name for f in spec.fields]
    cols = ", ".join(["id", "feature_key", *(f'"{n}"' for n in names), "geom", "updated_at"])
    exprs = ", ".join(["a.id", "a.id::text", *(f"{FEED_COLUMNS[n]}::{spec.field(n).type.sql}" for n in names),
                       "a.geom", "now()"])
    sets = ", ".join([*(f'"{n}" = excluded."{n}"' for n in names), "geom = excluded.geom",
                      "updated_at = excluded.updated_at"])
    layers = ", ".join("'" + layer.replace("'", "''") + "'" for layer in public_layers) or "NULL"
    return (f"INSERT INTO {spec.qualified_table} AS f ({cols}) SELECT {exprs} FROM {ALERT} a "
            f"WHERE a.id = ANY($1) AND a.geom IS NOT NULL AND a.layer_id IN ({layers}) "
            f"ON CONFLICT (id) DO UPDATE SET {sets}")


def town_sql(towns: LayerSpec) -> str:
    """The statement naming the town at the point ``$1``."""
    name = towns.label_field or "name"
    return (f'SELECT "{name}" FROM {towns.qualified_table} WHERE ST_Intersects(geom, $1) '
            f'ORDER BY "{name}" LIMIT 1')


def sync_feed(conn: Connection, spec: LayerSpec | None, towns: LayerSpec | None,
              public_layers: Sequence[str]) -> int:
    """Store how the trigger feeds the alert layer ``spec`` (None: no layer) and the town lookup; then feed it
    every alert once (so a new or emptied layer catches up). Return the rows fed."""
    present = {name for name in (spec.qualified_table if spec else None, towns.qualified_table if towns else None)
               if name and conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": name}).scalar() is not None}
    feed = spec if spec is not None and spec.qualified_table in present else None
    town = town_sql(towns) if towns is not None and towns.qualified_table in present else None
    values = {"layer": feed.id if feed else None, "feed": feed_sql(feed, public_layers) if feed else None,
              "bump": layer_state.bump_sql(feed.qualified_table) if feed else None, "town": town}
    conn.execute(sa.text(
        f"INSERT INTO {FEED} (id, layer_id, feed_sql, bump_sql, town_sql) VALUES (1, :layer, :feed, :bump, :town) "
        "ON CONFLICT (id) DO UPDATE SET layer_id = excluded.layer_id, feed_sql = excluded.feed_sql, "
        "bump_sql = excluded.bump_sql, town_sql = excluded.town_sql"), values)
    if feed is None:
        return 0
    ids = list(conn.execute(sa.text(f"SELECT id FROM {ALERT} ORDER BY id")).scalars())
    have = conn.execute(sa.text(f"SELECT count(*) FROM {feed.qualified_table}")).scalar_one()
    if ids or have:
        conn.execute(sa.text("SELECT cim_sta.alert_publish(CAST(:ids AS bigint[]))"), {"ids": ids})
    return len(ids)


# -- the sweep ---------------------------------------------------------------------------------------------------
def sweep(conn: Connection, now: datetime) -> int:
    """Raise an ``offline`` alert for every watched datastream silent for longer than its rule's offline time."""
    return int(conn.execute(sa.text("SELECT cim_sta.alert_sweep(:now)"), {"now": now}).scalar_one())


# -- reads -----------------------------------------------------------------------------------------------------
@dataclass
class AlertFilter:
    """A validated ``/alerts`` query (every value is bound)."""

    state: str = "active"                # active | cleared | all
    severities: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()         # source layers the caller may read (never empty when filtering)
    towns: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None        # raised at or after
    end: datetime | None = None          # raised before
    limit: int = 100
    offset: int = 0


def _where(f: AlertFilter) -> tuple[str, list[Any]]:
    args: list[Any] = []

    def bind(value: Any, cast: str) -> str:
        args.append(value)
        return f"${len(args)}::{cast}"

    where = [f"a.layer_id = ANY({bind(list(f.layers), 'text[]')})"]
    if f.state == "active":
        where.append("a.cleared_at IS NULL")
    elif f.state == "cleared":
        where.append("a.cleared_at IS NOT NULL")
    if f.severities:
        where.append(f"a.severity = ANY({bind(list(f.severities), 'text[]')})")
    if f.towns:
        where.append(f"a.town = ANY({bind(list(f.towns), 'text[]')})")
    if f.bbox is not None:
        x0, y0, x1, y1 = (bind(float(v), "float8") for v in f.bbox)
        where.append(f"a.geom && ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}, 4326)")
    if f.start is not None:
        where.append(f"a.raised_at >= {bind(f.start, 'timestamptz')}")
    if f.end is not None:
        where.append(f"a.raised_at < {bind(f.end, 'timestamptz')}")
    return " AND ".join(where), args


_COLUMNS = ("a.id, a.rule, a.severity, CASE WHEN a.cleared_at IS NULL THEN 'active' ELSE 'cleared' END AS state, "
            "a.layer_id, a.feature_id, a.feature_key, a.datastream_id, a.property, a.site_kind, a.town, "
            "a.value, a.peak_value, a.peak_at, a.raised_at, a.updated_at, a.cleared_at, "
            "ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat")


async def fetch_alerts(session: Session, f: AlertFilter) -> tuple[list[dict[str, Any]], int]:
    """A page of alerts (newest raised first) and how many match."""
    where, args = _where(f)
    n = len(args)
    rows = await session.fetch(
        f"SELECT {_COLUMNS}, count(*) OVER () AS matched FROM {ALERT} a WHERE {where} "
        f"ORDER BY a.raised_at DESC, a.id DESC LIMIT ${n + 1}::bigint OFFSET ${n + 2}::bigint",
        *args, f.limit, f.offset)
    matched = int(rows[0]["matched"]) if rows else int(await session.fetchval(
        f"SELECT count(*) FROM {ALERT} a WHERE {where}", *args))
    return [{k: v for k, v in r.items() if k != "matched"} for r in rows], matched


async def fetch_alert(session: Session, alert_id: int) -> dict[str, Any] | None:
    """One alert with its changes (oldest first)."""
    row = await session.fetchrow(f"SELECT {_COLUMNS} FROM {ALERT} a WHERE a.id = $1::bigint", alert_id)
    if row is None:
        return None
    changes = await session.fetch(
        f"SELECT at, change, severity, value, recorded_at FROM {CHANGE} WHERE alert_id = $1::bigint ORDER BY id",
        alert_id)
    return {**row, "history": changes}


async def fetch_alerts_by_id(session: Session, alert_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Alert id -> its row (the columns of :func:`fetch_alerts`), for the ids that exist."""
    rows = await session.fetch(f"SELECT {_COLUMNS} FROM {ALERT} a WHERE a.id = ANY($1::int8[])", list(alert_ids))
    return {int(r["id"]): r for r in rows}


async def fetch_active_counts(session: Session) -> dict[str, int]:
    """Active alerts by severity (every severity present, 0 when none)."""
    rows = await session.fetch(f"SELECT severity, count(*) AS n FROM {ALERT} WHERE cleared_at IS NULL "
                               "GROUP BY severity")
    out = dict.fromkeys(SEVERITIES, 0)
    out.update({r["severity"]: int(r["n"]) for r in rows})
    return out


def active(conn: Connection, datastream_id: int | None = None) -> list[dict[str, Any]]:
    """Active alerts (of one datastream), oldest first (tests, CLI)."""
    cond, params = ("AND datastream_id = :d", {"d": datastream_id}) if datastream_id is not None else ("", {})
    return [dict(r) for r in conn.execute(sa.text(
        f"SELECT * FROM {ALERT} WHERE cleared_at IS NULL {cond} ORDER BY id"), params).mappings()]


def changes(conn: Connection, datastream_id: int) -> list[dict[str, Any]]:
    """Every change of a datastream's alerts, in order (tests, CLI)."""
    return [dict(r) for r in conn.execute(sa.text(
        f"SELECT c.*, a.datastream_id FROM {CHANGE} c JOIN {ALERT} a ON a.id = c.alert_id "
        "WHERE a.datastream_id = :d ORDER BY c.id"), {"d": datastream_id}).mappings()]
