"""Open the service's vector tiles in QGIS (headless PyQGIS), style them with our MapLibre style, render to PNG.

``qgis_vector_tiles.py REQUEST_JSON``; prints one JSON line. Run with Debian's ``/usr/bin/python3`` (python3-qgis).
The request (JSON file) holds:

- ``xyz``: the tile URL template (``.../{z}/{x}/{y}.pbf?...``), opened as a ``QgsVectorTileLayer``
  (``type=xyz&url=...&zmin=&zmax=``, the URI QGIS's "New Generic Connection" writes);
- ``style_url``: the MapLibre style JSON URL, given to the same layer as ``styleUrl`` (QGIS then fetches and
  converts it in ``loadDefaultStyle``);
- ``style_file``: the same style, downloaded: converted with ``QgsMapBoxGlStyleConverter`` and applied;
- ``bbox`` (lon/lat), ``size`` (pixels), ``out_png``, ``out_png_url`` (the render styled from ``style_url``);
- ``tile_url``: one collection tile (``.../{z}/{x}/{y}.pbf``), read by QGIS's OGR provider (GDAL's MVT driver),
  ``tile_layer`` its layer name: the features QGIS reads from it and their attributes.
"""

from __future__ import annotations

import json
import os
import sys
from urllib.parse import quote
from urllib.request import urlopen

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapBoxGlStyleConversionContext,
    QgsMapBoxGlStyleConverter,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
    QgsVectorTileLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor, QImage  # noqa: E402


def render(layer: QgsVectorTileLayer, bbox: list[float], size: int, out_png: str) -> bool:
    """Render ``layer`` over ``bbox`` (lon/lat) in Web Mercator to ``out_png``."""
    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    to_merc = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), mercator, QgsProject.instance())
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(mercator)
    settings.setExtent(to_merc.transformBoundingBox(QgsRectangle(*bbox)))
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage().save(out_png, "PNG")


def style_summary(layer: QgsVectorTileLayer) -> dict:
    """What the converted style holds: its renderer's styles (layer name, geometry, colour) and label styles."""
    styles = []
    for st in layer.renderer().styles():
        symbol = st.symbol()
        styles.append({"name": st.styleName(), "layer": st.layerName(), "geometry": int(st.geometryType()),
                       "enabled": st.isEnabled(), "min_zoom": st.minZoomLevel(),
                       "colour": symbol.color().name(QColor.HexArgb) if symbol else None})
    labels = []
    if layer.labeling() is not None:
        for st in layer.labeling().styles():
            settings = st.labelSettings()
            labels.append({"name": st.styleName(), "layer": st.layerName(), "field": settings.fieldName,
                           "is_expression": settings.isExpression, "enabled": st.isEnabled(),
                           "font": settings.format().font().family()})
    return {"styles": styles, "labels": labels}


def main() -> None:
    req = json.loads(open(sys.argv[1], encoding="utf-8").read())
    app = QgsApplication([], False)
    app.initQgis()
    out: dict = {}
    uri = f"type=xyz&url={quote(req['xyz'], safe='')}&zmin={req['zmin']}&zmax={req['zmax']}"
    layer = QgsVectorTileLayer(uri, "cim")
    out["valid"] = layer.isValid()
    out["source_zooms"] = [layer.sourceMinZoom(), layer.sourceMaxZoom()]
    # the style JSON, converted by QGIS's MapLibre/Mapbox GL converter
    context = QgsMapBoxGlStyleConversionContext()
    converter = QgsMapBoxGlStyleConverter()
    with open(req["style_file"], encoding="utf-8") as fh:
        style = json.load(fh)
    # the sprite sheet the style names (QGIS fetches it itself only when it reads the style from a URL)
    with urlopen(f"{style['sprite']}.json") as sheet, urlopen(f"{style['sprite']}.png") as png:
        context.setSprites(QImage.fromData(png.read()), json.loads(sheet.read()))
    result = converter.convert(style, context)
    out["converted"] = int(result) == int(QgsMapBoxGlStyleConverter.Success)
    out["warnings"] = list(converter.warnings())
    layer.setRenderer(converter.renderer())
    if converter.labeling() is not None:
        layer.setLabeling(converter.labeling())
    out.update(style_summary(layer))
    out["saved"] = render(layer, req["bbox"], req["size"], req["out_png"])
    # the same tiles with the style's URL in the layer's source: QGIS fetches and converts it itself
    by_url = QgsVectorTileLayer(f"{uri}&styleUrl={quote(req['style_url'], safe='')}", "cim-styled")
    message, ok = by_url.loadDefaultStyle()
    out["style_url"] = {"valid": by_url.isValid(), "loaded": ok, "message": message,
                        "styles": len(by_url.renderer().styles()) if by_url.renderer() else 0}
    if ok:
        out["style_url"]["saved"] = render(by_url, req["bbox"], req["size"], req["out_png_url"])
    # one tile read as features (GDAL's MVT driver under QGIS's OGR provider)
    tile = QgsVectorLayer(f"/vsicurl/{req['tile_url']}|layername={req['tile_layer']}", "tile", "ogr")
    out["tile"] = {"valid": tile.isValid()}
    if tile.isValid():
        feats = list(tile.getFeatures())
        out["tile"].update(count=len(feats), fields=[f.name() for f in tile.fields()],
                           crs=tile.crs().authid(),
                           features=[{k: f[k] for k in req["tile_fields"]} for f in feats])
    print(json.dumps(out, ensure_ascii=False, default=str), flush=True)
    os._exit(0)  # QgsApplication.exitQgis() crashes headless 3.22 on the way out


if __name__ == "__main__":
    main()
