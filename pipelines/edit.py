"""Edits of single features (OGC API Features Part 4): create, replace, patch and delete, one transaction each.

A feature arrives as a GeoJSON Feature in the CRS of its ``Content-Crs`` (CRS84 when absent; EPSG:4326/4490 in
their lat/lon axis order; GCJ-02/BD-09 converted like an ingest's). It is validated exactly like an ingested
row (:mod:`pipelines.validate`: field types, required fields, enums, patterns, ranges, text rules; geometry
repaired, of the layer's type and in Shanghai). Each edit's transaction sets ``cim.actor`` (the API key's name,
so the layer's history records who made it: ``store.history``), checks ``If-Match`` against the row it locks,
writes the row and calls ``bump_version`` (tiles and indicators refresh). A failure leaves nothing behind.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import geopandas
import numpy as np
import pandas as pd
import psycopg
import shapely
import shapely.geometry
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cim_service.core.catalog import FieldSpec, FieldType, LayerSpec
from cim_service.store import history, layer_state
from cim_service.store.layer_tables import etag_sql, is_empty
from pipelines.load import feature_keys
from pipelines.validate import Faults, check_geometries, coerce_fields


class EditRefused(ValueError):
    """The edit is refused; ``status`` 400 (malformed) or 422 (values break the rules); ``field`` names the part."""

    def __init__(self, status: int, field: str | None, reason: str):
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


class FeatureMissing(LookupError):
    """No feature with this id."""


class VersionConflict(RuntimeError):
    """``If-Match`` does not name the current version; ``current`` is its tag."""

    def __init__(self, current: str):
        super().__init__(current)
        self.current = current


@dataclass(frozen=True)
class EditResult:
    """What an edit did: the feature id, its new tag (None once deleted) and the layer's new version."""

    id: int
    etag: str | None
    version: int


@dataclass(frozen=True)
class SourceCrs:
    """The CRS of the coordinates sent: a canonical ``core.crs`` identifier and whether latitude comes first."""

    name: str
    lat_first: bool = False


# -- parsing and validation ---------------------------------------------------------------------------------


