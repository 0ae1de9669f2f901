"""ASGI fast path for the most frequent tile request: an anonymous tile of a public collection, without parameters.

A web map asks for hundreds of tiles per minute; routing, parameter validation and dependency injection then
cost more than a cached answer, and about as much as the database's work for an uncached z16 tile. This
middleware answers exactly those requests before routing — ``GET /collections/{id}/tiles/{tms}/{z}/{x}/{y}``
(or ``{y}.mvt``, ``{y}.pbf``) with no query string and no credentials, for a public layer — with the same bytes,
``ETag``/304 and headers as the route, the same cache key, counters and route label: a cache hit in the coding
the client prefers straight from the cache; anything else (a miss, the cache off, a coding not made yet) rendered
through the same :meth:`cim_service.tiles.service.TileState.tile` as the route, with the fields an anonymous
caller sees (such a read is never written to the access log: a public layer's non-personal fields). Everything
else (credentials, parameters, invalid tiles, restricted layers) goes on to the route unchanged, and so does a
request whose rendering fails: the route renders it again and maps the error to its status (503, 504, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cim_service.core.catalog import Access, UnknownLayerError
from cim_service.encoding import IDENTITY, MIN_BYTES
from cim_service.errors import NotFound
from cim_service.metrics import TILE_CACHE_HITS
from cim_service.tiles.params import request_coding, tile_response
from cim_service.tiles.service import LayerRequest
from cim_service.tiles.tms import tile_ref

_PATH = re.compile(r"^/collections/([a-z][a-z0-9_]{0,62})/tiles/([A-Za-z0-9]{1,40})/(\d{1,2})/(\d{1,9})/(\d{1,9})"
                   r"(?:\.mvt|\.pbf)?$")
_CREDENTIALS = (b"x-api-key", b"authorization")


@dataclass(frozen=True)
class _RouteLabel:
    """Stands in for the matched route in ``scope["route"]`` (request metrics are labelled by its path)."""

    path: str = "/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}"


ROUTE_LABEL = _RouteLabel()


class CachedTileFastPath:
    """Serve anonymous cache hits of public collection tiles without routing; pass everything else on."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer an anonymous public tile request without routing when it qualifies, else call the application."""
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("query_string"):
            response = await self._answer(scope)
            if response is not None:
                scope["route"] = ROUTE_LABEL
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> Response | None:
        path, root = scope["path"], scope.get("root_path", "")
        match = _PATH.match(path[len(root):] if root and path.startswith(root) else path)  # behind a path prefix
        if match is None or any(name in _CREDENTIALS for name, _ in scope["headers"]):
            return None
        app = scope.get("app")
        state = getattr(getattr(app, "state", None), "tiles", None)
        if state is None:
            return None
        layer_id, tms_id, z, x, y = match.groups()
        try:
            spec = app.state.catalog.get(layer_id)
            tile = tile_ref(tms_id, int(z), int(x), int(y))
        except (UnknownLayerError, NotFound):
            return None
        if spec.access is not Access.public:
            return None
        fields = tuple(f.name for f in spec.public_fields(personal_data=False))  # what anonymous callers see
        req = LayerRequest(spec, fields)
        request = Request(scope)
        coding = request_coding(request)
        key = state.cache_key(req, tile) if state.cache is not None else None
        cached = state.cache.get(key) if key is not None else None
        if cached is not None and (coding in cached.coded or coding == IDENTITY or len(cached.content) < MIN_BYTES):
            TILE_CACHE_HITS.inc()
            return tile_response(request, cached, public=True)
        try:  # a miss, or a hit not compressed in this coding yet (compressed once here and kept)
            rendered = await state.tile([req], tile, coding)
        except Exception:  # noqa: BLE001 - the route renders it again and maps the error to its status
            return None
        return tile_response(request, rendered, public=True, live=spec.sensing is not None)
