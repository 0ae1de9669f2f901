"""SQL of vector tiles (Mapbox Vector Tile, one layer per collection) rendered by PostGIS.

What a client sees in a tile of layer ``L``:

- one MVT layer named ``L`` (the collection id), extent 4096, buffer 64; the MVT feature id is the ``id`` column;
- properties: the selected declared fields the caller may see (dates/timestamps/json as text);
- point layers always carry ``count``: at zoom >= :data:`THIN_BELOW_ZOOM` it is 1 and every point is present;
  below that zoom the tile is divided into a grid of :data:`THIN_GRID` x :data:`THIN_GRID` cells (aligned on
  the tile matrix, so neighbouring tiles agree) and each non-empty cell yields ONE feature: the point with the
  smallest ``id`` in the cell, with its own attributes and geometry, and ``count`` = the points in the cell.
  ``sum(count)`` over a tile therefore equals the number of points in it (deterministic, no sampling);
- lines and polygons are simplified (``ST_Simplify`` with a tolerance of one tile pixel, 1/4096 of the tile) and
  clipped to the tile plus buffer;
- at most ``max_features_per_tile`` features per layer (``LIMIT``; which ones is then unspecified);
- a sensing layer's features (read now) also carry ``latest_value``, ``latest_time`` and ``status``, the state of
  their primary datastream (``store.observations.live_join_sql``); such tiles are never cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cim_service.core.catalog import LayerSpec
from cim_service.store import history, observations
from cim_service.tiles.tms import TileRef

EXTENT = 4096
BUFFER = 64
#: point layers are thinned to one feature per grid cell below this zoom
THIN_BELOW_ZOOM = 14
#: grid cells per tile side when thinning (a cell is 64 MVT units: 8 px on a 512 px tile, 4 px on 256 px)
THIN_GRID = 64


@dataclass(frozen=True)
class TileSQL:
    """One tile query: SQL text with ``$n`` placeholders and its arguments."""

    sql: str
    args: tuple


def _columns(spec: LayerSpec, fields: tuple[str, ...]) -> str:
    cols = []
    for name in fields:
        ftype = spec.field(name).type  # KeyError for an undeclared field: callers validate first
        cast = "::text" if ftype.info.text_in_tiles else ""
        cols.append(f't."{name}"{cast} AS "{name}"')
    return "".join(f", {c}" for c in cols)


def build_tile_sql(spec: LayerSpec, tile: TileRef, fields: tuple[str, ...], limit: int,
                   where: str | None = None, where_args: tuple = (), at: datetime | None = None,
                   offline_s: float | None = None) -> TileSQL:
    """Build the MVT query of one layer and tile.

    ``where`` is an optional SQL boolean expression over the layer's quoted columns using placeholders
    ``$1..$k`` for ``where_args`` (e.g. a CQL2 filter); the tile's own parameters are numbered after them.
    Identifiers come from the catalog only; every value is a bound parameter. With ``at``, the layer is read as
    it was at that instant (its history, ``store.history.as_of_source``). With ``offline_s``, a sensing layer
    read now carries its live members (``latest_value``, ``latest_time`` as ISO text, ``status``).
    """
    relation = base = spec.qualified_table
    live_props = ""
    if at is not None:
        where_args = (*where_args, at)
        relation = base = history.as_of_source(spec, f"${len(where_args)}::timestamptz")
    elif offline_s is not None and spec.sensing is not None:
        args = list(where_args)

        def bind(value: object, cast: str) -> str:
            args.append(value)
            return f"${len(args)}::{cast}"

        join = observations.live_join_sql(spec, 't0."feature_key"', bind)
        status = observations.live_status_sql(spec, offline_s, bind)
        relation = (f"(SELECT t0.*, {observations.LIVE_VALUE} AS latest_value, "
                    f"to_json({observations.LIVE_TIME}) #>> '{{}}' AS latest_time, {status} AS status "
                    f"FROM {relation} t0{join})")
        where_args = tuple(args)
        live_props = ', t."latest_value", t."latest_time", t."status"'
    n = len(where_args)
    p = [f"${n + i}" for i in range(1, 8)]  # xmin, ymin, xmax, ymax, margin, layer name, tolerance/cell
    env = f"ST_MakeEnvelope({p[0]}::float8, {p[1]}::float8, {p[2]}::float8, {p[3]}::float8, {tile.srid})"
    col = f't."{tile.column}"'
    cond = f"{col} && ST_Expand(env.e, {p[4]}::float8)" + (f" AND ({where})" if where else "")
    if at is not None and tile.srid != 4326:  # the history's one spatial index is on geom (store.history)
        cond += f' AND t."geom" && ST_Transform(ST_Expand(env.e, {p[4]}::float8), 4326)'
    props = _columns(spec, fields) + live_props
    if spec.geometry.is_point and tile.z < THIN_BELOW_ZOOM:
        sql = _thinned_sql(base, relation, env, col, cond, props, fields, p, limit,
                           spec.geometry.value == "MultiPoint")
        extra: float | None = tile.width / THIN_GRID
    elif spec.geometry.is_point and relation is not base:
        # live members: the tile's rows are picked from the layer (its spatial index), then each is joined to its
        # state; a condition over the lateral join's relation made the planner scan the whole layer
        sql = _picked_sql(base, relation, env, col, cond, props + ", 1 AS count", p, limit)
        extra = None
    elif spec.geometry.is_point:
        sql = _plain_sql(relation, env, col, cond, props + ", 1 AS count", p, limit)
        extra = None
    else:
        geom = f"ST_Simplify({col}, {p[6]}::float8, true)"
        sql = _plain_sql(relation, env, geom, cond, props, p, limit)
        extra = tile.width / EXTENT
    margin = tile.width * BUFFER / EXTENT
    args = (*where_args, *tile.bounds, margin, spec.id)
    return TileSQL(sql, args if extra is None else (*args, extra))


def _plain_sql(relation: str, env: str, geom: str, cond: str, props: str, p: list[str], limit: int) -> str:
    return f"""
