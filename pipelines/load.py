"""Load validated features into a layer table: COPY into a staging table, then one upsert, in one transaction.

The contract (see ``docs/ARCHITECTURE.md``):

- input frames are already in EPSG:4326 and validated; their columns are declared field names (missing ones
  load as NULL) plus ``geometry``;
- ``feature_key`` is the layer's natural key (its ``key`` fields joined with ``|``) or, for layers without
  a key, a sha1 of the rounded geometry and the sorted attributes; in-file duplicates keep the first row;
- rows upsert on ``feature_key``; rows whose content is identical are not rewritten (counted ``unchanged``);
- the batch row, the rejects, the upsert and :func:`cim_service.store.layer_state.bump_version` share one
  transaction, so a killed process leaves nothing behind;
- a file whose sha256 was the layer's last committed load, with the same source CRS and nothing written
  to the layer since, is not loaded again (status ``unchanged``, no new version).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import geopandas
import numpy as np
import pandas as pd
import psycopg
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cim_service.core.catalog import LAYER_SCHEMA, FieldType, LayerSpec, Role, load_catalog
from cim_service.store import batches, history, layer_state, sensing_sync
from cim_service.store import rejects as reject_rows
from cim_service.store.layer_tables import feature_count, is_empty

log = logging.getLogger(__name__)

STAGE = "_cim_stage"
SRC = "_cim_src"
#: grid of the geometry hash used as feature key of layers without a natural key (~1 cm)
KEY_PRECISION = 1e-7
#: first loads of at least this many rows into an empty layer rebuild its spatial indexes afterwards
BULK_REBUILD_ROWS = 10_000
#: marks "the project catalog's district outline" as the default of ``outline``
_PROJECT: Any = object()
_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}


@dataclass
class Reject:
    """One row that could not be loaded, and why."""

    row_number: int | None
    field: str | None
    reason: str
    raw: dict | None = None


@dataclass
class LoadResult:
    """What one load did."""

    batch_id: int
    layer_id: str
    status: str  # 'committed' | 'unchanged' | 'failed'
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    duplicates: int
    outside: int
    version: int | None
    deleted: int = 0

    @property
    def loaded(self) -> int:
        """Rows written or confirmed (inserted + updated + unchanged)."""
        return self.inserted + self.updated + self.unchanged


def load_geodataframe(
    engine: Engine,
    spec: LayerSpec,
    gdf: geopandas.GeoDataFrame,
    *,
    source_name: str,
    source_sha256: str,
    source_crs: str,
    rejects: Sequence[Reject] = (),
    rows_read: int | None = None,
    options: dict | None = None,
    check_district: bool | None = None,
    progress: Callable[[int], None] | None = None,
    replace: bool = False,
    outline: LayerSpec | None = _PROJECT,
    valid_at: datetime | None = None,
) -> LoadResult:
    """Load one validated GeoDataFrame into the layer table of ``spec``.

    Parameters
    ----------
    engine : Engine
        Synchronous SQLAlchemy engine (psycopg 3).
    spec : LayerSpec
        The target layer.
    gdf : geopandas.GeoDataFrame
        Features in EPSG:4326, columns a subset of the declared fields plus ``geometry``.
    source_name, source_sha256, source_crs : str
        File name, content hash and source CRS, recorded in ``cim_meta.ingest_batch``.
    rejects : sequence of Reject
        Rows refused by validation, recorded with the batch.
    rows_read : int, optional
        Rows in the source file (default: ``len(gdf) + len(rejects)``).
    options : dict, optional
        Ingest options to record with the batch.
    check_district : bool, optional
        Flag features outside the district outline (default: ``spec.check_district``).
    progress : callable, optional
        Called with the number of rows staged after each chunk.
    replace : bool
        The file is a full snapshot of the layer: features absent from it are deleted, in the same
        transaction as the upsert (a killed load deletes nothing).
    outline : LayerSpec, optional
        The district outline layer (``catalog.role(Role.district_outline)``);
        default: the project catalog's. None: no outline, nothing is flagged.
    valid_at : datetime, optional
        When the changes take effect in the layer's history (default: the transaction's time); the demo dates
        its yearly loads with it.

    Returns
    -------
    LoadResult
    """
    if rows_read is None:
        rows_read = len(gdf) + len(rejects)
    return load_chunks(
        engine, spec, [gdf], source_name=source_name, source_sha256=source_sha256, source_crs=source_crs,
        rejects=rejects, rows_read=rows_read, options=options, check_district=check_district,
        progress=progress, replace=replace, outline=outline, valid_at=valid_at,
    )


def load_chunks(
    engine: Engine,
    spec: LayerSpec,
    chunks: Iterable[geopandas.GeoDataFrame],
    *,
    source_name: str,
    source_sha256: str,
    source_crs: str,
    rejects: Sequence[Reject] | Callable[[], Sequence[Reject]] = (),
    rows_read: int | Callable[[], int] | None = None,
    options: dict | None = None,
    check_district: bool | None = None,
    progress: Callable[[int], None] | None = None,
    replace: bool = False,
    outline: LayerSpec | None = _PROJECT,
    valid_at: datetime | None = None,
) -> LoadResult:
    """Load an iterator of validated GeoDataFrame chunks in one transaction (memory bounded by a chunk).

    ``rejects`` and ``rows_read`` may be callables, evaluated after the last chunk was staged, so a
    streaming reader can report what it refused while the chunks were consumed. Other parameters as
    :func:`load_geodataframe`.
    """
    if spec.kind == "derived":
        raise ValueError(f"layer {spec.id!r} is derived (written by the indicator engine), not ingested")
    check = spec.check_district if check_district is None else check_district
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"cim_ingest:{spec.id}"})
        history.set_context(conn, actor=f"ingest:{source_name}", valid_at=valid_at)
        previous = _previous_identical(conn, spec, source_sha256, source_crs, replace)
        if previous is not None:
            return _unchanged_result(conn, spec, previous, rows_read)
        batch_id = batches.start(
            conn, spec.id, source_name, source_sha256, source_crs, {**(options or {}), "replace": replace}
        )
        _create_stage(conn, spec)
        staged = 0
        for chunk in chunks:
            staged = _copy_chunk(conn, spec, chunk, first_seq=staged)
            if progress is not None:
                progress(staged)
        final_rejects = list(rejects() if callable(rejects) else rejects)
        read = rows_read() if callable(rows_read) else rows_read
        read = staged + len(final_rejects) if read is None else int(read)
        counts = _merge(conn, spec, batch_id, check, _project_outline() if outline is _PROJECT else outline)
        deleted = _delete_absent(conn, spec) if replace else 0
        if final_rejects:
            reject_rows.write(conn, batch_id, final_rejects)
        changed = counts["inserted"] + counts["updated"] + deleted > 0
        if changed and spec.sensing is not None:
            sensing_sync.sync(conn, spec)  # its features are SensorThings Things: same transaction
        version = (layer_state.bump_version(conn, spec.id, spec.qualified_table) if changed
                   else layer_state.version(conn, spec.id))
        result = LoadResult(
            batch_id=batch_id, layer_id=spec.id, status="committed", rows_read=read,
            inserted=counts["inserted"], updated=counts["updated"], unchanged=counts["unchanged"],
            rejected=len(final_rejects), duplicates=staged - counts["distinct"], outside=counts["outside"],
            version=version, deleted=deleted,
        )
        _finish_batch(conn, result, feature_count(conn, spec), {**(options or {}), "replace": replace})
    return result


# -- batches ------------------------------------------------------------------------------------------


def _previous_identical(
    conn: Connection, spec: LayerSpec, sha256: str, crs: str, replace: bool = False
) -> dict | None:
    """Return the last committed batch when it loaded this very file and the layer is as it left it.

    A snapshot load (``replace``) may only be skipped when that batch was a snapshot load too: otherwise
    the layer can still hold features the snapshot would delete.
    """
    row = batches.last_committed(conn, spec.id)
    if row is not None:
        row["version"] = layer_state.version(conn, spec.id)
    if row is None or row["file_sha256"] != sha256 or row["source_crs"] != crs:
        return None
    if replace and not row["options"].get("replace", False):
        return None
    state = row["options"].get("_result", {})
    if state.get("version") != row["version"]:
        return None  # another writer changed the layer since
    if state.get("feature_count") != feature_count(conn, spec):
        return None  # rows were removed behind the catalog's back (e.g. a manual TRUNCATE)
    return row


def _unchanged_result(conn: Connection, spec: LayerSpec, previous: dict, rows_read: Any) -> LoadResult:
    count = feature_count(conn, spec)
    read = rows_read if isinstance(rows_read, int) else int(previous["rows_read"])
    return LoadResult(
        batch_id=int(previous["id"]), layer_id=spec.id, status="unchanged", rows_read=read, inserted=0,
        updated=0, unchanged=count, rejected=int(previous["rows_rejected"]), duplicates=0, outside=0,
        version=int(previous["version"]),
    )


def _finish_batch(conn: Connection, result: LoadResult, count: int, options: dict | None) -> None:
    """Record the outcome, and the options as they stand after reading (readers add what they detected)."""
    batches.finish(conn, result.batch_id, status=result.status, options=options, counts={
        "read": result.rows_read, "loaded": result.loaded, "inserted": result.inserted, "updated": result.updated,
        "unchanged": result.unchanged, "rejected": result.rejected, "duplicate": result.duplicates,
        "outside": result.outside,
    }, result={"version": result.version, "feature_count": count, "deleted": result.deleted})


# -- staging ------------------------------------------------------------------------------------------


def _create_stage(conn: Connection, spec: LayerSpec) -> None:
    cols = ", ".join(f'"{f.name}" {f.type.sql}' for f in spec.fields)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {STAGE}"))
    conn.execute(sa.text(
        f"CREATE TEMP TABLE {STAGE} (seq bigint, feature_key text, {cols}, geom geometry) ON COMMIT DROP"
    ))


class RowError(ValueError):
    """The database refused a staged value; names the row (the chunk's index label) and the field."""

    def __init__(self, row_number: int | None, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.row_number = row_number
        self.field = field
        self.reason = reason


def _copy_chunk(conn: Connection, spec: LayerSpec, gdf: geopandas.GeoDataFrame, *, first_seq: int) -> int:
    """COPY one chunk into the staging table; return the number of rows staged so far.

    Should the server refuse a value (validation lets nothing through that it would refuse), the error
    names the chunk's row (its index label: the file's row number) and field, not the staging line.
    """
    if len(gdf) == 0:
        return first_seq
    frame = copy_frame(spec, gdf)
    frame.insert(0, "seq", np.arange(first_seq, first_seq + len(frame), dtype=np.int64))
    # "\r\n" ends the lines so that a value holding a lone CR is quoted too (COPY refuses an unquoted one)
    payload = frame.to_csv(header=False, index=False, na_rep="", lineterminator="\r\n").encode("utf-8")
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    cur = conn.connection.driver_connection.cursor()
    try:
        with cur.copy(f"COPY {STAGE} ({columns}) FROM STDIN (FORMAT csv)") as cp:
            cp.write(payload)
    except psycopg.errors.DataError as exc:
        raise _row_error(exc, gdf, spec) from exc
    return first_seq + len(frame)


def _row_error(exc: psycopg.Error, gdf: geopandas.GeoDataFrame, spec: LayerSpec) -> RowError:
    """Translate a COPY error ("COPY _cim_stage, line 3, column floors: ...") to the row and field it names."""
    context = exc.diag.context or ""
    match = re.search(r"line (\d+)(?:, column (\w+))?", context)
    row = field = None
    if match:
        line = int(match.group(1))
        if 1 <= line <= len(gdf):
            label = gdf.index[line - 1]
            row = int(label) if isinstance(label, int | np.integer) else None
        column = match.group(2)
        field = column if column in {f.name for f in spec.fields} else ("geometry" if column == "geom" else None)
    return RowError(row, field, f"the database refused the value: {exc.diag.message_primary or type(exc).__name__}")


def copy_frame(spec: LayerSpec, gdf: geopandas.GeoDataFrame) -> pd.DataFrame:
    """Return the staging columns of ``gdf``: feature_key, the present declared fields, geom as EWKB hex."""
    geoms = _promote(spec, np.asarray(gdf.geometry.array, dtype=object))
    present = [f for f in spec.fields if f.name in gdf.columns]
    out = pd.DataFrame(index=range(len(gdf)))
    out["feature_key"] = feature_keys(spec, gdf, geoms)
    for f in present:
        out[f.name] = _copy_values(gdf[f.name].reset_index(drop=True), f.type)
    out["geom"] = shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True)
    return out


def _promote(spec: LayerSpec, geoms: np.ndarray) -> np.ndarray:
    """Promote single geometries to the catalog's multi-type; refuse any other type mismatch."""
    if shapely.is_missing(geoms).any():
        raise ValueError(f"layer {spec.id}: missing geometries must be rejected before loading")
    want = spec.geometry.value
    kinds = shapely.get_type_id(geoms)
    names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
                      "MultiPolygon", "GeometryCollection"])[kinds]
    single = names == {v: k for k, v in _MULTI.items()}.get(want, "")
    if single.any():
        geoms = geoms.copy()
        maker = {"MultiPoint": shapely.multipoints, "MultiLineString": shapely.multilinestrings,
                 "MultiPolygon": shapely.multipolygons}[want]
        geoms[single] = [maker([g]) for g in geoms[single]]
        names = names.copy()
        names[single] = want
    wrong = names != want
    if wrong.any():
        raise ValueError(f"layer {spec.id}: geometry must be {want}, got {sorted(set(names[wrong]))}")
    return geoms


