"""Indicators as of past days on the small demo equal an independent count (geopandas / shapely, not our SQL)."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd
import pytest

from cim_service.core.catalog import Role
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorEngine
from cim_service.store.db import make_engine

DAYS = [date(2014, 12, 31), date(2019, 6, 30), date(2020, 3, 1)]


@pytest.fixture(scope="module")
def demo(demo_database_url, catalog, tmp_path_factory):
    from pipelines.demo import load_demo

    eng = make_engine(demo_database_url)
    load_demo(eng, catalog, scale="small")  # no-op unless another test changed a layer
    settings = Settings(database_url=demo_database_url, environment="test", home=tmp_path_factory.mktemp("h"))
    yield eng, IndicatorEngine(eng, catalog, settings)
    eng.dispose()


def _read(eng, catalog, layer_id: str, columns: str) -> gpd.GeoDataFrame:
    table = catalog.get(layer_id).qualified_table
    with eng.connect() as conn:
        return gpd.read_postgis(f"SELECT {columns}, geom FROM {table}", conn, geom_col="geom")


def _count_by_town(points: gpd.GeoDataFrame, towns: gpd.GeoDataFrame, district) -> dict[str | None, int]:
    """Points per town (a point on a shared border goes to the first town by name) and inside the district."""
    joined = gpd.sjoin(points, towns[["name", "geom"]], predicate="intersects", how="inner")
    first = joined.reset_index().groupby("index")["name"].min()
    out: dict[str | None, int] = first.value_counts().to_dict()
    out[None] = int(points.geometry.intersects(district).sum())
    return out


@pytest.mark.parametrize("indicator_id, layer_id, day_field, where", [
    ("cameras_total", "cameras", "installed_at", None),
    ("g5_stations", "base_stations", "built_at", ("technology", "5G")),
])
def test_as_of_equals_an_independent_count(demo, catalog, indicator_id, layer_id, day_field, where):
    eng, ind = demo
    towns = _read(eng, catalog, catalog.require_role(Role.town_boundaries).id, "name")
    district = _read(eng, catalog, catalog.require_role(Role.district_outline).id, "1 AS one").union_all()
    points = _read(eng, catalog, layer_id, f'"{day_field}" AS day' + (f', "{where[0]}" AS w' if where else ""))
    if where:
        points = points[points.w == where[1]]
    seen = set()
    for day in DAYS:
        dated = points[points.day.isna() | (pd.to_datetime(points.day) <= pd.Timestamp(day))]
        want = _count_by_town(dated, towns, district)
        r = ind.results([indicator_id], at=day)[0]
        got = {t["town"]: t["value"] for t in r["towns"]}
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if k is not None}, day
        assert r["value"] == pytest.approx(want[None], abs=2), day  # district: the loader's outside flag
        seen.add(r["value"])
    assert len(seen) == len(DAYS)  # the days differ: the count grows
