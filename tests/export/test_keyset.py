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
