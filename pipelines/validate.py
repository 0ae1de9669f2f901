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
from decimal import Decimal, InvalidOperation
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
#: characters a text value may not hold: C0 controls but TAB/LF/CR, DEL, C1 controls, bidirectional
#: overrides and isolates (they reorder how text is shown), and lone surrogates (not Unicode text)
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROL_NAMES = {"\x00": "NUL", "\x07": "BEL", "\x08": "BS", "\x7f": "DEL",
                  "\x1b": "ESC, which starts ANSI terminal escape sequences",
                  "\x9b": "CSI, which starts ANSI terminal escape sequences"}
#: leading whitespace stripped from text values: all but TAB and CR, which may protect a spreadsheet cell
_LEADING_SPACE = re.compile(r"^[^\S\t\r]+")
#: the longest feature key (natural key fields joined with '|') in bytes: a btree index row holds ~2,700
MAX_KEY_BYTES = 2000
#: the value ranges of integer field types (PostgreSQL integer and bigint)
INTEGER_RANGES = {FieldType.integer: (-(2**31), 2**31 - 1), FieldType.bigint: (-(2**63), 2**63 - 1)}
#: a quoted value in a reject reason is cut to this many characters
QUOTE_CHARS = 80


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
        name = None if field_name is None else clean_text(field_name)
        for row, reason in zip(rows, reasons, strict=True):
            if row not in self.rejects:
                self.rejects[row] = Reject(row_number=_row_int(row), field=name, reason=clean_text(reason))

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
                rej.raw = {clean_text(str(k)): _jsonable(v) for k, v in raw.loc[row].items() if not _is_geometry(v)}
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
    """Return a raw cell as a value a ``jsonb`` document can hold (no NUL, no lone surrogate, no NaN)."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return clean_text(str(value))


def clean_text(text: str) -> str:
    """Return ``text`` with NUL characters and lone surrogates (which PostgreSQL cannot store) as U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def shown(value: Any) -> str:
    """Return ``repr(value)`` for a reject reason, cut to :data:`QUOTE_CHARS` characters."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 4] + "...'"


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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
    text = texts(values, keep_leading_tab=f.type is FieldType.text)
    if f.enum is not None and "unknown" in f.enum:
        text = text.where(text.notna(), "unknown")  # an enum with 'unknown' says so for absent values
    empty = text.isna()
    if f.required and empty.any():
        faults.add(values.index[empty], f.name, f"field {f.name!r} is required but empty")
    if f.type in (FieldType.text, FieldType.json):
        _check_characters(f, text, faults)
    converter = _CONVERTERS[f.type]
    typed, bad = converter(text, empty)
    if bad.any():
        faults.add(values.index[bad], f.name, [f"{shown(v)} is not {f.type.info.expected}" for v in text[bad]])
    ok = ~empty & ~bad
    if f.type in INTEGER_RANGES:
        typed, ok = _check_range(f, typed, text, ok, faults)
    _check_rules(f, typed, text, ok, faults)
    return typed


def _check_characters(f: FieldSpec, text: pd.Series, faults: Faults) -> None:
    """Reject values holding control characters, ANSI escapes, bidirectional overrides or lone surrogates."""
    present = text.dropna()
    if present.empty:
        return
    joined = " ".join(present.tolist())
    if joined.isprintable() or not _FORBIDDEN.search(joined):  # printable text holds none of them (fast)
        return
    found = present.map(lambda v: _FORBIDDEN.search(v))
    found = found[found.notna()]
    faults.add(found.index, f.name, [_forbidden_reason(m) for m in found])


def _forbidden_reason(match: re.Match) -> str:
    char = match.group()
    code = f"U+{ord(char):04X}"
    at = f"at character {match.start() + 1}"
    if "\ud800" <= char <= "\udfff":
        return f"holds a lone surrogate {code} {at} (not valid Unicode text)"
    if "\u202a" <= char <= "\u2069":
        return f"holds the bidirectional formatting character {code} {at} (it reorders how text is displayed)"
    name = _CONTROL_NAMES.get(char)
    return f"holds the control character {code}{f' ({name})' if name else ''} {at}"


def _check_range(
    f: FieldSpec, typed: pd.Series, text: pd.Series, ok: pd.Series, faults: Faults
) -> tuple[pd.Series, pd.Series]:
    """Reject integers beyond the column type's range; return the values as Int64 and the updated ``ok``."""
    low, high = INTEGER_RANGES[f.type]
    outside = ok & typed.map(lambda v: v is not None and not (low <= v <= high))
    if outside.any():
        kind = "an integer" if f.type is FieldType.integer else "a bigint"
        faults.add(typed.index[outside], f.name,
                   [f"{shown(v)} is out of range for {kind} field ({low} to {high})" for v in text[outside]])
    ok = ok & ~outside
    values = pd.array([v if good else None for v, good in zip(typed, ok, strict=True)], dtype="Int64")
    return pd.Series(values, index=typed.index), ok


