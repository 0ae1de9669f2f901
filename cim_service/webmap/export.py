"""Static export of the map: one self-contained HTML file (deck.gl bundle, JS, CSS and data inlined).

The data is read through the service's own HTTP contracts (features API, indicators), in process, as an
anonymous user: only public layers are exported (``cim map``, ``commands/map.py``, assembles the app and the
client). Base boundaries, the town choropleth, the indicator
table and the derived gap layers are exported whole; point layers as a sample.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import shapely.geometry

from cim_service.core.catalog import Access, Catalog
from cim_service.webmap.page import base_layers

#: features per point layer in the export
DEFAULT_SAMPLE = 300
#: a sampled layer is read as this many pages spread over the layer (not only its first features)
SAMPLE_CHUNKS = 10
#: features per polygon/line layer (derived gap layers, roads, zones) in the export
MAX_GAP_FEATURES = 5000


@dataclass
class ExportReport:
    """What went into an export: features per layer and the layers that could not be read."""

    features: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    indicators: int = 0


def _export_plan(catalog: Catalog, sample: int) -> dict[str, int]:
    """Return ``{layer_id: limit}``: public polygon/line layers whole (up to a cap), point layers sampled."""
    plan: dict[str, int] = {}
    base = {spec.id for spec in base_layers(catalog)}
    for spec in catalog:
        if spec.access is not Access.public:
            continue
        if spec.id in base:
            plan[spec.id] = 1000
        elif spec.kind == "derived":
            plan[spec.id] = MAX_GAP_FEATURES
        elif spec.geometry.is_point:
            if sample > 0:
                plan[spec.id] = sample
        else:  # roads, planning zones, key areas: few and large, exported whole
            plan[spec.id] = MAX_GAP_FEATURES
    return plan


class ExportReadError(RuntimeError):
    """A layer could not be read through the API."""


def _page(client: Any, layer_id: str, limit: int, offset: int = 0) -> dict[str, Any]:
    response = client.get(f"/collections/{layer_id}/items", params={"limit": limit, "offset": offset})
    if response.status_code != 200:
        raise ExportReadError(f"HTTP {response.status_code}")
    return response.json()


def _read_features(client: Any, layer_id: str, limit: int) -> list[dict[str, Any]]:
    """Return up to ``limit`` features; a larger layer is sampled in SAMPLE_CHUNKS pages spread over it."""
    first = _page(client, layer_id, limit)
    matched = first.get("numberMatched")
    if not isinstance(matched, int) or matched <= limit or limit < SAMPLE_CHUNKS:
        return first.get("features", [])
    size = limit // SAMPLE_CHUNKS
    features: list[dict[str, Any]] = []
    for i in range(SAMPLE_CHUNKS):
        features += _page(client, layer_id, size, offset=i * matched // SAMPLE_CHUNKS).get("features", [])
    return features


def _labels(client: Any) -> dict[str, Any] | None:
    """The map's labels (``/map/labels``) with their font inlined as a ``data:`` URL, or None."""
    response = client.get("/map/labels")
    if response.status_code != 200:
        return None
    doc = response.json()
    font = client.get(urlsplit(doc["font"]["url"]).path)
    if font.status_code != 200:
        return None
    doc["font"]["url"] = "data:font/woff2;base64," + base64.b64encode(font.content).decode("ascii")
    return doc


def collect_inline_data(client: Any, catalog: Catalog, *, sample: int = DEFAULT_SAMPLE
                        ) -> tuple[dict[str, Any], ExportReport]:
    """Read the exported data through ``client`` (an HTTP client on the service) into the inline block."""
    report = ExportReport()
    collected: dict[str, Any] = {}
    for layer_id, limit in _export_plan(catalog, sample).items():
        try:
            features = _read_features(client, layer_id, limit)
        except ExportReadError as exc:
            report.skipped[layer_id] = str(exc)
            continue
        collected[layer_id] = {"type": "FeatureCollection", "features": features}
        report.features[layer_id] = len(features)
    response = client.get("/indicators")
    indicators = response.json() if response.status_code == 200 else []
    if isinstance(indicators, dict):
        indicators = indicators.get("indicators", [])
    report.indicators = len(indicators)
    empty = {"type": "FeatureCollection", "features": []}
    inline = {
        **{spec.id: collected.pop(spec.id, empty) for spec in base_layers(catalog)},  # under their layer ids
        "indicators": indicators,
        "layers": {k: v for k, v in collected.items() if v["features"]},
        "labels": _labels(client),  # the labels and their font subset, drawn offline
    }
    return inline, report


def feature_bbox(fc: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """Return the bbox of a GeoJSON FeatureCollection, or None when it has no geometry."""
    bounds = [shapely.geometry.shape(f["geometry"]).bounds for f in fc.get("features", []) if f.get("geometry")]
    if not bounds:
        return None
    return (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds))
