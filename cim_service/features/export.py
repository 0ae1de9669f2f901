"""File exports of items: GeoPackage, FlatGeobuf, GeoParquet 1.1 and GeoJSON text sequences, streamed.

An export is the items query (same filters, CRS, properties and access rules) read through ``COPY (SELECT …) TO
STDOUT`` (:class:`cim_service.store.db.CopySession`), never as Python rows: each batch of
``CIM_EXPORT_BATCH_ROWS`` features is one COPY in CSV, parsed by Arrow's multi-threaded CSV reader into columns
(geometry as hex WKB, decoded in one call), then written. Batches follow each other by **keyset**: the next one
starts after the sort key of the last feature of the previous one (``features.keyset``), so a batch at the end
of a 300,000-feature layer costs what the first one costs, each COPY is bounded by the statement timeout
whatever the client's speed, and the whole export reads one snapshot (one REPEATABLE READ transaction). A helper
thread reads batch n+1 while batch n is written; memory holds two batches and the writer's state, whatever the
size of the layer:

- ``geojsonseq`` (RFC 8142, ``application/geo+json-seq``): each feature is ``RS`` + GeoJSON text + ``LF``, rendered
  in PostgreSQL as the JSON items are; COPY's own lines are the records (its CSV quote and delimiter are control
  characters that JSON text never holds raw), so the bytes go out as they come; coordinates in the ``crs`` axis
  order, like the JSON.
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

import binascii
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
from typing import Any

import numpy as np
import orjson
import shapely

from cim_service.core.catalog import FieldSpec, FieldType, LayerSpec
from cim_service.features import keyset
from cim_service.features.crs import OutputCrs, geometry_sql
from cim_service.features.query import feature_text_sql
from cim_service.features.sql import Params, quote_ident
from cim_service.store.db import copy_session, fetch_value

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
    """A property as COPY writes it for Arrow's CSV reader (timestamps as UTC wall time, JSON as text)."""
    col = quote_ident(f.name)
    if f.type is FieldType.json:
        return f"{col}::text"
    if f.type is FieldType.timestamp:
        return f"({col} AT TIME ZONE 'UTC')"
    return col


#: COPY options: CSV for the Arrow reader; for geojsonseq, a quote and a delimiter JSON text never holds raw
#: (control characters are escaped in JSON), so each COPY line is exactly one record
CSV_OPTIONS = "FORMAT csv"
SEQ_OPTIONS = "FORMAT csv, DELIMITER E'\\x03', QUOTE E'\\x01'"
#: what follows the last record of a full geojsonseq batch: its sort keys (hex, ``-`` for NULL), the next
#: batch's start
SEQ_KEYS = b"\x02"


def export_sql(plan: ExportPlan, params: Params, after: str | None, limit: int, offset: int) -> str:
    """One batch: the matched rows after ``after`` (keyset) in order, at most ``limit``, ``offset`` skipped.

    Columnar formats select the sort keys as text on every row (Arrow reads the last one). A geojsonseq record is
    one text; only the batch's last possible row (``row_number`` = offset + limit) carries its keys, after
    :data:`SEQ_KEYS`, so the records need no cutting.
    """
    order = ", ".join(f"{col} {'ASC' if asc else 'DESC'}" for col, asc in plan.order)
    last_row = params.bind(offset + limit, "bigint")
    tail = f"ORDER BY {order} LIMIT {params.bind(limit, 'bigint')}"
    if offset:
        tail += f" OFFSET {params.bind(offset, 'bigint')}"
    conditions = plan.conditions() + (f" AND {after}" if after else "")
    source = f"FROM {plan.spec.qualified_table} WHERE {conditions}"
    keys = keyset.key_columns(plan.order)
    if plan.fmt.name == "geojsonseq":  # RS + the feature (COPY ends the line); the last one, its keys
        text = feature_text_sql(plan.properties, plan.crs, geom=geometry_sql(plan.crs))
        hexed = ", ".join(f"coalesce(encode(convert_to({k}, 'UTF8'), 'hex'), '-')" for k in keys)
        marked = (f"CASE WHEN row_number() OVER (ORDER BY {order}) = {last_row} "
                  f"THEN concat_ws(E'\\x02', '', {hexed}) ELSE '' END")
        return f"SELECT chr(30) || {text} || {marked} {source} {tail}"
    cols = ['"id"', *(_column_sql(f) for f in plan.properties),
            f"encode(ST_AsBinary({_file_geometry_sql(plan.crs)}), 'hex')",
            *(f'{k} AS "__k{i}"' for i, k in enumerate(keys))]
    return f"SELECT {', '.join(cols)} {source} {tail}"