WITH env AS (SELECT {env} AS e),
q AS (
  SELECT t."id"{props}, ST_AsMVTGeom({geom}, env.e, {EXTENT}, {BUFFER}, true) AS mvtgeom
  FROM {relation} t, env
  WHERE {cond}
  LIMIT {int(limit)}
)
SELECT ST_AsMVT(q.*, {p[5]}::text, {EXTENT}, 'mvtgeom', 'id') FROM q WHERE q.mvtgeom IS NOT NULL"""


def _picked_sql(base: str, relation: str, env: str, col: str, cond: str, props: str, p: list[str],
                limit: int) -> str:
    return f"""
WITH env AS (SELECT {env} AS e),
picked AS (
  SELECT t."id" FROM {base} t, env WHERE {cond} LIMIT {int(limit)}
),
q AS (
  SELECT t."id"{props}, ST_AsMVTGeom({col}, env.e, {EXTENT}, {BUFFER}, true) AS mvtgeom
  FROM picked JOIN {relation} t ON t."id" = picked.id, env
)
SELECT ST_AsMVT(q.*, {p[5]}::text, {EXTENT}, 'mvtgeom', 'id') FROM q WHERE q.mvtgeom IS NOT NULL"""


def _thinned_sql(base: str, relation: str, env: str, col: str, cond: str, props: str, fields: tuple[str, ...],
                 p: list[str], limit: int, multipoint: bool) -> str:
    x, y = (f"ST_X({col})", f"ST_Y({col})")
    if multipoint:
        x, y = (f"ST_X(ST_GeometryN({col}, 1))", f"ST_Y(ST_GeometryN({col}, 1))")
    # cells are grouped on narrow (id, cx, cy) rows of the layer (``base``); only each cell's representative is
    # read in full from ``relation`` (the layer with its live members, when it has them)
    return f"""
WITH env AS (SELECT {env} AS e),
cells AS (
  SELECT min(c."id") AS id, count(*)::int AS count
  FROM (
    SELECT t."id", floor(({x} - {p[0]}::float8) / {p[6]}::float8) AS cx,
           floor(({y} - {p[1]}::float8) / {p[6]}::float8) AS cy
    FROM {base} t, env
    WHERE {cond}
  ) c
  GROUP BY c.cx, c.cy
  LIMIT {int(limit)}
),
q AS (
  SELECT t."id"{props}, cells.count, ST_AsMVTGeom({col}, env.e, {EXTENT}, {BUFFER}, true) AS mvtgeom
  FROM cells JOIN {relation} t ON t."id" = cells.id, env
)
SELECT ST_AsMVT(q.*, {p[5]}::text, {EXTENT}, 'mvtgeom', 'id') FROM q WHERE q.mvtgeom IS NOT NULL"""
