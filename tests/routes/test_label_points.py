"""Label points in the multi-layer tiles (``labels=true``): a labelled polygon layer's features each have ONE
label point, inside the polygon, in exactly one tile of a zoom, with the label fields; the TileJSON declares it."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import pytest
import sqlalchemy as sa

from cim_service.tiles.labels import has_label_points, label_fields, label_layer_name
from tests.routes.conftest import AREA

WMQ = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def labelled(catalog):
    """The labelled polygon layers of the catalog (the fixture's towns among them)."""
    specs = [s for s in catalog if has_label_points(s)]
    assert specs, "no polygon layer declares style.label with placement: point"
    return specs


def _fixture_towns(engine, spec) -> dict[int, dict]:
    """id → name, name_en, interior point (Web Mercator) of the fixture's two towns."""
    zh, en = label_fields(spec)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT id, "{zh}" AS zh, "{en}" AS en, ST_X(ST_PointOnSurface(geom_3857)) AS x, '
            f"ST_Y(ST_PointOnSurface(geom_3857)) AS y FROM {spec.qualified_table} WHERE feature_key LIKE 'ftest-%'"
        )).mappings().all()
    assert len(rows) == 2
    return {r["id"]: dict(r) for r in rows}


def _labels(api, spec, z: int, x: int, y: int) -> list[dict]:
    r = api.get(f"/tiles/WebMercatorQuad/{z}/{x}/{y}.pbf", params={"collections": spec.id, "labels": "true"})
    assert r.status_code in (200, 204), r.text
    layers = mapbox_vector_tile.decode(r.content) if r.status_code == 200 else {}
    assert set(layers) <= {spec.id, label_layer_name(spec)}
    return layers.get(label_layer_name(spec), {}).get("features", [])


@pytest.mark.parametrize("z", [12, 14, 15])
def test_each_town_has_one_label_point_in_one_tile(api, engine, catalog, labelled, z):
    spec = catalog.require_role("town_boundaries")  # the fixture adds two towns spanning several tiles
    assert spec in labelled
    towns = _fixture_towns(engine, spec)
    zh, en = label_fields(spec)
    seen: dict[int, list[tuple]] = {}
    tiles = list(WMQ.tiles(*AREA, [z]))
    assert len(tiles) >= (4 if z >= 14 else 1)  # the fixture towns span several tiles at z14 and z15
    for t in tiles:
        bounds = WMQ.xy_bounds(t)
        for f in _labels(api, spec, t.z, t.x, t.y):
            assert f["geometry"]["type"] == "Point"
            px, py = f["geometry"]["coordinates"]
            assert 0 <= px <= 4096 and 0 <= py <= 4096  # inside the tile, never in its buffer
            if f["id"] in towns:
                # the MVT point (y up, 4096 units) is the polygon's interior point, to one tile unit
                x = bounds.left + px / 4096 * (bounds.right - bounds.left)
                y = bounds.bottom + py / 4096 * (bounds.top - bounds.bottom)
                unit = (bounds.right - bounds.left) / 4096
                want = towns[f["id"]]
                assert abs(x - want["x"]) <= unit and abs(y - want["y"]) <= unit, (f, want)
                assert f["properties"] == {zh: want["zh"], en: want["en"]}
                seen.setdefault(f["id"], []).append((t.x, t.y))
    assert {k: len(v) for k, v in seen.items()} == {k: 1 for k in towns}, seen


def test_features_layer_unchanged_and_labels_opt_in(api, labelled):
    spec = labelled[0]
    t = WMQ.tile((AREA[0] + AREA[2]) / 2, (AREA[1] + AREA[3]) / 2, 13)
    base = f"/tiles/WebMercatorQuad/13/{t.x}/{t.y}"
    plain = api.get(base, params={"collections": spec.id})
    with_labels = api.get(base, params={"collections": spec.id, "labels": "true"})
    assert set(mapbox_vector_tile.decode(plain.content)) == {spec.id}
    decoded = mapbox_vector_tile.decode(with_labels.content)
    assert set(decoded) == {spec.id, label_layer_name(spec)}
    assert decoded[spec.id] == mapbox_vector_tile.decode(plain.content)[spec.id]
    assert plain.headers["etag"] != with_labels.headers["etag"]
    # a point layer has no label-point layer (it is labelled at its points)
    cams = mapbox_vector_tile.decode(api.get(base, params={"collections": "cameras", "labels": "true"}).content)
    assert set(cams) == {"cameras"}
    bad = api.get(base, params={"collections": spec.id, "labels": "maybe"})
    assert bad.status_code == 400 and "labels" in bad.text
    at = api.get(base, params={"collections": spec.id, "labels": "true", "at": "2024-01-01"})
    assert at.status_code == 400 and "labels" in at.json()["description"]


def test_tilejson_declares_the_label_layers(api, labelled):
    doc = api.get("/tiles/WebMercatorQuad/tilejson.json", params={"labels": "true"}).json()
    layers = {v["id"]: v for v in doc["vector_layers"]}
    for spec in labelled:
        assert set(layers[label_layer_name(spec)]["fields"]) == set(label_fields(spec))
    assert "labels=true" in doc["tiles"][0]
    plain = api.get("/tiles/WebMercatorQuad/tilejson.json").json()
    assert not any(v["id"].endswith(".labels") for v in plain["vector_layers"])
