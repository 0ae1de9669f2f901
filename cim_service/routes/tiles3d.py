"""OGC 3D Tiles 1.1 of the extruded layers, in the OGC API 3D GeoVolumes layout.

- ``/collections/{collectionId}/3dtiles``: the 3D container (3D extent, a ``content`` link to the tileset);
- ``/collections/{collectionId}/3dtiles/tileset.json``: the tileset (quadtree, regions, ECEF transforms);
- ``/collections/{collectionId}/3dtiles/content/{version}/{level}/{x}/{y}.glb``: glTF 2.0 content.

Only layers with a ``height_field`` have 3D Tiles (others → 404). The tileset is built on its first request and
again only when the layer's version has changed; content URIs carry the version they were built from, so a
client holding an older ``tileset.json`` gets a 404 for its content and reloads it.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from cim_service import encoding
from cim_service.auth import resolve_layer
from cim_service.core.catalog import Access, LayerSpec
from cim_service.errors import NotFound, error_responses
from cim_service.store import layer_state
from cim_service.tiles.cache import etag_of
from cim_service.tiles3d.documents import container_doc
from cim_service.tiles3d.service import Built, Tiles3DState

router = APIRouter(tags=["3D Tiles"], responses=error_responses(400, 401, 404, 503, 504))
GLB = "model/gltf-binary"


async def startup(app: FastAPI) -> None:
    """Keep the built tilesets of this process (built with the app's synchronous engine in a thread; on disk in
    ``CIM_HOME/3dtiles`` unless ``CIM_TILES3D_DISK_CACHE=off``)."""
    settings = app.state.settings
    folder = settings.home / "3dtiles" if settings.tiles3d_disk_cache else None
    app.state.tiles3d = Tiles3DState(app.state.engine, settings.tiles3d_max_features, folder)


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _extruded(spec: LayerSpec) -> LayerSpec:
    if not spec.extruded:
        raise NotFound(f"collection {spec.id!r} has no 3D Tiles (it declares no height_field)")
    return spec


async def _built(request: Request, spec: LayerSpec) -> Built:
    versions = await request.app.state.db.run(layer_state.fetch_versions)
    return await request.app.state.tiles3d.get(spec, versions.get(spec.id, 0))


def _cache_control(spec: LayerSpec, max_age: int) -> str:
    return f"public, max-age={max_age}" if spec.access is Access.public else "private, no-store"


@router.get("/collections/{collectionId}/3dtiles", summary="3D container of an extruded collection")
async def container(request: Request, spec: LayerSpec = Depends(resolve_layer)) -> dict:
    """Return the OGC API 3D GeoVolumes container: 3D extent and the link to the 3D Tiles tileset."""
    built = await _built(request, _extruded(spec))
    return container_doc(spec, _root(request), built.tileset.document)


@router.get("/collections/{collectionId}/3dtiles/tileset.json", summary="3D Tiles 1.1 tileset",
            response_class=Response, responses={200: {"content": {"application/json": {}}, "description": "tileset"},
                                                304: {"description": "Not modified"}})
async def tileset(request: Request, spec: LayerSpec = Depends(resolve_layer)) -> Response:
    """Return the tileset (built on first use and when the layer changed)."""
    built = await _built(request, _extruded(spec))
    body = orjson.dumps(built.tileset.document)
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": _cache_control(spec, 60)}
    if encoding.matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/collections/{collectionId}/3dtiles/content/{version}/{level}/{x}/{y}.glb",
            summary="glTF 2.0 content of a 3D Tiles tile", response_class=Response,
            responses={200: {"content": {GLB: {}}, "description": "GLB"}})
async def content(request: Request, version: int, level: int, x: int, y: int,
                  spec: LayerSpec = Depends(resolve_layer)) -> Response:
    """Return one GLB of the tileset built from ``version`` of the layer."""
    built = await _built(request, _extruded(spec))
    if version != built.version:
        raise NotFound(f"content of version {version} of collection {spec.id!r} is gone (the layer is at version "
                       f"{built.version}); reload tileset.json")
    body = built.tileset.content.get(f"content/{version}/{level}/{x}/{y}.glb")
    if body is None:
        raise NotFound(f"tile {level}/{x}/{y} is not part of the tileset of collection {spec.id!r}")
    return Response(body, media_type=GLB, headers={"Cache-Control": _cache_control(spec, 3600),
                                                  "ETag": etag_of(body)})
