"""Gap layers (``kind: derived`` layers): where the plan targets are not met, written into their ``cim.*`` tables.

Declared in the ``derived:`` section of ``indicators.yaml``; the kinds:

- ``hex_deficit`` (``gap_camera_hex``): H3 cells (resolution 8: about 0.74 km²) overlapping the district: the
  features a density indicator counts per cell, the cell's area inside the district (EPSG:4549), density, and
  the deficit to the indicator's target;
- ``uncovered_area`` (``gap_charging`` / ``gap_5g``): the parts of every town (and zone, when the output
  layer has ``zone`` / ``radius_m`` fields) outside a coverage;
- ``sites_without`` (``gap_unsensored_sites``): sites of several layers with no feature of the ``near``
  layer (e.g. a waterlogging sensor) within ``radius_m``, with the distance to the nearest one.

Each writer replaces the layer's rows and bumps its ``layer_state`` version in the caller's transaction, so
tiles refresh and readers never see a half-written layer.
"""

from __future__ import annotations

from collections import Counter

import h3
import shapely

from cim_service.indicators import coverage as cov
from cim_service.indicators.catalog import DerivedSpec
from cim_service.indicators.compute import counted
from cim_service.indicators.context import DISTRICT, METRIC_SRID, Context
from cim_service.indicators.kinds import number
from cim_service.store.layer_state import bump_version


def replace_rows(ctx: Context, layer_id: str, insert_sql: str, **params: object) -> int:
    """Empty a derived layer, fill it with ``insert_sql`` and bump its version; return the feature count."""
    table = ctx.table(layer_id)
    ctx.execute(f"DELETE FROM {table}")
    ctx.execute(insert_sql.replace("{table}", table), **params)
    bump_version(ctx.conn, layer_id, table)
    return ctx.count(layer_id)


def _district_cells(ctx: Context, resolution: int) -> list[str]:
    """H3 cells overlapping the district outline."""
    ctx.prepare_areas()
    geojson = ctx.scalar("SELECT ST_AsGeoJSON(ST_Transform(geom, 4326)) FROM _ind_district WHERE geom IS NOT NULL")
    if not geojson:
        return []
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(shapely.from_geojson(geojson)))
    return sorted(h3.h3shape_to_cells_experimental(shape, resolution, contain="overlap"))


def write_hex_deficit(ctx: Context, out: DerivedSpec) -> int:
    """Fill an H3 deficit layer for the density indicator of ``out``; return the number of cells."""
    p = out.p
    ind = ctx.indicators.density_indicator(p.indicator)
    cells = _district_cells(ctx, p.resolution)
    cond, params = counted(ctx, ind)
    pts = ctx.array(f"SELECT ST_Y(s.geom), ST_X(s.geom) FROM {ctx.table(ind.p.layer)} s "
                    f"WHERE NOT s.outside_district AND {cond}", 2, **params)
    counts = Counter(h3.latlng_to_cell(lat, lon, p.resolution) for lat, lon in pts.tolist())
    wkts = []
    for c in cells:
        ring = [(lon, lat) for lat, lon in h3.cell_to_boundary(c)]
        wkts.append(shapely.Polygon(ring).wkt)
    return replace_rows(
        ctx, out.id,
        f"""
        INSERT INTO {{table}} (feature_key, h3_index, town, "{p.count_field}", area_km2, density, target, deficit,
                               geom)
        WITH c AS (
          SELECT h, n, ST_GeomFromText(w, 4326) AS geom FROM unnest(CAST(:h AS text[]), CAST(:n AS int[]),
                 CAST(:w AS text[])) AS u(h, n, w)
        ), a AS (
          SELECT c.*, (SELECT sum(ST_Area(ST_Intersection(ST_Transform(c.geom, {METRIC_SRID}), d.geom_m)))
                         FROM _ind_district_sub d WHERE d.geom && c.geom) / 1e6 AS km2,
                 (SELECT t.name FROM _ind_town_sub t WHERE ST_Intersects(t.geom, ST_Centroid(c.geom)) LIMIT 1) AS town
            FROM c
        )
        SELECT h, h, town, n, km2, CASE WHEN km2 > 0 THEN n / km2 END, :target,
               GREATEST(0, ceil(:target * km2 - n - 1e-9))::int, geom
          FROM a WHERE km2 > 0
        """,
        h=cells, n=[counts.get(c, 0) for c in cells], w=wkts, target=ind.target,
    )


