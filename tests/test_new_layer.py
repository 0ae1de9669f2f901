"""A new point layer is one YAML file: copied from an existing one with a new id and table, it is migrated,
ingested, listed in /collections, served as tiles and shown on /map, with no code change."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.settings import PROJECT_ROOT, Settings

NEW = "parcel_lockers"
POINTS = [(121.3810 + i * 0.0004, 31.1130 + (i % 3) * 0.0003) for i in range(6)]


@pytest.fixture(scope="module")
def new_layer(tmp_path_factory, throwaway_database):
    """A catalog folder of its own: the project's layers plus ``parcel_lockers`` copied from ``smart_lockers``."""
    folder = tmp_path_factory.mktemp("layers-plus-one")
    for path in (PROJECT_ROOT / "layers").glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    text = (PROJECT_ROOT / "layers" / "smart_lockers.yaml").read_text(encoding="utf-8")
    text = re.sub(r"^id: smart_lockers$", f"id: {NEW}", text, flags=re.M)
    text = re.sub(r"^table: smart_lockers$", f"table: {NEW}", text, flags=re.M)
    (folder / f"{NEW}.yaml").write_text(text, encoding="utf-8")
    csv = tmp_path_factory.mktemp("new-layer-data") / "lockers.csv"
    csv.write_text("locker_id,operator,installed_at,lon,lat\n" + "".join(
        f"PL-{i:03d},丰巢,2024-0{1 + i % 9}-15,{x:.6f},{y:.6f}\n" for i, (x, y) in enumerate(POINTS)), encoding="utf-8")
    with throwaway_database("newlayer") as url:
        yield folder, csv, url


def _cim(url: str, folder, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "CIM_DATABASE_URL": url,
           "CIM_LAYERS_DIR": str(folder), "CIM_ENVIRONMENT": "test", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cim_service", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=PROJECT_ROOT)


def test_a_yaml_file_is_a_new_layer_end_to_end(new_layer, tmp_path):
    folder, csv, url = new_layer
    migrated = _cim(url, folder, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "1 tables created" in migrated.stdout
    ingested = _cim(url, folder, "ingest", NEW, str(csv), "--crs", "wgs84")
    assert ingested.returncode == 0, ingested.stderr
    assert re.search(r"inserted\W+6\b", ingested.stdout), ingested.stdout

    settings = Settings(database_url=url, layers_dir=folder, environment="test", home=tmp_path, gap_refresh=False)
    with TestClient(create_app(settings)) as client:
        listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
        assert NEW in listed and listed[NEW]["featureCount"] == 6
        items = client.get(f"/collections/{NEW}/items", params={"limit": 50}).json()
        assert sorted(f["properties"]["locker_id"] for f in items["features"]) == [f"PL-{i:03d}" for i in range(6)]

        tile = morecantile.tms.get("WebMercatorQuad").tile(*POINTS[0], 16)
        r = client.get(f"/collections/{NEW}/tiles/WebMercatorQuad/16/{tile.x}/{tile.y}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        features = mapbox_vector_tile.decode(r.content)[NEW]["features"]
        assert {f["properties"]["locker_id"] for f in features} >= {"PL-000"}

        page = client.get("/map").text
        config = json.loads(re.search(r"window\.CIM_CONFIG = (\{.*?\});</script>", page, re.S).group(1))
        assert NEW in [layer["id"] for layer in config["layers"]]
        deck_layers = {layer["id"]: layer for layer in config["deck"]["layers"]}
        assert deck_layers[NEW]["@@type"] == "MVTLayer"
        assert deck_layers[NEW]["data"] == f"/collections/{NEW}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"
