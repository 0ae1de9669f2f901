"""Ingest every real file of ../shared/data with the CRS its README gives, and check the result on PostGIS.

The module has its own throwaway database (on the session's server): the district outline loaded here
decides the ``outside_district`` flags, and no other test may replace it meanwhile.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer

from cim_service.core.crs import gcj02_to_wgs84, transform_geometry
from pipelines.ingest import IngestError, ingest_file
from pipelines.readers import read_vector

UTM51 = Transformer.from_crs(4326, 32651, always_xy=True)


@pytest.fixture(scope="module")
def district(db, catalog, shared_data):
    """The real district outline (GCJ-02), loaded first: it decides the outside-district flags."""
    return ingest_file(db, catalog, "district", shared_data / "boundaries/minhang_district_gcj02.geojson",
                       crs="gcj02")


def _q(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def _utm(geom):
    return shapely.transform(geom, lambda c: np.column_stack(UTM51.transform(c[:, 0], c[:, 1])))


def _mean_boundary_distance(geom, other) -> float:
    """Mean distance (m) from 2,000 points along ``geom``'s boundary to ``other``'s boundary."""
    b = _utm(geom).boundary
    pts = shapely.line_interpolate_point(b, np.linspace(0, b.length, 2000))
    return float(shapely.distance(pts, _utm(other).boundary).mean())


def test_district_outline_is_converted_from_gcj02(db, district, shared_data):
    assert (district.status, district.inserted) == ("committed", 1)
    area_km2 = _q(db, "SELECT ST_Area(geom::geography) / 1e6 FROM cim.district")[0][0]
    assert area_km2 == pytest.approx(372, abs=2)
    stored = shapely.from_wkb(_q(db, "SELECT ST_AsBinary(geom) FROM cim.district")[0][0])
    towns = pyogrio.read_dataframe(shared_data / "boundaries/minhang_townships_wgs84.geojson")
    union = shapely.union_all(towns.geometry.values)
    raw = pyogrio.read_dataframe(shared_data / "boundaries/minhang_district_gcj02.geojson").geometry.iloc[0]
    converted_off = _mean_boundary_distance(stored, union)
    raw_off = _mean_boundary_distance(raw, union)
    assert converted_off < 50, converted_off  # measured ≈ 26 m: two independent sources agree
    assert raw_off > 200, raw_off  # unconverted: ≈265 m (the ≈490 m shift, partly along the boundary)
    assert shapely.equals_exact(stored, transform_geometry(shapely.MultiPolygon([*raw.geoms]), "gcj02"), 1e-9)


def test_towns_load_and_a_rerun_changes_nothing(db, catalog, shared_data):
    path = shared_data / "boundaries/minhang_townships_wgs84.geojson"
    first = ingest_file(db, catalog, "towns", path, crs="wgs84")
    assert first.rows_read == 13 and first.inserted + first.unchanged == 13 and first.rejected == 0
    names = {r[0] for r in _q(db, "SELECT name FROM cim.towns")}
    assert {"莘庄镇", "七宝镇", "古美街道", "莘庄工业区"} <= names and len(names) == 13
    version = _q(db, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'towns'")[0][0]
    batches = _q(db, "SELECT count(*) FROM cim_meta.ingest_batch")[0][0]
    again = ingest_file(db, catalog, "towns", path, crs="wgs84")
    assert again.status == "unchanged" and again.batch_id == first.batch_id
    assert _q(db, "SELECT version FROM cim_meta.layer_state WHERE layer_id = 'towns'")[0][0] == version
    assert _q(db, "SELECT count(*) FROM cim_meta.ingest_batch")[0][0] == batches


def test_shapefile_without_prj_and_dbf_needs_a_crs_then_loads(db, catalog, district, shared_data):
    """251 attribute-less polygons: refused without --crs, loaded with it into `shanghai_townships`."""
    path = shared_data / "boundaries/shanghai_townships_noattrs.shp"
    src = read_vector(path, "shapefile")
    assert len(src.frame) == 251 and not src.has_prj and src.declared_crs is None
    assert list(src.frame.columns) == [src.frame.geometry.name]  # no attributes
    before = _q(db, "SELECT count(*) FROM cim_meta.ingest_batch")[0][0]
    with pytest.raises(IngestError, match=r"shanghai_townships_noattrs\.shp: .*no \.prj.*--crs"):
        ingest_file(db, catalog, "shanghai_townships", path)
    with pytest.raises(IngestError, match="required field.*name"):
        ingest_file(db, catalog, "towns", path, crs="wgs84")
    assert _q(db, "SELECT count(*) FROM cim_meta.ingest_batch")[0][0] == before

    result = ingest_file(db, catalog, "shanghai_townships", path, crs="wgs84")
    assert result.status == "committed" and result.rejected == 0
    assert result.inserted == 251 - result.duplicates
    (n, valid, area_km2), = _q(db, """SELECT count(*), bool_and(ST_IsValid(geom)),
                                    sum(ST_Area(geom::geography)) / 1e6 FROM cim.shanghai_townships""")
    assert n == result.inserted and valid
    assert 6000 < area_km2 < 7000  # Shanghai's land area is about 6,340 km²
    # the townships lying mostly inside the converted Minhang outline cover it to within a few per cent
    (covered,) = _q(db, """
        WITH d AS (SELECT ST_Union(geom) g FROM cim.district),
             t AS (SELECT ST_Union(s.geom) g FROM cim.shanghai_townships s, d
                    WHERE ST_Area(ST_Intersection(s.geom, d.g)) > 0.5 * ST_Area(s.geom))
        SELECT ST_Area(ST_Intersection(t.g, d.g)::geography) / ST_Area(d.g::geography) FROM t, d""")[0]
    assert covered > 0.95
    assert ingest_file(db, catalog, "shanghai_townships", path, crs="wgs84").status == "unchanged"


def test_addresses_are_parsed_deduplicated_and_flagged(db, catalog, district, shared_data):
    path = shared_data / "addresses/minhang_addresses_gcj02.csv"
    result = ingest_file(db, catalog, "addresses", path, crs="gcj02")
    assert result.rows_read == 1748
    assert result.duplicates > 0 and result.inserted + result.duplicates + result.rejected == 1748
    count, codes, levels, towns = _q(db, "SELECT count(*), count(DISTINCT address_code), count(parse_level), "
                                         "count(town) FROM cim.addresses")[0]
    assert count == codes == result.inserted and levels == count and towns == count
    assert _q(db, "SELECT count(*) FROM cim.addresses WHERE address_code !~ '^[0-9a-z]{9,40}$'")[0][0] == 0
    by_level = dict(_q(db, "SELECT parse_level, count(*) FROM cim.addresses GROUP BY 1"))
    assert by_level.get("lane", 0) + by_level.get("number", 0) > count / 2
    # outside points are flagged (kept), and the flag agrees with the stored outline
    assert result.outside > 0
    disagree = _q(db, "SELECT count(*) FROM cim.addresses a, cim.district d "
                      "WHERE a.outside_district = ST_Intersects(a.geom, d.geom)")[0][0]
    assert disagree == 0
    # coordinates were converted from GCJ-02: compare one row with the file
    frame = pd.read_csv(path, dtype=str)
    row = frame.iloc[0]
    want = gcj02_to_wgs84(float(row.lng), float(row.lat))
    got = _q(db, "SELECT ST_X(geom), ST_Y(geom) FROM cim.addresses WHERE full_address LIKE :t",
             t=f"%{row.address}%")[0]
    assert got == pytest.approx((float(want[0]), float(want[1])), abs=1e-7)


def test_base_stations_need_the_stated_crs(db, catalog, district, shared_data):
    path = shared_data / "basestations/shanghai_telecom_2014_base_stations.csv"
    result = ingest_file(db, catalog, "base_stations", path, crs="gcj02")
    assert result.rows_read == 3042
    assert result.rejected > 0 and result.inserted + result.rejected == 3042
    reasons = _q(db, "SELECT DISTINCT reason LIKE '%far outside Shanghai%' FROM cim_meta.ingest_reject "
                     "WHERE batch_id = :b", b=result.batch_id)
    assert reasons == [(True,)]
    tech = _q(db, "SELECT DISTINCT technology FROM cim.base_stations")
    assert tech == [("unknown",)]
    assert _q(db, "SELECT source_crs FROM cim_meta.ingest_batch WHERE id = :b", b=result.batch_id) == [("GCJ02",)]
    assert 0 < result.outside < result.inserted  # Shanghai-wide: most stations are outside Minhang


def test_metro_stations_aggregate_lines(db, catalog, district, shared_data):
    path = shared_data / "metro/shanghai_metro_stations_gcj02.csv"
    result = ingest_file(db, catalog, "metro_stations", path, crs="gcj02")
    assert (result.rows_read, result.inserted + result.unchanged, result.rejected) == (478, 345, 0)
    assert _q(db, "SELECT count(*) FROM cim.metro_stations")[0][0] == 345
    xinzhuang = _q(db, "SELECT lines, outside_district, ST_X(geom), ST_Y(geom) FROM cim.metro_stations "
                       "WHERE name = '莘庄'")[0]
    assert xinzhuang[0] == "1号线,5号线" and xinzhuang[1] is False
    want = gcj02_to_wgs84(121.385373, 31.111152)
    assert xinzhuang[2:] == pytest.approx((float(want[0]), float(want[1])), abs=1e-7)
    assert _q(db, "SELECT outside_district FROM cim.metro_stations WHERE name = '人民广场'") == [(True,)]
    assert _q(db, "SELECT lines FROM cim.metro_stations WHERE name = '人民广场'") == [("1号线,2号线,8号线",)]
