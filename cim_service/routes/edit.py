"""OGC API Features Part 4 (Create, Replace, Update and Delete): edits of single features over HTTP.

``POST /collections/{id}/items`` (201, ``Location`` and ``ETag``), ``PUT`` / ``PATCH`` (JSON merge patch) /
``DELETE`` ``/collections/{id}/items/{featureId}`` (204 with the new ``ETag``). Callers need the ``editor`` scope
(roles editor, officer, admin) and read access to the layer (else 404 as on reads); personal fields are
writable only with ``personal_data``. ``If-Match`` with a tag other than the current one is a 412. The body is a
GeoJSON Feature of at most ``CIM_EDIT_MAX_BODY_BYTES``, in the CRS of ``Content-Crs``. Validation, CRS handling
and the one-transaction write are in :mod:`pipelines.edit`; every edit is access-logged.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from cim_service.auth import Principal, get_principal, log_access, resolve_layer, visible_fields
from cim_service.core.catalog import LayerSpec, Role
from cim_service.errors import (
    Forbidden,
    InvalidParameter,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    UnprocessableContent,
    error_responses,
)
from cim_service.features.crs import resolve_crs
from cim_service.features.params import parse_feature_id
from pipelines import edit

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]
router = APIRouter(tags=["OGC API Features Part 4 (editing)"],
                   responses=error_responses(400, 401, 403, 404, 412, 413, 422, 503))
FeatureId = Annotated[str, Path(description="Feature id (integer).")]
_BODY = {"requestBody": {"required": True, "description": "A GeoJSON Feature in the CRS of `Content-Crs`.",
                         "content": {"application/geo+json": {"schema": {"type": "object"}},
                                     "application/json": {"schema": {"type": "object"}}}}}
_PATCH = {"requestBody": {"required": True, "description": "A JSON merge patch of a GeoJSON Feature.",
                          "content": {"application/merge-patch+json": {"schema": {"type": "object"}},
                                      "application/json": {"schema": {"type": "object"}}}}}


def _editor(principal: Principal, spec: LayerSpec) -> None:
    if not principal.has("editor"):
        if principal.is_anonymous:
            raise NotAuthenticated("editing needs an API key with the 'editor' scope (roles editor, officer, admin)")
        raise Forbidden(f"role {principal.role!r} may not edit: the 'editor' scope is needed")
    if spec.kind != "source":
        raise Forbidden(f"collection {spec.id!r} is derived from other layers and recomputed; it cannot be edited")


def _crs(request: Request) -> edit.SourceCrs:
    value = request.headers.get("content-crs")
    crs = resolve_crs(value.strip().strip("<>") if value else None, "Content-Crs")
    name = crs.python_crs or f"EPSG:{crs.srid}"
    return edit.SourceCrs(name, crs.lat_first)


def _if_match(request: Request) -> list[str] | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    # a read's tag is "<version>.<representation>": the version part names the feature's state
    tags = [t.strip() if t.strip() == "*" else '"' + t.strip().removeprefix("W/").strip('"').split(".")[0] + '"'
            for t in value.split(",") if t.strip()]
    if not tags:
        raise InvalidParameter("header 'If-Match': expected one or more entity tags or *")
    return tags


async def _body(request: Request) -> dict:
    bound = request.app.state.settings.edit_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > bound:
        raise PayloadTooLarge(f"the body exceeds {bound} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > bound:
            raise PayloadTooLarge(f"the body exceeds {bound} bytes")
        chunks.append(chunk)
    try:
        return edit.parse_body(b"".join(chunks))
    except edit.EditRefused as exc:
        raise InvalidParameter(f"body: {exc.reason}") from None


async def _run(request: Request, principal: Principal, spec: LayerSpec, action: str, fn, *args) -> edit.EditResult:
    """Run the edit in a worker thread (it waits on the database) and map its refusals to HTTP statuses."""
    try:
        result = await anyio.to_thread.run_sync(fn, request.app.state.engine, spec, *args)
    except edit.EditRefused as exc:
        cls = UnprocessableContent if exc.status == 422 else InvalidParameter
        where = f"property {exc.field!r}" if exc.field and exc.field != "geometry" else (exc.field or "body")
        raise cls(exc.reason if exc.reason.startswith("property") else f"{where}: {exc.reason}") from None
    except edit.FeatureMissing:
        raise NotFound(f"feature {args[0]!r} not found in collection {spec.id!r}") from None
    except edit.VersionConflict as exc:
        raise PreconditionFailed(f"If-Match does not match the feature's current version {exc.current}",
                                 headers={"ETag": exc.current}) from None
    # read your own writes: the committed layer version counts in this process at once, not only once its NOTIFY
    # has come back through the listener (until then a tile asked for right after the answer could be the cached,
    # older one); versions only move forward, so the notification then changes nothing
    request.app.state.listener.versions.update(spec.id, result.version)
    await log_access(request.app.state.db, principal, spec, action, [],
                     {"id": result.id, "version": result.version}, request.client.host if request.client else None)
    return result


def _outline(request: Request) -> LayerSpec | None:
    return request.app.state.catalog.role(Role.district_outline)


@router.post("/collections/{collectionId}/items", status_code=201, summary="Create a feature (GeoJSON Feature)",
             responses={201: {"description": "Created; Location names the new feature"}}, openapi_extra=_BODY)
async def create_item(request: Request, collectionId: str,  # noqa: N803
                      spec: Annotated[LayerSpec, Depends(resolve_layer)],
                      principal: Annotated[Principal, Depends(get_principal)]) -> Response:
    """Insert one feature; 201 with its URL and ETag."""
    _editor(principal, spec)
    doc = await _body(request)
    crs = _crs(request)
    result = await _run(request, principal, spec, "edit:create", edit.create, doc, crs,
                        visible_fields(spec, principal), principal.name, _outline(request))
    base = str(request.base_url).rstrip("/")
    return Response(status_code=201, headers={"Location": f"{base}/collections/{spec.id}/items/{result.id}",
                                              "ETag": result.etag})


@router.put("/collections/{collectionId}/items/{featureId}", status_code=204, summary="Replace a feature",
            openapi_extra=_BODY)
async def replace_item(request: Request, collectionId: str, featureId: FeatureId,  # noqa: N803
                       spec: Annotated[LayerSpec, Depends(resolve_layer)],
                       principal: Annotated[Principal, Depends(get_principal)]) -> Response:
    """Replace the feature's geometry and properties (absent properties become null)."""
    _editor(principal, spec)
    fid = parse_feature_id(featureId, spec)
    doc = await _body(request)
    result = await _run(request, principal, spec, "edit:replace", edit.update, fid, doc, _crs(request),
                        visible_fields(spec, principal), principal.name, _outline(request), _if_match(request),
                        False)
    return Response(status_code=204, headers={"ETag": result.etag})


