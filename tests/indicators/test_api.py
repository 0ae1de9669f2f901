"""The /indicators API on the hand-case database: JSON, CSV, per town, 404s, freshness, suggestions."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.settings import Settings


@pytest.fixture
def client(hand, hand_url, tmp_path, put, sq):
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 1000), name="乙镇")
    for i, (x, y) in enumerate([(100, 100), (900, 100), (500, 500), (100, 900), (1500, 500)]):
        put("cameras", f"POINT({x} {y})", device_id=f"{i:020d}", camera_type="dome")
    put("charging_stations", "POINT(1000 500)", station_id="c1")
    settings = Settings(database_url=hand_url, environment="test", home=tmp_path)
    with TestClient(create_app(settings)) as c:
        yield c


def test_list_json_and_one_indicator(client):
    r = client.get("/indicators")
    assert r.status_code == 200
    body = r.json()
    ids = [i["id"] for i in body["indicators"]]
    assert "camera_density" in ids and "charging_area_coverage" in ids and len(ids) >= 14
    one = client.get("/indicators/camera_density").json()
    for key in ("id", "name_zh", "name_en", "unit", "target", "value", "status", "gap", "towns", "baseline",
                "binding", "computed_at", "inputs"):
        assert key in one
    assert one["value"] == pytest.approx(2.5, rel=1e-6)  # 5 cameras / 2 km²
    assert {t["town"]: t["value"] for t in one["towns"]} == pytest.approx({"甲镇": 4.0, "乙镇": 1.0}, rel=1e-6)
    assert one["binding"] == "expected" and one["baseline"] == 50.47
    assert one["inputs"]["cameras"] >= 5


def test_town_selection_and_404s(client):
    r = client.get("/indicators/camera_density", params={"town": "乙镇"})
    assert r.status_code == 200 and r.json()["area"] == "乙镇" and r.json()["value"] == pytest.approx(1.0)
    assert [t["town"] for t in r.json()["towns"]] == ["乙镇"] and r.json()["district_value"] == pytest.approx(2.5)
    assert "乙镇 needs 179 more cameras" in r.json()["gap"]
    r = client.get("/indicators/nope")
    assert r.status_code == 404 and "unknown indicator 'nope'" in r.json()["description"]
    r = client.get("/indicators/camera_density", params={"town": "火星镇"})
    assert r.status_code == 404 and "unknown town '火星镇'" in r.json()["description"]
    assert "甲镇" in r.json()["description"]
    assert client.get("/indicators", params={"f": "xml"}).status_code == 400


def test_csv(client):
    r = client.get("/indicators", params={"f": "csv", "town": "甲镇"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["area"] for row in rows} == {"甲镇"}
    density = next(row for row in rows if row["id"] == "camera_density")
    assert float(density["value"]) == pytest.approx(4.0) and density["status"] == "not_met"


def test_results_follow_new_data(client, put):
    before = client.get("/indicators/cameras_total").json()
    assert before["value"] == 5
    put("cameras", "POINT(600 600)", device_id="9" * 20, camera_type="dome")
    after = client.get("/indicators/cameras_total").json()
    assert after["value"] == 6 and after["inputs"]["cameras"] == before["inputs"]["cameras"] + 1
    again = client.get("/indicators/cameras_total").json()
    assert again["computed_at"] == after["computed_at"]  # fresh: served, not recomputed


def test_suggestions(client):
    r = client.get("/indicators/charging_area_coverage/suggestions", params={"n": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "charging" and body["type"] == "FeatureCollection"
    r = client.get("/indicators/camera_density/suggestions", params={"n": 3})
    feats = r.json()["features"]
    assert len(feats) == 3 and feats[0]["properties"]["rank"] == 1
    assert feats[0]["properties"]["devices"] >= feats[1]["properties"]["devices"]
    assert client.get("/indicators/bus_esign_coverage/suggestions").status_code == 404


def test_gap_outputs_refresh_after_new_data(client, put):
    body = client.get("/indicators/gaps").json()
    assert set(body["layers"]) == {"gap_camera_hex", "gap_charging", "gap_5g", "gap_unsensored_sites",
                                   "suggested_sites"}
    hexes = body["outputs"]["gap_camera_hex"]
    assert hexes["features"] >= 2 and body["outputs"]["camera_density_raster"]["path"].endswith("camera_density.tif")
    again = client.get("/indicators/gaps").json()["outputs"]["gap_camera_hex"]
    assert again["computed_at"] == hexes["computed_at"]
    put("cameras", "POINT(700 700)", device_id="8" * 20, camera_type="dome")
    after = client.get("/indicators/gaps").json()["outputs"]["gap_camera_hex"]
    assert after["computed_at"] != hexes["computed_at"]
    assert after["inputs"]["cameras"] == hexes["inputs"]["cameras"] + 1
