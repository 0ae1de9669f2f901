"""Gap layers (``kind: derived``): where the plan targets are not met, written into their ``cim.*`` tables.

- ``gap_camera_hex``: H3 resolution-8 cells (about 0.74 km²) overlapping the district: cameras per cell,
  area of the cell inside the district (EPSG:4549), density, and the deficit to 180 cameras/km²;
- ``gap_charging`` / ``gap_5g``: the parts of every town (and planning zone) outside the service discs;
- ``gap_unsensored_sites``: metro entrances, bus stops and underground spaces without a waterlogging sensor
  within ``sensor_site_radius_m``, with the distance to the nearest one.

Each writer replaces the layer's rows and bumps its ``layer_state`` version in the caller's transaction, so
tiles refresh and readers never see a half-written layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import h3
import shapely

from cim_service.indicators import coverage as cov
from cim_service.indicators.context import METRIC_SRID, Context
from cim_service.store.layer_state import bump_version

H3_RESOLUTION = 8
CAMERA_TARGET = 180.0
SITE_LAYERS = {"metro_entrances": "地铁出入口", "bus_stops": "公交站点", "underground_spaces": "地下空间"}


def _replace(ctx: Context, layer_id: str, insert_sql: str, **params: object) -> int:
    """Empty a derived layer, fill it with ``insert_sql`` and bump its version; return the feature count."""
    table = ctx.table(layer_id)
    ctx.execute(f"DELETE FROM {table}")
    ctx.execute(insert_sql.replace("{table}", table), **params)
    bump_version(ctx.conn, layer_id, table)
    return ctx.count(layer_id)


def _district_cells(ctx: Context) -> list[str]:
    """H3 cells overlapping the district outline."""
    ctx.prepare_areas()
    geojson = ctx.scalar("SELECT ST_AsGeoJSON(ST_Transform(geom, 4326)) FROM _ind_district WHERE geom IS NOT NULL")
    if not geojson:
        return []
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(shapely.from_geojson(geojson)))
    return sorted(h3.h3shape_to_cells_experimental(shape, H3_RESOLUTION, contain="overlap"))


def write_camera_hex(ctx: Context) -> int:
    """Fill ``gap_camera_hex``; return the number of cells."""
    cells = _district_cells(ctx)
    pts = ctx.array(f"SELECT ST_Y(geom), ST_X(geom) FROM {ctx.table('cameras')} WHERE NOT outside_district", 2)
    counts = Counter(h3.latlng_to_cell(lat, lon, H3_RESOLUTION) for lat, lon in pts.tolist())
    wkts = []
    for c in cells:
        ring = [(lon, lat) for lat, lon in h3.cell_to_boundary(c)]
        wkts.append(shapely.Polygon(ring).wkt)
    return _replace(
        ctx, "gap_camera_hex",
        f"""
        INSERT INTO {{table}} (feature_key, h3_index, town, cameras, area_km2, density, target, deficit, geom)
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
        h=cells, n=[counts.get(c, 0) for c in cells], w=wkts, target=CAMERA_TARGET,
    )


def write_uncovered(ctx: Context, layer_id: str, radius: str, stations: str, where: dict[str, object]) -> int:
    """Fill ``gap_charging`` or ``gap_5g`` with each town's (and zone's) uncovered part; return the count."""
    table = cov.coverage(ctx, stations, radius, where)
    zones = cov.zones(ctx, radius)
    with_zone = layer_id == "gap_charging"
    # towns when loaded, else the district outline (town left empty)
    pieces = "_ind_town_sub" if ctx.towns else "(SELECT NULL::text AS name, geom_m FROM _ind_district_sub)"
    cols = ", zone, radius_m" if with_zone else ""
    vals = ", zone, radius_m" if with_zone else ""
    return _replace(
        ctx, layer_id,
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
        SELECT concat_ws(':', COALESCE(town, '闵行区'), zone), concat_ws(':', COALESCE(town, '闵行区'), zone),
               town{vals}, ST_Area(geom) / 1e6,
               ST_Transform(geom, 4326)
          FROM g WHERE ST_Area(geom) >= 1
        """,
    )


def write_unsensored_sites(ctx: Context) -> int:
    """Fill ``gap_unsensored_sites`` from the three site layers; return the count."""
    ctx.prepare_areas()
    r = ctx.settings.sensor_site_radius_m
    sensors = ctx.table("waterlogging_sensors")
    selects = []
    for layer_id, kind in SITE_LAYERS.items():
        spec = ctx.spec(layer_id)
        label = f's."{spec.label_field}"' if spec.label_field else "NULL::text"
        key = f's."{spec.key[0]}"' if spec.key else "s.feature_key"
        selects.append(
            f"""SELECT '{layer_id}' AS layer, '{kind}' AS kind, {key}::text AS site_id, {label} AS name, s.geom
                  FROM {spec.qualified_table} s"""
        )
    union = " UNION ALL ".join(selects)
    return _replace(
        ctx, "gap_unsensored_sites",
        f"""
        INSERT INTO {{table}} (feature_key, site_key, site_layer, site_kind, site_id, name, town,
                               nearest_sensor_m, geom)
        WITH s AS ({union}), d AS (
          SELECT s.*, (SELECT ST_Distance(w.geom::geography, s.geom::geography) FROM {sensors} w
                        ORDER BY w.geom <-> s.geom LIMIT 1) AS dist
            FROM s
        )
        SELECT layer || ':' || site_id, layer || ':' || site_id, layer, kind, site_id, name,
               (SELECT t.name FROM _ind_town_sub t WHERE ST_Intersects(t.geom, d.geom) LIMIT 1), dist, geom
          FROM d WHERE dist IS NULL OR dist > :r
        ON CONFLICT (feature_key) DO NOTHING
        """,
        r=r,
    )


#: derived layer id -> (writer, input layers)
GAP_LAYERS: dict[str, tuple[Callable[[Context], int], tuple[str, ...]]] = {
    "gap_camera_hex": (write_camera_hex, ("cameras", "district", "towns")),
    "gap_charging": (lambda ctx: write_uncovered(ctx, "gap_charging", "charging", "charging_stations", {}),
                     ("charging_stations", "planning_zones", "district", "towns")),
    "gap_5g": (lambda ctx: write_uncovered(ctx, "gap_5g", "g5", "base_stations", {"technology": "5G"}),
               ("base_stations", "district", "towns")),
    "gap_unsensored_sites": (write_unsensored_sites,
                             ("metro_entrances", "bus_stops", "underground_spaces", "waterlogging_sensors", "towns")),
}