def _copy_values(values: pd.Series, ftype: FieldType) -> pd.Series:
    """Return ``values`` as text COPY understands for a column of type ``ftype`` (NaN/None -> NULL)."""
    if ftype in (FieldType.integer, FieldType.bigint):
        return pd.to_numeric(values, errors="raise").astype("Int64")
    if ftype is FieldType.json:
        return values.map(lambda v: None if _is_null(v) else json.dumps(v, ensure_ascii=False, default=str))
    if ftype is FieldType.boolean:
        return values.map(lambda v: None if _is_null(v) else ("t" if bool(v) else "f"))
    return values


def _is_null(value: Any) -> bool:
    if isinstance(value, float):
        return bool(np.isnan(value))
    return value is None or value is pd.NA or value is pd.NaT


def feature_keys(spec: LayerSpec, gdf: geopandas.GeoDataFrame, geoms: np.ndarray | None = None) -> pd.Series:
    """Return the feature key of every row: key fields joined with '|', else a content hash."""
    if spec.key:
        missing = [k for k in spec.key if k not in gdf.columns]
        if missing:
            raise ValueError(f"layer {spec.id}: key fields {missing} are missing")
        parts = [gdf[k].reset_index(drop=True) for k in spec.key]
        if any(p.isna().any() for p in parts):
            raise ValueError(f"layer {spec.id}: empty key values must be rejected before loading")
        key = parts[0].astype(str)
        for p in parts[1:]:
            key = key + "|" + p.astype(str)
        return key
    geoms = np.asarray(gdf.geometry.array, dtype=object) if geoms is None else geoms
    wkb = shapely.to_wkb(shapely.set_precision(geoms, KEY_PRECISION), hex=False)
    attrs = [c for c in sorted(gdf.columns) if c != gdf.geometry.name]
    records = gdf[attrs].reset_index(drop=True).to_dict("records") if attrs else [{}] * len(gdf)
    return pd.Series([
        hashlib.sha1(w + json.dumps(r, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()
        for w, r in zip(wkb, records, strict=True)
    ])


# -- merge --------------------------------------------------------------------------------------------


def _merge(conn: Connection, spec: LayerSpec, batch_id: int, check_district: bool,
           outline: LayerSpec | None) -> dict[str, int]:
    """Deduplicate the staged rows, flag those outside the district and upsert them; return the counts."""
    district_sql = _district_sql(conn, spec, outline) if check_district else None
    outside = (f"NOT ST_Intersects(s.geom, ({district_sql}))" if district_sql else "false")
    names = [f'"{f.name}"' for f in spec.fields]
    cols = ", ".join(names)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {SRC}"))
    conn.execute(sa.text(
        f"""
        CREATE TEMP TABLE {SRC} ON COMMIT DROP AS
        SELECT DISTINCT ON (s.feature_key COLLATE "C") s.feature_key, {", ".join(f's.{n}' for n in names)},
               s.geom, COALESCE({outside}, false) AS outside_district
          FROM {STAGE} s ORDER BY s.feature_key COLLATE "C", s.seq
        """
    ))
    distinct, n_out = conn.execute(
        sa.text(f"SELECT count(*), count(*) FILTER (WHERE outside_district) FROM {SRC}")
    ).one()
    t = spec.qualified_table
    rebuild = _drop_spatial_indexes(conn, spec, int(distinct))
    updated = _update_changed(conn, spec, batch_id, names)
    inserted = conn.execute(sa.text(
        f"""
        INSERT INTO {t} (feature_key, {cols}, geom, outside_district, batch_id, updated_at)
        SELECT s.feature_key, {", ".join(f's.{n}' for n in names)}, s.geom, s.outside_district, :batch, now()
          FROM {SRC} s WHERE NOT EXISTS (SELECT 1 FROM {t} x WHERE x.feature_key = s.feature_key)
         ORDER BY s.geom
        """
    ), {"batch": batch_id}).rowcount
    for ddl in rebuild:
        conn.execute(sa.text(ddl))
    return {"distinct": int(distinct), "outside": int(n_out), "inserted": int(inserted),
            "updated": int(updated), "unchanged": int(distinct) - int(inserted) - int(updated)}


def _delete_absent(conn: Connection, spec: LayerSpec) -> int:
    """Delete the layer's features that the staged snapshot does not contain; return how many."""
    t = spec.qualified_table
    return int(conn.execute(sa.text(
        f"DELETE FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {SRC} s WHERE s.feature_key = t.feature_key)"
    )).rowcount)


def _update_changed(conn: Connection, spec: LayerSpec, batch_id: int, names: list[str]) -> int:
    """Rewrite the layer rows whose staged version differs; return how many (identical rows stay untouched).

    An UPDATE join plus an anti-join INSERT is several times faster than ``INSERT ... ON CONFLICT`` for bulk
    loads; concurrent ingests of a layer are serialised by the advisory lock taken in :func:`load_chunks`.
    """
    t = spec.qualified_table
    sets = ", ".join(f"{n} = s.{n}" for n in [*names, '"geom"', '"outside_district"'])
    differs = " OR ".join(
        [f"t.{n} IS DISTINCT FROM s.{n}" for n in [*names, '"outside_district"']]
        + ["NOT ST_OrderingEquals(t.geom, s.geom)"]
    )
    return conn.execute(sa.text(
        f"""
        UPDATE {t} AS t SET {sets}, batch_id = :batch, updated_at = now()
          FROM {SRC} s WHERE t.feature_key = s.feature_key AND ({differs})
        """
    ), {"batch": batch_id}).rowcount


def _drop_spatial_indexes(conn: Connection, spec: LayerSpec, rows: int) -> list[str]:
    """Drop the GIST indexes of an empty layer before a big first load; return the DDL that recreates them.

    Building a GIST index once over sorted rows is several times faster than growing it row by row. The
    lock this takes only blocks readers of a layer that is empty until the load commits.
    """
    if rows < BULK_REBUILD_ROWS:
        return []
    if not is_empty(conn, spec):
        return []
    indexes = conn.execute(sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :schema AND tablename = :table "
        "AND indexdef LIKE '% USING gist %'"
    ), {"schema": LAYER_SCHEMA, "table": spec.table}).all()
    for name, _ in indexes:
        conn.execute(sa.text(f'DROP INDEX "{LAYER_SCHEMA}"."{name}"'))
    return [ddl for _, ddl in indexes] + history.drop_bulk_indexes(conn, spec)


def _district_sql(conn: Connection, spec: LayerSpec, outline: LayerSpec | None) -> str | None:
    """Return a scalar subquery of the district outline, or None when there is none (or it is being loaded)."""
    if outline is None or spec.id == outline.id or is_empty(conn, outline):
        return None
    return f"SELECT ST_Union(geom) FROM {outline.qualified_table}"


@lru_cache(maxsize=1)
def _project_outline() -> LayerSpec | None:
    """The district outline of the project's own catalog (for callers that do not pass one)."""
    return load_catalog().role(Role.district_outline)
