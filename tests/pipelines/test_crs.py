"""Tests for cim_service.core.crs: GCJ-02 / BD-09 maths, pyproj dispatch, CRS parsing and geometries."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, Polygon

from cim_service.core.crs import (
    SOURCE_CRS_ALIASES,
    UnknownCRSError,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    parse_crs,
    to_wgs84,
    transform_coords,
    transform_geometry,
    transform_geoseries,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance in metres between two coordinate arrays."""
    lon1, lat1, lon2, lat2 = np.broadcast_arrays(lon1, lat1, lon2, lat2)
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


# ------------------------------------------------------------------------------------------------
# Published vectors
# ------------------------------------------------------------------------------------------------

# googollee/eviltransform python/test.py (also go/transform_test.go, c/test.c), stored as
# (wgsLat, wgsLng, gcjLat, gcjLng); asserted there to 1e-6, here to 1e-9 degrees.
EVILTRANSFORM_WGS_GCJ = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # beijing
]


@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), EVILTRANSFORM_WGS_GCJ)
def test_wgs84_to_gcj02_eviltransform_vectors(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    lon, lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert lon == pytest.approx(gcj_lon, abs=1e-9)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)


@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), EVILTRANSFORM_WGS_GCJ)
def test_gcj02_to_wgs84_inverts_eviltransform_vectors(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    lon, lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    # The published GCJ values carry ~1e-15 deg rounding; the exact inverse recovers the WGS input.
    assert lon == pytest.approx(wgs_lon, abs=1e-9)
    assert lat == pytest.approx(wgs_lat, abs=1e-9)
    assert metres(lon, lat, wgs_lon, wgs_lat) < 1e-3


# wandergis/coordtransform test/app.js, all four functions evaluated at (116.404, 39.915), lon/lat.
# The BD-09 ones use the same x_pi = pi*3000/180 formula as ours, so they must match to float noise.
@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (bd09_to_gcj02, (116.39762729119315, 39.90865673957631)),
        (gcj02_to_bd09, (116.41036949371029, 39.92133699351021)),
        (wgs84_to_gcj02, (116.41024449916938, 39.91640428150164)),
    ],
)
def test_coordtransform_vectors(func, expected):
    kwargs = {"exact": False} if func is bd09_to_gcj02 else {}
    lon, lat = func(116.404, 39.915, **kwargs)
    assert lon == pytest.approx(expected[0], abs=1e-12)
    assert lat == pytest.approx(expected[1], abs=1e-12)


def test_exact_bd09_inverse_refines_the_closed_form():
    lon, lat = bd09_to_gcj02(116.404, 39.915)
    # Within ~10 cm of coordtransform's closed-form value ...
    assert 0.0 < metres(lon, lat, 116.39762729119315, 39.90865673957631) < 0.15
    # ... but an exact inverse of gcj02_to_bd09, which the closed form is not.
    assert metres(*gcj02_to_bd09(lon, lat), 116.404, 39.915) < 1e-4
    assert metres(*gcj02_to_bd09(116.39762729119315, 39.90865673957631), 116.404, 39.915) > 0.01


def test_coordtransform_one_step_inverse_is_within_metres_of_exact():
    # coordtransform's gcj02towgs84 is the one-step approximation 2*g - f(g); published result:
    approx_lon, approx_lat = 116.39775550083061, 39.91359571849836
    lon, lat = gcj02_to_wgs84(116.404, 39.915)
    gap = metres(lon, lat, approx_lon, approx_lat)
    assert 0.01 < gap < 5.0  # ours is exact, the approximation is off by a metre or so
    back = wgs84_to_gcj02(lon, lat)
    assert metres(*back, 116.404, 39.915) < 1e-4


# hujiulong/gcoord test/unit/crs/GCJ02.spec.ts and BD09.spec.ts at [123, 45] (lon, lat), asserted
# there with toBeCloseTo(x, 5), i.e. |diff| < 5e-6 deg.
@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (gcj02_to_wgs84, (122.99395597, 44.99804071)),
        (gcj02_to_bd09, (123.00636499, 45.00636899)),
        (bd09_to_gcj02, (122.99363304, 44.99365430)),
        (bd09_to_wgs84, (122.98762210, 44.99171540)),
    ],
)
def test_gcoord_vectors(func, expected):
    lon, lat = func(123, 45)
    assert abs(lon - expected[0]) < 5e-6
    assert abs(lat - expected[1]) < 5e-6


