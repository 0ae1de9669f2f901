"""Read source files: CSV with coordinate columns (chunked), GeoJSON, Shapefile and GeoPackage.

Readers only read: they detect the format and the text encoding, find the coordinate columns and the
file's declared CRS, and refuse files that cannot be read with a :class:`ReadError` naming the file.
Values stay as found (CSV cells as strings); checking them is :mod:`pipelines.validate`'s job. What a
reader finds wrong with single rows (bytes that do not decode, a GeoJSON feature that is not one, a shape
without its attribute record) it reports as row faults, for the ingest to reject those rows by number.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import geopandas
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from cim_service.core.catalog import LayerSpec
from pipelines.dbf import DbfError, read_dbf
from pipelines.encoding import DecodedStream, Encoding, EncodingError, Spot, SpotCursor, detect_text_encoding
from pipelines.geojson import GeoJSONError, read_geojson

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
VECTOR_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".shp": "shapefile", ".gpkg": "gpkg"}
#: column names recognised as longitude / latitude (compared case-insensitively)
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "lon_wgs84", "lng_wgs84")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "lat_wgs84")
_LON_PREFIX = re.compile(r"^(lon|lng|longitude)[_\- ]", re.IGNORECASE)
_LAT_PREFIX = re.compile(r"^(lat|latitude)[_\- ]", re.IGNORECASE)
_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"%PDF": "a PDF document",
          b"PK\x03\x04": "a ZIP archive", b"GIF8": "a GIF image", b"\x1f\x8b": "a gzip archive"}
#: the longest field name a .dbf holds: longer names are cut to this many characters
DBF_NAME_LENGTH = 10
#: the geometry column of a :class:`VectorSource` (a name no attribute can take)
GEOMETRY = "__geometry"


class ReadError(ValueError):
    """A file that cannot be read as the layer's source (the message names the file and the problem)."""


@dataclass
class VectorSource:
    """A vector file read whole: its features (index: 1-based row number) and the CRS the file declares.

    ``faults`` are the rows the reader could not read whole (row -> (field, reason)); ``duplicates`` the
    lower-cased column names that occur more than once; ``options`` what the reader found, for the batch
    (encoding, features with Z/M ordinates loaded as 2D, deleted records); ``notes`` warnings for the user.
    """

    frame: geopandas.GeoDataFrame
    declared_crs: str | None
    has_prj: bool = True
    faults: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    duplicates: set[str] = field(default_factory=set)
    truncated_names: bool = False
    options: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of a file (for a shapefile: of .shp plus its present sidecars)."""
    digest = hashlib.sha256()
    paths = [path]
    if path.suffix.lower() == ".shp":
        paths += [path.with_suffix(s) for s in (".shx", ".dbf", ".prj", ".cpg") if path.with_suffix(s).exists()]
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def detect_format(path: Path) -> str:
    """Return 'csv', 'geojson', 'shapefile' or 'gpkg'; refuse missing, empty and non-geographic files."""
    if not path.exists():
        raise ReadError(f"{path.name}: no such file")
    if path.is_dir():
        raise ReadError(f"{path.name}: is a directory, not a file")
    if path.stat().st_size == 0:
        raise ReadError(f"{path.name}: the file is empty")
    with open(path, "rb") as fh:
        head = fh.read(16)
    suffix = path.suffix.lower()
    for magic, what in _MAGIC.items():
        if head.startswith(magic) and not (suffix == ".gpkg"):
            raise ReadError(f"{path.name}: is {what}, not a geodata file (CSV, GeoJSON, Shapefile, GeoPackage)")
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in VECTOR_SUFFIXES:
        return VECTOR_SUFFIXES[suffix]
    raise ReadError(
        f"{path.name}: unsupported file type {suffix or '(none)'}; expected .csv, .geojson/.json, .shp or .gpkg"
    )


# -- CSV --------------------------------------------------------------------------------------------------


def detect_encoding(path: Path, encoding: str | None = None) -> str:
    """Return the name of a CSV's text encoding: the given one (validated), its BOM's, or a checked guess."""
    return csv_encoding(path, encoding).name


def csv_encoding(path: Path, encoding: str | None = None) -> Encoding:
    """Return how a CSV's text is decoded (see :mod:`pipelines.encoding` for what may be guessed)."""
    try:
        return detect_text_encoding(path, encoding)
    except EncodingError as exc:
        raise ReadError(f"{path.name}: {exc}") from None


