"""Build the CIM一张图 map page: layer metadata from the catalog, the deck.gl spec (pydeck), the HTML.

The deck spec is built with pydeck (``pydeck.Deck(...).to_json()``) and handed to the browser, where
``static/map.js`` renders it with the deck.gl bundle's ``createDeck`` / ``updateDeck`` and adds what JSON
cannot say (choropleth colours, API-key headers, raster sub-layers). The same page serves the live
service (layers from our tile and feature endpoints) and the static export (data inlined, see
:mod:`cim_service.webmap.export`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pydeck as pdk
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cim_service.auth import ANONYMOUS, Principal, can_read_layer, visible_fields
from cim_service.core.catalog import Access, Catalog, LayerSpec, Role
from cim_service.core.region import DISTRICT_BBOX
from cim_service.store.history import has_history
from cim_service.webmap.assets import (
    ENTRY_MODULE,
    TEMPLATES_DIR,
    deck_bundle_path,
    module_import_map,
    module_urls,
    read_text_asset,
)

#: the first view (the district, centred); the page fits the district outline once it is loaded
DEFAULT_VIEW = {"longitude": 121.41, "latitude": 31.09, "zoom": 10.4, "pitch": 0, "bearing": 0}
#: the 3D view (``/map?view=3d``): pitched and rotated over 莘庄 (the district's centre, dense mid-rise), close
#: enough for the extruded layers (their min zoom)
VIEW_3D = {"longitude": 121.385, "latitude": 31.108, "pitch": 55, "bearing": -25, "zoom": 14.2}
#: the page's view modes and screens (``/map?view=`` and ``/map?screen=``)
VIEW_MODES = ("2d", "3d")
SCREENS = ("planner", "ops")
#: the layer group drawn as the basemap (under the data; shown in the 3D view and the operations screen)
BASEMAP_GROUP = "底图"
#: the years of the time slider (the plan's baseline to its target year)
TIME_YEARS = (2020, 2025)
#: roles of the boundary layers, drawn as GeoJSON from the features API rather than as vector tiles
BASE_ROLES = (Role.district_outline, Role.town_boundaries)

#: the camera-density raster (PNG tiles of the density COG)
DENSITY_RASTER = {
    "id": "camera_density_raster",
    "title_zh": "视频监控密度(栅格)",
    "title_en": "Camera density (raster)",
    "group": "指标缺口",
    "tiles": "/rasters/camera_density/tiles/WebMercatorQuad/{z}/{x}/{y}.png",
    "visible": False,
    "opacity": 0.6,
}
#: English titles of the catalog's layer groups (``style.group``, named in Chinese); a group without one is
#: shown under its Chinese name
GROUP_TITLES_EN = {
    "基础": "Base", "指标缺口": "Plan gaps", "交通": "Transport", "生活": "Daily life", "感知设施": "Sensing",
    "一标多实": "Addresses & residents", "通信": "Telecom", "规划": "Planning", "底图": "Basemap", "三维": "3D city",
}
MAX_TILE_ZOOM = 16
#: the zoom from which the map draws points (and a click may pick one): below it, the point layers' tiles are
#: thinned to grid cells with a ``count`` (tiles/mvt.py THIN_BELOW_ZOOM), drawn as proportional symbols, and a
#: click selects the town under it
POINTS_FROM_ZOOM = 14
#: concurrent tile requests per layer (deck.gl's default of 6 splits a district view into two rounds)
MAX_REQUESTS = 16
#: a literal string prop (pydeck turns bare strings into ``@@=`` accessor expressions)
PIXELS = pdk.types.String("pixels")


#: id of the external basemap's tile layer on the map (CIM_BASEMAP_URL; not a catalog layer)
EXTERNAL_BASEMAP_ID = "__external_basemap"
#: WMTS template placeholders -> the XYZ ones deck.gl's TileLayer fills in (WebMercatorQuad: row = y, col = x)
_WMTS_PLACEHOLDERS = {"{TileMatrix}": "{z}", "{TileRow}": "{y}", "{TileCol}": "{x}"}


def external_basemap(url: str | None, crs: str = "wgs84") -> dict[str, Any] | None:
    """Describe the operator's external basemap for the page (None without one): an XYZ template (a WMTS
    template's placeholders rewritten) and the datum of its tiles (wgs84 or gcj02: the map then moves every
    tile onto WGS84 so our layers stay aligned)."""
    if not url:
        return None
    for wmts, xyz in _WMTS_PLACEHOLDERS.items():
        url = url.replace(wmts, xyz)
    return {"id": EXTERNAL_BASEMAP_ID, "url": url, "crs": crs, "title_zh": "外部底图", "title_en": "External basemap",
            "group": BASEMAP_GROUP}


def base_layers(catalog: Catalog) -> list[LayerSpec]:
    """The catalog's boundary layers (by their roles), those it declares."""
    return [spec for role in BASE_ROLES if (spec := catalog.role(role)) is not None]