def parse_body(body: bytes) -> dict:
    """Parse the request body as a GeoJSON Feature object (400 otherwise)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EditRefused(400, None, f"body is not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        raise EditRefused(400, "type", "body must be a GeoJSON Feature ({\"type\": \"Feature\", ...})")
    props = doc.get("properties", {})
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise EditRefused(400, "properties", "'properties' must be an object")
    doc["properties"] = props
    return doc


def _check_names(spec: LayerSpec, props: dict, writable: list[FieldSpec]) -> None:
    names = {f.name for f in writable}
    for name in props:
        if name not in names:  # hidden personal fields are unknown, as on reads
            raise EditRefused(400, name, f"unknown property {name!r}; properties of {spec.id}: "
                                         f"{', '.join(sorted(names))}")


def _geometry(spec: LayerSpec, value: Any, crs: SourceCrs) -> shapely.Geometry:
    if value is None:
        raise EditRefused(422, "geometry", "geometry is required")
    try:
        geom = shapely.geometry.shape(value)
    except Exception as exc:  # noqa: BLE001 - shapely raises many types for malformed GeoJSON
        raise EditRefused(400, "geometry", f"geometry is not valid GeoJSON: {str(exc)[:120]}") from None
    if crs.lat_first:
        geom = shapely.transform(geom, lambda c: c[:, ::-1])
    faults = Faults()
    geoms, _ = check_geometries(spec, pd.Series([geom], dtype=object), crs.name, faults, file_name="body")
    if faults.rejects:
        rej = next(iter(faults.rejects.values()))
        raise EditRefused(422, "geometry", rej.reason)
    out = geoms.iloc[0]
    if spec.geometry.value.startswith("Multi") and not out.geom_type.startswith("Multi"):
        out = {"MultiPoint": shapely.MultiPoint, "MultiLineString": shapely.MultiLineString,
               "MultiPolygon": shapely.MultiPolygon}[spec.geometry.value]([out])
    return out


def validate(spec: LayerSpec, props: dict, geometry: shapely.Geometry) -> tuple[dict, geopandas.GeoDataFrame]:
    """Type and check every declared field of ``props`` like an ingested row; return values and a one-row frame."""
    raw = pd.DataFrame({f.name: pd.Series([_raw(props.get(f.name))], dtype=object) for f in spec.fields})
    faults = Faults()
    typed = coerce_fields(spec, raw, {f.name: f.name for f in spec.fields}, faults)
    if faults.rejects:
        rej = next(iter(faults.rejects.values()))
        raise EditRefused(422, rej.field, f"property {rej.field!r}: {rej.reason}" if rej.field else rej.reason)
    values = {f.name: _python(f, typed[f.name].iloc[0]) for f in spec.fields}
    frame = geopandas.GeoDataFrame(typed, geometry=[geometry], crs="EPSG:4326")
    return values, frame


def _raw(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _python(f: FieldSpec, value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if f.type is FieldType.date and isinstance(value, datetime):
        return value.date()
    if f.type is FieldType.json:
        return json.dumps(value, ensure_ascii=False)
    return value


# -- writes -------------------------------------------------------------------------------------------------


def _district(conn: Connection, spec: LayerSpec, outline: LayerSpec | None) -> str:
    if not spec.check_district or outline is None or outline.id == spec.id or is_empty(conn, outline):
        return "false"
    return f"COALESCE(NOT ST_Intersects(ST_GeomFromWKB(:wkb, 4326), (SELECT ST_Union(geom) FROM " \
           f"{outline.qualified_table})), false)"


def _assignments(spec: LayerSpec) -> list[tuple[str, str]]:
    return [(f'"{f.name}"', f"CAST(:f_{f.name} AS {f.type.sql})") for f in spec.fields]


def _params(spec: LayerSpec, values: dict, frame: geopandas.GeoDataFrame, geometry: shapely.Geometry) -> dict:
    params = {f"f_{k}": v for k, v in values.items()}
    params["wkb"] = shapely.to_wkb(geometry)
    params["feature_key"] = str(feature_keys(spec, frame).iloc[0])
    return params


def _write(conn: Connection, sql: str, params: dict, spec: LayerSpec):
    try:
        with conn.begin_nested():
            return conn.execute(sa.text(sql), params).one()
    except sa.exc.IntegrityError as exc:
        if isinstance(exc.orig, psycopg.errors.UniqueViolation):
            what = ", ".join(spec.key) if spec.key else "geometry and properties"
            raise EditRefused(422, spec.key[0] if spec.key else None,
                              f"another feature of {spec.id} has the same key ({what})") from None
        raise


def create(engine: Engine, spec: LayerSpec, doc: dict, crs: SourceCrs, writable: list[FieldSpec], actor: str,
           outline: LayerSpec | None) -> EditResult:
    """Insert a new feature; return its id and tag."""
    _check_names(spec, doc["properties"], writable)
    geometry = _geometry(spec, doc.get("geometry"), crs)
    values, frame = validate(spec, doc["properties"], geometry)
    with engine.begin() as conn:
        history.set_context(conn, actor=actor)
        cols = _assignments(spec)
        sql = (f"INSERT INTO {spec.qualified_table} (feature_key, {', '.join(c for c, _ in cols)}, geom, "
               f"outside_district, updated_at) VALUES (:feature_key, {', '.join(v for _, v in cols)}, "
               f"ST_GeomFromWKB(:wkb, 4326), {_district(conn, spec, outline)}, clock_timestamp()) "
               f"RETURNING id, {etag_sql()}")
        fid, tag = _write(conn, sql, _params(spec, values, frame, geometry), spec)
        version = layer_state.bump_version(conn, spec.id, spec.qualified_table)
    return EditResult(int(fid), tag, version)


def _locked(conn: Connection, spec: LayerSpec, fid: int, if_match: list[str] | None) -> dict:
    row = conn.execute(sa.text(
        f"SELECT to_jsonb(t) - 'geom' - 'geom_3857' AS props, ST_AsGeoJSON(t.geom) AS geom, {etag_sql('t')} AS tag "
        f"FROM {spec.qualified_table} t WHERE t.id = :id FOR UPDATE"), {"id": fid}).mappings().first()
    if row is None:
        raise FeatureMissing(fid)
    if if_match is not None and "*" not in if_match and row["tag"] not in if_match:
        raise VersionConflict(row["tag"])
    return dict(row)


def update(engine: Engine, spec: LayerSpec, fid: int, doc: dict, crs: SourceCrs, writable: list[FieldSpec],
           actor: str, outline: LayerSpec | None, if_match: list[str] | None, merge: bool) -> EditResult:
    """Replace (PUT) or merge-patch (PATCH: given properties replace, null removes, absent keep) a feature."""
    _check_names(spec, doc["properties"], writable)
    with engine.begin() as conn:
        history.set_context(conn, actor=actor)
        current = _locked(conn, spec, fid, if_match)
        if merge:
            props = {f.name: current["props"].get(f.name) for f in spec.fields}
            props.update(doc["properties"])
            geom_doc = doc.get("geometry") if "geometry" in doc else json.loads(current["geom"])
            geometry = (_geometry(spec, geom_doc, crs) if "geometry" in doc
                        else shapely.geometry.shape(geom_doc))
        else:
            hidden = {f.name for f in spec.fields} - {f.name for f in writable}
            props = {**{n: current["props"].get(n) for n in hidden}, **doc["properties"]}  # hidden fields stay
            geometry = _geometry(spec, doc.get("geometry"), crs)
        values, frame = validate(spec, props, geometry)
        sets = ", ".join(f"{c} = {v}" for c, v in _assignments(spec))
        sql = (f"UPDATE {spec.qualified_table} SET feature_key = :feature_key, {sets}, "
               f"geom = ST_GeomFromWKB(:wkb, 4326), outside_district = {_district(conn, spec, outline)}, "
               f"batch_id = NULL, updated_at = clock_timestamp() WHERE id = :id RETURNING id, {etag_sql()}")
        params = _params(spec, values, frame, geometry)
        params["id"] = fid
        _, tag = _write(conn, sql, params, spec)
        version = layer_state.bump_version(conn, spec.id, spec.qualified_table)
    return EditResult(fid, tag, version)


def delete(engine: Engine, spec: LayerSpec, fid: int, actor: str, if_match: list[str] | None) -> EditResult:
    """Delete a feature (its history keeps the last version and the delete)."""
    with engine.begin() as conn:
        history.set_context(conn, actor=actor)
        _locked(conn, spec, fid, if_match)
        conn.execute(sa.text(f"DELETE FROM {spec.qualified_table} WHERE id = :id"), {"id": fid})
        version = layer_state.bump_version(conn, spec.id, spec.qualified_table)
    return EditResult(fid, None, version)
