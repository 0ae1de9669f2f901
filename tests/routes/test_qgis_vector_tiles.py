"""QGIS (Debian's python3-qgis 3.22, headless) reads our vector tiles: a ``QgsVectorTileLayer`` on the XYZ
template of the MapLibre style's source, styled by converting our style JSON (``QgsMapBoxGlStyleConverter``, and
again by giving QGIS the style's URL), rendered to PNG: the PNG shows the catalog's colours where the features
are; one collection tile read by QGIS holds the features and attributes the database has there."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import httpx
import mapbox_vector_tile
import morecantile
import pytest
import sqlalchemy as sa
from PIL import Image

from cim_service.core.settings import PROJECT_ROOT
from tests.routes.conftest import AREA
from tests.routes.serving import cim_serve

QGIS_PYTHON = "/usr/bin/python3"  # Debian's interpreter: python3-qgis is installed for it
SCRIPT = Path(__file__).resolve().parent.parent / "clients" / "qgis_vector_tiles.py"
SIZE = 512
WMQ = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def server(settings, features_data, tmp_path_factory):
    with cim_serve(settings.database_url, settings.home, tmp_path_factory.mktemp("serve-qgis-vt")) as url:
        yield url


def _merc(lon: float, lat: float) -> tuple[float, float]:
    return (math.radians(lon) * 6378137.0, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137.0)


def _pixel(lon: float, lat: float) -> tuple[float, float]:
    """Pixel of a lon/lat in the rendered square PNG (QGIS keeps the aspect: the extent is centred)."""
    (x0, y0), (x1, y1) = _merc(AREA[0], AREA[1]), _merc(AREA[2], AREA[3])
    scale = max(x1 - x0, y1 - y0) / SIZE
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x, y = _merc(lon, lat)
    return SIZE / 2 + (x - cx) / scale, SIZE / 2 - (y - cy) / scale


def _over_white(colour: list[int]) -> tuple[int, int, int]:
    alpha = (colour[3] if len(colour) > 3 else 255) / 255
    return tuple(round(c * alpha + 255 * (1 - alpha)) for c in colour[:3])


def _near(p: tuple, want: tuple, tol: int = 40) -> bool:
    return all(abs(p[i] - want[i]) <= tol for i in range(3))


def _run(request: dict, tmp_path: Path) -> dict:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    res = subprocess.run([QGIS_PYTHON, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=300,
                         cwd=SCRIPT.parent)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def qgis(server, tmp_path_factory) -> dict:
    """QGIS's reading of the tiles, the style and one tile (one QGIS run for the module's tests)."""
    tmp = tmp_path_factory.mktemp("qgis-vt")
    # the layers shown by default: QGIS 3.22 draws a style's layers whatever their layout visibility
    style = httpx.get(f"{server}/styles/default", params={"f": "mapbox", "visible": "true"}).json()
    (tmp / "style.json").write_text(json.dumps(style))
    source = style["sources"]["cim"]
    tile = WMQ.tile(121.3375, 31.015, 14)  # inside the fixture's west town, among the cameras
    request = {
        "xyz": source["tiles"][0], "zmin": source["minzoom"], "zmax": 14,
        "style_url": f"{server}/styles/default?f=mapbox&visible=true", "style_file": str(tmp / "style.json"),
        "bbox": list(AREA), "size": SIZE, "out_png": str(PROJECT_ROOT / "test-artifacts" / "qgis_vector_tiles.png"),
        "out_png_url": str(PROJECT_ROOT / "test-artifacts" / "qgis_vector_tiles_style_url.png"),
        "tile_url": f"{server}/collections/cameras/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.pbf",
        "tile_layer": "cameras", "tile_fields": ["mvt_id", "device_id", "camera_type"], "tile": list(tile),
    }
    (PROJECT_ROOT / "test-artifacts").mkdir(exist_ok=True)
    out = _run(request, tmp)
    (PROJECT_ROOT / "test-artifacts" / "qgis_vector_tiles.json").write_text(json.dumps(out, ensure_ascii=False,
                                                                                      indent=1))
    return {"out": out, "request": request, "style": style}


def test_qgis_opens_the_tiles_and_converts_the_style(qgis, catalog):
    out, style = qgis["out"], qgis["style"]
    assert out["valid"] and out["converted"], out
    assert out["source_zooms"] == [0, 14]
    # every drawing layer of our style became a QGIS renderer style on the same MVT layer
    drawn = [layer for layer in style["layers"] if layer["type"] in ("fill", "line", "circle")]
    got = {(s["name"], s["layer"]) for s in out["styles"]}
    assert {(layer["id"], layer["source-layer"]) for layer in drawn} <= got, (got, out["warnings"])
    cams = next(s for s in out["styles"] if s["name"] == "cameras")
    r, g, b, _ = catalog.get("cameras").style.fill
    assert cams["colour"][3:] == f"{r:02x}{g:02x}{b:02x}", cams  # #aarrggbb
    # the town labels: from the label-point layer, the Chinese name field
    towns = catalog.require_role("town_boundaries")
    town_label = next(s for s in out["labels"] if s["name"] == f"{towns.id}-label")
    assert town_label["layer"] == f"{towns.id}.labels" and towns.style.label.field in town_label["field"]
    assert out["saved"]


def test_qgis_render_shows_the_catalog_colours_in_place(qgis, catalog, engine):
    img = Image.open(qgis["request"]["out_png"]).convert("RGB")
    assert img.size == (SIZE, SIZE)
    # cameras: the catalog's red at the cameras' own pixels (radius 2 px: look in a 3 px box)
    cam = _over_white(catalog.get("cameras").style.fill)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT ST_X(geom) AS x, ST_Y(geom) AS y FROM cim.cameras WHERE feature_key LIKE 'ftest-%' "
            "ORDER BY id LIMIT 40")).all()
    hits = 0
    for lon, lat in rows:
        px, py = _pixel(lon, lat)
        box = [img.getpixel((int(px) + dx, int(py) + dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
               if 0 <= int(px) + dx < SIZE and 0 <= int(py) + dy < SIZE]
        hits += any(_near(p, cam, 60) for p in box)
    assert hits >= 0.8 * len(rows), (hits, len(rows), cam)
    # away from every camera, no camera colour: the red is where the cameras are, not everywhere
    red = sum(1 for p in img.getdata() if _near(p, cam, 60))
    assert red < 0.15 * SIZE * SIZE, red
    # the towns' outline (the catalog's grey) on the boundary between the fixture's two towns (lon 121.345)
    towns = catalog.require_role("town_boundaries")
    line = _over_white(towns.style.line)
    bx, _ = _pixel(121.345, 31.015)
    column = [img.getpixel((x, y)) for y in range(40, SIZE - 40, 4) for x in (int(bx) - 1, int(bx), int(bx) + 1)]
    on_line = sum(1 for y in range(40, SIZE - 40, 4)
                  if any(_near(img.getpixel((x, y)), line, 45) for x in (int(bx) - 1, int(bx), int(bx) + 1)))
    assert on_line >= 0.6 * len(range(40, SIZE - 40, 4)), (on_line, column[:9], line)
    off_line = sum(1 for y in range(40, SIZE - 40, 4) if _near(img.getpixel((int(bx) + 60, y)), line, 20))
    assert off_line < 0.3 * len(range(40, SIZE - 40, 4)), off_line


def test_qgis_loads_the_style_from_its_url(qgis):
    by_url = qgis["out"]["style_url"]
    assert by_url["valid"] and by_url["loaded"], by_url
    assert by_url["styles"] == len(qgis["out"]["styles"]) and by_url.get("saved")
    assert not qgis["out"]["warnings"], qgis["out"]["warnings"]  # every layer, sprite and label converted


def test_qgis_reads_a_tile_features_and_attributes(qgis, engine):
    tile = qgis["out"]["tile"]
    assert tile["valid"], tile
    assert {"device_id", "camera_type", "count"} <= set(tile["fields"])
    # the service's own tile, decoded here: GDAL's MVT driver under QGIS clips to the tile (CLIP=YES), so the
    # features QGIS reads are those inside the tile, not those of its buffer
    served = mapbox_vector_tile.decode(httpx.get(qgis["request"]["tile_url"]).content)["cameras"]["features"]
    inside = [f for f in served if 0 <= f["geometry"]["coordinates"][0] <= 4096
              and 0 <= f["geometry"]["coordinates"][1] <= 4096]
    assert 0 < len(inside) < len(served)
    got = {(f["mvt_id"], f["device_id"], f["camera_type"]) for f in tile["features"]}
    want = {(f["id"], f["properties"]["device_id"], f["properties"]["camera_type"]) for f in inside}
    assert got == want, (got ^ want, [f for f in served if f["id"] in {g[0] for g in got ^ want}])
    # and those are the database's cameras in the tile (exact coordinates: ``&&`` compares rounded boxes; a
    # point within one tile unit of an edge may round onto the neighbour's side)
    z, x, y = qgis["request"]["tile"][2], qgis["request"]["tile"][0], qgis["request"]["tile"][1]
    b = WMQ.xy_bounds(x, y, z)
    unit = (b.right - b.left) / 4096

    def cameras(margin: float) -> set:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, device_id, camera_type FROM cim.cameras WHERE ST_X(geom_3857) BETWEEN :a - :m AND :c + :m "
                "AND ST_Y(geom_3857) BETWEEN :b - :m AND :d + :m"),
                {"a": b.left, "b": b.bottom, "c": b.right, "d": b.top, "m": margin}).all()
        return {(r.id, r.device_id, r.camera_type) for r in rows}

    assert cameras(-unit) <= got <= cameras(unit)
