"""Coverage geometry shared by indicators and gap layers: service-radius discs unioned per zone, in EPSG:4549.

Method: every station is buffered in EPSG:4549 by its radius as a 64-gon (``quad_segs=16``: the polygon's
area is 99.84 % of the true disc), the buffers of one zone are unioned (GEOS cascaded union), clipped to the
zone and cut into small pieces (``ST_Subdivide``) kept in a GIST-indexed temporary table. Areas are then
sums of piece-by-piece overlays with the (also subdivided) towns, which stays fast with thousands of
stations. Zones: charging uses the ``planning_zones`` layer (inside the S20: 0.9 km, elsewhere 1.5 km, from
each zone's ``charging_radius_m``) and the default radius for any part of the district no zone covers;
5G uses one zone, the district, with a radius per station (macro / small cell, from settings).
"""

from __future__ import annotations

from cim_service.indicators.context import METRIC_SRID, SUBDIVIDE, Context

#: charging radius where no planning zone applies (the plan's 1.5 km "其他区域")
DEFAULT_CHARGING_RADIUS_M = 1500.0
#: buffer segments per quarter circle
QUAD_SEGS = 16


def _where(ctx: Context, layer_id: str, where: dict[str, object]) -> tuple[str, dict[str, object]]:
    """SQL filter over declared fields (names validated against the catalog), values bound."""
    spec = ctx.spec(layer_id)
    clauses, params = ["TRUE"], {}
    for i, (name, value) in enumerate(sorted(where.items())):
        spec.field(name)  # KeyError for an undeclared field
        clauses.append(f's."{name}" = :w{i}')
        params[f"w{i}"] = value
    return " AND ".join(clauses), params


def zones(ctx: Context, radius: str) -> str:
    """Create ``_ind_zone_<radius>`` (zone, radius_m, geom in 4549) for 'charging' or 'g5'; return its name."""
    name = f"_ind_zone_{radius}"
    if name in ctx.prepared:
        return name
    ctx.prepare_areas()
    if radius == "charging":
        pz = ctx.table("planning_zones")
        ctx.execute(
            f"""
            CREATE TEMP TABLE {name} ON COMMIT DROP AS
            SELECT z.zone, z.charging_radius_m AS radius_m,
                   ST_Multi(ST_CollectionExtract(ST_Intersection(
                       ST_MakeValid(ST_Transform(z.geom, {METRIC_SRID})), d.geom), 3)) AS geom
              FROM {pz} z CROSS JOIN _ind_district d;
            INSERT INTO {name}
            SELECT 'other', :r, ST_Multi(ST_CollectionExtract(ST_Difference(d.geom,
                       COALESCE((SELECT ST_Union(geom) FROM {name}),
                                ST_SetSRID('POLYGON EMPTY'::geometry, {METRIC_SRID}))), 3))
              FROM _ind_district d;
            DELETE FROM {name} WHERE geom IS NULL OR ST_Area(geom) < 1;
            """,
            r=DEFAULT_CHARGING_RADIUS_M,
        )
    elif radius == "g5":
        ctx.execute(
            f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
            f"SELECT 'district'::text AS zone, NULL::float8 AS radius_m, geom FROM _ind_district"
        )
    else:
        raise ValueError(f"unknown radius rule {radius!r}")
    ctx.prepared.add(name)
    return name


def _station_radius(ctx: Context, radius: str) -> tuple[str, dict[str, object]]:
    if radius == "charging":
        return "z.radius_m", {}
    return ("CASE WHEN s.cell_type = 'small' THEN :small ELSE :macro END",
            {"small": ctx.settings.g5_small_radius_m, "macro": ctx.settings.g5_macro_radius_m})


def coverage(ctx: Context, layer_id: str, radius: str, where: dict[str, object]) -> str:
    """Create ``_ind_cov_<radius>`` (zone, geom pieces in 4549 of the covered area); return its name."""
    name = f"_ind_cov_{radius}"
    if name in ctx.prepared:
        return name
    zt = zones(ctx, radius)
    cond, params = _where(ctx, layer_id, where)
    r_expr, r_params = _station_radius(ctx, radius)
    ctx.execute(
        f"""
        CREATE TEMP TABLE {name} ON COMMIT DROP AS
        WITH s AS (
          SELECT ST_Transform(s.geom, {METRIC_SRID}) AS g, s.* FROM {ctx.table(layer_id)} s WHERE {cond}
        ), u AS (
          SELECT z.zone, ST_Union(ST_Buffer(s.g, {r_expr}, {QUAD_SEGS})) AS geom
            FROM {zt} z JOIN s ON ST_DWithin(s.g, z.geom, {r_expr})
           GROUP BY z.zone
        )
        SELECT u.zone, ST_Subdivide(ST_CollectionExtract(ST_Intersection(u.geom, z.geom), 3), {SUBDIVIDE}) AS geom
          FROM u JOIN {zt} z USING (zone);
        ALTER TABLE {name} ADD COLUMN geom4326 geometry;
        UPDATE {name} SET geom4326 = ST_Transform(geom, 4326);
        CREATE INDEX ON {name} USING gist (geom);
        CREATE INDEX ON {name} USING gist (geom4326);
        ANALYZE {name};
        """,
        **params, **r_params,
    )
    ctx.prepared.add(name)
    return name


def covered_points(ctx: Context, cov_table: str, layer_id: str) -> str:
    """Create ``<cov_table>_<layer>`` with the ids of the layer's features inside the coverage; return its name.

    Pieces are joined in WGS84 against the layer's GIST index: the pieces' edges are at most a few tens of
    metres long, so transforming them moves their boundary by far less than a millimetre.
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


def pole_coverage(ctx: Context, radius_m: float) -> str:
    """Create ``_ind_cov_poles``: pieces of the union of smart-pole discs (4549); return its name."""
    name = "_ind_cov_poles"
    if name in ctx.prepared:
        return name
    ctx.execute(
        f"""
        CREATE TEMP TABLE {name} ON COMMIT DROP AS
        SELECT ST_Subdivide(ST_Union(ST_Buffer(ST_Transform(geom, {METRIC_SRID}), :r, {QUAD_SEGS})),
                            {SUBDIVIDE}) AS geom
          FROM {ctx.table("smart_poles")};
        DELETE FROM {name} WHERE geom IS NULL;
        CREATE INDEX ON {name} USING gist (geom);
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


def covered_area_of_key_areas(ctx: Context, cov: str) -> list[tuple[str, float, float, float | None]]:
    """(name, area km², covered km², target share) of every key area."""
    return [(r[0], float(r[1]), float(r[2] or 0.0), r[3]) for r in ctx.rows(
        f"""
        WITH k AS (
          SELECT name, g5_target_coverage AS target,
                 ST_MakeValid(ST_Transform(geom, {METRIC_SRID})) AS geom FROM {ctx.table("key_areas")}
        )
        SELECT k.name, ST_Area(k.geom) / 1e6,
               (SELECT sum(ST_Area(ST_Intersection(c.geom, k.geom))) / 1e6
                  FROM {cov} c WHERE ST_Intersects(c.geom, k.geom)),
               k.target
          FROM k ORDER BY k.name
        """
    )]
