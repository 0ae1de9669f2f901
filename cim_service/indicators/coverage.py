"""Coverage geometry shared by indicators, gap layers and suggestions: service discs unioned per zone (EPSG:4549).

A coverage (``coverages:`` in ``indicators.yaml``) names a station layer, an optional filter, a radius (with
``radius_by``: another radius for some values of a field) and optionally a zone layer whose zones carry their
own radius (e.g. the planning zones: inside the S20 0.9 km, elsewhere 1.5 km); the part of the district no
zone covers uses ``radius_m``. Without zones the district is one zone and each station has its own radius.

Method: every station is buffered in EPSG:4549 by its radius as a 64-gon (``quad_segs=16``: the polygon's
area is 99.84 % of the true disc), the buffers of one zone are unioned (GEOS cascaded union), clipped to the
zone and cut into small pieces (``ST_Subdivide``) kept in a GIST-indexed temporary table. Areas are then
sums of piece-by-piece overlays with the (also subdivided) towns, which stays fast with thousands of
stations.
"""

from __future__ import annotations

from cim_service.indicators.catalog import Coverage
from cim_service.indicators.context import METRIC_SRID, SUBDIVIDE, Context
from cim_service.indicators.kinds import number

#: buffer segments per quarter circle
QUAD_SEGS = 16


def zones(ctx: Context, name: str) -> str:
    """Create ``_ind_zone_<name>`` (zone, radius_m, geom in 4549) for coverage ``name``; return its name."""
    table = f"_ind_zone_{name}"
    if table in ctx.prepared:
        return table
    ctx.prepare_areas()
    cov = ctx.indicators.coverage(name)
    if cov.zones is not None:
        z = cov.zones
        ctx.execute(
            f"""
            CREATE TEMP TABLE {table} ON COMMIT DROP AS
            SELECT z."{z.zone_field}"::text AS zone, z."{z.radius_field}"::float8 AS radius_m,
                   ST_Multi(ST_CollectionExtract(ST_Intersection(
                       ST_MakeValid(ST_Transform(z.geom, {METRIC_SRID})), d.geom), 3)) AS geom
              FROM {ctx.table(z.layer)} z CROSS JOIN _ind_district d;
            INSERT INTO {table}
            SELECT 'other', :r, ST_Multi(ST_CollectionExtract(ST_Difference(d.geom,
                       COALESCE((SELECT ST_Union(geom) FROM {table}),
                                ST_SetSRID('POLYGON EMPTY'::geometry, {METRIC_SRID}))), 3))
              FROM _ind_district d;
            DELETE FROM {table} WHERE geom IS NULL OR ST_Area(geom) < 1;
            """,
            r=number(cov.radius_m, ctx.settings),
        )
    else:
        ctx.execute(
            f"CREATE TEMP TABLE {table} ON COMMIT DROP AS "
            f"SELECT 'district'::text AS zone, NULL::float8 AS radius_m, geom FROM _ind_district"
        )
    ctx.prepared.add(table)
    return table


def station_radius(ctx: Context, cov: Coverage) -> tuple[str, dict[str, object]]:
    """SQL radius of station ``s`` in zone ``z``: the zone's own radius, else by ``radius_by``, else ``radius_m``."""
    params: dict[str, object] = {"r_default": number(cov.radius_m, ctx.settings)}
    cases = ""
    if cov.radius_by is not None:
        for i, (value, radius) in enumerate(sorted(cov.radius_by.values.items())):
            cases += f' WHEN s."{cov.radius_by.field}" = :r_when{i} THEN :r_then{i}'
            params.update({f"r_when{i}": value, f"r_then{i}": number(radius, ctx.settings)})
    station = f"CASE{cases} ELSE :r_default END" if cases else ":r_default"
    return f"COALESCE(z.radius_m, {station})", params


def coverage(ctx: Context, name: str) -> str:
    """Create ``_ind_cov_<name>`` (zone, geom pieces in 4549 of the covered area); return its name."""
    table = f"_ind_cov_{name}"
    if table in ctx.prepared:
        return table
    cov = ctx.indicators.coverage(name)
    zt = zones(ctx, name)
    cond, params = ctx.where(cov.stations, cov)
    r_expr, r_params = station_radius(ctx, cov)
    ctx.execute(
        f"""
        CREATE TEMP TABLE {table} ON COMMIT DROP AS
        WITH s AS (
          SELECT ST_Transform(s.geom, {METRIC_SRID}) AS g, s.* FROM {ctx.table(cov.stations)} s WHERE {cond}
        ), u AS (
          SELECT z.zone, ST_Union(ST_Buffer(s.g, {r_expr}, {QUAD_SEGS})) AS geom
            FROM {zt} z JOIN s ON ST_DWithin(s.g, z.geom, {r_expr})
           GROUP BY z.zone
        )
        SELECT u.zone, ST_Subdivide(ST_CollectionExtract(ST_Intersection(u.geom, z.geom), 3), {SUBDIVIDE}) AS geom
          FROM u JOIN {zt} z USING (zone);
        ALTER TABLE {table} ADD COLUMN geom4326 geometry;
        UPDATE {table} SET geom4326 = ST_Transform(geom, 4326);
        CREATE INDEX ON {table} USING gist (geom);
        CREATE INDEX ON {table} USING gist (geom4326);
        ANALYZE {table};
        """,
        **params, **r_params,
    )
    ctx.prepared.add(table)
    return table


