"""File exports of items: GeoPackage, FlatGeobuf, GeoParquet 1.1 and GeoJSON text sequences, streamed.

An export is the items query (same filters, CRS, properties and access rules) run once through a server-side
cursor (:func:`cim_service.store.db.stream_rows`) in a worker thread, written batch by batch, each batch's bytes
handed to the response as soon as they are written. Memory holds one batch (``CIM_EXPORT_BATCH_ROWS``) and the
writer's state, whatever the size of the layer:

- ``geojsonseq`` (RFC 8142, ``application/geo+json-seq``): each feature is ``RS`` + GeoJSON text + ``LF``, rendered
  in PostgreSQL as the JSON items are; coordinates in the ``crs`` axis order, like the JSON.
- ``fgb`` (FlatGeobuf): written without a spatial index (an index needs every feature before the first one),
  so the header declares no feature count and readers read to the end. Each batch is encoded by GDAL and only
  its features are sent after the first batch's header.
- ``parquet`` (GeoParquet 1.1): one row group per batch; WKB ``geometry``, a ``bbox`` covering column
  (``xmin/ymin/xmax/ymax``), the ``geo`` metadata (version, primary column, encoding, geometry types, CRS as
  PROJJSON, covering) in the footer written last.
- ``gpkg`` (GeoPackage, an SQLite file, not streamable as written): the batches are appended to a temporary
  file in the worker thread, which is then sent in 1 MiB chunks and deleted.

File formats store x/y in easting/longitude order whatever the CRS's axis order (as GDAL and GeoParquet
expect); GCJ-02 and BD-09 are converted in Python and carry no CRS (PROJ knows neither).
"""

from __future__ import annotations

import io
import os
import queue
import struct
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import orjson
import shapely

from cim_service.core.catalog import FieldSpec, FieldType, LayerSpec
from cim_service.features.crs import OutputCrs, geometry_sql
from cim_service.features.query import feature_text_sql
from cim_service.features.sql import Params, quote_ident
from cim_service.store.db import fetch_value, stream_rows

GEOJSONSEQ = "application/geo+json-seq"


@dataclass(frozen=True)
class ExportFormat:
    """One export format: the ``f`` value, media type, file extension."""

    name: str
    media_type: str
    extension: str
    title: str


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("gpkg", "application/geopackage+sqlite3", "gpkg", "GeoPackage"),
    ExportFormat("fgb", "application/flatgeobuf", "fgb", "FlatGeobuf"),
    ExportFormat("parquet", "application/vnd.apache.parquet", "parquet", "GeoParquet 1.1"),
    ExportFormat("geojsonseq", GEOJSONSEQ, "geojsons", "GeoJSON text sequence (RFC 8142)"),
)}
GPKG_CHUNK = 1024 * 1024


@dataclass
class ExportPlan:
    """A validated export request: the items query without paging, bounded by ``limit``."""

    spec: LayerSpec
    fmt: ExportFormat
    properties: list[FieldSpec]
    crs: OutputCrs
    order: list[tuple[str, bool]]
    limit: int
    offset: int
    #: refuse (instead of clamp) when more than ``limit`` features match: no ``limit`` was asked for
    refuse_above_limit: bool
    params: Params = field(default_factory=Params)
    where: list[str] = field(default_factory=list)
    after: str | None = None

    def conditions(self) -> str:
        """The WHERE clause (filters and keyset position)."""
        parts = [*self.where, *([self.after] if self.after else [])]
        return " AND ".join(parts) if parts else "TRUE"

    @property
    def filename(self) -> str:
        """``Content-Disposition`` file name."""
        return f"{self.spec.id}.{self.fmt.extension}"


class ExportTooLarge(Exception):
    """More features match than an export may hold (carries the bound)."""

    def __init__(self, bound: int):
        super().__init__(bound)
        self.bound = bound


def _file_geometry_sql(crs: OutputCrs) -> str:
    """The stored geometry in ``crs`` as x/y (easting/longitude first): files never swap axes."""
    if crs.python_crs or crs.srid == 4326:
        return '"geom"'
    if crs.srid == 3857:
        return '"geom_3857"'
    return f'ST_Transform("geom", {crs.srid})'


def _column_sql(f: FieldSpec) -> str:
    return f"{quote_ident(f.name)}::text" if f.type is FieldType.json else quote_ident(f.name)