# ------------------------------------------------------------------------------------------------
# Behaviour over Shanghai / Minhang
# ------------------------------------------------------------------------------------------------

SH_LON, SH_LAT = np.meshgrid(np.linspace(120.85, 122.0, 24), np.linspace(30.67, 31.88, 25))


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [(wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84), (gcj02_to_bd09, bd09_to_gcj02)],
)
def test_round_trip_below_one_centimetre_over_shanghai(forward, inverse):
    lon, lat = inverse(*forward(SH_LON, SH_LAT))
    assert lon.shape == SH_LON.shape
    err = metres(lon, lat, SH_LON, SH_LAT)
    assert err.max() < 0.01


def test_gcj02_inverse_converges_to_tolerance():
    gcj_lon, gcj_lat = wgs84_to_gcj02(SH_LON, SH_LAT)
    lon, lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert np.abs(lon - SH_LON).max() < 1e-9
    assert np.abs(lat - SH_LAT).max() < 1e-9
    # A single iteration is the classic approximation: clearly worse than the converged answer.
    lon1, lat1 = gcj02_to_wgs84(gcj_lon, gcj_lat, max_iter=1)
    assert metres(lon1, lat1, SH_LON, SH_LAT).max() > 0.01


def test_minhang_offset_magnitude():
    lon, lat = wgs84_to_gcj02(121.40, 31.10)
    assert lon - 121.40 == pytest.approx(0.00464, abs=2e-5)
    assert lat - 31.10 == pytest.approx(-0.00190, abs=2e-5)
    assert metres(lon, lat, 121.40, 31.10) == pytest.approx(490, abs=5)


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(2.3522, 48.8566), (-74.006, 40.7128), (139.6917, 35.6895), (71.9, 30.0), (100.0, 0.5), (183.0, 45.0)],
)
@pytest.mark.parametrize("func", [wgs84_to_gcj02, gcj02_to_wgs84])
def test_outside_china_passthrough(func, lon, lat):
    out_lon, out_lat = func(lon, lat)
    assert out_lon == lon
    assert out_lat == lat


def test_mixed_inside_and_outside_is_elementwise():
    lon, lat = wgs84_to_gcj02([121.4, 2.3522, 121.5], [31.1, 48.8566, 31.2])
    assert lon[1] == 2.3522 and lat[1] == 48.8566
    assert lon[0] != 121.4 and lon[2] != 121.5


@pytest.mark.parametrize(
    "func", [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84]
)
def test_return_types_and_non_finite_inputs(func):
    lon, lat = func(121.4, 31.1)
    assert isinstance(lon, np.ndarray) and lon.ndim == 0 and lon.dtype == np.float64
    assert isinstance(lat, np.ndarray) and lat.ndim == 0 and lat.dtype == np.float64
    lon, lat = func([121.4, np.nan, np.inf, 121.5], [31.1, 31.1, 31.1, -np.inf])
    assert np.isfinite(lon[0]) and np.isfinite(lat[0])
    assert np.isnan(lon[1:]).all() and np.isnan(lat[1:]).all()


def test_inputs_are_not_modified():
    lon = np.array([121.4, 121.5])
    lat = np.array([31.1, 31.2])
    gcj02_to_wgs84(lon, lat)
    wgs84_to_bd09(lon, lat)
    assert lon.tolist() == [121.4, 121.5] and lat.tolist() == [31.1, 31.2]


# ------------------------------------------------------------------------------------------------
# pyproj dispatch
# ------------------------------------------------------------------------------------------------


def test_epsg4549_gauss_kruger_round_trip():
    x, y = from_wgs84(SH_LON, SH_LAT, "EPSG:4549")
    # CM 120E, false easting 500 km: Shanghai lies 85-200 km east of the central meridian.
    assert 580_000 < x.min() and x.max() < 700_000
    assert 3_390_000 < y.min() and y.max() < 3_540_000
    lon, lat = to_wgs84(x, y, "EPSG:4549")
    assert metres(lon, lat, SH_LON, SH_LAT).max() < 1e-3


