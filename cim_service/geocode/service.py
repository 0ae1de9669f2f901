"""The geocoder of one service process: the address index (rebuilt when the layer's version moves) and answers.

:class:`Geocoder` holds the :class:`~cim_service.geocode.index.AddressIndex` of the ``standard_addresses`` role's
layer. Each request compares the index's layer version with ``cim_meta.layer_state``; a new version rebuilds it
in a worker thread over the synchronous engine (once: concurrent requests wait for the same build). Answers are
GeoJSON features in the caller's CRS (GCJ-02/BD-09 converted here, other CRSs with PROJ; points only).
"""

from __future__ import annotations

import asyncio
import functools
import math
from typing import Any

from sqlalchemy.engine import Engine

from cim_service.core.address import ParsedAddress, parse_address
from cim_service.core.catalog import Catalog, LayerSpec, Role
from cim_service.core.crs import from_wgs84
from cim_service.features.crs import OutputCrs
from cim_service.geocode.index import AddressIndex, Candidate
from cim_service.geocode.query import index_sql, nearest_sql, town_sql
from cim_service.offloop import off_loop
from cim_service.store import layer_state
from cim_service.store.db import Database

#: the longest query text parsed (longer text is cut here)
MAX_QUERY_CHARS = 200
#: reverse geocoding: default and largest search radius (metres)
DEFAULT_RADIUS_M = 200.0
MAX_RADIUS_M = 2000.0


@functools.lru_cache(maxsize=100_000)
def parse_cached(text: str, hint: str | None = None) -> ParsedAddress:
    """:func:`parse_address` with a cache (a batch repeats addresses; the parser is pure)."""
    return parse_address(text[:MAX_QUERY_CHARS], town_hint=hint)


def to_output(lon: list[float], lat: list[float], crs: OutputCrs) -> list[tuple[float, float]]:
    """WGS84 points as (first axis, second axis) of ``crs``, rounded to its digits."""
    if not lon:
        return []
    if crs.python_crs:
        xs, ys = from_wgs84(lon, lat, crs.python_crs)
    elif crs.srid == 4326:
        xs, ys = lon, lat
    else:
        xs, ys = from_wgs84(lon, lat, f"EPSG:{crs.srid}")
    pairs = [(round(float(x), crs.digits), round(float(y), crs.digits)) for x, y in zip(xs, ys, strict=True)]
    return [(y, x) for x, y in pairs] if crs.lat_first else pairs


class Geocoder:
    """Forward, batch and reverse geocoding over the catalog's standard addresses."""

    def __init__(self, catalog: Catalog) -> None:
        self.spec: LayerSpec | None = catalog.role(Role.standard_addresses)
        self.towns: LayerSpec | None = catalog.role(Role.town_boundaries)
        self._index: AddressIndex | None = None
        self._lock = asyncio.Lock()

    async def index(self, db: Database, engine: Engine) -> AddressIndex:
        """The index of the current layer version (rebuilt off the event loop when the version moved)."""
        assert self.spec is not None
        version = (await db.run(layer_state.fetch_versions)).get(self.spec.id)
        if self._index is not None and self._index.version == version:
            return self._index
        async with self._lock:
            if self._index is None or self._index.version != version:
                self._index = await off_loop(load_index, engine, self.spec, version)
        return self._index

    # -- answers ------------------------------------------------------------------------------------------

    def forward(self, index: AddressIndex, text: str, limit: int, crs: OutputCrs) -> dict[str, Any]:
        """Ranked candidates for one address text, as a GeoJSON FeatureCollection (CPU work: off the loop)."""
        p = parse_cached(text)
        candidates = index.match(p, limit)
        if not candidates:
            area = index.area(p)
            candidates = [area] if area else index.text_search(text.strip()[:MAX_QUERY_CHARS], limit)
        features = self.features(index, p, candidates, crs)
        parsed = {k: v for k, v in p.as_dict().items() if v and k not in ("raw", "normalized")}
        return {"type": "FeatureCollection", "features": features, "numberReturned": len(features),
                "query": text, "parsed": parsed, "level": p.level(), "fully_parsed": p.is_fully_parsed()}

    def features(self, index: AddressIndex, p: ParsedAddress, candidates: list[Candidate],
                 crs: OutputCrs) -> list[dict[str, Any]]:
        """GeoJSON features of ``candidates`` (area-level ones at the mean position of their addresses)."""
        lon, lat = [], []
        for c in candidates:
            x, y = self.position(index, p, c)
            lon.append(x)
            lat.append(y)
        out = []
        for c, (x, y) in zip(candidates, to_output(lon, lat, crs), strict=True):
            out.append({"type": "Feature", "id": index.ids[c.row] if c.row >= 0 else None,
                        "geometry": {"type": "Point", "coordinates": [x, y]},
                        "properties": self.properties(index, p, c)})
        return out

    @staticmethod
    def position(index: AddressIndex, p: ParsedAddress, c: Candidate) -> tuple[float, float]:
        """WGS84 lon/lat of a candidate."""
        if c.row >= 0:
            return index.lon[c.row], index.lat[c.row]
        return index.centres[(p.town if c.level == "town" else index.district) or ""]

    @staticmethod
    def properties(index: AddressIndex, p: ParsedAddress, c: Candidate) -> dict[str, Any]:
        """The properties of a candidate: code, standard text, town, score and match level."""
        if c.row < 0:
            return {"address_code": None, "full_address": None,
                    "town": p.town if c.level == "town" else None, "district": p.district or index.district,
                    "score": c.score, "match_level": c.level}
        return {"address_code": index.value("address_code", c.row), "full_address": index.value("full_address", c.row),
                "town": index.value("town", c.row), "district": index.value("district", c.row),
                "score": c.score, "match_level": c.level}

    async def reverse(self, db: Database, lon: float, lat: float, radius_m: float) -> tuple[dict | None, str | None]:
        """The nearest standard address within ``radius_m`` of a WGS84 point (a row, or None) and the point's town."""
        assert self.spec is not None
        # a degree box around the radius, for the index (a degree of longitude shrinks with cos(latitude))
        box = radius_m / 111_320.0 / max(math.cos(math.radians(lat)), 0.01)
        row = await db.fetchrow(nearest_sql(self.spec), lon, lat, radius_m, box)
        town = None
        if self.towns is not None and self.towns.label_field:
            town = await db.fetchval(town_sql(self.towns, self.towns.label_field), lon, lat)
        if town is None and row is not None:
            town = row.get("town")
        return row, town


def load_index(engine: Engine, spec: LayerSpec, version: int | None) -> AddressIndex:
    """Read the standard addresses and index them (in a worker thread)."""
    with engine.connect() as conn:
        result = conn.exec_driver_sql(index_sql(spec))
        names = list(result.keys())
        rows = (dict(zip(names, r, strict=True)) for r in result)
        return AddressIndex.build(rows, version)
