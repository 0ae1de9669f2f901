"""Read GeoJSON (RFC 7946) with the standard library, so that nothing in the file is lost or altered unseen.

GDAL's reader drops what it cannot read and truncates what it can: a NUL character cuts a string, a feature
that is not an object vanishes, an integer beyond 64 bits becomes a float. Here the file is parsed whole
with :mod:`json`, every element of ``features`` is one row (1-based), and a feature that cannot be read is a
row fault with its reason (``geometry``: "a LineString needs at least 2 positions", ...), never a silent
drop. Values stay as the JSON has them (Python ``int`` keeps all its digits); checking them is
:mod:`pipelines.validate`'s job. Z (and M) ordinates are dropped: geometries load as 2D, and the number of
features that had them is reported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import shapely
from shapely.errors import GEOSException

GEOJSON_TYPES = ("FeatureCollection", "Feature", "Point", "MultiPoint", "LineString", "MultiLineString",
                 "Polygon", "MultiPolygon", "GeometryCollection")
#: GeometryCollections nested deeper than this are refused (RFC 7946 advises against nesting at all)
MAX_NESTING = 8
#: the column a feature's top-level ``id`` member becomes, unless a property has that name
ID_COLUMN = "id"


class GeoJSONError(ValueError):
    """A file that is not (complete, valid) GeoJSON; the message says where."""


class GeometryError(ValueError):
    """One feature's geometry cannot be read (the message is the reject reason)."""


@dataclass
class GeoJSONFile:
    """The features of a GeoJSON file: properties, geometries and the faults of the rows that cannot be read."""

    properties: pd.DataFrame
    geometries: list[shapely.Geometry | None]
    faults: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    declared_crs: str | None = None
    dropped_z: int = 0


def read_geojson(path: Path) -> GeoJSONFile:
    """Parse a GeoJSON file whole; raise :class:`GeoJSONError` when it is not GeoJSON."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GeoJSONError(f"not UTF-8 text at byte offset {exc.start} (line {line}); GeoJSON must be UTF-8") from None
    doc = _parse(text)
    if not isinstance(doc, dict) or doc.get("type") not in GEOJSON_TYPES:
        raise GeoJSONError("not GeoJSON (no FeatureCollection, Feature or geometry object)")
    if doc["type"] == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise GeoJSONError("the FeatureCollection has no 'features' array")
    elif doc["type"] == "Feature":
        features = [doc]
    else:
        features = [{"type": "Feature", "geometry": doc, "properties": {}}]
    out = GeoJSONFile(properties=pd.DataFrame(), geometries=[], declared_crs=_declared_crs(doc))
    records: list[dict[str, Any]] = []
    for row, feature in enumerate(features, start=1):
        records.append(_read_feature(row, feature, out))
    out.properties = pd.DataFrame.from_records(records, index=pd.RangeIndex(1, len(records) + 1)) \
        if records else pd.DataFrame(index=pd.RangeIndex(1, 1))
    out.properties = out.properties.astype(object).where(out.properties.notna(), None)
    return out


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = "the file is truncated" if exc.pos >= len(text.rstrip()) else "invalid JSON"
        raise GeoJSONError(f"{where} (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise GeoJSONError("invalid JSON: arrays or objects are nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise GeoJSONError(f"invalid JSON: {str(exc).splitlines()[0]}") from None


def _declared_crs(doc: dict) -> str | None:
    crs = doc.get("crs")
    if isinstance(crs, dict) and isinstance(crs.get("properties"), dict):
        name = crs["properties"].get("name")
        return str(name) if name else None
    return None


def _read_feature(row: int, feature: Any, out: GeoJSONFile) -> dict[str, Any]:
    """Return the properties of one feature and append its geometry; record why it cannot be read."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        out.geometries.append(None)
        out.faults[row] = (None, "not a GeoJSON Feature object")
        return {}
    props = feature.get("properties")
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        out.geometries.append(None)
        out.faults[row] = (None, "the feature's 'properties' is not an object")
        return {}
    record = dict(props)
    if "id" in feature and ID_COLUMN not in record and feature["id"] is not None:
        record[ID_COLUMN] = feature["id"]
    for key, value in record.items():
        if isinstance(value, float) and not math.isfinite(value):
            out.geometries.append(None)
            out.faults[row] = (key, f"{value!r} is not a JSON value (NaN and Infinity are not allowed)")
            return record
    geometry = feature.get("geometry")
    if geometry is None:
        out.geometries.append(None)
        return record
    reader = _GeometryReader()
    try:
        out.geometries.append(reader.geometry(geometry, 0))
    except GeometryError as exc:
        out.geometries.append(None)
        out.faults[row] = ("geometry", str(exc))
        return record
    out.dropped_z += reader.had_z
    return record


