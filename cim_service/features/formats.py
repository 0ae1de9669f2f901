"""Output formats: negotiation (``f`` or ``Accept``), GCJ-02/BD-09 conversion, CSV and HTML rendering."""

from __future__ import annotations

import csv
import hashlib
import io
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import shapely
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cim_service import encoding
from cim_service.errors import InvalidParameter
from cim_service.excel import excel_safe

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
CSV = "text/csv"
_F = {"json": "json", "geojson": "json", "application/geo+json": "json", "application/json": "json",
      "html": "html", "text/html": "html", "csv": "csv", "text/csv": "csv",
      # file exports (features.export.FORMATS)
      "gpkg": "gpkg", "geopackage": "gpkg", "application/geopackage+sqlite3": "gpkg",
      "fgb": "fgb", "flatgeobuf": "fgb", "application/flatgeobuf": "fgb",
      "parquet": "parquet", "geoparquet": "parquet", "application/vnd.apache.parquet": "parquet",
      "geojsonseq": "geojsonseq", "geojsons": "geojsonseq", "application/geo+json-seq": "geojsonseq"}
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


#: content at least this long is hashed for its ETag off the event loop
ETAG_OFF_LOOP_CHARS = 64 * 1024


def content_etag(*parts: str) -> str:
    """Strong ETag of a response built from ``parts`` (the format, the content, its links; not its timestamp)."""
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return '"' + h.hexdigest() + '"'


def not_modified(request: Request, etag: str, headers: dict[str, str]) -> Response | None:
    """A 304 when the request's ``If-None-Match`` names ``etag`` (or ``*``), else None."""
    inm = request.headers.get("if-none-match")
    if inm and encoding.matches(inm, etag):
        return Response(status_code=304, headers={**headers, "ETag": etag})
    return None


def negotiate(request: Request, f: str | None, allowed: tuple[str, ...] = ("json", "html")) -> str:
    """Pick the output format: ``f`` wins, then ``Accept`` (HTML for browsers, CSV when asked); default JSON."""
    if f is not None:
        fmt = _F.get(f.strip().lower())
        if fmt is None or fmt not in allowed:
            raise InvalidParameter(f"parameter 'f': unsupported format {f!r}; use one of {', '.join(allowed)}")
        return fmt
    accept = request.headers.get("accept", "").lower()
    best, best_q = "json", -1.0
    for position, part in enumerate(accept.split(",")):
        media, _, rest = part.strip().partition(";")
        q = 1.0
        if "q=" in rest:
            try:
                q = float(rest.split("q=", 1)[1].split(";")[0])
            except ValueError:
                q = 0.0
        fmt = _F.get(media.strip())
        if fmt in allowed and q - position * 1e-6 > best_q:
            best, best_q = fmt, q - position * 1e-6
    return best


def to_python_crs(features_text: str, python_crs: str) -> str:
    """Convert the geometries of a JSON array of WGS84 features (text) to GCJ-02 or BD-09."""
    from cim_service.core.crs import transform_geometry

    features = orjson.loads(f"[{features_text}]")
    with_geom = [f for f in features if f.get("geometry")]
    if with_geom:
        geoms = shapely.from_geojson([orjson.dumps(f["geometry"]).decode() for f in with_geom])
        converted = shapely.to_geojson(transform_geometry(geoms, "EPSG:4326", python_crs))
        for feature, text in zip(with_geom, converted, strict=True):
            feature["geometry"] = orjson.loads(text)
    return orjson.dumps(features).decode()[1:-1]


def features_to_csv(features: list[dict[str, Any]], columns: list[str]) -> str:
    """Render features as CSV: ``id``, the properties, then the geometry as WKT.

    The text starts with a UTF-8 byte-order mark so that Excel (what most planners open CSV with) reads
    the Chinese text correctly; ``csv``/pandas read it with ``encoding="utf-8-sig"``. Text starting like a
    formula (``=``, ``+``, ``-``, ``@``, tab, CR) is prefixed with ``'`` (:func:`excel_safe`).
    """
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180 (a CR or LF inside a value is then quoted)
    writer.writerow(["id", *columns, "geometry"])
    geoms = shapely.from_geojson([orjson.dumps(f["geometry"]).decode() if f.get("geometry") else None
                                  for f in features]) if features else []
    wkts = shapely.to_wkt(geoms, rounding_precision=-1) if len(geoms) else []
    for feature, wkt in zip(features, wkts, strict=True):
        props = feature.get("properties") or {}
        writer.writerow([feature.get("id"), *(_cell(props.get(c)) for c in columns), wkt or ""])
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else excel_safe(value)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))


def html(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``templates/<template>`` (autoescaped) into an HTML response."""
    return HTMLResponse(_env().get_template(template).render(**context), status_code=status_code)


def json_response(body: Any, media_type: str = JSON, headers: dict[str, str] | None = None) -> Response:
    """Serialise ``body`` with orjson."""
    return Response(orjson.dumps(body), media_type=media_type, headers=headers)