@router.patch("/collections/{collectionId}/items/{featureId}", status_code=204,
              summary="Update a feature (JSON merge patch of a GeoJSON Feature)", openapi_extra=_PATCH)
async def patch_item(request: Request, collectionId: str, featureId: FeatureId,  # noqa: N803
                     spec: Annotated[LayerSpec, Depends(resolve_layer)],
                     principal: Annotated[Principal, Depends(get_principal)]) -> Response:
    """Change the given properties (null clears one) and, when sent, the geometry."""
    _editor(principal, spec)
    fid = parse_feature_id(featureId, spec)
    doc = await _body(request)
    result = await _run(request, principal, spec, "edit:update", edit.update, fid, doc, _crs(request),
                        visible_fields(spec, principal), principal.name, _outline(request), _if_match(request),
                        True)
    return Response(status_code=204, headers={"ETag": result.etag})


@router.delete("/collections/{collectionId}/items/{featureId}", status_code=204, summary="Delete a feature")
async def delete_item(request: Request, collectionId: str, featureId: FeatureId,  # noqa: N803
                      spec: Annotated[LayerSpec, Depends(resolve_layer)],
                      principal: Annotated[Principal, Depends(get_principal)]) -> Response:
    """Delete the feature (its history keeps it)."""
    _editor(principal, spec)
    fid = parse_feature_id(featureId, spec)
    await _run(request, principal, spec, "edit:delete", edit.delete, fid, principal.name, _if_match(request))
    return Response(status_code=204)
