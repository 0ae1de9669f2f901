"""Keyset paging: following ``next`` links visits every matched feature exactly once, in order, for the default
order and for sort keys with NULLs and mixed directions; cursors are validated; offset paging still works."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa


def walk(api, layer: str, headers: dict | None = None, **params) -> tuple[list[dict], list[str]]:
    """Follow next links from the first page; return the features and the next URLs."""
    url, query = f"/collections/{layer}/items", dict(params)
    features, nexts = [], []
    for _ in range(10_000):
        r = api.get(url, params=query, headers=headers or {})
        assert r.status_code == 200, r.text
        doc = r.json()
        features += doc["features"]
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        if not nxt:
            return features, nexts
        nexts.append(nxt[0])
        parts = urlsplit(nxt[0])
        url, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
    raise AssertionError("paging did not end")


def ids_in_db(engine, table: str, order: str, where: str = "TRUE") -> list[int]:
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(sa.text(f"SELECT id FROM {table} WHERE {where} ORDER BY {order}"))
                .scalars()]


def test_default_order_visits_every_feature_once(api, engine):
    features, nexts = walk(api, "cameras", limit=97)
    ids = [f["id"] for f in features]
    assert ids == ids_in_db(engine, "cim.cameras", "id")
    assert nexts and all("cursor=" in n and "offset=" not in n for n in nexts)


@pytest.fixture(scope="module")
def null_dates(engine):
    """Some cameras without an installation date (NULL sort keys), restored afterwards."""
    with engine.begin() as conn:
        saved = conn.execute(sa.text("SELECT id, installed_at FROM cim.cameras WHERE id % 7 = 0")).mappings().all()
        conn.execute(sa.text("UPDATE cim.cameras SET installed_at = NULL WHERE id % 7 = 0"))
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cim.cameras SET installed_at = :installed_at WHERE id = :id"),
                     [dict(r) for r in saved])


@pytest.mark.parametrize("sortby,order", [
    ("installed_at", "installed_at ASC NULLS LAST, id"),
    ("-installed_at", "installed_at DESC NULLS FIRST, id"),
    ("camera_type,-direction_deg", "camera_type, direction_deg DESC, id"),
    ("-owner,installed_at", "owner DESC, installed_at, id"),
])
def test_sort_keys_with_nulls_and_directions(api, engine, null_dates, sortby, order):
    assert ids_in_db(engine, "cim.cameras", "id", "installed_at IS NULL")  # NULLs in the sort keys, and ties
    features, _ = walk(api, "cameras", limit=113, sortby=sortby, properties="camera_type")
    assert [f["id"] for f in features] == ids_in_db(engine, "cim.cameras", order)


def test_keyset_with_a_filter_and_number_matched(api, engine):
    where = "camera_type = 'ptz'"
    features, nexts = walk(api, "cameras", limit=50, filter=where)
    assert [f["id"] for f in features] == ids_in_db(engine, "cim.cameras", "id", where)
    r = api.get(urlsplit(nexts[0]).path + "?" + urlsplit(nexts[0]).query)
    assert r.json()["numberMatched"] == len(features)  # the whole match, not what is after the cursor


def test_cursor_of_another_sort_order_or_forged_is_400(api):
    r = api.get("/collections/cameras/items", params={"limit": 5})
    nxt = next(link["href"] for link in r.json()["links"] if link["rel"] == "next")
    cursor = parse_qs(urlsplit(nxt).query)["cursor"][0]
    r = api.get("/collections/cameras/items", params={"cursor": cursor, "sortby": "-id"})
    assert r.status_code == 400 and "sortby" in r.json()["description"]
    for bad in ("e30", "x" * 5000, "eyJvIjpbIitpZCJdLCJ2IjpbIjsgRFJPUCJdfQ"):  # {}, too long, id "; DROP"
        r = api.get("/collections/cameras/items", params={"cursor": bad})
        assert r.status_code == 400 and "'cursor'" in r.json()["description"], bad


def test_offset_paging_still_works(api, engine):
    r = api.get("/collections/cameras/items", params={"limit": 10, "offset": 20})
    assert [f["id"] for f in r.json()["features"]] == ids_in_db(engine, "cim.cameras", "id")[20:30]
    rels = {link["rel"] for link in r.json()["links"]}
    assert {"next", "prev"} <= rels


def test_export_from_a_cursor(api, engine):
    r = api.get("/collections/cameras/items", params={"limit": 100})
    nxt = next(link["href"] for link in r.json()["links"] if link["rel"] == "next")
    cursor = parse_qs(urlsplit(nxt).query)["cursor"][0]
    r = api.get("/collections/cameras/items", params={"f": "geojsonseq", "cursor": cursor, "limit": 250})
    import json

    ids = [json.loads(t)["id"] for t in r.content.split(b"\x1e")[1:]]
    assert ids == ids_in_db(engine, "cim.cameras", "id")[100:350]


@pytest.fixture(scope="module")
def small_batches(settings, demo_database_url):
    """The service with exports read 100 features a COPY: every export below spans many keyset batches."""
    from fastapi.testclient import TestClient

    from cim_service.app import create_app

    with TestClient(create_app(settings.model_copy(update={"export_batch_rows": 100}))) as client:
        yield client


@pytest.mark.parametrize("sortby,order", [
    (None, "id"),
    ("-installed_at", "installed_at DESC NULLS FIRST, id"),
    ("-owner,installed_at", "owner DESC, installed_at, id"),
])
def test_exports_read_batch_after_batch_by_keyset(small_batches, engine, null_dates, sortby, order, tmp_path):
    """Batches of 100 follow each other after the last sort key (NULLs, ties, mixed directions): every feature
    once, in the order asked, in the record formats and the columnar ones; limit and offset still hold."""
    import json

    import pyarrow.parquet as pq

    params = {"properties": "camera_type,installed_at", **({"sortby": sortby} if sortby else {})}
    want = ids_in_db(engine, "cim.cameras", order)
    assert len(want) > 300
    seq = small_batches.get("/collections/cameras/items", params={"f": "geojsonseq", **params})
    assert seq.status_code == 200 and seq.content.count(b"\x1e") == len(want)
    assert [json.loads(t)["id"] for t in seq.content.split(b"\x1e")[1:]] == want
    parquet = small_batches.get("/collections/cameras/items", params={"f": "parquet", **params})
    (tmp_path / "c.parquet").write_bytes(parquet.content)
    table = pq.read_table(tmp_path / "c.parquet")
    assert table.column("id").to_pylist() == want
    assert pq.ParquetFile(tmp_path / "c.parquet").metadata.num_row_groups == -(-len(want) // 100)
    part = small_batches.get("/collections/cameras/items",
                             params={"f": "geojsonseq", "limit": 250, "offset": 30, **params})
    assert [json.loads(t)["id"] for t in part.content.split(b"\x1e")[1:]] == want[30:280]


def test_export_values_survive_the_csv_path(small_batches, engine, tmp_path):
    """Text with commas, quotes and newlines, empty text and NULL, and dates come out of COPY as stored."""
    import pyarrow.parquet as pq

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, owner, installed_at FROM cim.cameras ORDER BY id LIMIT 3")).all()
    values = ['闵行, "公安"\n第二行', "", None]
    with engine.begin() as conn:
        for row, value in zip(rows, values, strict=True):
            conn.execute(sa.text("UPDATE cim.cameras SET owner = :o WHERE id = :i"), {"o": value, "i": row.id})
    try:
        r = small_batches.get("/collections/cameras/items",
                              params={"f": "parquet", "limit": 3, "properties": "owner,installed_at"})
        (tmp_path / "v.parquet").write_bytes(r.content)
        got = pq.read_table(tmp_path / "v.parquet").to_pylist()
        assert [g["owner"] for g in got] == values
        assert [g["installed_at"] for g in got] == [row.installed_at for row in rows]
    finally:
        with engine.begin() as conn:
            for row in rows:
                conn.execute(sa.text("UPDATE cim.cameras SET owner = :o WHERE id = :i"), {"o": row.owner, "i": row.id})


def test_timestamps_booleans_and_json_parse_from_copy_csv(catalog):
    """COPY's CSV of a timestamp (UTC wall time), a JSON value and a point become the file's typed columns."""
    from datetime import UTC, datetime

    import shapely

    from cim_service.features import export
    from cim_service.features.crs import resolve_crs

    spec = next(s for s in catalog if any(f.type.value == "timestamp" for f in s.fields))
    stamp = next(f for f in spec.fields if f.type.value == "timestamp")
    plan = export.ExportPlan(spec=spec, fmt=export.FORMATS["parquet"], properties=[stamp], crs=resolve_crs(None, "crs"),
                             order=[('"id"', True)], limit=10, offset=0, refuse_above_limit=False)
    point = shapely.to_wkb(shapely.Point(121.4, 31.1), hex=True).lower()
    data = f"7,2026-05-01 08:30:00.123456,{point},7\n8,,{point},8\n".encode()
    batch, last = export._csv_batch(plan, data)
    assert batch.rows == 2 and last == ["8"]
    table = export._arrow_table(plan, batch, bbox_column=True).to_pylist()
    assert table[0][stamp.name] == datetime(2026, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)
    assert table[1][stamp.name] is None
    assert shapely.from_wkb(table[0]["geometry"]).equals(shapely.Point(121.4, 31.1))
    assert table[0]["bbox"] == {"xmin": 121.4, "ymin": 31.1, "xmax": 121.4, "ymax": 31.1}
