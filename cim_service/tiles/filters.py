"""CQL2 filters on tiles, through the features API's translator (``cim_service.features.cql2``)."""

from __future__ import annotations

from cim_service.auth import Principal, visible_fields
from cim_service.core.catalog import LayerSpec
from cim_service.features.cql2 import FilterContext, parse_filter, to_sql
from cim_service.features.crs import resolve_crs
from cim_service.features.sql import Params
from cim_service.tiles.service import LayerRequest


def filtered_request(spec: LayerSpec, principal: Principal, fields: tuple[str, ...], text: str,
                     lang: str | None, filter_crs: str | None) -> LayerRequest:
    """Compile ``filter`` for ``spec`` into a tile request (400 naming the problem when it is invalid).

    Only fields the caller may see can be filtered on. The cache identity of the filter is the translated SQL
    and its bound values, so equivalent spellings share cache entries.
    """
    node = parse_filter(text, lang)
    params = Params()
    ctx = FilterContext(fields={f.name: f for f in visible_fields(spec, principal)},
                        filter_crs=resolve_crs(filter_crs, "filter-crs"), params=params)
    where = to_sql(node, ctx)
    args = tuple(params.values)
    return LayerRequest(spec, fields, where, args, (where, repr(args)), tuple(sorted(ctx.used)))