def _text(value: Any, keep_leading_tab: bool = False) -> str | None:
    """Return a cell as stripped text; None for empty cells. Integral floats lose their '.0'."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = _strip(str(value), keep_leading_tab)
    return text or None


def _strip(text: str, keep_leading_tab: bool) -> str:
    """Strip whitespace; with ``keep_leading_tab`` a leading TAB or CR (and what follows it) stays."""
    if not keep_leading_tab:
        return text.strip()
    return _LEADING_SPACE.sub("", text).rstrip()


def texts(values: pd.Series, *, keep_leading_tab: bool = False) -> pd.Series:
    """Return cells as stripped text, None for empty ones (vectorised for all-string columns).

    With ``keep_leading_tab`` (text fields), a leading TAB or CR is kept: it is not stray whitespace but
    what keeps a spreadsheet from reading ``=...`` as a formula.
    """
    if pd.api.types.infer_dtype(values, skipna=True) == "string":
        present = values.notna()
        if present.all() and not _EDGE_SPACE.search("\x00".join(values.tolist())):
            stripped = values.astype(object)  # nothing to strip: skip the per-cell call (the common case)
        elif keep_leading_tab:
            stripped = values.str.replace(_LEADING_SPACE, "", regex=True).str.rstrip()
        else:
            stripped = values.str.strip()
        return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)
    return values.map(lambda v: _text(v, keep_leading_tab)).astype(object)


def _to_text(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    return text.astype(object).where(~empty, None), pd.Series(False, index=text.index)


def _to_number(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    num = pd.to_numeric(text, errors="coerce")
    bad = ~empty & (num.isna() | ~np.isfinite(num.fillna(0.0)))
    return num.astype(float), bad


def _to_integer(text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return exact Python integers (object dtype; range checks follow) and the mask of non-integers.

    Integer text is parsed exactly (a float would round beyond 2**53); other numerals ('4.0', '1e3')
    must be integral.
    """
    out = pd.Series([None] * len(text), index=text.index, dtype=object)
    present = text[~empty]
    plain = present.str.fullmatch(r"[+-]?\d+").astype(bool)
    if plain.any():
        out[plain[plain].index] = [_exact_int(v) for v in present[plain]]
    others = present[~plain]
    if len(others):
        out[others.index] = [_integral(v) for v in others]
    bad = ~empty & out.isna()
    return out, bad


def _exact_int(text: str) -> int | None:
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > 40:  # far beyond any column type: keep the sign and magnitude for the range check
        return -(10**40) if text.startswith("-") else 10**40
    return int(text)


def _integral(text: str) -> int | None:
    """Return the integer a decimal numeral ('4.0', '1e3') denotes exactly, None when it is not one."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number.adjusted() > 40:
        return -(10**40) if number < 0 else 10**40
    if number != number.to_integral_value():
        return None
    return int(number)


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
            value = json.loads(v, parse_constant=_no_constant)
        except (ValueError, RecursionError):  # JSONDecodeError, NaN/Infinity, too many digits, too deep
            return _BAD
        return value if _storable_json(value) else _BAD

    value = text.map(load)
    bad = value.map(lambda v: v is _BAD)
    return value.where(~bad, None), bad


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _storable_json(value: Any) -> bool:
    """Tell whether a parsed JSON value fits ``jsonb``: no NUL and no lone surrogate in any string."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


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
                   [f"{shown(v)} is not one of {', '.join(map(str, f.enum))}" for v in text[ok][bad]])
        typed.loc[mapped.index[~bad]] = mapped[~bad]
    if f.pattern is not None and ok.any():
        bad = ~text[ok].str.fullmatch(f.pattern)
        faults.add(bad.index[bad], f.name,
                   [f"{shown(v)} does not match the pattern {f.pattern}" for v in text[ok][bad]])
    if f.type.info.numeric:
        num = typed.astype(float)
        for bound, cmp, word in ((f.minimum, num < (f.minimum or 0), "below"),
                                 (f.maximum, num > (f.maximum or 0), "above")):
            if bound is not None:
                bad = ok & cmp.fillna(False)
                faults.add(num.index[bad], f.name, [f"{shown(v)} is {word} the {bound:g} allowed" for v in text[bad]])


def check_keys(spec: LayerSpec, attrs: pd.DataFrame, faults: Faults) -> None:
    """Reject rows whose natural key is longer than :data:`MAX_KEY_BYTES` (it would not fit the unique index)."""
    if not spec.key or not len(attrs):
        return
    parts = [attrs[k] for k in spec.key]
    present = np.logical_and.reduce([p.notna().to_numpy() for p in parts])
    if not present.any():
        return
    key = parts[0][present] if len(parts) == 1 and spec.field(spec.key[0]).type is FieldType.text \
        else parts[0][present].astype(str)
    for p in parts[1:]:
        key = key + "|" + p[present].astype(str)
    long = key[key.str.len() * 4 > MAX_KEY_BYTES]  # cheap bound first: a character is at most 4 bytes
    sizes = long.map(lambda k: len(k.encode("utf-8", errors="surrogatepass")))
    too_long = sizes[sizes > MAX_KEY_BYTES]
    if len(too_long):
        what = f"the key field {spec.key[0]!r}" if len(spec.key) == 1 else f"the key ({', '.join(spec.key)})"
        faults.add(too_long.index, spec.key[0], [
            f"{what} is {n} bytes long; at most {MAX_KEY_BYTES} fit the layer's unique index" for n in too_long
        ])


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
        faults.add(values.index[bad], column, [f"{shown(v)} is not a number" for v in text[bad]])
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
