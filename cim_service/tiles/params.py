"""Request parameters of the tile endpoints: field selection, layer selection, conditional responses."""

from __future__ import annotations

from fastapi import Request, Response

from cim_service import encoding
from cim_service.auth import Principal, can_read_layer, visible_fields
from cim_service.core.catalog import Access, LayerSpec, UnknownLayerError
from cim_service.errors import InvalidParameter, NotFound
from cim_service.tiles.cache import CachedTile

MVT = "application/vnd.mapbox-vector-tile"
#: names always present in a tile (feature id and the thinning count), accepted and ignored in ``properties``
ALWAYS = ("id", "count")


def check_format(f: str | None) -> None:
    """Accept ``f`` absent, ``mvt`` or ``pbf``; anything else is a 400 naming the parameter."""
    if f is not None and f.lower() not in ("mvt", "pbf"):
        raise InvalidParameter(f"parameter 'f': unsupported tile format {f!r}; tiles are served as 'mvt'")


def select_fields(spec: LayerSpec, principal: Principal, properties: str | None,
                  *, strict: bool = True) -> tuple[str, ...]:
    """Fields to put in tiles: all visible ones, or the ``properties`` list validated against them.

    Personal fields the caller may not see behave as unknown names. With ``strict=False`` (multi-layer
    tiles) names unknown in this layer are ignored.
    """
    visible = [f.name for f in visible_fields(spec, principal)]
    if properties is None:
        return tuple(visible)
    names = [p.strip() for p in properties.split(",") if p.strip() and p.strip() not in ALWAYS]
    unknown = [n for n in names if n not in visible]
    if unknown and strict:
        raise InvalidParameter(
            f"parameter 'properties': unknown property {unknown[0]!r} of collection {spec.id!r}; "
            f"known: {', '.join(visible)}"
        )
    return tuple(dict.fromkeys(n for n in names if n in visible))


def check_properties_known(specs: list[LayerSpec], principal: Principal, properties: str | None) -> None:
    """For multi-layer tiles: every name in ``properties`` must be a visible field of at least one layer."""
    if properties is None:
        return
    visible = {f.name for s in specs for f in visible_fields(s, principal)}
    for name in (p.strip() for p in properties.split(",")):
        if name and name not in ALWAYS and name not in visible:
            raise InvalidParameter(f"parameter 'properties': {name!r} is not a property of any selected collection")


def select_layers(request: Request, principal: Principal, collections: str | None) -> list[LayerSpec]:
    """Layers of a multi-layer tile: the ``collections`` list (404 for unknown/unreadable) or all readable ones."""
    catalog = request.app.state.catalog
    if collections is None:
        return [s for s in catalog if can_read_layer(s, principal)]
    ids = list(dict.fromkeys(c.strip() for c in collections.split(",") if c.strip()))
    if not ids:
        raise InvalidParameter("parameter 'collections': give at least one collection id")
    specs = []
    for layer_id in ids:
        try:
            spec = catalog.get(layer_id)
        except UnknownLayerError:
            raise NotFound(f"collection {layer_id!r} not found") from None
        if not can_read_layer(spec, principal):
            raise NotFound(f"collection {layer_id!r} not found")
        specs.append(spec)
    return specs


def is_public(specs: list[LayerSpec], fields: list[tuple[str, ...]]) -> bool:
    """Tell whether a response may be cached by shared caches: public layers, no personal fields."""
    pairs = zip(specs, fields, strict=True)
    return all(s.access is Access.public and not set(f) & set(s.personal_fields) for s, f in pairs)


def request_coding(request: Request) -> str:
    """The content coding the client prefers for a tile (``br``, ``gzip`` or ``identity``)."""
    return encoding.negotiate(request.headers.get("accept-encoding"))


def tile_response(request: Request, tile: CachedTile, public: bool) -> Response:
    """200 with the MVT, 204 when the tile is empty, 304 when ``If-None-Match`` matches the ETag.

    The body is the tile's stored form in the client's preferred coding (``Content-Encoding``), with the
    ETag of that coding; every answer varies by ``Accept-Encoding``.
    """
    body, coding = tile.body(request_coding(request))
    etag = encoding.coded_etag(tile.etag, coding)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=60" if public else "private, no-store",
               "Vary": "Accept-Encoding"}
    inm = request.headers.get("if-none-match")
    # the coded tag (fast path: the client's header as sent) or the identity tag (behind the compression
    # middleware, which hands routes the identity form of the negotiated coding's tags)
    if inm and (encoding.matches(inm, etag) or encoding.matches(inm, tile.etag)):
        return Response(status_code=304, headers=headers)
    if not tile.content:
        return Response(status_code=204, headers=headers)
    if coding != encoding.IDENTITY:
        headers["Content-Encoding"] = coding
    return Response(content=body, media_type=MVT, headers=headers)
