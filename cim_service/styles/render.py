"""Styles of the catalog in two encodings: MapLibre GL style JSON (version 8) and OGC SLD 1.1.

Both are made from each layer's ``style:`` (deck.gl conventions: RGBA 0-255, radius and widths in pixels,
``min_zoom``, ``visible``) and its geometry type:

- points → MapLibre ``circle`` layer / SLD ``PointSymbolizer`` with a circle ``Mark``;
- lines → ``line`` / ``LineSymbolizer``;
- polygons → ``fill`` plus an outline ``line`` / ``PolygonSymbolizer`` with ``Fill`` and ``Stroke``.

The MapLibre style's one source is the service's multi-layer vector tiles (``/tiles/WebMercatorQuad/{z}/{x}/{y}.pbf``
with the styled collections), each style layer's ``source-layer`` the collection id (the MVT layer name); a
labelled polygon layer is labelled from its label points (``labels=true``: ``<id>.labels``, one point per
feature in one tile, ``tiles.labels``), so a town spanning many tiles is labelled once.

Layers with ``style.label`` get a ``symbol`` layer (SLD: a ``TextSymbolizer``): the Chinese label field, the
declared size, ``symbol-placement: line`` along lines (MapLibre keeps line labels upright), a point layer's icon
from the sprite sheet under its label. Label layers come last, the highest ``priority`` last of all (MapLibre
places the topmost symbols first, so they win collisions). The style's ``glyphs`` and ``sprite`` are the
service's own ``/fonts/{fontstack}/{range}.pbf`` and ``/sprites/default``: no request of the style leaves it.
"""

from __future__ import annotations

from urllib.parse import quote
from xml.sax.saxutils import escape

from cim_service.core.catalog import Label, LayerSpec, Style
from cim_service.styles.glyphs import FACE_FAMILY, FONTSTACK
from cim_service.tiles.labels import has_label_points, label_layer_name

MAPBOX = "application/vnd.mapbox.style+json"
SLD = "application/vnd.ogc.sld+xml;version=1.1"
#: zoom levels of the vector tile source (WebMercatorQuad as served)
SOURCE_MAXZOOM = 22
#: the sprite sheet's name (``/sprites/{name}.png``)
SPRITE = "default"
#: halo around label text (pixels)
HALO = 1.5


def _rgba(colour: list[int]) -> tuple[str, float]:
    """``#rrggbb`` and opacity (0-1) of an RGBA 0-255 colour."""
    r, g, b = colour[:3]
    alpha = colour[3] if len(colour) > 3 else 255
    return f"#{r:02x}{g:02x}{b:02x}", round(alpha / 255, 3)