def tile_url(layer_id: str) -> str:
    """Return the MVT tile URL template of one collection."""
    return f"/collections/{layer_id}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"


def layer_entry(spec: LayerSpec, principal: Principal = ANONYMOUS, history_begins: str | None = None) -> dict[str, Any]:
    """Describe one catalog layer for the map's panels (titles, style, access, the fields ``principal`` may see,
    whether it keeps history and since when)."""
    return {
        "id": spec.id,
        "title_zh": spec.title_zh,
        "title_en": spec.title_en,
        "group": spec.style.group,
        "access": spec.access.value,
        "kind": spec.kind,
        "geometry": spec.geometry.value,
        "is_point": spec.geometry.is_point,
        "label_field": spec.label_field,
        "label_field_en": spec.label_field_en,
        "height_field": spec.height_field,
        "basemap": spec.style.group == BASEMAP_GROUP,
        "live": spec.sensing is not None and spec.sensing.live is not None,  # tiles carry status (live.js)
        "history": has_history(spec),
        "history_begins": history_begins,
        "tiles3d": f"/collections/{spec.id}/3dtiles/tileset.json" if spec.extruded else None,
        "visible": spec.style.visible,
        "min_zoom": spec.style.min_zoom,
        "style": {
            "fill": spec.style.fill,
            "line": spec.style.line,
            "line_width": spec.style.line_width,
            "radius": spec.style.radius,
            "ramp": spec.style.ramp.model_dump() if spec.style.ramp else None,
            "columns": spec.style.columns.model_dump() if spec.style.columns else None,
        },
        "fields": [
            {"name": f.name, "title_zh": f.title_zh, "title_en": f.title_en, "personal": f.personal}
            for f in visible_fields(spec, principal)
        ],
        "tiles": tile_url(spec.id),
    }


def _geometry_rank(spec: LayerSpec) -> int:
    if spec.geometry.is_point:
        return 3
    return 2 if "LineString" in spec.geometry.value else 1


def _mvt_layer(spec: LayerSpec) -> pdk.Layer:
    style = spec.style
    return pdk.Layer(
        "MVTLayer",
        id=spec.id,
        data=tile_url(spec.id),
        visible=style.visible,
        pickable=True,
        auto_highlight=True,
        highlight_color=[255, 200, 0, 220],
        min_zoom=style.min_zoom,
        max_zoom=MAX_TILE_ZOOM,
        max_requests=MAX_REQUESTS,
        get_fill_color=style.fill,
        get_line_color=style.line,
        get_line_width=style.line_width,
        line_width_units=PIXELS,
        get_point_radius=style.radius,
        point_radius_units=PIXELS,
        point_radius_min_pixels=1,
        stroked=not spec.geometry.is_point,
    )


def _geojson_layer(spec: LayerSpec, *, filled: bool) -> pdk.Layer:
    style = spec.style
    return pdk.Layer(
        "GeoJsonLayer",
        id=spec.id,
        data=[],
        visible=True,
        pickable=filled,
        filled=filled,
        stroked=True,
        get_fill_color=style.fill,
        get_line_color=style.line,
        get_line_width=style.line_width,
        line_width_units=PIXELS,
        line_width_min_pixels=style.line_width,
    )


def group_titles(groups: list[str]) -> dict[str, dict[str, str]]:
    """Return the titles of layer groups for the map's layer panel: group -> {title_zh, title_en}."""
    return {group: {"title_zh": group, "title_en": GROUP_TITLES_EN.get(group, group)} for group in groups}


def build_deck_spec(catalog: Catalog) -> dict[str, Any]:
    """Build the deck.gl JSON spec (pydeck) of the map, bottom up: basemap, choropleth, raster, MVT layers, outline."""
    layers: list[pdk.Layer] = []
    towns, outline = catalog.role(Role.town_boundaries), catalog.role(Role.district_outline)
    tiled = [s for s in catalog if s not in (towns, outline)]
    basemap = [s for s in tiled if s.style.group == BASEMAP_GROUP]
    for spec in sorted(basemap, key=_geometry_rank):  # the basemap under everything, the choropleth over it
        layers.append(_mvt_layer(spec))
    if towns is not None:
        layers.append(_geojson_layer(towns, filled=True))
    raster = DENSITY_RASTER
    layers.append(pdk.Layer("TileLayer", id=raster["id"], data=raster["tiles"], visible=raster["visible"],
                            opacity=raster["opacity"], min_zoom=8, max_zoom=MAX_TILE_ZOOM, tile_size=256))
    for spec in sorted([s for s in tiled if s not in basemap], key=_geometry_rank):
        layers.append(_mvt_layer(spec))
    if outline is not None:
        layers.append(_geojson_layer(outline, filled=False))
    deck = pdk.Deck(
        layers=layers,
        initial_view_state=pdk.ViewState(**DEFAULT_VIEW),
        views=[pdk.View("MapView", controller=True)],
        map_provider=None,
    )
    spec = json.loads(deck.to_json())
    for key in ("mapStyle", "mapProvider"):
        spec.pop(key, None)
    return spec


