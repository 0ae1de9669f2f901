"""Label points of labelled polygon layers in vector tiles: one point per feature, in one tile only.

A polygon spanning several tiles would get one label per tile if a client labelled the polygon itself (MapLibre
places a point-placed symbol of a polygon in each tile the polygon reaches). The tiles therefore carry, for each
polygon layer whose ``style.label`` has ``placement: point``, a second MVT layer named :func:`label_layer_name`
(``<collection>.labels``; collection ids never hold a dot) with ONE point per feature, at its
``ST_PointOnSurface`` (inside the polygon, even a concave or multi-part one), emitted only in the tile that
contains that point (half-open on the tile's edges: a point on an edge belongs to exactly one tile). Its
properties are the label fields (``style.label.field`` and ``field_en``); its feature id is the feature's ``id``.

Lines are labelled along themselves (``symbol-placement: line``) and points at themselves: they get no label layer.
"""

from __future__ import annotations

from cim_service.core.catalog import LayerSpec
from cim_service.tiles.mvt import EXTENT, TileSQL
from cim_service.tiles.tms import TileRef

#: the suffix of a label layer's MVT name
SUFFIX = ".labels"


def has_label_points(spec: LayerSpec) -> bool:
    """Tell whether the tiles carry a label-point layer for ``spec`` (a polygon layer labelled at a point)."""
    label = spec.style.label
    return label is not None and label.placement == "point" and not spec.geometry.is_point \
        and "Line" not in spec.geometry.value


def label_layer_name(spec: LayerSpec) -> str:
    """The MVT layer name of ``spec``'s label points."""
    return f"{spec.id}{SUFFIX}"


def label_fields(spec: LayerSpec) -> tuple[str, ...]:
    """The fields a label point carries: the Chinese label field, then the English one if declared."""
    label = spec.style.label
    assert label is not None
    return (label.field,) if not label.field_en else (label.field, label.field_en)


def build_label_sql(spec: LayerSpec, tile: TileRef) -> TileSQL:
    """The MVT query of ``spec``'s label points in ``tile`` (identifiers from the catalog, values bound)."""
    names = label_fields(spec)
    cols = "".join(f', t."{name}"::text AS "{name}"' for name in names)
    picked = "".join(f', p."{name}"' for name in names)
    col = f't."{tile.column}"'
    # the polygons reaching the tile (spatial index), their interior points, those inside the tile (half-open)
    return TileSQL(f"""
WITH env AS (SELECT ST_MakeEnvelope($1::float8, $2::float8, $3::float8, $4::float8, {tile.srid}) AS e),
p AS (
  SELECT t."id"{cols}, ST_PointOnSurface({col}) AS pt
  FROM {spec.qualified_table} t, env
  WHERE {col} && env.e AND t."{names[0]}" IS NOT NULL
),
q AS (
  SELECT p."id"{picked}, ST_AsMVTGeom(p.pt, env.e, {EXTENT}, 0, false) AS mvtgeom
  FROM p, env
  WHERE ST_X(p.pt) >= $1::float8 AND ST_X(p.pt) < $3::float8 AND ST_Y(p.pt) > $2::float8
    AND ST_Y(p.pt) <= $4::float8
)
SELECT ST_AsMVT(q.*, $5::text, {EXTENT}, 'mvtgeom', 'id') FROM q WHERE q.mvtgeom IS NOT NULL""",
                   (*tile.bounds, label_layer_name(spec)))
