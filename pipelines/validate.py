"""Validate source rows against the catalog: attribute types and rules, coordinates, geometries, CRS.

Row faults become :class:`~pipelines.load.Reject` records (one per row: the first fault found, geometry
before attributes); faults of the whole file (e.g. swapped longitude/latitude columns) raise
:class:`ValidationError`. Valid rows come out typed, in EPSG:4326, ready for :mod:`pipelines.load`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import geopandas
import numpy as np
import pandas as pd
import shapely

from cim_service.core.catalog import FieldSpec, FieldType, LayerSpec
from cim_service.core.crs import parse_crs, to_wgs84, transform_geometry
from cim_service.core.region import SURROUNDING_BBOX
from pipelines.load import Reject

#: Shanghai's bounding box (lon_min, lat_min, lon_max, lat_max) and the margin beyond which rows are refused
SHANGHAI_BBOX = SURROUNDING_BBOX
FAR_MARGIN_DEG = 1.0
_TRUE = {"true", "t", "yes", "y", "1", "是", "有", "√"}
_FALSE = {"false", "f", "no", "n", "0", "否", "无", "×"}
SHANGHAI_TZ = "Asia/Shanghai"
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})$"
_EDGE_SPACE = re.compile(r"(?:^|\x00)\s|\s(?:\x00|$)")
_GEOGRAPHIC = {"EPSG:4326", "EPSG:4490", "GCJ02", "BD09"}


class ValidationError(ValueError):
    """A fault of the whole file (not of single rows)."""


@dataclass
class Faults:
    """Row faults of one frame, first fault per row wins."""

    rejects: dict[Any, Reject] = field(default_factory=dict)

    def add(self, rows: pd.Index | list, field_name: str | None, reasons: list[str] | str) -> None:
        """Record a fault for each of ``rows`` not already faulty."""
        if isinstance(reasons, str):
            reasons = [reasons] * len(rows)
        for row, reason in zip(rows, reasons, strict=True):
            if row not in self.rejects:
                self.rejects[row] = Reject(row_number=_row_int(row), field=field_name, reason=reason)

    @property
    def rows(self) -> pd.Index:
        """Row labels with a fault."""
        return pd.Index(list(self.rejects))

    def finish(self, raw: pd.DataFrame) -> list[Reject]:
        """Return the rejects in row order, each with its raw row (geometry left out)."""
        out = []
        for row in sorted(self.rejects, key=lambda r: (_row_int(r) is None, _row_int(r) or 0)):
            rej = self.rejects[row]
            if row in raw.index:
                rej.raw = {str(k): _jsonable(v) for k, v in raw.loc[row].items() if not _is_geometry(v)}
            out.append(rej)
        return out


def _row_int(row: Any) -> int | None:
    try:
        return int(row)
    except (TypeError, ValueError):
        return None


def _is_geometry(value: Any) -> bool:
    return isinstance(value, shapely.Geometry)


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# -- attributes -------------------------------------------------------------------------------------------


def coerce_fields(spec: LayerSpec, raw: pd.DataFrame, mapping: dict[str, str], faults: Faults) -> pd.DataFrame:
    """Return the declared fields of ``raw`` typed and checked; faulty rows are recorded in ``faults``.

    ``mapping`` maps field names to source columns; unmapped fields are NULL (a fault when required).
    """
    out = pd.DataFrame(index=raw.index)
    for f in spec.fields:
        if f.name in mapping:
            values = raw[mapping[f.name]]
        else:
            values = pd.Series([None] * len(raw), index=raw.index, dtype=object)
        out[f.name] = coerce_field(f, values, faults)
    return out


def coerce_field(f: FieldSpec, values: pd.Series, faults: Faults) -> pd.Series:
    """Return one column converted to its declared type, recording faulty values."""
    text = texts(values)
    if f.enum is not None and "unknown" in f.enum:
        text = text.where(text.notna(), "unknown")  # an enum with 'unknown' says so for absent values
    empty = text.isna()
    if f.required and empty.any():
        faults.add(values.index[empty], f.name, f"field {f.name!r} is required but empty")
    converter = _CONVERTERS[f.type]
    typed, bad = converter(text, empty)
    if bad.any():
        faults.add(values.index[bad], f.name, [f"{v!r} is not {f.type.info.expected}" for v in text[bad]])
    ok = ~empty & ~bad
    _check_rules(f, typed, text, ok, faults)
    return typed


def _text(value: Any) -> str | None:
    """Return a cell as stripped text; None for empty cells. Integral floats lose their '.0'."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text or None


def texts(values: pd.Series) -> pd.Series:
    """Return cells as stripped text, None for empty ones (vectorised for all-string columns)."""
    if pd.api.types.infer_dtype(values, skipna=True) == "string":
        present = values.notna()
        if present.all() and not _EDGE_SPACE.search("\x00".join(values.tolist())):
            stripped = values.astype(object)  # nothing to strip: skip the per-cell call (the common case)
        else:
            stripped = values.str.strip()
        return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)
    return values.map(_text).astype(object)