def count_sql(plan: ExportPlan, bound: int) -> tuple[str, list]:
    """Matched rows counted up to ``bound + 1`` (a larger match is refused before anything is sent)."""
    params = list(plan.params.values)
    params.append(bound + 1)
    return (f"SELECT count(*) FROM (SELECT 1 FROM {plan.spec.qualified_table} WHERE {plan.conditions()} "
            f"LIMIT ${len(params)}::bigint) AS c", params)


# -- reading: COPY batches by keyset --------------------------------------------------------------------

Emit = Callable[[bytes], None]


@dataclass
class Batch:
    """One batch as read: an Arrow table (id, properties, hex geometry) or, for geojsonseq, the records' bytes."""

    rows: int
    table: Any = None
    records: bytes | memoryview = b""
    #: bytes that follow ``records`` (the last record's LF, when its sort keys were cut off)
    tail: bytes = b""


def run_export(plan: ExportPlan, url: str, emit: Emit, *, batch_rows: int, statement_timeout_ms: int) -> int:
    """Write the export of ``plan``, handing its bytes to ``emit`` as they are made; return the features written.

    Runs in a worker thread (it blocks on the database and on ``emit``). :class:`ExportTooLarge` before the first
    byte when ``plan.refuse_above_limit`` and more than ``plan.limit`` features match.
    """
    if plan.refuse_above_limit:
        sql, args = count_sql(plan, plan.limit)
        if int(fetch_value(url, sql, args, statement_timeout_ms=statement_timeout_ms)) > plan.limit:
            raise ExportTooLarge(plan.limit)
    batches = _prefetched(read_batches(plan, url, batch_rows=batch_rows, statement_timeout_ms=statement_timeout_ms))
    writer = WRITERS[plan.fmt.name](plan, emit)
    written = 0
    try:
        for batch in batches:
            writer.write(batch)
            written += batch.rows
        writer.close()
    finally:
        writer.discard()
        batches.close()
    return written


def read_batches(plan: ExportPlan, url: str, *, batch_rows: int, statement_timeout_ms: int) -> Iterator[Batch]:
    """The export's batches, one COPY each, the next after the last sort key of the one before."""
    with copy_session(url, statement_timeout_ms=statement_timeout_ms) as session:
        position: list[str | None] | None = None
        read = 0
        while read < plan.limit:
            want = min(batch_rows, plan.limit - read)
            params = Params()
            params.values = list(plan.params.values)
            after = keyset.after_condition(plan.spec, plan.order, position, params) if position else None
            sql = export_sql(plan, params, after, want, plan.offset if position is None else 0)
            seq = plan.fmt.name == "geojsonseq"
            data = session.read(sql, params.values, SEQ_OPTIONS if seq else CSV_OPTIONS)
            batch, position = _seq_batch(plan, data) if seq else _csv_batch(plan, data)
            if batch.rows:
                yield batch
            read += batch.rows
            if batch.rows < want:
                return
            if position is None:  # a full batch names where the next starts; never start over
                raise RuntimeError("an export batch came without its last sort key")


def _seq_batch(plan: ExportPlan, data: bytes) -> tuple[Batch, list[str | None] | None]:
    """The records of a geojsonseq batch and, when it is full, the sort keys its last record carried."""
    if not data:
        return Batch(0), None
    rows = data.count(b"\n")
    cut = data.find(SEQ_KEYS, data.rfind(b"\x1e"))
    if cut < 0:
        return Batch(rows, records=data), None
    fields = data[cut + 1:-1].split(SEQ_KEYS)
    keys = [None if f == b"-" else bytes.fromhex(f.decode()).decode() for f in fields]
    return Batch(rows, records=memoryview(data)[:cut], tail=b"\n"), keys  # the keys cut off without a copy


