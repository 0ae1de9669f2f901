"""The area the service covers, declared once: used where the data cannot tell yet (an empty database).

The district box is the one of the shipped outline (``cim_service/data``: 121.2355–121.5712 E, 30.9779–31.2616 N
after GCJ-02 → WGS84); once the district outline layer is loaded, its recorded extent is used instead. The
surrounding box bounds what ingest accepts as plausible coordinates (rows far outside it are rejected).
"""

from __future__ import annotations

Bbox = tuple[float, float, float, float]

#: the district (WGS84 lon/lat): tile sets and the map's first view before the outline layer is loaded
DISTRICT_BBOX: Bbox = (121.235, 30.977, 121.572, 31.262)
#: the surrounding city (WGS84 lon/lat): coordinates far outside it are rejected on ingest
SURROUNDING_BBOX: Bbox = (120.85, 30.67, 122.2, 31.88)


def centre(bbox: Bbox) -> tuple[float, float]:
    """Centre (lon, lat) of a box."""
    return (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