def _to_text(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    return text.astype(object).where(~empty, None), pd.Series(False, index=text.index)


def _to_number(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    num = pd.to_numeric(text, errors="coerce")
    bad = ~empty & (num.isna() | ~np.isfinite(num.fillna(0.0)))
    return num.astype(float), bad


def _to_integer(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    num, bad = _to_number(text, empty)
    bad = bad | (~empty & ~bad & (num % 1 != 0))
    return num.where(~bad).round().astype("Int64"), bad


def _to_boolean(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    low = text.str.lower()
    value = pd.Series(pd.NA, index=text.index, dtype="boolean")
    value[low.isin(_TRUE)] = True
    value[low.isin(_FALSE)] = False
    return value, ~empty & value.isna()


def _to_date(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    parsed = _parse_datetime(text).dt.tz_convert(SHANGHAI_TZ)
    return parsed.dt.date.astype(object).where(parsed.notna(), None), ~empty & parsed.isna()


def _to_timestamp(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    parsed = _parse_datetime(text)
    return parsed, ~empty & parsed.isna()


def _parse_datetime(text: pd.Series) -> pd.Series:
    """Parse to UTC: plain ISO values at once, the rest one by one; naive times are Shanghai time."""
    try:
        fast = pd.to_datetime(text, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # e.g. offsets mixed with naive values
        return _parse_datetime_slow(text)
    if fast.dt.tz is not None:
        return _parse_datetime_slow(text)
    out = fast.dt.tz_localize(SHANGHAI_TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    retry = out.isna() & text.notna()
    if retry.any():
        out[retry] = _parse_datetime_slow(text[retry])
    return out


def _parse_datetime_slow(text: pd.Series) -> pd.Series:
    """Parse 2021/3/5, 2021年3月5日, values with offsets and other forms to UTC."""
    cleaned = text.str.replace("年", "-", regex=False).str.replace("月", "-", regex=False)
    cleaned = cleaned.str.replace("日", "", regex=False).str.replace("/", "-", regex=False)
    aware = cleaned.str.contains(_TZ_SUFFIX, regex=True, na=False)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        out[aware] = _to_datetime(cleaned[aware], utc=True)
    naive = ~aware & cleaned.notna()
    if naive.any():
        local = _to_datetime(cleaned[naive], utc=False)
        out[naive] = local.dt.tz_localize(SHANGHAI_TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return out


def _to_datetime(values: pd.Series, *, utc: bool) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=utc)
    retry = parsed.isna()
    if retry.any():
        parsed[retry] = pd.to_datetime(values[retry], errors="coerce", format="mixed", utc=utc)
    return parsed


def _to_json(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    def load(v: str | None) -> Any:
        if v is None:
            return None
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return _BAD

    value = text.map(load)
    bad = value.map(lambda v: v is _BAD)
    return value.where(~bad, None), bad


_BAD = object()
_CONVERTERS = {
    FieldType.text: _to_text, FieldType.integer: _to_integer, FieldType.bigint: _to_integer,
    FieldType.float: _to_number, FieldType.boolean: _to_boolean, FieldType.date: _to_date,
    FieldType.timestamp: _to_timestamp, FieldType.json: _to_json,
}


def _check_rules(f: FieldSpec, typed: pd.Series, text: pd.Series, ok: pd.Series, faults: Faults) -> None:
    """Check enum, pattern and min/max on the converted values (in place for enum canonicalisation)."""
    if f.enum is not None and ok.any():
        canon = {str(v).lower(): v for v in f.enum}
        mapped = text[ok].str.lower().map(canon)
        bad = mapped.isna()
        faults.add(mapped.index[bad], f.name,
                   [f"{v!r} is not one of {', '.join(map(str, f.enum))}" for v in text[ok][bad]])
        typed.loc[mapped.index[~bad]] = mapped[~bad]
    if f.pattern is not None and ok.any():
        bad = ~text[ok].str.fullmatch(f.pattern)
        faults.add(bad.index[bad], f.name, [f"{v!r} does not match the pattern {f.pattern}" for v in text[ok][bad]])
    if f.type.info.numeric:
        num = typed.astype(float)
        for bound, cmp, word in ((f.minimum, num < (f.minimum or 0), "below"),
                                 (f.maximum, num > (f.maximum or 0), "above")):
            if bound is not None:
                bad = ok & cmp.fillna(False)
                faults.add(num.index[bad], f.name, [f"{v!r} is {word} the {bound:g} allowed" for v in text[bad]])


# -- coordinates ------------------------------------------------------------------------------------------


def is_geographic(crs: str) -> bool:
    """Tell whether a canonical CRS has longitude/latitude coordinates in degrees."""
    canonical = parse_crs(crs)
    if canonical in _GEOGRAPHIC:
        return True
    from pyproj import CRS

    return bool(CRS.from_user_input(canonical).is_geographic)


def looks_swapped(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return a mask of pairs that look like (lat, lon) near Shanghai: the lon value is a latitude and vice versa."""
    x0, y0, x1, y1 = _far_box()
    with np.errstate(invalid="ignore"):
        return (lon >= y0) & (lon <= y1) & (lat >= x0) & (lat <= x1)


def far_outside(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return a mask of WGS84 points more than :data:`FAR_MARGIN_DEG` outside Shanghai's bounding box."""
    x0, y0, x1, y1 = _far_box()
    with np.errstate(invalid="ignore"):
        return ~((lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1))


def _far_box() -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = SHANGHAI_BBOX
    m = FAR_MARGIN_DEG
    return x0 - m, y0 - m, x1 + m, y1 + m


@dataclass
class PointColumns:
    """Turns a CSV's longitude/latitude columns into WGS84 points, chunk after chunk.

    The axis order is decided on the first chunk: when most pairs look like (lat, lon) the file is
    refused (naming the columns) unless ``swap_axes``; isolated swapped rows are rejected (or swapped
    with ``swap_axes``).
    """

    lon_col: str
    lat_col: str
    crs: str
    swap_axes: bool = False
    file_name: str = "file"
    swapped_rows: int = 0
    _geographic: bool | None = None

    def points(self, raw: pd.DataFrame, faults: Faults) -> np.ndarray:
        """Return a shapely point per row of ``raw`` (None where the row is faulty)."""
        lon = self._numbers(raw[self.lon_col], self.lon_col, faults)
        lat = self._numbers(raw[self.lat_col], self.lat_col, faults)
        if self._geographic is None:
            self._geographic = is_geographic(self.crs)
        if self._geographic:
            lon, lat = self._fix_axes(raw.index, lon, lat, faults)
        with np.errstate(invalid="ignore"):
            x, y = to_wgs84(lon, lat, self.crs)
        far = far_outside(x, y) & np.isfinite(x) & np.isfinite(y)
        faults.add(raw.index[far], self.lon_col,
                   [f"({a:g}, {b:g}) is far outside Shanghai" for a, b in zip(lon[far], lat[far], strict=True)])
        good = np.isfinite(x) & np.isfinite(y) & ~far
        out = np.full(len(raw), None, dtype=object)
        out[good] = shapely.points(x[good], y[good])
        return out

    def _numbers(self, values: pd.Series, column: str, faults: Faults) -> np.ndarray:
        text = texts(values)
        empty = text.isna()
        num = pd.to_numeric(text, errors="coerce").astype(float)
        bad = ~empty & ~np.isfinite(num.fillna(np.nan))
        faults.add(values.index[empty], column, f"empty coordinate in column {column!r}")
        faults.add(values.index[bad], column, [f"{v!r} is not a number" for v in text[bad]])
        return num.to_numpy(dtype=float, na_value=np.nan)

    def _fix_axes(
        self, index: pd.Index, lon: np.ndarray, lat: np.ndarray, faults: Faults
    ) -> tuple[np.ndarray, np.ndarray]:
        swapped = looks_swapped(lon, lat)
        finite = np.isfinite(lon) & np.isfinite(lat)
        if not swapped.any():
            return lon, lat
        if not self.swap_axes:
            if swapped.sum() * 2 > finite.sum():
                raise ValidationError(
                    f"{self.file_name}: columns {self.lon_col!r} (longitude) and {self.lat_col!r} (latitude) look "
                    f"swapped: {int(swapped.sum())} of {int(finite.sum())} rows hold (latitude, longitude) near "
                    f"Shanghai; fix the file, exchange --lon-col/--lat-col, or pass --swap-axes"
                )
            faults.add(index[swapped], self.lon_col, "longitude and latitude look swapped in this row")
            return lon, lat
        self.swapped_rows += int(swapped.sum())
        lon, lat = lon.copy(), lat.copy()
        lon[swapped], lat[swapped] = lat[swapped], lon[swapped].copy()
        return lon, lat


# -- geometries -------------------------------------------------------------------------------------------

_PARTS = {"MultiPolygon": ("Polygon", "MultiPolygon"), "MultiLineString": ("LineString", "MultiLineString"),
          "MultiPoint": ("Point", "MultiPoint"), "Polygon": ("Polygon",), "LineString": ("LineString",),
          "Point": ("Point",)}


@dataclass
class GeometryReport:
    """What geometry validation changed."""

    repaired: int = 0
    swapped: int = 0


def check_geometries(
    spec: LayerSpec, geoms: pd.Series, crs: str, faults: Faults, *, swap_axes: bool = False, file_name: str = "file"
) -> tuple[pd.Series, GeometryReport]:
    """Return geometries in WGS84, repaired and of the layer's type; faulty rows are recorded in ``faults``."""
    report = GeometryReport()
    arr = np.asarray(geoms.array if hasattr(geoms, "array") else geoms, dtype=object)
    missing = shapely.is_missing(arr) | shapely.is_empty(arr)
    faults.add(geoms.index[missing], "geometry", "missing or empty geometry")
    coords, idx = shapely.get_coordinates(arr, return_index=True)
    nan_rows = np.unique(idx[~np.isfinite(coords).all(axis=1)])
    faults.add(geoms.index[nan_rows], "geometry", "geometry has NaN or infinite coordinates")
    usable = ~missing
    usable[nan_rows] = False
    if is_geographic(crs):
        arr, report.swapped = _fix_geometry_axes(geoms.index, arr, usable, faults, swap_axes, file_name)
    out = np.full(len(arr), None, dtype=object)
    out[usable] = transform_geometry(arr[usable], crs)
    out, report.repaired = _repair(spec, geoms.index, out, usable, faults)
    bounds = shapely.bounds(out[usable].astype(object)) if usable.any() else np.empty((0, 4))
    x0, y0, x1, y1 = _far_box()
    far = np.zeros(len(out), dtype=bool)
    far[usable] = (bounds[:, 2] < x0) | (bounds[:, 0] > x1) | (bounds[:, 3] < y0) | (bounds[:, 1] > y1)
    faults.add(geoms.index[far], "geometry", "geometry is far outside Shanghai")
    return pd.Series(out, index=geoms.index), report


def _fix_geometry_axes(
    index: pd.Index, arr: np.ndarray, usable: np.ndarray, faults: Faults, swap_axes: bool, file_name: str
) -> tuple[np.ndarray, int]:
    """Refuse, reject or swap features whose coordinates look like (lat, lon); ``usable`` is updated in place."""
    centres = np.full((len(arr), 2), np.nan)
    if usable.any():
        b = shapely.bounds(arr[usable].astype(object))
        centres[usable] = np.column_stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2])
    swapped = looks_swapped(centres[:, 0], centres[:, 1])
    if not swapped.any():
        return arr, 0
    if not swap_axes:
        if swapped.sum() * 2 > usable.sum():
            raise ValidationError(f"{file_name}: coordinates look like (latitude, longitude) near Shanghai "
                                  f"in {int(swapped.sum())} of {int(usable.sum())} features; pass --swap-axes")
        faults.add(index[swapped], "geometry", "longitude and latitude look swapped in this feature")
        usable &= ~swapped
        return arr, 0
    arr = arr.copy()
    arr[swapped] = shapely.transform(arr[swapped], lambda c: c[:, ::-1])
    return arr, int(swapped.sum())


def _repair(
    spec: LayerSpec, index: pd.Index, out: np.ndarray, usable: np.ndarray, faults: Faults
) -> tuple[np.ndarray, int]:
    """Make invalid geometries valid and keep the parts of the layer's dimension; return (geoms, repaired)."""
    want = _PARTS[spec.geometry.value]
    repaired = 0
    for i in np.flatnonzero(usable):
        g = out[i]
        if not g.is_valid:
            g = shapely.make_valid(g)
            repaired += 1
        if g.geom_type not in want:
            g = _keep_parts(g, want, spec.geometry.value)
        if g is None or g.is_empty:
            faults.add(index[[i]], "geometry",
                       f"geometry is {out[i].geom_type}, layer {spec.id} needs {spec.geometry.value}")
            usable[i] = False
            continue
        out[i] = g
    return out, repaired


def _keep_parts(g: shapely.Geometry, want: tuple[str, ...], target: str) -> shapely.Geometry | None:
    """Keep the parts of ``g`` of the wanted type (e.g. polygons out of a GeometryCollection)."""
    parts = [p for p in shapely.get_parts(g) if p.geom_type in want]
    flat = [q for p in parts for q in shapely.get_parts(p)]
    if not flat:
        return None
    if target.startswith("Multi"):
        return {"MultiPolygon": shapely.MultiPolygon, "MultiLineString": shapely.MultiLineString,
                "MultiPoint": shapely.MultiPoint}[target](flat)
    return flat[0] if len(flat) == 1 else None


def to_frame(attrs: pd.DataFrame, geoms: pd.Series | np.ndarray, bad: pd.Index) -> geopandas.GeoDataFrame:
    """Return the valid rows as a GeoDataFrame in EPSG:4326."""
    keep = ~attrs.index.isin(bad)
    geom = np.asarray(geoms, dtype=object)[keep]
    return geopandas.GeoDataFrame(attrs.loc[keep], geometry=list(geom), crs="EPSG:4326")