def _csv_types(plan: ExportPlan) -> tuple[list[str], dict]:
    import pyarrow as pa

    names = ["id", *(f.name for f in plan.properties), "__geom", *(f"__k{i}" for i in range(len(plan.order)))]
    types = {"id": pa.int64(), "__geom": pa.string(), **{f"__k{i}": pa.string() for i in range(len(plan.order))}}
    for f in plan.properties:
        arrow = _arrow_type(f.type.info.arrow)
        types[f.name] = pa.timestamp("us") if pa.types.is_timestamp(arrow) else arrow
    return names, types


def _csv_batch(plan: ExportPlan, data: bytes) -> tuple[Batch, list[str | None] | None]:
    """A CSV batch parsed by Arrow (multi-threaded, no Python row) and the last row's sort keys."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data:
        return Batch(0), None
    names, types = _csv_types(plan)
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names, block_size=max(1 << 20, len(data) // 2 + 1)),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                             quoted_strings_can_be_null=False, true_values=["t"],
                                             false_values=["f"]))
    keys = [table.column(f"__k{i}")[-1].as_py() for i in range(len(plan.order))]
    return Batch(table.num_rows, table=table), keys


def _prefetched(batches: Iterator[Batch]) -> Generator[Batch, None, None]:
    """``batches`` read one ahead in a helper thread: the database makes batch n+1 while batch n is written.

    At most one batch waits (two in memory with the one being written); closing the generator stops the reader
    at its next batch and closes ``batches`` (the COPY session's connection) there.
    """
    box: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            box.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            box.put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

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

    def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write what comes after the last batch (footers; an empty file's header)."""

    def discard(self) -> None:
        """Release what the writer holds (also after an error)."""


class GeoJSONSeqWriter(_Writer):
    """RFC 8142: ``RS`` + feature + ``LF`` per feature."""

    def write(self, batch: Batch) -> None:
        """Emit one batch of records (made in PostgreSQL; GCJ-02/BD-09 geometries converted here)."""
        if self.plan.crs.python_crs:
            from cim_service.features.formats import to_python_crs

            texts = ",".join(line[1:].decode() for line in bytes(batch.records).split(b"\n") if line)
            features = orjson.loads("[" + to_python_crs(texts, self.plan.crs.python_crs) + "]")
            self.emit(b"".join(b"\x1e" + orjson.dumps(f) + b"\n" for f in features))
            return
        self.emit(batch.records)
        if batch.tail:
            self.emit(batch.tail)


def _arrow_schema(plan: ExportPlan):  # noqa: ANN202 - list of pyarrow.Field
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


def _unhex(column) -> Any:  # noqa: ANN001 - pyarrow string (Chunked)Array → pyarrow BinaryArray
    """Hex text → binary in one call: the concatenated hex of every row is the hex of the concatenated bytes."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    raw = binascii.unhexlify(memoryview(data_buf)[start:end]) if data_buf is not None else b""
    halves = ((offsets - start) // 2).astype(np.int32)
    if arr.offset and validity is not None:  # re-base the validity bitmap on the slice (never after a fresh parse)
        return pa.array([None if v is None else bytes.fromhex(v) for v in arr.to_pylist()], type=pa.binary())
    return pa.Array.from_buffers(pa.binary(), len(arr), [validity, pa.py_buffer(halves), pa.py_buffer(raw)],
                                 null_count=arr.null_count)


_POINT_LE = b"\x01\x01\x00\x00\x00"


def _geometry(plan: ExportPlan, hexwkb) -> tuple[Any, np.ndarray]:  # noqa: ANN001 - pyarrow arrays
    """The WKB column of a batch (GCJ-02/BD-09 converted here) and the geometries' bounds (n x 4)."""
    import pyarrow as pa

    wkb = _unhex(hexwkb)
    if not plan.crs.python_crs:
        bounds = _point_bounds(wkb)
        if bounds is not None:
            return wkb, bounds
    geoms = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    if plan.crs.python_crs:
        from cim_service.core.crs import transform_geometry

        geoms = transform_geometry(geoms, "EPSG:4326", plan.crs.python_crs)
        wkb = pa.array(shapely.to_wkb(geoms), type=pa.binary())
    return wkb, shapely.bounds(geoms)


def _point_bounds(wkb) -> np.ndarray | None:  # noqa: ANN001 - pyarrow BinaryArray
    """Bounds of 2D little-endian WKB points read straight from the array's bytes; None for anything else."""
    n = len(wkb)
    if n == 0 or wkb.null_count:
        return None
    _, offsets_buf, data_buf = wkb.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[wkb.offset:wkb.offset + n + 1]
    if not (np.diff(offsets) == 21).all():
        return None
    raw = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 21)
    if not (raw[:, :5] == np.frombuffer(_POINT_LE, dtype=np.uint8)).all():
        return None
    xy = raw[:, 5:].copy().view("<f8")
    return np.column_stack([xy[:, 0], xy[:, 1], xy[:, 0], xy[:, 1]])


