"""Address search for the map: typed Chinese address → standard addresses (一标) with coordinates.

The text is parsed with :func:`cim_service.core.address.parse_address`; when it names a road, addresses on that
road (and lane / number when given) are matched on the parsed columns (``match: "address"``). Otherwise,
or when nothing matches, the text (and its standard form) is matched as a substring of ``full_address``
(``match: "text"``); as a last resort, any address on the parsed road (``match: "road"``). Values are bound
parameters; identifiers come from the catalog.
"""

from __future__ import annotations

from typing import Any

from cim_service.core.address import parse_address
from cim_service.core.catalog import LayerSpec
from cim_service.store.db import Session

MAX_QUERY_CHARS = 100


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _select(spec: LayerSpec) -> str:
    town = ', "town"' if "town" in spec.field_names else ", NULL::text"
    return (
        f'SELECT "full_address" AS label{town} AS town, ST_X("geom") AS longitude, ST_Y("geom") AS latitude '
        f"FROM {spec.qualified_table} WHERE \"geom\" IS NOT NULL AND "
    )


def _structured_sql(spec: LayerSpec) -> str:
    return _select(spec) + (
        '"road" = $1 AND ($2::text IS NULL OR "lane" = $2 OR "full_address" LIKE $4 ESCAPE \'\\\') '
        'AND ($3::text IS NULL OR "number" = $3) '
        'ORDER BY ("lane" IS NOT DISTINCT FROM $2) DESC, length("full_address"), "full_address" LIMIT $5'
    )


def _road_sql(spec: LayerSpec) -> str:
    return _select(spec) + '"road" = $1 ORDER BY "full_address" LIMIT $2'


def _substring_sql(spec: LayerSpec) -> str:
    return _select(spec) + (
        "(\"full_address\" LIKE $1 ESCAPE '\\' OR \"full_address\" LIKE $2 ESCAPE '\\') "
        'ORDER BY length("full_address"), "full_address" LIMIT $3'
    )


async def search_addresses(conn: Session, spec: LayerSpec, text: str,
                           limit: int = 10) -> list[dict[str, Any]]:
    """Return up to ``limit`` addresses matching ``text``: ``{label, town, longitude, latitude}``."""
    text = text.strip()[:MAX_QUERY_CHARS]
    if not text:
        return []
    parsed = parse_address(text)
    structured = {"road", "lane", "number"} <= set(spec.field_names) and parsed.road is not None
    if structured:
        lane_pattern = _like_pattern(f"{parsed.lane}弄") if parsed.lane else None
        rows = await conn.fetch(_structured_sql(spec), parsed.road, parsed.lane, parsed.number,
                                lane_pattern, limit)
        if rows:
            return [dict(row, match="address") for row in rows]
    standard = parsed.standard_address().removeprefix("上海市").removeprefix("闵行区")
    rows = await conn.fetch(_substring_sql(spec), _like_pattern(text), _like_pattern(standard or text), limit)
    if rows or not structured:
        return [dict(row, match="text") for row in rows]
    rows = await conn.fetch(_road_sql(spec), parsed.road, limit)
    return [dict(row, match="road") for row in rows]
