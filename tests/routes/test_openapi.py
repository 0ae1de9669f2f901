"""The OpenAPI document: valid OpenAPI 3.0.3 served as such, limits, enums, per-collection paths with the
queryables as parameters; and what real clients make of it (GDAL's OAPIF driver: request counts from the
service's access log)."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from cim_service.features.crs import CRS_LIST
from tests.routes.conftest import db_count
from tests.routes.serving import cim_serve

OGR2OGR = "/usr/bin/ogr2ogr"
LOGS: dict[str, Path] = {}


def test_document_is_valid_openapi_30_with_its_media_type(api, settings):
    r = api.get("/api")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.oai.openapi+json;version=3.0"
    doc = r.json()
    assert doc["openapi"] == "3.0.3"
    validate(doc)  # raises on anything 3.0 does not allow (anyOf null, numeric exclusiveMinimum, ...)
    landing = api.get("/").json()
    desc = next(link for link in landing["links"] if link["rel"] == "service-desc")
    assert desc["type"] == r.headers["content-type"]


def _params(doc: dict, path: str) -> dict[str, dict]:
    out = {}
    for p in doc["paths"][path]["get"]["parameters"]:
        if "$ref" in p:
            p = doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]]
        out[p["name"]] = p
    return out


def test_limit_default_maximum_and_enums(api, settings):
    doc = api.get("/api").json()
    items = _params(doc, "/collections/{collectionId}/items")
    assert doc["components"]["parameters"]["limit"]["schema"]["maximum"] == settings.max_limit  # QGIS reads this
    assert items["limit"]["schema"]["default"] == settings.default_limit
    assert items["limit"]["schema"]["maximum"] == settings.max_limit
    assert items["limit"]["schema"]["minimum"] == 1
    assert items["f"]["schema"]["enum"] == ["json", "html", "csv"]
    assert items["filter-lang"]["schema"]["enum"] == ["cql2-text", "cql2-json"]
    for name in ("crs", "bbox-crs", "filter-crs"):
        assert items[name]["schema"]["enum"] == CRS_LIST
    for value in items["crs"]["schema"]["enum"]:  # every value the document offers is accepted
        assert api.get("/collections/cameras/items", params={"limit": 1, "crs": value}).status_code == 200
    assert _params(doc, "/collections/{collectionId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}")["f"]["schema"][
        "enum"] == ["mvt", "pbf"]
    assert all(p["schema"].get("nullable") is None for p in items.values())  # query values are never null


def test_per_collection_paths_with_queryables_as_parameters(api, catalog):
    doc = api.get("/api").json()
    public = {s.id for s in catalog if s.access.value == "public"}
    listed = {p.split("/")[2] for p in doc["paths"] if p.startswith("/collections/") and "{collectionId}" not in p}
    assert listed == public  # internal and restricted layers are not revealed
    cameras = _params(doc, "/collections/cameras/items")
    assert "collectionId" not in cameras and cameras["limit"]["schema"]["maximum"] > 0
    spec = catalog.get("cameras")
    for field in spec.public_fields(personal_data=False):
        assert field.name in cameras, field.name
    assert cameras["camera_type"]["schema"]["enum"] == list(spec.field("camera_type").enum)
    people = catalog.get("people")
    assert f"/collections/{people.id}/items" not in doc["paths"]
    # a queryable parameter really filters on the server
    r = api.get("/collections/cameras/items", params={"camera_type": "dome", "limit": 50})
    assert r.status_code == 200 and {f["properties"]["camera_type"] for f in r.json()["features"]} == {"dome"}


@pytest.fixture(scope="module")
def server(settings, features_data, tmp_path_factory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("serve-openapi")
    with cim_serve(settings.database_url, settings.home, logs, workers=1) as url:
        LOGS["stdout"] = logs / "stdout.log"
        yield url


def _item_requests_since(mark: int) -> list[dict]:
    lines = LOGS["stdout"].read_text().splitlines()[mark:]
    return [r for r in (json.loads(ln) for ln in lines if ln.startswith("{"))
            if r.get("path") == "/collections/cameras/items"]


def _mark() -> int:
    return len(LOGS["stdout"].read_text().splitlines())


def _ogr2ogr(server: str, out: Path, *args: str) -> None:
    res = subprocess.run([OGR2OGR, "-f", "GeoJSON", str(out), f"OAPIF:{server}", "cameras", *args],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def _features(path: Path) -> int:
    return len(json.loads(path.read_text())["features"])


def test_gdal_filters_on_the_server_and_pages_by_the_page_size(server, engine, tmp_path):
    """GDAL 3.6 sends an attribute filter as the collection's query parameter (declared in the document),
    so only the matching features travel: one request for the schema, then ceil(matched / page size)."""
    total = db_count(engine, "SELECT count(*) FROM cim.cameras")
    dome = db_count(engine, "SELECT count(*) FROM cim.cameras WHERE camera_type = 'dome'")
    assert 0 < dome < total
    page = 500
    mark = _mark()
    out = tmp_path / "dome.geojson"
    _ogr2ogr(server, out, "-where", "camera_type = 'dome'", "-oo", f"PAGE_SIZE={page}")
    assert _features(out) == dome
    requests = _item_requests_since(mark)
    assert len(requests) == 1 + math.ceil(dome / page), len(requests)  # client-side: 1 + ceil(total / page)
    assert all(r["status"] == 200 for r in requests)

    mark = _mark()
    out = tmp_path / "all.geojson"
    _ogr2ogr(server, out, "-oo", "PAGE_SIZE=10000")  # the document's maximum
    assert _features(out) == total
    assert len(_item_requests_since(mark)) == 1 + math.ceil(total / 10000)


def test_gdal_36_pages_at_a_limit_given_in_the_collection_url(server, engine, tmp_path):
    """GDAL 3.6 reads no page size from the service (it never fetches /api; 10 a page: 1,879 requests for the
    demo's 18,778 cameras) but appends the query of the URL it was given to each request: with
    ``OAPIF:…/collections/cameras?limit=10000`` it asks ``items?limit=10&limit=10000``, the last ``limit`` counts
    here, and the next links carry it: 1 + ceil(total / 10,000) requests, like ``-oo PAGE_SIZE=10000``."""
    total = db_count(engine, "SELECT count(*) FROM cim.cameras")
    mark = _mark()
    out = tmp_path / "url.geojson"
    res = subprocess.run([OGR2OGR, "-f", "GeoJSON", str(out), f"OAPIF:{server}/collections/cameras?limit=10000"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert _features(out) == total
    requests = _item_requests_since(mark)
    assert len(requests) == 1 + math.ceil(total / 10000), len(requests)
    assert all(r["status"] == 200 for r in requests)


def test_the_last_of_repeated_limits_counts_and_travels_in_the_next_link(api):
    r = api.get("/collections/cameras/items?limit=2&limit=3")
    assert r.status_code == 200 and len(r.json()["features"]) == 3
    nxt = next(link["href"] for link in r.json()["links"] if link["rel"] == "next")
    assert "limit=3" in nxt and "limit=2" not in nxt