def _is_tsv(path: Path) -> bool:
    return path.suffix.lower() == ".tsv"


class CsvReader:
    """The rows of a CSV as string DataFrames of at most ``chunk_rows`` rows, decoded as ``encoding``.

    Each chunk's index is the 1-based record number (the header is not counted); column names are
    stripped and made unique (``duplicates`` lists the lower-cased names that occur more than once). A
    cell that held a NUL byte or bytes that do not decode holds a NUL character; :meth:`damaged` says which
    rows hold them, in which column and at which byte offset of the file.
    """

    def __init__(self, path: Path, encoding: Encoding, *, chunk_rows: int = 50_000) -> None:
        self.path = path
        self.encoding = encoding
        self.chunk_rows = chunk_rows
        self.duplicates: set[str] = set()
        self.damaged_rows = 0
        self._stream = DecodedStream(path, encoding)
        self._cursor = SpotCursor(self._stream.spots)

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Yield the rows, chunk after chunk."""
        sep = "\t" if _is_tsv(self.path) else ","
        name = self.path.name
        try:
            with io.BufferedReader(self._stream, buffer_size=1 << 20) as fh:
                reader = pd.read_csv(fh, encoding="utf-8", dtype=str, keep_default_na=False, chunksize=self.chunk_rows,
                                     sep=sep, skipinitialspace=True)
                start = 1
                for chunk in reader:
                    if start == 1:
                        self._header(list(chunk.columns))
                    chunk.columns, _ = unique_columns(list(chunk.columns))
                    chunk.index = pd.RangeIndex(start, start + len(chunk))
                    start += len(chunk)
                    yield chunk
        except pd.errors.EmptyDataError:
            self._header([])
            raise ReadError(f"{name}: the file has no header and no rows") from None
        except pd.errors.ParserError as exc:
            raise ReadError(f"{name}: malformed CSV: {_first_line(exc)}") from None

    def _header(self, columns: list[str]) -> None:
        """Refuse a header holding undecodable bytes; note the duplicated column names."""
        marks = sum(str(c).count("\x00") for c in columns)
        if marks or (not columns and self._cursor.pending):
            spot = self._cursor.take(marks)
            what = spot.describe() if spot else "undecodable text"
            raise ReadError(f"{self.path.name}: the header is not readable: {what}")
        raw = self._raw_header()
        _, self.duplicates = unique_columns(raw if raw else [str(c) for c in columns])

    def _raw_header(self) -> list[str]:
        """Return the header's column names as written (pandas renames repeated ones to ``name.1``)."""
        sep = "\t" if _is_tsv(self.path) else ","
        stream = DecodedStream(self.path, self.encoding, block_size=1 << 16)
        try:
            with io.BufferedReader(stream) as fh:
                head = pd.read_csv(fh, encoding="utf-8", dtype=str, keep_default_na=False, header=None, nrows=1,
                                   sep=sep, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            return []
        return [str(v) for v in head.iloc[0].tolist()] if len(head) else []

    def damaged(self, chunk: pd.DataFrame) -> list[tuple[int, str, Spot]]:
        """Return (row, column, first spot) for each row of ``chunk`` holding NUL marks, in order."""
        if not self._cursor.pending:
            return []
        counts = pd.DataFrame({c: chunk[c].str.count("\x00") for c in chunk.columns}, index=chunk.index).fillna(0)
        rows = counts.index[counts.sum(axis=1) > 0]
        out = []
        for row in rows:
            per_column = counts.loc[row]
            column = str(per_column.index[per_column.to_numpy() > 0][0])
            spot = self._cursor.take(int(per_column.sum()))
            if spot is not None:
                out.append((int(row), column, spot))
                self.damaged_rows += not spot.nul
        return out


def unique_columns(names: list[str]) -> tuple[list[str], set[str]]:
    """Return the names stripped and made unique (``name.1``, ...), and the lower-cased repeated ones."""
    seen: dict[str, int] = {}
    out = []
    repeated: set[str] = set()
    taken = {str(n).strip() for n in names}
    for raw in names:
        name = str(raw).strip()
        low = name.lower()
        if low in seen and name:
            repeated.add(low)
        seen[low] = seen.get(low, 0) + 1
        candidate = name
        while candidate in out or (candidate != name and candidate in taken):
            candidate = f"{name}.{seen[low]}"
            seen[low] += 1
        out.append(candidate)
    return out, repeated


def count_lines(path: Path) -> int:
    """Return the number of data lines of a CSV (newlines minus the header; an estimate with quoted newlines)."""
    n = 0
    last = b"\n"
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    return max(n - (1 if last == b"\n" else 0), 0)


def find_coordinate_columns(
    columns: list[str], *, lon_col: str | None = None, lat_col: str | None = None, file_name: str = "file"
) -> tuple[str, str]:
    """Return the (longitude, latitude) column names: the given ones or auto-detected from common names."""
    lookup = {c.lower(): c for c in columns}

    def pick(given: str | None, names: tuple[str, ...], prefix: re.Pattern, what: str) -> str:
        if given is not None:
            if given.lower() not in lookup:
                raise ReadError(f"{file_name}: no column {given!r} (columns: {', '.join(columns)})")
            return lookup[given.lower()]
        exact = [lookup[n] for n in names if n in lookup]
        if exact:
            return exact[0]
        loose = [c for c in columns if prefix.match(c)]
        if len(loose) == 1:
            return loose[0]
        flag = "--lon-col" if what == "longitude" else "--lat-col"
        found = f"several candidates {loose}" if loose else "none found"
        raise ReadError(f"{file_name}: cannot tell the {what} column ({found}); name it with {flag} "
                        f"(columns: {', '.join(columns)})")

    lon = pick(lon_col, LON_NAMES, _LON_PREFIX, "longitude")
    lat = pick(lat_col, LAT_NAMES, _LAT_PREFIX, "latitude")
    if lon == lat:
        raise ReadError(f"{file_name}: longitude and latitude cannot both be column {lon!r}")
    return lon, lat


def column_mapping(
    spec: LayerSpec, columns: list[str], *, exclude: tuple[str, ...] = (), truncated_names: bool = False
) -> dict[str, list[str]]:
    """Map declared field names to source columns: exact name first, then aliases in order, case-insensitive.

    A field matched by several columns (e.g. ``complete_address`` and ``address``) lists them all, in
    preference order; :func:`coalesce_columns` takes the first non-empty value per row. With
    ``truncated_names`` (a .dbf), a column of :data:`DBF_NAME_LENGTH` characters matches the one field
    whose name or alias it begins (``address_co`` -> ``address_code``); one that begins several fields'
    names is refused, naming them.
    """
    lookup: dict[str, str] = {}
    for c in columns:
        if c not in exclude:
            lookup.setdefault(c.strip().lower(), c)
    mapping: dict[str, list[str]] = {}
    used: set[str] = set()
    for f in spec.fields:
        for name in [f.name, *f.aliases]:
            col = lookup.get(name.lower())
            if col is not None and col not in used:
                mapping.setdefault(f.name, []).append(col)
                used.add(col)
    if truncated_names:
        _map_truncated(spec, lookup, mapping, used)
    return mapping


def _map_truncated(spec: LayerSpec, lookup: dict[str, str], mapping: dict[str, list[str]], used: set[str]) -> None:
    """Map .dbf columns whose names were cut to 10 characters to the field they unambiguously begin."""
    for low, col in lookup.items():
        if col in used or len(low) != DBF_NAME_LENGTH:
            continue
        fields = [f.name for f in spec.fields
                  if any(len(n) > DBF_NAME_LENGTH and n.lower().startswith(low) for n in [f.name, *f.aliases])]
        if len(fields) > 1:
            raise ReadError(f"column {col!r} is a field name cut to {DBF_NAME_LENGTH} characters by the .dbf "
                            f"format and could be any of {', '.join(fields)} of layer {spec.id}; "
                            f"rename the column in the file")
        if fields and fields[0] not in mapping:
            mapping[fields[0]] = [col]
            used.add(col)


def coalesce_columns(raw: pd.DataFrame, mapping: dict[str, list[str]]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Return ``raw`` with one column per field (first non-empty of its candidates) and the flat mapping."""
    flat: dict[str, str] = {}
    out = raw
    for name, cols in mapping.items():
        if len(cols) == 1:
            flat[name] = cols[0]
            continue
        merged = raw[cols[0]].astype(object)
        for col in cols[1:]:
            empty = merged.isna() | (merged.astype(str).str.strip() == "")
            merged = merged.where(~empty, raw[col])
        if out is raw:
            out = raw.copy()
        out[f"__coalesced_{name}"] = merged
        flat[name] = f"__coalesced_{name}"
    return out, flat


# -- vector files -----------------------------------------------------------------------------------------


def read_vector(path: Path, kind: str, *, layer: str | None = None, encoding: str | None = None) -> VectorSource:
    """Read a GeoJSON, Shapefile or GeoPackage whole; refuse truncated or unreadable files.

    GeoJSON is parsed by :mod:`pipelines.geojson`, a shapefile's attributes by :mod:`pipelines.dbf`
    (``encoding`` overrides the .cpg and the guess), the rest by GDAL. Geometries come out 2D.
    """
    try:
        if kind == "geojson":
            return _read_geojson(path)
        if kind == "shapefile":
            return _read_shapefile(path, encoding)
        return _read_gpkg(path, _gpkg_layer(path, layer))
    except GeoJSONError as exc:
        raise ReadError(f"{path.name}: {exc}") from None
    except DbfError as exc:  # names the .dbf
        raise ReadError(str(exc)) from None


def _read_geojson(path: Path) -> VectorSource:
    doc = read_geojson(path)
    columns, duplicates = unique_columns(list(doc.properties.columns))
    frame = _geoframe(doc.properties.set_axis(columns, axis=1), doc.geometries, None)
    return VectorSource(frame=frame, declared_crs=doc.declared_crs, faults=doc.faults, duplicates=duplicates,
                        options=_dropped(doc.dropped_z))


def _geoframe(attrs: pd.DataFrame, geoms: list | np.ndarray, crs: object) -> geopandas.GeoDataFrame:
    """Return ``attrs`` (index: row numbers) with ``geoms`` as the :data:`GEOMETRY` column."""
    out = pd.DataFrame(attrs).copy()
    out[GEOMETRY] = geopandas.GeoSeries(list(geoms), index=out.index, crs=crs)
    return geopandas.GeoDataFrame(out, geometry=GEOMETRY, crs=crs)


def _dropped(count: int) -> dict:
    return {"z_dropped": count} if count else {}


def _read_gdal(path: Path, kind: str, layer: str | None = None, *, name: str | None = None) -> geopandas.GeoDataFrame:
    name = name or path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with _gdal_config({"SHAPE_RESTORE_SHX": "YES"}):
                frame = pyogrio.read_dataframe(path, layer=layer, on_invalid="ignore")
    except (DataSourceError, DataLayerError, RuntimeError, ValueError, OSError) as exc:
        raise ReadError(f"{name}: cannot read as {kind}: {_first_line(exc)}") from None
    if not isinstance(frame, geopandas.GeoDataFrame):
        raise ReadError(f"{name}: cannot read as {kind}: the layer has no geometry column")
    return frame


def _flatten(frame: geopandas.GeoDataFrame) -> tuple[geopandas.GeoDataFrame, int, set[str]]:
    """Return ``frame`` rows numbered from 1, with unique column names and 2D geometries under :data:`GEOMETRY`.

    Also return how many geometries had Z or M ordinates, and the lower-cased repeated column names.
    """
    geoms = np.asarray(frame.geometry.array, dtype=object)
    present = ~shapely.is_missing(geoms)
    flagged = np.zeros(len(geoms), dtype=bool)
    flagged[present] = shapely.has_z(geoms[present]) | shapely.has_m(geoms[present])
    if flagged.any():
        geoms = geoms.copy()
        geoms[flagged] = shapely.force_2d(geoms[flagged])
    attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    columns, duplicates = unique_columns(list(attrs.columns))
    attrs = attrs.set_axis(columns, axis=1).set_axis(pd.RangeIndex(1, len(attrs) + 1), axis=0)
    return _geoframe(attrs, geoms, frame.crs), int(flagged.sum()), duplicates


def _declared(frame: geopandas.GeoDataFrame) -> str | None:
    if frame.crs is None:
        return None
    epsg = frame.crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else frame.crs.to_string()


def _read_gpkg(path: Path, layer: str) -> VectorSource:
    frame = _read_gdal(path, "gpkg", layer)
    declared = _declared(frame)
    flat, dropped, duplicates = _flatten(frame)
    return VectorSource(frame=flat, declared_crs=declared, duplicates=duplicates, options=_dropped(dropped))


def _sidecar(path: Path, suffix: str) -> Path | None:
    for s in (suffix, suffix.upper()):
        candidate = path.with_suffix(s)
        if candidate.exists():
            return candidate
    return None


def _link(source: Path, target: Path) -> None:
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copyfile(source, target)


def _read_shapefile(path: Path, encoding: str | None) -> VectorSource:
    """Read the shapes with GDAL (without the .dbf) and the records with :func:`read_dbf`; pair them by number."""
    _check_shapefile(path)
    prj = _sidecar(path, ".prj")
    with tempfile.TemporaryDirectory(prefix="cim-shp-") as tmp:
        shapes = Path(tmp, "shapes.shp")  # the shapes alone: GDAL would stop at the last .dbf record
        _link(path, shapes)
        for suffix in (".shx", ".prj"):
            side = _sidecar(path, suffix)
            if side is not None:
                _link(side, shapes.with_suffix(suffix))
        frame = _read_gdal(shapes, "shapefile", name=path.name)
    declared = _declared(frame)
    frame, flat, _ = _flatten(frame)
    n_shapes = len(frame)
    dbf_path = _sidecar(path, ".dbf")
    source = VectorSource(frame=frame, declared_crs=declared, has_prj=prj is not None, truncated_names=True,
                          options=_dropped(flat))
    if dbf_path is None:
        return source
    table = read_dbf(dbf_path, encoding=encoding)
    n_records = len(table.frame)
    rows = pd.RangeIndex(1, max(n_shapes, n_records) + 1)
    geoms = pd.Series(list(frame.geometry.array), index=pd.RangeIndex(1, n_shapes + 1), dtype=object).reindex(rows)
    columns, source.duplicates = unique_columns(list(table.frame.columns))
    attrs = table.frame.set_axis(columns, axis=1).reindex(rows)
    source.frame = _geoframe(attrs.astype(object).where(attrs.notna(), None), geoms.to_numpy(), frame.crs)
    source.faults = dict(table.faults)
    for row in range(n_records + 1, n_shapes + 1):
        source.faults[row] = (None, f"shape {row} has no attribute record: {dbf_path.name} holds {n_records} "
                                    f"records for {n_shapes} shapes")
    for row in range(n_shapes + 1, n_records + 1):
        source.faults.setdefault(row, ("geometry", f"record {row} has no shape: {path.name} holds {n_shapes} "
                                                   f"shapes for {n_records} records"))
    if table.deleted:
        source.frame = source.frame.drop(index=table.deleted)
        source.options["deleted_records"] = len(table.deleted)
        source.notes.append(f"{dbf_path.name}: {len(table.deleted)} records are marked deleted and were not read")
    source.options["encoding"] = table.encoding
    source.notes += table.notes
    return source


@contextmanager
def _gdal_config(options: dict[str, str]) -> Iterator[None]:
    """Set GDAL configuration options for the duration of a read, then restore them."""
    previous = {key: pyogrio.get_gdal_config_option(key) for key in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(previous)


def _check_shapefile(path: Path) -> None:
    """Refuse a .shp whose header length disagrees with its size (a cut or padded file)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or int.from_bytes(header[0:4], "big") != 9994:
        raise ReadError(f"{path.name}: not a shapefile (bad header)")
    declared = int.from_bytes(header[24:28], "big") * 2
    if declared != size:
        state = "truncated" if size < declared else "longer than its header says"
        raise ReadError(f"{path.name}: the file is {state} ({size} bytes, header says {declared})")


def _gpkg_layer(path: Path, layer: str | None) -> str:
    """Return the GeoPackage layer to read: the one asked for, or the only spatial one."""
    try:
        listed = pyogrio.list_layers(path)
    except (DataSourceError, RuntimeError, ValueError, OSError) as exc:
        raise ReadError(f"{path.name}: cannot open as GeoPackage: {_first_line(exc)}") from None
    names = [str(row[0]) for row in listed]
    spatial = [str(row[0]) for row in listed if row[1] is not None]
    if layer is not None:
        if layer not in names:
            raise ReadError(f"{path.name}: no layer {layer!r} (layers: {', '.join(names) or 'none'})")
        if layer not in spatial:
            raise ReadError(f"{path.name}: layer {layer!r} has no registered geometry column "
                            f"(gpkg_contents / gpkg_geometry_columns do not list it as features)")
        return layer
    if not spatial:
        extra = f" (tables without a registered geometry: {', '.join(names)})" if names else ""
        raise ReadError(f"{path.name}: the GeoPackage has no feature layer: gpkg_contents lists none{extra}")
    if len(spatial) != 1:
        raise ReadError(f"{path.name}: has {len(spatial)} layers ({', '.join(spatial)}); choose one with --gpkg-layer")
    return spatial[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