def export_sql(plan: ExportPlan) -> str:
    """The cursor's statement: every matched row in order, bounded by ``limit`` (and skipped by ``offset``)."""
    p = plan.params
    order = ", ".join(f"{col} {'ASC' if asc else 'DESC'}" for col, asc in plan.order)
    tail = f"ORDER BY {order} LIMIT {p.bind(plan.limit, 'bigint')} OFFSET {p.bind(plan.offset, 'bigint')}"
    source = f"FROM {plan.spec.qualified_table} WHERE {plan.conditions()}"
    if plan.fmt.name == "geojsonseq":  # each record as the bytes to send: RS, the feature, LF
        text = feature_text_sql(plan.properties, plan.crs, geom=geometry_sql(plan.crs))
        return f"SELECT convert_to(chr(30) || {text} || chr(10), 'UTF8') {source} {tail}"
    cols = ", ".join(['"id"', *(_column_sql(f) for f in plan.properties),
                      f"ST_AsBinary({_file_geometry_sql(plan.crs)})"])
    return f"SELECT {cols} {source} {tail}"


def count_sql(plan: ExportPlan, bound: int) -> tuple[str, list]:
    """Matched rows counted up to ``bound + 1`` (a larger match is refused before anything is sent)."""
    params = list(plan.params.values)
    params.append(bound + 1)
    return (f"SELECT count(*) FROM (SELECT 1 FROM {plan.spec.qualified_table} WHERE {plan.conditions()} "
            f"LIMIT ${len(params)}::bigint) AS c", params)


# -- writing ----------------------------------------------------------------------------------------

Emit = Callable[[bytes], None]


def run_export(plan: ExportPlan, url: str, emit: Emit, *, batch_rows: int, statement_timeout_ms: int) -> int:
    """Write the export of ``plan``, handing its bytes to ``emit`` as they are made; return the features written.

    Runs in a worker thread (it blocks on the database and on ``emit``). :class:`ExportTooLarge` before the first
    byte when ``plan.refuse_above_limit`` and more than ``plan.limit`` features match.
    """
    if plan.refuse_above_limit:
        sql, args = count_sql(plan, plan.limit)
        if int(fetch_value(url, sql, args, statement_timeout_ms=statement_timeout_ms)) > plan.limit:
            raise ExportTooLarge(plan.limit)
    sql = export_sql(plan)
    batches = _prefetched(stream_rows(url, sql, plan.params.values, batch_rows=batch_rows,
                                      statement_timeout_ms=statement_timeout_ms))
    writer = WRITERS[plan.fmt.name](plan, emit)
    written = 0
    try:
        for rows in batches:
            writer.write(rows)
            written += len(rows)
        writer.close()
    finally:
        writer.discard()
        batches.close()
    return written


