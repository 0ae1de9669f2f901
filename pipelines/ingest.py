"""Ingest one file into one layer: read, normalise the CRS to WGS84, validate and load in one transaction.

File faults raise :class:`IngestError` with a one-line message naming the file (and row and field where
there is one) and leave the database untouched. Row faults are rejected (kept with the batch) by default;
with ``on_error='abort'`` the first row fault aborts the whole ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas
import pandas as pd
import sqlalchemy.exc
from sqlalchemy.engine import Engine

from cim_service.core.catalog import Catalog, LayerSpec, Role, UnknownLayerError
from cim_service.core.crs import UnknownCRSError, parse_crs
from pipelines import layer_rules, readers
from pipelines.encoding import MAX_BAD_SHARE
from pipelines.load import LoadResult, Reject, RowError, load_chunks
from pipelines.validate import (
    Faults,
    PointColumns,
    ValidationError,
    check_geometries,
    check_keys,
    clean_text,
    coerce_fields,
    to_frame,
)

log = logging.getLogger(__name__)
ON_ERROR = ("reject", "abort")
#: row faults quoted in an abort message
ABORT_QUOTE = 3


class IngestError(RuntimeError):
    """An ingest that was refused or failed; the database is unchanged.

    The message is always one printable line: control characters (e.g. from a file name or a quoted
    value) are shown escaped.
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(text: str) -> str:
    """Return ``text`` as one printable line: line breaks and other control characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass
class _Run:
    """State of one ingest while its chunks stream into the load."""

    spec: LayerSpec
    path: Path
    crs: str
    on_error: str
    warn: Callable[[str], None]
    rows_read: int = 0
    rows_good: int = 0
    rejects: list[Reject] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    csv: readers.CsvReader | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def keep(self, faults: Faults, raw: pd.DataFrame) -> None:
        """Record the faults of one chunk, or abort."""
        found = faults.finish(raw)
        if found and self.on_error == "abort":
            quoted = "; ".join(_describe(self.name, r) for r in found[:ABORT_QUOTE])
            more = f" (and {len(found) - ABORT_QUOTE} more in this chunk)" if len(found) > ABORT_QUOTE else ""
            raise IngestError(f"{quoted}{more}; nothing was loaded (--on-error abort)")
        self.rejects.extend(found)

    def finish(self) -> None:
        """Refuse a file that yielded no valid row, or whose guessed encoding does not hold for its rows."""
        if self.rows_read == 0:
            raise IngestError(f"{self.name}: the file has no rows")
        csv = self.csv
        if csv is not None and csv.encoding.guessed and csv.damaged_rows > MAX_BAD_SHARE * self.rows_read:
            first = next(r for r in self.rejects if r.reason.startswith("not valid"))
            raise IngestError(
                f"{self.name}: {csv.damaged_rows} of {self.rows_read} rows are not valid {csv.encoding.display} "
                f"text (first: {_describe(self.name, first)}); the encoding guessed from the start of the file "
                f"does not hold, name it with --encoding"
            )
        if self.rows_good == 0:
            first = _describe(self.name, self.rejects[0]) if self.rejects else "no valid rows"
            raise IngestError(f"{self.name}: all {self.rows_read} rows were rejected, e.g. {first}")


def _describe(file_name: str, r: Reject) -> str:
    where = f"{file_name} row {r.row_number}" if r.row_number is not None else file_name
    if r.field:
        where += f", field {r.field!r}"
    return f"{where}: {r.reason}"


def ingest_file(
    engine: Engine,
    catalog: Catalog,
    layer_id: str,
    path: str | Path,
    *,
    crs: str | None = None,
    lon_col: str | None = None,
    lat_col: str | None = None,
    encoding: str | None = None,
    on_error: str = "reject",
    swap_axes: bool = False,
    gpkg_layer: str | None = None,
    replace: bool = False,
    chunk_rows: int = 50_000,
    progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> LoadResult:
    """Ingest ``path`` into the layer ``layer_id``.

    Parameters
    ----------
    engine : Engine
        Synchronous engine on the service database.
    catalog : Catalog
        The layer catalog.
    layer_id : str
        Target layer (a ``source`` layer of the catalog).
    path : str or Path
        CSV (with longitude/latitude columns), GeoJSON, Shapefile or GeoPackage.
    crs : str, optional
        Source CRS (wgs84, cgcs2000, gcj02, bd09, EPSG:<code>); default: the file's own for Shapefile and
        GeoPackage, else the layer's ``default_crs``. A shapefile without .prj needs it.
    lon_col, lat_col : str, optional
        Coordinate columns of a CSV (default: auto-detected).
    encoding : str, optional
        Text encoding of a CSV (default: detected).
    on_error : {'reject', 'abort'}
        Row faults: keep them as rejects and load the rest, or abort the whole ingest.
    swap_axes : bool
        Exchange longitude and latitude where rows hold (latitude, longitude).
    gpkg_layer : str, optional
        Layer of a GeoPackage with several layers.
    replace : bool
        The file is a full snapshot of the layer: its features missing from the file are deleted in the
        same transaction.
    chunk_rows : int
        Rows per CSV chunk (memory bound of the streaming load).
    progress : callable, optional
        Called with the number of rows loaded so far.
    warn : callable, optional
        Receives warnings (e.g. a GeoJSON whose ``crs`` member disagrees with the CRS used).

    Returns
    -------
    LoadResult

    Raises
    ------
    IngestError
        For any fault of the file, the options or the database; nothing was written.
    """
    spec = _source_layer(catalog, layer_id)
    if on_error not in ON_ERROR:
        raise IngestError(f"--on-error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    path = Path(path)
    try:
        kind = readers.detect_format(path)
        user_crs = parse_crs(crs) if crs else None
        run = _Run(spec=spec, path=path, crs=user_crs or parse_crs(spec.default_crs), on_error=on_error,
                   warn=warn or log.warning)
        run.options = {"crs": user_crs, "on_error": on_error, "swap_axes": swap_axes, "format": kind}
        if kind == "csv":
            chunks = _csv_chunks(run, encoding=encoding, lon_col=lon_col, lat_col=lat_col,
                                 swap_axes=swap_axes, chunk_rows=chunk_rows)
        else:
            if encoding and kind != "shapefile":
                raise IngestError(f"{path.name}: --encoding applies to CSV files and shapefiles; "
                                  f"{'GeoJSON' if kind == 'geojson' else 'a GeoPackage'} is always UTF-8")
            src = readers.read_vector(path, kind, layer=gpkg_layer, encoding=encoding)  # whole: the CRS first
            run.crs = _vector_crs(run, kind, src, user_crs)
            chunks = _vector_chunks(run, src, swap_axes=swap_axes)
        if layer_rules.needs_whole_file(spec):
            chunks = _whole(run, chunks)
        return load_chunks(
            engine, spec, _checked(run, chunks), source_name=clean_text(path.name),
            source_sha256=readers.sha256_file(path), source_crs=run.crs, rejects=lambda: run.rejects,
            rows_read=lambda: run.rows_read, options=run.options, progress=progress, replace=replace,
            outline=catalog.role(Role.district_outline),
        )
    except (readers.ReadError, ValidationError, UnknownCRSError) as exc:
        raise IngestError(str(exc)) from exc  # one line: a newline in a file name is shown escaped
    except RowError as exc:
        where = Reject(row_number=exc.row_number, field=exc.field, reason=exc.reason)
        raise IngestError(f"{_describe(path.name, where)}; nothing was loaded") from exc
    except sqlalchemy.exc.DBAPIError as exc:
        raise IngestError(f"{path.name}: the database refused the load: {_db_message(exc)}") from exc


def _source_layer(catalog: Catalog, layer_id: str) -> LayerSpec:
    try:
        spec = catalog.get(layer_id)
    except UnknownLayerError as exc:
        raise IngestError(str(exc)) from None
    if spec.kind == "derived":
        raise IngestError(f"layer {layer_id!r} is derived (computed by `cim indicators`), it cannot be ingested")
    return spec


def _db_message(exc: sqlalchemy.exc.DBAPIError) -> str:
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or type(exc.orig).__name__


def _checked(run: _Run, chunks: Iterator[geopandas.GeoDataFrame]) -> Iterator[geopandas.GeoDataFrame]:
    """Pass chunks on, then refuse an ingest that loaded nothing (inside the load's transaction)."""
    for chunk in chunks:
        run.rows_good += len(chunk)
        yield chunk
    run.finish()
    run.options["rows_good"] = run.rows_good


def _whole(run: _Run, chunks: Iterator[geopandas.GeoDataFrame]) -> Iterator[geopandas.GeoDataFrame]:
    frames = [c for c in chunks if len(c)]
    if frames:
        merged = geopandas.GeoDataFrame(pd.concat(frames), geometry="geometry", crs="EPSG:4326")
        yield layer_rules.aggregate(run.spec, merged)


def _csv_chunks(
    run: _Run, *, encoding: str | None, lon_col: str | None, lat_col: str | None, swap_axes: bool,
    chunk_rows: int,
) -> Iterator[geopandas.GeoDataFrame]:
    enc = readers.csv_encoding(run.path, encoding)
    run.options["encoding"] = enc.name
    run.csv = reader = readers.CsvReader(run.path, enc, chunk_rows=chunk_rows)
    points: PointColumns | None = None
    mapping: dict[str, list[str]] = {}
    for raw in reader.chunks():
        if points is None:
            lon, lat = readers.find_coordinate_columns(list(raw.columns), lon_col=lon_col, lat_col=lat_col,
                                                       file_name=run.name)
            run.options |= {"lon_col": clean_text(lon), "lat_col": clean_text(lat)}
            points = PointColumns(lon, lat, run.crs, swap_axes=swap_axes, file_name=run.name)
            mapping = readers.column_mapping(run.spec, list(raw.columns), exclude=(lon, lat))
            _check_mapping(run, mapping, list(raw.columns))
            _check_repeated(run, reader.duplicates, [lon, lat, *(c for cols in mapping.values() for c in cols)])
        run.rows_read += len(raw)
        faults = Faults()
        for row, column, spot in reader.damaged(raw):
            faults.add([row], column, spot.describe())
        geoms = points.points(raw, faults)
        merged, flat = readers.coalesce_columns(raw, mapping)
        prepared, full_mapping = layer_rules.prepare(run.spec, merged, flat)
        attrs = coerce_fields(run.spec, prepared, full_mapping, faults)
        check_keys(run.spec, attrs, faults)
        run.keep(faults, raw)
        run.options["swapped_rows"] = points.swapped_rows
        yield to_frame(attrs, geoms, faults.rows)


def _vector_chunks(run: _Run, src: readers.VectorSource, *, swap_axes: bool) -> Iterator[geopandas.GeoDataFrame]:
    frame = src.frame
    run.rows_read = len(frame)
    run.options |= src.options
    for note in src.notes:
        run.warn(note)
    if src.options.get("z_dropped"):
        run.warn(f"{run.name}: {src.options['z_dropped']} features have Z (height) or M ordinates; "
                 f"they were loaded as 2D (heights dropped)")
    if not len(frame):
        return
    columns = [c for c in frame.columns if c != frame.geometry.name]
    try:
        mapping = readers.column_mapping(run.spec, columns, truncated_names=src.truncated_names)
    except readers.ReadError as exc:
        raise IngestError(f"{run.name}: {exc}") from None
    _check_mapping(run, mapping, columns)
    _check_repeated(run, src.duplicates, [c for cols in mapping.values() for c in cols])
    faults = Faults()
    for row, (field_name, reason) in sorted(src.faults.items()):
        if row in frame.index:
            faults.add([row], field_name, reason)
    geoms, report = check_geometries(run.spec, frame.geometry, run.crs, faults, swap_axes=swap_axes,
                                     file_name=run.name)
    raw = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    merged, flat = readers.coalesce_columns(raw, mapping)
    prepared, full_mapping = layer_rules.prepare(run.spec, merged, flat)
    attrs = coerce_fields(run.spec, prepared, full_mapping, faults)
    check_keys(run.spec, attrs, faults)
    run.options |= {"repaired_geometries": report.repaired, "swapped_rows": report.swapped}
    run.keep(faults, raw)
    yield to_frame(attrs, geoms, faults.rows)


def _vector_crs(run: _Run, kind: str, src: readers.VectorSource, user_crs: str | None) -> str:
    """Decide the source CRS of a vector file: the user's, else the file's (Shapefile/GPKG), else the layer's."""
    declared = None
    if src.declared_crs:
        try:
            declared = parse_crs(src.declared_crs)
        except UnknownCRSError:
            declared = None
    if kind == "shapefile" and not src.has_prj and user_crs is None:
        raise IngestError(f"{run.name}: the shapefile has no .prj, so its CRS is unknown; state it with --crs")
    chosen = user_crs or (declared if kind in ("shapefile", "gpkg") else None) or run.crs
    if src.declared_crs and declared != chosen:
        run.warn(f"{run.name} declares CRS {src.declared_crs[:80]!r} but is read as {chosen}"
                 + ("" if user_crs else " (the layer's default; state it with --crs)"))
        run.options["declared_crs"] = clean_text(src.declared_crs[:200])
    return chosen


def _check_mapping(run: _Run, mapping: dict[str, list[str]], columns: list[str]) -> None:
    """Refuse a file none of whose columns is a declared field, and name missing required fields."""
    required = [f.name for f in run.spec.fields if f.required and f.name not in mapping]
    derivable = layer_rules.derives_address(run.spec, mapping)
    if required and not derivable:
        raise IngestError(
            f"{run.name}: required field(s) {', '.join(required)} of layer {run.spec.id} have no column "
            f"(columns: {', '.join(columns) or 'none'}; accepted names: "
            + "; ".join(f"{n}: {', '.join([n, *run.spec.field(n).aliases])}" for n in required) + ")"
        )


def _check_repeated(run: _Run, repeated: set[str], used: list[str]) -> None:
    """Refuse a file whose header names a column it uses twice (which of them holds the values?)."""
    twice = sorted({c for c in used if c.strip().lower() in repeated})
    if twice:
        raise IngestError(f"{run.name}: the column {twice[0]!r} appears more than once in the header; "
                          f"rename one of them")