def test_epsg4549_known_point():
    # On the central meridian the easting is exactly the false easting.
    x, y = from_wgs84(120.0, 31.0, "4549")
    assert float(x) == pytest.approx(500_000.0, abs=1e-6)
    assert 3_400_000 < float(y) < 3_450_000


def test_cgcs2000_is_identity_at_metre_level():
    lon, lat = to_wgs84(SH_LON, SH_LAT, "cgcs2000")
    assert metres(lon, lat, SH_LON, SH_LAT).max() < 0.1


@pytest.mark.parametrize("crs", ["EPSG:4326", "GCJ02", "BD09", "EPSG:4490", "EPSG:4549", "EPSG:3857"])
def test_from_then_to_wgs84_round_trip(crs):
    lon, lat = to_wgs84(*from_wgs84(121.38, 31.11, crs), crs)
    assert metres(lon, lat, 121.38, 31.11) < 0.01


def test_transform_coords_between_non_wgs_crs():
    bd_lon, bd_lat = transform_coords(121.38, 31.11, "EPSG:4549", "BD09")
    x, y = from_wgs84(121.38, 31.11, "EPSG:4549")
    lon, lat = transform_coords(x, y, "EPSG:4549", "BD09")
    ref_lon, ref_lat = wgs84_to_bd09(121.38, 31.11)
    assert metres(lon, lat, ref_lon, ref_lat) < 0.01
    assert np.isfinite(bd_lon) and np.isfinite(bd_lat)


def test_pyproj_non_finite_passthrough():
    lon, lat = to_wgs84([633572.0, np.nan], [3442904.0, 1.0], "EPSG:4549")
    assert np.isfinite(lon[0]) and np.isnan(lon[1]) and np.isnan(lat[1])


# ------------------------------------------------------------------------------------------------
# parse_crs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("wgs84", "EPSG:4326"),
        ("WGS84", "EPSG:4326"),
        (" WGS-84 ", "EPSG:4326"),
        ("crs84", "EPSG:4326"),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "EPSG:4326"),
        ("epsg:4326", "EPSG:4326"),
        ("4326", "EPSG:4326"),
        ("CGCS2000", "EPSG:4490"),
        ("EPSG:4490", "EPSG:4490"),
        ("gcj02", "GCJ02"),
        ("GCJ-02", "GCJ02"),
        ("bd09", "BD09"),
        ("BD-09", "BD09"),
        ("bd09ll", "BD09"),
        ("EPSG:4549", "EPSG:4549"),
        ("epsg:4549", "EPSG:4549"),
        ("4549", "EPSG:4549"),
        ("http://www.opengis.net/def/crs/EPSG/0/4549", "EPSG:4549"),
        ("urn:ogc:def:crs:EPSG::3857", "EPSG:3857"),
        (4547, "EPSG:4547"),
    ],
)
def test_parse_crs_accepts(value, expected):
    assert parse_crs(value) == expected


@pytest.mark.parametrize("canonical", ["EPSG:4326", "EPSG:4490", "GCJ02", "BD09", "EPSG:4549"])
def test_parse_crs_is_idempotent(canonical):
    assert parse_crs(parse_crs(canonical)) == canonical


@pytest.mark.parametrize("value", ["EPSG:999999", "mars", "", "bd09mc", "ESRI:102100", "EPSG:abc", "-4326"])
def test_parse_crs_rejects_with_clear_message(value):
    with pytest.raises(UnknownCRSError) as info:
        parse_crs(value)
    message = str(info.value)
    assert repr(value) in message
    assert "wgs84" in message and "gcj02" in message and "EPSG:<code>" in message
    assert isinstance(info.value, ValueError)


def test_parse_crs_rejects_non_string():
    with pytest.raises(UnknownCRSError):
        parse_crs(None)  # type: ignore[arg-type]


def test_aliases_are_lowercase_and_canonical():
    assert all(key == key.lower() for key in SOURCE_CRS_ALIASES)
    assert set(SOURCE_CRS_ALIASES.values()) == {"EPSG:4326", "EPSG:4490", "GCJ02", "BD09"}


def test_unknown_crs_in_to_wgs84():
    with pytest.raises(UnknownCRSError):
        to_wgs84(121.4, 31.1, "mars")


# ------------------------------------------------------------------------------------------------
# Geometries
# ------------------------------------------------------------------------------------------------


