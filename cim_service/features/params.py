"""Parse and validate the items query parameters (``bbox``, ``properties``, ``sortby``) against the catalog."""

from __future__ import annotations

import math

from cim_service.core.catalog import FieldSpec, LayerSpec
from cim_service.errors import InvalidParameter, NotFound
from cim_service.features.crs import OutputCrs, check_transformable
from cim_service.features.sql import Params, quote_ident


def parse_feature_id(text: str, spec: LayerSpec) -> int:
    """The feature id of a path (a 64-bit integer); anything else names no feature of ``spec``: 404."""
    try:
        fid = int(text)
        if not -2**63 <= fid < 2**63:
            raise ValueError
    except ValueError:
        raise NotFound(f"feature {text!r} not found in collection {spec.id!r}") from None
    return fid


def parse_numbers(text: str, parameter: str) -> list[float]:
    """Parse a comma-separated list of finite numbers."""
    try:
        numbers = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidParameter(f"parameter {parameter!r}: expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in numbers):
        raise InvalidParameter(f"parameter {parameter!r}: numbers must be finite")
    return numbers


def bbox_condition(text: str, crs: OutputCrs, spec: LayerSpec, params: Params) -> str:
    """SQL condition of ``bbox`` given in ``crs`` (axis order of that CRS), using the GIST index."""
    v = parse_numbers(text, "bbox")
    if len(v) == 6:
        v = [v[0], v[1], v[3], v[4]]
    if len(v) != 4:
        raise InvalidParameter("parameter 'bbox': expected 4 (or 6) numbers: lower-left and upper-right corners")
    lo1, lo2, hi1, hi2 = crs.bounds or (-math.inf, -math.inf, math.inf, math.inf)
    if not (lo1 <= v[0] <= hi1 and lo1 <= v[2] <= hi1 and lo2 <= v[1] <= hi2 and lo2 <= v[3] <= hi2):
        raise InvalidParameter(f"parameter 'bbox': coordinates out of range for {crs.uri} "
                               f"(first axis {lo1}..{hi1}, second axis {lo2}..{hi2})")
    if v[0] > v[2] or v[1] > v[3]:
        raise InvalidParameter("parameter 'bbox': lower corner must not exceed upper corner "
                               "(boxes crossing the antimeridian are not supported)")
    minx, miny, maxx, maxy = (v[1], v[0], v[3], v[2]) if crs.lat_first else tuple(v)
    column = '"geom"'
    if crs.python_crs:
        minx, miny, maxx, maxy = _wgs84_box(minx, miny, maxx, maxy, crs.python_crs)
        srid = 4326
    elif crs.srid == 3857:
        column, srid = '"geom_3857"', 3857
    else:
        srid = crs.srid
        check_transformable([minx, maxx, minx, maxx], [miny, miny, maxy, maxy], crs, "bbox")
    f = "double precision"
    env = (f"ST_MakeEnvelope({params.bind(minx, f)}, {params.bind(miny, f)}, "
           f"{params.bind(maxx, f)}, {params.bind(maxy, f)}, {srid})")
    if srid not in (4326, 3857):
        env = f"ST_Transform({env}, 4326)"
    if spec.geometry.is_point and spec.geometry.value == "Point" and srid in (4326, 3857):
        return f"{column} && {env}"
    return f"({column} && {env} AND ST_Intersects({column}, {env}))"


def _wgs84_box(minx: float, miny: float, maxx: float, maxy: float, python_crs: str) -> tuple[float, ...]:
    from cim_service.core.crs import to_wgs84

    xs, ys = to_wgs84([minx, maxx, minx, maxx], [miny, miny, maxy, maxy], python_crs)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def parse_properties(text: str | None, visible: list[FieldSpec]) -> list[FieldSpec]:
    """Selected output properties (all visible ones when absent); unknown or hidden names are a 400."""
    if text is None:
        return list(visible)
    by_name = {f.name: f for f in visible}
    selected: list[FieldSpec] = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        if name not in by_name:
            raise InvalidParameter(f"parameter 'properties': unknown property {name!r}; "
                                   f"available: {', '.join(by_name)}")
        if by_name[name] not in selected:
            selected.append(by_name[name])
    return selected


def parse_sortby(text: str | None, visible: list[FieldSpec]) -> list[tuple[str, bool]]:
    """``sortby=name,-built_at`` → [(quoted column, ascending)]; ``id`` is always the final tie-breaker."""
    order: list[tuple[str, bool]] = []
    if text:
        names = {f.name for f in visible} | {"id"}
        for item in (s.strip() for s in text.split(",")):
            if not item:
                continue
            asc = not item.startswith("-")
            name = item.lstrip("+-").strip()
            if name.endswith((" desc", " DESC", " asc", " ASC")):  # tolerate "name DESC"
                asc = not name.lower().endswith(" desc")
                name = name.rsplit(" ", 1)[0].strip()
            if name not in names:
                raise InvalidParameter(f"parameter 'sortby': unknown property {name!r}; "
                                       f"sortable: {', '.join(sorted(names))}")
            order.append((quote_ident(name), asc))
    if not any(col == '"id"' for col, _ in order):
        order.append(('"id"', True))
    return order