def _css(colour: list[int]) -> str:
    hexa, opacity = _rgba(colour)
    r, g, b = (int(hexa[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {opacity})"


def _kind(spec: LayerSpec) -> str:
    if spec.geometry.is_point:
        return "point"
    return "line" if "Line" in spec.geometry.value else "polygon"


def mapbox_layers(spec: LayerSpec, source: str = "cim") -> list[dict]:
    """MapLibre style layers drawing one collection."""
    st: Style = spec.style
    common = {"source": source, "source-layer": spec.id, "minzoom": st.min_zoom,
              "layout": {"visibility": "visible" if st.visible else "none"},
              "metadata": {"cim:collection": spec.id, "cim:group": st.group, "cim:title": spec.title_zh}}
    kind = _kind(spec)
    if kind == "point":
        # no circle-stroke-* at all (MapLibre's default is no stroke): QGIS 3.22 reads a stroke width of 0 as a
        # hairline and would ring every point in the line colour
        return [{"id": spec.id, "type": "circle", **common,
                 "paint": {"circle-color": _css(st.fill), "circle-radius": st.radius}}]
    if kind == "line":
        return [{"id": spec.id, "type": "line", **common,
                 "paint": {"line-color": _css(st.line), "line-width": st.line_width}}]
    return [
        {"id": f"{spec.id}-fill", "type": "fill", **common, "paint": {"fill-color": _css(st.fill)}},
        {"id": f"{spec.id}-outline", "type": "line", **common,
         "paint": {"line-color": _css(st.line), "line-width": st.line_width}},
    ]


def mapbox_label_layer(spec: LayerSpec, source: str = "cim") -> dict:
    """The MapLibre ``symbol`` layer of a labelled collection (``style.label``)."""
    label: Label | None = spec.style.label
    assert label is not None
    # a plain ``get`` (a feature without the field has no label): QGIS 3.22's style converter reads no
    # ``coalesce`` and would label nothing
    layout: dict = {"text-field": ["get", label.field], "text-font": [FONTSTACK],
                    "text-size": label.size, "text-max-width": 12,
                    "visibility": "visible" if spec.style.visible else "none"}
    source_layer = spec.id
    if label.placement == "line":
        layout.update({"symbol-placement": "line", "symbol-spacing": 300, "text-rotation-alignment": "map",
                       "text-keep-upright": True})
    elif spec.geometry.is_point:
        layout.update({"icon-image": spec.id, "text-anchor": "top", "text-offset": [0, 0.6], "text-optional": True})
    elif has_label_points(spec):  # a polygon: its one label point (``tiles.labels``), not a label in every tile
        source_layer = label_layer_name(spec)
        layout["symbol-placement"] = "point"
    return {"id": f"{spec.id}-label", "type": "symbol", "source": source, "source-layer": source_layer,
            "minzoom": max(label.min_zoom, spec.style.min_zoom), "layout": layout,
            "paint": {"text-color": _css(label.color), "text-halo-color": "rgba(255, 255, 255, 0.9)",
                      "text-halo-width": HALO},
            "metadata": {"cim:collection": spec.id, "cim:label-priority": label.priority,
                         "cim:label-field-en": label.field_en}}


def mapbox_style(name: str, specs: list[LayerSpec], root: str, bbox: tuple[float, float, float, float]) -> dict:
    """A MapLibre GL style (version 8) of ``specs`` over the service's multi-layer vector tiles, with labels."""
    collections = ",".join(s.id for s in specs)
    tiles = f"{root}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.pbf?collections={quote(collections, safe=',')}"
    if any(has_label_points(s) for s in specs):
        tiles += "&labels=true"
    layers: list[dict] = [{"id": "background", "type": "background", "paint": {"background-color": "#f4f4f2"}}]
    # the catalog's order lists base layers first; polygons below lines below points, as on the web map
    rank = {"polygon": 0, "line": 1, "point": 2}
    for spec in sorted(specs, key=lambda s: rank[_kind(s)]):
        layers += mapbox_layers(spec)
    labelled = [s for s in specs if s.style.label is not None]
    layers += [mapbox_label_layer(s) for s in sorted(labelled, key=lambda s: s.style.label.priority)]
    return {
        "version": 8,
        "name": name,
        "metadata": {"cim:source": "layers/*.yaml style"},
        "glyphs": f"{root}/fonts/{{fontstack}}/{{range}}.pbf",
        "sprite": f"{root}/sprites/{SPRITE}",
        "center": [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2],
        "zoom": 11,
        "sources": {"cim": {"type": "vector", "tiles": [tiles], "minzoom": 0, "maxzoom": SOURCE_MAXZOOM,
                            "bounds": list(bbox), "attribution": "Minhang CIM"}},
        "layers": layers,
    }


def _svg(name: str, value: object) -> str:
    return f'<se:SvgParameter name="{name}">{escape(str(value))}</se:SvgParameter>'


def _fill(colour: list[int]) -> str:
    hexa, opacity = _rgba(colour)
    return f"<se:Fill>{_svg('fill', hexa)}{_svg('fill-opacity', opacity)}</se:Fill>"


def _stroke(colour: list[int], width: float) -> str:
    hexa, opacity = _rgba(colour)
    return (f"<se:Stroke>{_svg('stroke', hexa)}{_svg('stroke-opacity', opacity)}"
            f"{_svg('stroke-width', width)}</se:Stroke>")


def sld_text(spec: LayerSpec) -> str:
    """The ``TextSymbolizer`` of a labelled collection (QGIS draws it as the layer's labels), else ''."""
    label = spec.style.label
    if label is None:
        return ""
    hexa, opacity = _rgba(label.color)
    if label.placement == "line":
        placement = "<se:LinePlacement><se:GeneralizeLine>true</se:GeneralizeLine></se:LinePlacement>"
    else:
        displacement = ("<se:Displacement><se:DisplacementX>0</se:DisplacementX><se:DisplacementY>"
                        f"{-(spec.style.radius + label.size * 0.6):g}</se:DisplacementY></se:Displacement>"
                        if spec.geometry.is_point else "")
        placement = ("<se:PointPlacement><se:AnchorPoint><se:AnchorPointX>0.5</se:AnchorPointX>"
                     f"<se:AnchorPointY>{1 if spec.geometry.is_point else 0.5}</se:AnchorPointY></se:AnchorPoint>"
                     f"{displacement}</se:PointPlacement>")
    return ("<se:TextSymbolizer><se:Label><ogc:PropertyName>" + escape(label.field) + "</ogc:PropertyName>"
            f"</se:Label><se:Font>{_svg('font-family', FACE_FAMILY)}{_svg('font-size', label.size)}</se:Font>"
            f"<se:LabelPlacement>{placement}</se:LabelPlacement>"
            f"<se:Halo><se:Radius>{HALO:g}</se:Radius><se:Fill>{_svg('fill', '#ffffff')}</se:Fill></se:Halo>"
            f"<se:Fill>{_svg('fill', hexa)}{_svg('fill-opacity', opacity)}</se:Fill></se:TextSymbolizer>")


def sld_named_layer(spec: LayerSpec) -> str:
    """One ``NamedLayer`` (SLD 1.1, Symbology Encoding 1.1) drawing a collection."""
    st: Style = spec.style
    kind = _kind(spec)
    if kind == "point":
        symbolizer = ("<se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>"
                      f"{_fill(st.fill)}</se:Mark><se:Size>{2 * st.radius:g}</se:Size></se:Graphic>"
                      "</se:PointSymbolizer>")
    elif kind == "line":
        symbolizer = f"<se:LineSymbolizer>{_stroke(st.line, st.line_width)}</se:LineSymbolizer>"
    else:
        symbolizer = (f"<se:PolygonSymbolizer>{_fill(st.fill)}{_stroke(st.line, st.line_width)}"
                      "</se:PolygonSymbolizer>")
    title = escape(f"{spec.title_zh} {spec.title_en}")
    return (f"<NamedLayer><se:Name>{escape(spec.id)}</se:Name><UserStyle><se:Name>default</se:Name>"
            f"<se:Description><se:Title>{title}</se:Title></se:Description><se:FeatureTypeStyle><se:Rule>"
            f"<se:Name>{escape(spec.id)}</se:Name>{symbolizer}{sld_text(spec)}</se:Rule></se:FeatureTypeStyle></UserStyle>"
            "</NamedLayer>")


def sld(specs: list[LayerSpec]) -> str:
    """An SLD 1.1 document with one named layer per collection."""
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" '
            'xmlns:se="http://www.opengis.net/se" xmlns:ogc="http://www.opengis.net/ogc" '
            'xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.opengis.net/sld '
            'http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd">'
            + "".join(sld_named_layer(s) for s in specs) + "</StyledLayerDescriptor>")