def write_uncovered(ctx: Context, out: DerivedSpec) -> int:
    """Fill an uncovered-area layer with each town's (and zone's) part outside the coverage; return the count."""
    table = cov.coverage(ctx, out.p.coverage)
    zones = cov.zones(ctx, out.p.coverage)
    fields = ctx.spec(out.id).field_names
    with_zone = "zone" in fields and "radius_m" in fields
    # towns when loaded, else the district outline (town left empty)
    pieces = "_ind_town_sub" if ctx.towns else "(SELECT NULL::text AS name, geom_m FROM _ind_district_sub)"
    cols = ", zone, radius_m" if with_zone else ""
    return replace_rows(
        ctx, out.id,
        f"""
        INSERT INTO {{table}} (feature_key, gap_id, town{cols}, area_km2, geom)
        WITH piece AS (
          SELECT t.name AS town, z.zone, z.radius_m,
                 ST_Difference(ST_Intersection(t.geom_m, z.geom),
                   COALESCE((SELECT ST_Union(c.geom) FROM {table} c WHERE c.zone = z.zone AND c.geom && t.geom_m),
                            ST_SetSRID('POLYGON EMPTY'::geometry, {METRIC_SRID}))) AS geom
            FROM {pieces} t JOIN {zones} z ON ST_Intersects(t.geom_m, z.geom)
        ), g AS (
          SELECT town, zone, radius_m, ST_Multi(ST_CollectionExtract(ST_Union(geom), 3)) AS geom
            FROM piece WHERE NOT ST_IsEmpty(geom) GROUP BY town, zone, radius_m
        )
        SELECT concat_ws(':', COALESCE(town, :district), zone), concat_ws(':', COALESCE(town, :district), zone),
               town{cols}, ST_Area(geom) / 1e6,
               ST_Transform(geom, 4326)
          FROM g WHERE ST_Area(geom) >= 1
        """,
        district=DISTRICT,
    )


def write_sites_without(ctx: Context, out: DerivedSpec) -> int:
    """Fill a site-gap layer from the declared site layers; return the count."""
    p = out.p
    ctx.prepare_areas()
    selects, params = [], {"r": number(p.radius_m, ctx.settings)}
    for i, (layer_id, kind) in enumerate(p.sites.items()):
        spec = ctx.spec(layer_id)
        label = f's."{spec.label_field}"' if spec.label_field else "NULL::text"
        key = f's."{spec.key[0]}"' if spec.key else "s.feature_key"
        selects.append(f"SELECT CAST(:layer{i} AS text) AS layer, CAST(:kind{i} AS text) AS kind, "
                       f"{key}::text AS site_id, {label} AS name, s.geom FROM {spec.qualified_table} s")
        params.update({f"layer{i}": layer_id, f"kind{i}": kind})
    union = " UNION ALL ".join(selects)
    return replace_rows(
        ctx, out.id,
        f"""
        INSERT INTO {{table}} (feature_key, site_key, site_layer, site_kind, site_id, name, town,
                               "{p.distance_field}", geom)
        WITH s AS ({union}), d AS (
          SELECT s.*, (SELECT ST_Distance(w.geom::geography, s.geom::geography) FROM {ctx.table(p.near)} w
                        ORDER BY w.geom <-> s.geom LIMIT 1) AS dist
            FROM s
        )
        SELECT layer || ':' || site_id, layer || ':' || site_id, layer, kind, site_id, name,
               (SELECT t.name FROM _ind_town_sub t WHERE ST_Intersects(t.geom, d.geom) LIMIT 1), dist, geom
          FROM d WHERE dist IS NULL OR dist > :r
        ON CONFLICT (feature_key) DO NOTHING
        """,
        **params,
    )