def _holed_polygon(x0: float, y0: float) -> Polygon:
    shell = [(x0, y0), (x0 + 0.02, y0), (x0 + 0.02, y0 + 0.02), (x0, y0 + 0.02)]
    hole = [
        (x0 + 0.005, y0 + 0.005),
        (x0 + 0.015, y0 + 0.005),
        (x0 + 0.015, y0 + 0.015),
        (x0 + 0.005, y0 + 0.015),
    ]
    return Polygon(shell, [hole])


def test_transform_geometry_polygon_with_hole():
    poly = _holed_polygon(121.38, 31.10)
    out = transform_geometry(poly, "GCJ02")
    assert isinstance(out, Polygon)
    assert len(out.interiors) == 1
    assert out.is_valid
    exp_lon, exp_lat = gcj02_to_wgs84(*np.asarray(poly.exterior.coords).T)
    np.testing.assert_allclose(
        np.asarray(out.exterior.coords), np.column_stack([exp_lon, exp_lat]), atol=1e-12
    )
    hole_lon, hole_lat = gcj02_to_wgs84(*np.asarray(poly.interiors[0].coords).T)
    np.testing.assert_allclose(np.asarray(out.interiors[0].coords), np.column_stack([hole_lon, hole_lat]))
    # GCJ -> WGS moves Minhang roughly 440 m west and 210 m north.
    assert out.centroid.x < poly.centroid.x and out.centroid.y > poly.centroid.y
    assert out.area == pytest.approx(poly.area, rel=5e-3)


def test_transform_geometry_multipolygon_round_trip():
    mp = MultiPolygon([_holed_polygon(121.38, 31.10), _holed_polygon(121.45, 31.05)])
    there = transform_geometry(mp, "BD09")
    back = transform_geometry(there, "EPSG:4326", "BD09")
    assert isinstance(there, MultiPolygon) and len(there.geoms) == 2
    assert all(len(p.interiors) == 1 for p in there.geoms)
    np.testing.assert_allclose(shapely.get_coordinates(back), shapely.get_coordinates(mp), atol=1e-9)


def test_transform_geometry_array_with_none_and_z():
    geoms = np.array([Point(121.4, 31.1), None, Point(121.4, 31.1, 7.5), _holed_polygon(121.3, 31.0)])
    out = transform_geometry(geoms, "gcj02")
    assert isinstance(out, np.ndarray) and out.shape == (4,)
    assert out[1] is None
    exp_lon, exp_lat = gcj02_to_wgs84(121.4, 31.1)
    assert out[0].x == pytest.approx(float(exp_lon)) and out[0].y == pytest.approx(float(exp_lat))
    assert out[2].has_z and out[2].z == 7.5 and out[2].x == pytest.approx(float(exp_lon))
    assert not out[0].has_z


def test_transform_geometry_epsg_projected():
    x, y = from_wgs84(121.4, 31.1, "EPSG:4549")
    out = transform_geometry(Point(float(x), float(y)), "EPSG:4549")
    assert out.x == pytest.approx(121.4, abs=1e-9) and out.y == pytest.approx(31.1, abs=1e-9)


def test_transform_geometry_same_crs_is_noop():
    poly = _holed_polygon(121.38, 31.10)
    assert transform_geometry(poly, "wgs84").equals(poly)


def test_transform_geoseries():
    gs = gpd.GeoSeries(
        [Point(121.4, 31.1), _holed_polygon(121.38, 31.10), None], index=[10, 11, 12], name="g"
    )
    out = transform_geoseries(gs, "gcj02")
    assert out.crs.to_epsg() == 4326
    assert list(out.index) == [10, 11, 12] and out.name == "g"
    assert out.iloc[2] is None
    exp_lon, _ = gcj02_to_wgs84(121.4, 31.1)
    assert out.iloc[0].x == pytest.approx(float(exp_lon))


def test_transform_geoseries_uses_own_crs():
    x, y = from_wgs84(121.4, 31.1, "EPSG:4549")
    gs = gpd.GeoSeries([Point(float(x), float(y))], crs="EPSG:4549")
    out = transform_geoseries(gs)
    assert out.crs.to_epsg() == 4326
    assert out.iloc[0].x == pytest.approx(121.4, abs=1e-9)
