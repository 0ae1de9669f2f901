"""Read a collection with QGIS's OAPIF provider (headless PyQGIS); print what it saw as one JSON line.

Run with Debian's interpreter (``/usr/bin/python3``, where python3-qgis lives):
``qgis_oapif.py BASE_URL COLLECTION [SUBSET] [BBOX minx,miny,maxx,maxy]``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import QgsApplication, QgsFeatureRequest, QgsRectangle, QgsVectorLayer  # noqa: E402


def main() -> None:
    base, collection = sys.argv[1], sys.argv[2]
    subset = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    bbox = [float(v) for v in sys.argv[4].split(",")] if len(sys.argv) > 4 else None
    app = QgsApplication([], False)
    app.initQgis()
    layer = QgsVectorLayer(f"url='{base}' typename='{collection}'", collection, "OAPIF")
    out: dict = {"valid": layer.isValid()}
    if layer.isValid():
        if subset:
            out["subset_accepted"] = layer.setSubsetString(subset)
        request = QgsFeatureRequest()
        if bbox:
            request.setFilterRect(QgsRectangle(*bbox))
        out["features"] = sum(1 for _ in layer.getFeatures(request))
        out["fields"] = [f.name() for f in layer.fields()]
    print(json.dumps(out), flush=True)
    os._exit(0)  # QgsApplication.exitQgis() crashes headless 3.22 on the way out; nothing is left to save


if __name__ == "__main__":
    main()