@dataclass
class _GeometryReader:
    """Turns one GeoJSON geometry object into a 2D shapely geometry, or says why it cannot."""

    had_z: bool = False

    def geometry(self, obj: Any, depth: int) -> shapely.Geometry:
        """Return the geometry of a GeoJSON geometry object."""
        if not isinstance(obj, dict):
            raise GeometryError("the feature's 'geometry' is not an object")
        kind = obj.get("type")
        if kind == "GeometryCollection":
            members = obj.get("geometries")
            if not isinstance(members, list):
                raise GeometryError("the GeometryCollection has no 'geometries' array")
            if depth >= MAX_NESTING:
                raise GeometryError(f"GeometryCollections are nested more than {MAX_NESTING} deep")
            return shapely.GeometryCollection([self.geometry(m, depth + 1) for m in members])
        build = _BUILDERS.get(kind) if isinstance(kind, str) else None
        if build is None:
            raise GeometryError(f"unknown geometry type {str(kind)[:40]!r}")
        if "coordinates" not in obj:
            raise GeometryError(f"the {kind} has no 'coordinates'")
        try:
            return build(self, obj["coordinates"])
        except (ValueError, TypeError, GEOSException) as exc:
            if isinstance(exc, GeometryError):
                raise
            raise GeometryError(f"the {kind} is malformed: {str(exc).splitlines()[0][:120]}") from None

    def position(self, p: Any) -> tuple[float, float]:
        """Return (x, y) of a position; note Z/M ordinates."""
        if not isinstance(p, list) or len(p) < 2:
            raise GeometryError("a position must be an array of 2 or 3 numbers")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in p):
            raise GeometryError("a position holds something that is not a number")
        try:
            x, y = float(p[0]), float(p[1])
        except OverflowError:
            raise GeometryError("a coordinate is too large") from None
        if len(p) > 2:
            self.had_z = True
        return x, y

    def positions(self, coords: Any, minimum: int, what: str) -> list[tuple[float, float]]:
        """Return the positions of an array, at least ``minimum`` of them."""
        if not isinstance(coords, list):
            raise GeometryError(f"the coordinates of a {what} must be an array of positions")
        out = [self.position(p) for p in coords]
        if len(out) < minimum:
            raise GeometryError(f"a {what} needs at least {minimum} positions, this one has {len(out)}")
        return out

    def ring(self, coords: Any) -> list[tuple[float, float]]:
        """Return a closed linear ring (an unclosed one is closed)."""
        pts = self.positions(coords, 3, "polygon ring")
        if pts[0] != pts[-1]:
            pts.append(pts[0])
        if len(pts) < 4:
            raise GeometryError(f"a polygon ring needs at least 4 positions, this one has {len(pts)}")
        return pts

    def polygon(self, coords: Any) -> shapely.Polygon:
        """Return a polygon from its array of rings."""
        if not isinstance(coords, list):
            raise GeometryError("the coordinates of a Polygon must be an array of rings")
        if not coords:
            return shapely.Polygon()
        rings = [self.ring(r) for r in coords]
        return shapely.Polygon(rings[0], rings[1:])

    def parts(self, coords: Any, what: str) -> list:
        """Return the array of parts of a multi-geometry."""
        if not isinstance(coords, list):
            raise GeometryError(f"the coordinates of a {what} must be an array")
        return coords


_BUILDERS = {
    "Point": lambda r, c: shapely.Point(r.position(c)),
    "MultiPoint": lambda r, c: shapely.MultiPoint(r.positions(c, 0, "MultiPoint")),
    "LineString": lambda r, c: shapely.LineString(r.positions(c, 2, "LineString")),
    "MultiLineString": lambda r, c: shapely.MultiLineString(
        [r.positions(p, 2, "LineString") for p in r.parts(c, "MultiLineString")]),
    "Polygon": lambda r, c: r.polygon(c),
    "MultiPolygon": lambda r, c: shapely.MultiPolygon([r.polygon(p) for p in r.parts(c, "MultiPolygon")]),
}