def covered_points(ctx: Context, cov_table: str, layer_id: str) -> str:
    """Create ``<cov_table>_<layer>`` with the ids of the layer's features inside the coverage; return its name.

    Pieces are joined in WGS84 against the layer's GIST index: the pieces' edges are at most a few tens of
    metres long, so transforming them moves their boundary by far less than a millimetre. The ids get a
    primary key and statistics, so readers join them (hash or merge join at any ``work_mem``).
    """
    name = f"{cov_table}_{ctx.spec(layer_id).table}"
    if name in ctx.prepared:
        return name
    ctx.execute(
        f"""
        CREATE TEMP TABLE {name} ON COMMIT DROP AS
        SELECT DISTINCT s.id FROM {cov_table} c JOIN {ctx.table(layer_id)} s ON ST_Intersects(c.geom4326, s.geom);
        ALTER TABLE {name} ADD PRIMARY KEY (id);
        ANALYZE {name}
        """
    )
    ctx.prepared.add(name)
    return name


def near_coverage(ctx: Context, layer_id: str, radius_m: float) -> str:
    """Create ``_ind_near_<table>``: pieces of the union of ``radius_m`` discs around a layer (4549)."""
    name = f"_ind_near_{ctx.spec(layer_id).table}"
    if name in ctx.prepared:
        return name
    ctx.execute(
        f"""
        CREATE TEMP TABLE {name} ON COMMIT DROP AS
        SELECT ST_Subdivide(ST_Union(ST_Buffer(ST_Transform(geom, {METRIC_SRID}), :r, {QUAD_SEGS})),
                            {SUBDIVIDE}) AS geom
          FROM {ctx.table(layer_id)};
        DELETE FROM {name} WHERE geom IS NULL;
        CREATE INDEX ON {name} USING gist (geom);
        ANALYZE {name}
        """,
        r=radius_m,
    )
    ctx.prepared.add(name)
    return name


def covered_area_by_town(ctx: Context, cov: str) -> dict[str | None, float]:
    """Covered km² per town name and for the district (key ``None``)."""
    overlay = """
        sum(ST_Area(CASE WHEN ST_CoveredBy(c.geom, a.geom_m) THEN c.geom
                         ELSE ST_Intersection(c.geom, a.geom_m) END)) / 1e6"""
    out: dict[str | None, float] = {}
    for name, km2 in ctx.rows(
        f"SELECT a.name, {overlay} FROM {cov} c JOIN _ind_town_sub a ON ST_Intersects(c.geom, a.geom_m) "
        f"GROUP BY a.name"
    ):
        out[name] = float(km2 or 0.0)
    out[None] = float(ctx.scalar(
        f"SELECT COALESCE({overlay}, 0) FROM {cov} c JOIN _ind_district_sub a ON ST_Intersects(c.geom, a.geom_m)"
    ) or 0.0)
    return out


def covered_area_of(ctx: Context, cov: str, layer_id: str, target_field: str
                    ) -> list[tuple[str, float, float, float | None]]:
    """(label, area km², covered km², target share) of every feature of an area layer (e.g. key areas)."""
    spec = ctx.spec(layer_id)
    spec.field(target_field)
    label = f's."{spec.label_field}"' if spec.label_field else "s.feature_key"
    return [(r[0], float(r[1]), float(r[2] or 0.0), r[3]) for r in ctx.rows(
        f"""
        WITH k AS (
          SELECT {label} AS name, s."{target_field}" AS target,
                 ST_MakeValid(ST_Transform(s.geom, {METRIC_SRID})) AS geom FROM {spec.qualified_table} s
        )
        SELECT k.name, ST_Area(k.geom) / 1e6,
               (SELECT sum(ST_Area(ST_Intersection(c.geom, k.geom))) / 1e6
                  FROM {cov} c WHERE ST_Intersects(c.geom, k.geom)),
               k.target
          FROM k ORDER BY k.name
        """
    )]