def build_page_config(catalog: Catalog, *, principal: Principal = ANONYMOUS, inline: dict[str, Any] | None = None,
                      district_bbox: tuple[float, float, float, float] | None = None, view_mode: str = "2d",
                      screen: str = "planner", history_begins: dict[str, str | None] | None = None,
                      at: str | None = None, default_indicator: str | None = None,
                      basemap: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the page configuration for ``principal``: layer metadata, deck spec, endpoints, inlined data.

    Only the layers ``principal`` may read are described, with only the fields it may see: the page (loaded
    without credentials) and the static export never name a restricted layer or a personal field; a page
    given an API key asks ``/map/config`` for the configuration of that key. ``view_mode`` (2d, 3d) is the
    first view; ``screen`` the layout (planner, or ops: the operations centre's dark screen); ``history_begins``:
    layer id -> when its history begins (RFC 3339), for the time slider. With ``at`` (an RFC 3339 instant,
    already checked), the tiles of the layers that keep a history are those as of that instant (``?at=``).
    ``default_indicator``: the indicator the map opens on (CIM_MAP_INDICATOR or the catalog's map_default);
    ``basemap``: the external basemap (:func:`external_basemap`), never in the static export (it is offline).
    """
    if view_mode not in VIEW_MODES:
        raise ValueError(f"view mode {view_mode!r} is not one of {VIEW_MODES}")
    if screen not in SCREENS:
        raise ValueError(f"screen {screen!r} is not one of {SCREENS}")
    catalog = Catalog([spec for spec in catalog if can_read_layer(spec, principal)])
    deck = build_deck_spec(catalog)
    if at is not None:
        _tiles_as_of(deck, {spec.id for spec in catalog if spec.kind == "source"}, at)
    return {
        "title_zh": "闵行区CIM一张图",
        "title_en": "Minhang CIM One Map",
        "view": DEFAULT_VIEW,
        "view_mode": view_mode,
        "view_3d": VIEW_3D,
        "screen": screen,
        "time_years": list(TIME_YEARS),
        "district_bbox": district_bbox or DISTRICT_BBOX,
        "layers": [layer_entry(spec, principal, (history_begins or {}).get(spec.id)) for spec in catalog],
        "roles": catalog.roles,
        "groups": group_titles([spec.style.group for spec in catalog] + [DENSITY_RASTER["group"]]),
        "public_layers": [spec.id for spec in catalog if spec.access is Access.public],
        "raster": DENSITY_RASTER,
        "deck": deck,
        "at": at,
        "default_indicator": default_indicator,
        "points_from_zoom": POINTS_FROM_ZOOM,
        "basemap": None if inline is not None else basemap,
        "endpoints": {
            "items": "/collections/{id}/items",
            "item": "/collections/{id}/items/{fid}",
            "indicators": "/indicators",
            "indicator": "/indicators/{id}",
            "trajectory": "/indicators/{id}/trajectory",
            "tiles": "/tiles/WebMercatorQuad/{z}/{x}/{y}",
            "search": "/map/search",
            "labels": "/map/labels",
            "config": "/map/config",
            "rasters": "/rasters",
            "mvt_worker": "/map/static/mvt-worker.js",
            "events": "/events",
            "alert_list": "/alerts",
        },
        "inline": inline,
    }


def _tiles_as_of(deck: dict[str, Any], layer_ids: set[str], at: str) -> None:
    """Point the MVT layers of ``layer_ids`` at their tiles as of ``at``."""
    from urllib.parse import quote

    for layer in deck.get("layers", []):
        if layer.get("@@type") == "MVTLayer" and layer.get("id") in layer_ids and isinstance(layer.get("data"), str):
            sep = "&" if "?" in layer["data"] else "?"
            layer["data"] = f"{layer['data']}{sep}at={quote(at, safe='')}"


def _script_json(value: Any) -> str:
    """Serialise ``value`` for a ``<script>`` element (no ``</script>`` or HTML comment can break out)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline_script(text: str) -> str:
    return text.replace("</script", "<\\/script").replace("<!--", "<\\!--")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))


def render_page(config: dict[str, Any], *, inline_assets: bool = False) -> str:
    """Render the map page; ``inline_assets`` inlines the deck.gl bundle, the modules and CSS (static export)."""
    template = _environment().get_template("map.html")
    assets = None
    if inline_assets:
        assets = {
            "deck": _inline_script(deck_bundle_path().read_text(encoding="utf-8")),
            "entry": _inline_script(read_text_asset(ENTRY_MODULE)),
            "css": read_text_asset("map.css").replace("</style", "<\\/style"),
        }
    return template.render(config=config, config_json=_script_json(config), assets=assets,
                           import_map=_script_json(module_import_map(inline=inline_assets)),
                           preloads=[] if inline_assets else module_urls())
