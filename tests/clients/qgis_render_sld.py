"""Load a collection with QGIS's OAPIF provider, apply an SLD file, render it to a PNG (headless PyQGIS).

``qgis_render_sld.py BASE_URL COLLECTION SLD_FILE OUT_PNG minx,miny,maxx,maxy``; prints one JSON line.
Run with Debian's ``/usr/bin/python3`` (python3-qgis).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def main() -> None:
    base, collection, sld_file, out_png, bbox = sys.argv[1:6]
    app = QgsApplication([], False)
    app.initQgis()
    layer = QgsVectorLayer(f"url='{base}' typename='{collection}'", collection, "OAPIF")
    out: dict = {"valid": layer.isValid()}
    if layer.isValid():
        message, ok = layer.loadSldStyle(sld_file)
        out.update(sld_loaded=ok, message=message, labels=layer.labelsEnabled())
        if layer.labelsEnabled():  # a TextSymbolizer becomes the layer's labels
            out["label_field"] = layer.labeling().settings().fieldName
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(layer.crs())
        settings.setExtent(QgsRectangle(*(float(v) for v in bbox.split(","))))
        settings.setOutputSize(QSize(400, 400))
        settings.setBackgroundColor(QColor(255, 255, 255))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        out["saved"] = job.renderedImage().save(out_png, "PNG")
    print(json.dumps(out), flush=True)
    os._exit(0)  # QgsApplication.exitQgis() crashes headless 3.22 on the way out


if __name__ == "__main__":
    main()
