"""Read source files: CSV with coordinate columns (chunked), GeoJSON, Shapefile and GeoPackage.

Readers only read: they detect the format and the text encoding, find the coordinate columns and the
file's declared CRS, and refuse files that cannot be read with a :class:`ReadError` naming the file.
Values stay as found (CSV cells as strings); checking them is :mod:`pipelines.validate`'s job.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas
import pandas as pd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from cim_service.core.catalog import LayerSpec

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
VECTOR_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".shp": "shapefile", ".gpkg": "gpkg"}
#: column names recognised as longitude / latitude (compared case-insensitively)
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "lon_wgs84", "lng_wgs84")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "lat_wgs84")
_LON_PREFIX = re.compile(r"^(lon|lng|longitude)[_\- ]", re.IGNORECASE)
_LAT_PREFIX = re.compile(r"^(lat|latitude)[_\- ]", re.IGNORECASE)
_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"%PDF": "a PDF document",
          b"PK\x03\x04": "a ZIP archive", b"GIF8": "a GIF image", b"\x1f\x8b": "a gzip archive"}
SAMPLE_BYTES = 1 << 20
GEOJSON_TYPES = ("FeatureCollection", "Feature", "Point", "MultiPoint", "LineString", "MultiLineString",
                 "Polygon", "MultiPolygon", "GeometryCollection")


class ReadError(ValueError):
    """A file that cannot be read as the layer's source (the message names the file and the problem)."""


@dataclass
class VectorSource:
    """A vector file read whole: its features and the CRS the file itself declares (if any)."""

    frame: geopandas.GeoDataFrame
    declared_crs: str | None
    has_prj: bool = True


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
    """Return the text encoding of a CSV: the given one (validated) or UTF-8(-BOM), GB18030 or a guess."""
    with open(path, "rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if b"\x00" in sample:
        raise ReadError(f"{path.name}: contains binary data (NUL bytes), not a text CSV")
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ReadError(f"{path.name}: unknown encoding {encoding!r}") from None
        if not _decodes(sample, encoding):
            raise ReadError(f"{path.name}: the file is not valid {encoding} text")
        return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    for candidate in ("utf-8-sig", "gb18030"):
        if _decodes(sample, candidate):
            return candidate
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise ReadError(f"{path.name}: cannot determine the text encoding; pass --encoding")
    return best.encoding


def _decodes(sample: bytes, encoding: str) -> bool:
    """Tell whether ``sample`` (possibly cut mid-character at its end) decodes as ``encoding``."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _is_tsv(path: Path) -> bool:
    return path.suffix.lower() == ".tsv"


def read_csv_chunks(path: Path, encoding: str, *, chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """Yield the rows of a CSV as string DataFrames of at most ``chunk_rows`` rows (cells stripped, '' = empty).

    Each chunk's index is the 1-based record number (the header is not counted).
    """
    sep = "\t" if _is_tsv(path) else ","
    try:
        reader = pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False, chunksize=chunk_rows,
                             sep=sep, skipinitialspace=True)
        start = 1
        for chunk in reader:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk
    except pd.errors.EmptyDataError:
        raise ReadError(f"{path.name}: the file has no header and no rows") from None
    except pd.errors.ParserError as exc:
        raise ReadError(f"{path.name}: malformed CSV: {_first_line(exc)}") from None
    except UnicodeDecodeError as exc:
        raise ReadError(f"{path.name}: not valid {encoding} text at byte {exc.start}; pass --encoding") from None


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


def column_mapping(spec: LayerSpec, columns: list[str], *, exclude: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Map declared field names to source columns: exact name first, then aliases in order, case-insensitive.

    A field matched by several columns (e.g. ``complete_address`` and ``address``) lists them all, in
    preference order; :func:`coalesce_columns` takes the first non-empty value per row.
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
    return mapping


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


def read_vector(path: Path, kind: str, *, layer: str | None = None) -> VectorSource:
    """Read a GeoJSON, Shapefile or GeoPackage whole with pyogrio; refuse truncated or unreadable files."""
    has_prj = True
    declared: str | None = None
    if kind == "geojson":
        declared = _geojson_declared_crs(path)
    if kind == "shapefile":
        has_prj = path.with_suffix(".prj").exists() or path.with_suffix(".PRJ").exists()
        _check_shapefile(path)
    if kind == "gpkg":
        layer = _gpkg_layer(path, layer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with _gdal_config({"SHAPE_RESTORE_SHX": "YES", "OGR_GEOJSON_MAX_OBJ_SIZE": "0"}):
                frame = pyogrio.read_dataframe(path, layer=layer, on_invalid="ignore")
    except (DataSourceError, DataLayerError, RuntimeError, ValueError, OSError) as exc:
        raise ReadError(f"{path.name}: cannot read as {kind}: {_first_line(exc)}") from None
    if kind != "geojson" and frame.crs is not None:
        epsg = frame.crs.to_epsg(min_confidence=70)
        declared = f"EPSG:{epsg}" if epsg else frame.crs.to_string()
    frame.columns = [str(c).strip() if c != frame.geometry.name else c for c in frame.columns]
    return VectorSource(frame=frame, declared_crs=declared, has_prj=has_prj)


@contextmanager
def _gdal_config(options: dict[str, str]) -> Iterator[None]:
    """Set GDAL configuration options for the duration of a read, then restore them."""
    previous = {key: pyogrio.get_gdal_config_option(key) for key in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(previous)


def _geojson_declared_crs(path: Path) -> str | None:
    """Return the GeoJSON ``crs`` member's name (if any); refuse files that are not (complete) JSON."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadError(f"{path.name}: not UTF-8 text at byte {exc.start}; GeoJSON must be UTF-8") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        where = "the file is truncated" if exc.pos >= len(text.rstrip()) else "invalid JSON"
        raise ReadError(f"{path.name}: {where} (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("type") not in GEOJSON_TYPES:
        raise ReadError(f"{path.name}: not GeoJSON (no FeatureCollection, Feature or geometry object)")
    crs = doc.get("crs")
    if isinstance(crs, dict):
        name = (crs.get("properties") or {}).get("name")
        return str(name) if name else None
    return None


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
    try:
        names = [str(row[0]) for row in pyogrio.list_layers(path)]
    except (DataSourceError, RuntimeError) as exc:
        raise ReadError(f"{path.name}: cannot open as GeoPackage: {_first_line(exc)}") from None
    if layer is not None:
        if layer not in names:
            raise ReadError(f"{path.name}: no layer {layer!r} (layers: {', '.join(names)})")
        return layer
    if len(names) != 1:
        raise ReadError(f"{path.name}: has {len(names)} layers ({', '.join(names)}); choose one with --gpkg-layer")
    return names[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