def _prefetched(batches: Iterator[list[tuple]]) -> Generator[list[tuple], None, None]:
    """``batches`` read one ahead in a helper thread: the database makes batch n+1 while batch n is written.

    At most one batch waits (two in memory with the one being written); closing the generator stops the reader
    at its next batch and closes ``batches`` (the cursor's connection) there.
    """
    box: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for rows in batches:
                while not stop.is_set():
                    try:
                        box.put(rows, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            box.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            box.put(exc)
        finally:
            batches.close()

    reader = threading.Thread(target=read, name="cim-export-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # let a blocked put finish so the reader sees the stop
            try:
                box.get(timeout=0.1)
            except queue.Empty:
                pass
        reader.join()


class _Writer:
    def __init__(self, plan: ExportPlan, emit: Emit):
        self.plan = plan
        self.emit = emit

    def write(self, rows: list[tuple]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write what comes after the last batch (footers; an empty file's header)."""

    def discard(self) -> None:
        """Release what the writer holds (also after an error)."""


class GeoJSONSeqWriter(_Writer):
    """RFC 8142: ``RS`` + feature + ``LF`` per feature."""

    def write(self, rows: list[tuple]) -> None:
        """Emit one batch of records (made in PostgreSQL; GCJ-02/BD-09 geometries converted here)."""
        if self.plan.crs.python_crs:
            from cim_service.features.formats import to_python_crs

            texts = ",".join(bytes(r[0])[1:-1].decode() for r in rows)
            features = orjson.loads("[" + to_python_crs(texts, self.plan.crs.python_crs) + "]")
            self.emit(b"".join(b"\x1e" + orjson.dumps(f) + b"\n" for f in features))
            return
        self.emit(b"".join([r[0] for r in rows]))


def _arrow_schema(plan: ExportPlan):  # noqa: ANN202 - pyarrow.Schema
    import pyarrow as pa

    fields = [pa.field("id", pa.int64(), nullable=False)]
    fields += [pa.field(f.name, _arrow_type(f.type.info.arrow)) for f in plan.properties]
    return fields


@lru_cache(maxsize=16)
def _arrow_type(name: str):  # noqa: ANN202 - pyarrow.DataType
    import pyarrow as pa

    if name.startswith("timestamp"):
        return pa.timestamp("us", tz="UTC")
    return pa.type_for_alias(name)


def _wkb_column(rows: list[tuple], crs: OutputCrs) -> tuple[list[bytes | None], np.ndarray]:
    """The geometries of a batch as WKB (GCJ-02/BD-09 converted here) and their bounds (n x 4)."""
    wkb = [r[-1] for r in rows]
    if not crs.python_crs:
        bounds = _point_bounds(wkb)
        if bounds is not None:
            return wkb, bounds
    geoms = shapely.from_wkb(wkb)
    if crs.python_crs:
        from cim_service.core.crs import transform_geometry

        geoms = transform_geometry(geoms, "EPSG:4326", crs.python_crs)
        wkb = list(shapely.to_wkb(geoms))
    return wkb, shapely.bounds(geoms)


_POINT_LE = b"\x01\x01\x00\x00\x00"


def _point_bounds(wkb: list[bytes | None]) -> np.ndarray | None:
    """Bounds of 2D little-endian WKB points read straight from their bytes; None for anything else."""
    if not wkb or any(w is None or len(w) != 21 for w in wkb):
        return None
    raw = np.frombuffer(b"".join(wkb), dtype=np.uint8).reshape(-1, 21)
    if not (raw[:, :5] == np.frombuffer(_POINT_LE, dtype=np.uint8)).all():
        return None
    xy = raw[:, 5:].copy().view("<f8")
    return np.column_stack([xy[:, 0], xy[:, 1], xy[:, 0], xy[:, 1]])


def _arrow_table(plan: ExportPlan, rows: list[tuple], bbox_column: bool):  # noqa: ANN202 - pyarrow.Table
    import pyarrow as pa

    schema_fields = _arrow_schema(plan)
    columns = list(zip(*rows, strict=True)) if rows else [()] * (len(schema_fields) + 1)
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns[:-1], schema_fields, strict=True)]
    wkb, bounds = _wkb_column(rows, plan.crs) if rows else ([], np.empty((0, 4)))
    names = [f.name for f in schema_fields]
    arrays.append(pa.array(wkb, type=pa.binary()))
    names.append(GEOMETRY)
    if bbox_column:
        arrays.append(pa.StructArray.from_arrays([pa.array(bounds[:, i], type=pa.float64()) for i in range(4)],
                                                 names=["xmin", "ymin", "xmax", "ymax"]))
        names.append(BBOX)
    return pa.Table.from_arrays(arrays, names=names)


GEOMETRY = "geometry"
BBOX = "bbox"


def crs_projjson(crs: OutputCrs) -> dict | None:
    """PROJJSON of an output CRS; None for GCJ-02/BD-09 (no PROJ definition)."""
    if crs.python_crs:
        return None
    from pyproj import CRS

    return CRS.from_user_input("OGC:CRS84" if crs.uri.endswith("CRS84") else f"EPSG:{crs.srid}").to_json_dict()


def geo_metadata(plan: ExportPlan) -> dict:
    """The GeoParquet 1.1 ``geo`` file metadata."""
    column: dict = {"encoding": "WKB", "geometry_types": [plan.spec.geometry.value],
                    "covering": {"bbox": {k: [BBOX, k] for k in ("xmin", "ymin", "xmax", "ymax")}}}
    if plan.crs.python_crs:
        column["crs"] = None  # unknown to PROJ: said explicitly, never defaulted to CRS84
    elif not plan.crs.uri.endswith("CRS84"):
        column["crs"] = crs_projjson(plan.crs)
    if plan.crs.srid in (4326, 4490):
        column["edges"] = "planar"
    return {"version": "1.1.0", "primary_column": GEOMETRY, "columns": {GEOMETRY: column}}


class _Drain(io.RawIOBase):
    """A write-only file whose written bytes are taken out by :meth:`take` (the Parquet writer's sink)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # noqa: ANN001 - bytes-like
        self.buffer += b
        self.position += len(b)
        return len(b)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


class ParquetWriter(_Writer):
    """GeoParquet 1.1: one row group per batch, ``geo`` metadata in the footer."""

    def __init__(self, plan: ExportPlan, emit: Emit):
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(plan, emit)
        empty = _arrow_table(plan, [], bbox_column=True)
        schema = empty.schema.with_metadata({b"geo": orjson.dumps(geo_metadata(plan))})
        self.sink = _Drain()
        self.writer = pq.ParquetWriter(pa.PythonFile(self.sink, mode="w"), schema, compression="zstd",
                                       compression_level=1, write_statistics=[BBOX, "id"])
        self.schema = schema

    def write(self, rows: list[tuple]) -> None:
        """Write one row group and emit its bytes."""
        table = _arrow_table(self.plan, rows, bbox_column=True).replace_schema_metadata(self.schema.metadata)
        self.writer.write_table(table, row_group_size=len(rows))
        self.emit(self.sink.take())

    def close(self) -> None:
        """Write the footer."""
        self.writer.close()
        self.emit(self.sink.take())


def _ogr_crs(crs: OutputCrs) -> str | None:
    return None if crs.python_crs else f"EPSG:{crs.srid}"


def _ogr_write(plan: ExportPlan, rows: list[tuple], path, driver: str, append: bool, **options) -> None:  # noqa: ANN001
    import pyogrio

    table = _arrow_table(plan, rows, bbox_column=False)
    pyogrio.write_arrow(table, path, layer=plan.spec.id, driver=driver, geometry_name=GEOMETRY,
                        geometry_type=plan.spec.geometry.value, crs=_ogr_crs(plan.crs), encoding="UTF-8",
                        append=append, **options)


class FlatGeobufWriter(_Writer):
    """FlatGeobuf without a spatial index: the header of an empty file (no feature count, no extent), then the
    features of each batch (GDAL encodes a batch as a file; its own header, which counts the batch, is cut)."""

    def __init__(self, plan: ExportPlan, emit: Emit):
        super().__init__(plan, emit)
        self.started = False

    def _encode(self, rows: list[tuple]) -> bytes:
        buf = io.BytesIO()
        _ogr_write(self.plan, rows, buf, "FlatGeobuf", False, SPATIAL_INDEX="NO")
        return buf.getvalue()

    def _header(self) -> None:
        if not self.started:
            self.emit(self._encode([]))
            self.started = True

    def write(self, rows: list[tuple]) -> None:
        """Emit one batch's features (after the file's magic bytes and header, the first time)."""
        self._header()
        data = self._encode(rows)
        self.emit(data[_fgb_features_offset(data):])

    def close(self) -> None:
        """An empty result is a file with its header and no feature."""
        self._header()


def _fgb_features_offset(data: bytes) -> int:
    """Offset of the first feature in a FlatGeobuf file without index: magic (8), header size (4), header."""
    if data[:3] != b"fgb":
        raise ValueError("not a FlatGeobuf file")
    (header_size,) = struct.unpack_from("<I", data, 8)
    return 12 + header_size


class GeoPackageWriter(_Writer):
    """GeoPackage: batches appended to a temporary file, sent when complete."""

    def __init__(self, plan: ExportPlan, emit: Emit):
        super().__init__(plan, emit)
        self.folder = tempfile.mkdtemp(prefix="cim-export-")
        self.path = Path(self.folder) / plan.filename
        self.started = False

    def write(self, rows: list[tuple]) -> None:
        """Append one batch to the file."""
        _ogr_write(self.plan, rows, str(self.path), "GPKG", self.started)
        self.started = True

    def close(self) -> None:
        """Send the file."""
        if not self.started:
            _ogr_write(self.plan, [], str(self.path), "GPKG", False)
        with self.path.open("rb") as f:
            while chunk := f.read(GPKG_CHUNK):
                self.emit(chunk)

    def discard(self) -> None:
        """Delete the temporary file."""
        for name in os.listdir(self.folder):
            os.unlink(os.path.join(self.folder, name))
        os.rmdir(self.folder)


WRITERS: dict[str, type[_Writer]] = {"geojsonseq": GeoJSONSeqWriter, "parquet": ParquetWriter,
                                     "fgb": FlatGeobufWriter, "gpkg": GeoPackageWriter}