def _arrow_table(plan: ExportPlan, batch: Batch | None, bbox_column: bool):  # noqa: ANN202 - pyarrow.Table
    """The file's table of a batch (None: the empty table of the file's schema)."""
    import pyarrow as pa

    schema_fields = _arrow_schema(plan)
    if batch is None or batch.table is None:
        arrays = [pa.array([], type=f.type) for f in schema_fields]
        wkb, bounds = pa.array([], type=pa.binary()), np.empty((0, 4))
    else:
        parsed = batch.table
        arrays = [parsed.column(f.name).cast(f.type) for f in schema_fields]
        wkb, bounds = _geometry(plan, parsed.column("__geom"))
    names = [f.name for f in schema_fields]
    arrays.append(wkb)
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
        empty = _arrow_table(plan, None, bbox_column=True)
        schema = empty.schema.with_metadata({b"geo": orjson.dumps(geo_metadata(plan))})
        self.sink = _Drain()
        self.writer = pq.ParquetWriter(pa.PythonFile(self.sink, mode="w"), schema, compression="zstd",
                                       compression_level=1, write_statistics=[BBOX, "id"])
        self.schema = schema

    def write(self, batch: Batch) -> None:
        """Write one row group and emit its bytes."""
        table = _arrow_table(self.plan, batch, bbox_column=True).replace_schema_metadata(self.schema.metadata)
        self.writer.write_table(table, row_group_size=batch.rows)
        self.emit(self.sink.take())

    def close(self) -> None:
        """Write the footer."""
        self.writer.close()
        self.emit(self.sink.take())


def _ogr_crs(crs: OutputCrs) -> str | None:
    return None if crs.python_crs else f"EPSG:{crs.srid}"


def _ogr_write(plan: ExportPlan, batch: Batch | None, path, driver: str, append: bool,  # noqa: ANN001
               **options) -> None:
    import pyogrio

    table = _arrow_table(plan, batch, bbox_column=False)
    pyogrio.write_arrow(table, path, layer=plan.spec.id, driver=driver, geometry_name=GEOMETRY,
                        geometry_type=plan.spec.geometry.value, crs=_ogr_crs(plan.crs), encoding="UTF-8",
                        append=append, **options)


class FlatGeobufWriter(_Writer):
    """FlatGeobuf without a spatial index: the header of an empty file (no feature count, no extent), then the
    features of each batch (GDAL encodes a batch as a file; its own header, which counts the batch, is cut)."""

    def __init__(self, plan: ExportPlan, emit: Emit):
        super().__init__(plan, emit)
        self.started = False

    def _encode(self, batch: Batch | None) -> bytes:
        buf = io.BytesIO()
        _ogr_write(self.plan, batch, buf, "FlatGeobuf", False, SPATIAL_INDEX="NO")
        return buf.getvalue()

    def _header(self) -> None:
        if not self.started:
            self.emit(self._encode(None))
            self.started = True

    def write(self, batch: Batch) -> None:
        """Emit one batch's features (after the file's magic bytes and header, the first time)."""
        self._header()
        data = self._encode(batch)
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

    def write(self, batch: Batch) -> None:
        """Append one batch to the file."""
        _ogr_write(self.plan, batch, str(self.path), "GPKG", self.started)
        self.started = True

    def close(self) -> None:
        """Send the file."""
        if not self.started:
            _ogr_write(self.plan, None, str(self.path), "GPKG", False)
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

