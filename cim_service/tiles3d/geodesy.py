"""WGS84 geodetic ↔ ECEF and local east-north-up frames (the transforms of 3D Tiles), in numpy."""

from __future__ import annotations

import numpy as np

A = 6378137.0
F = 1 / 298.257223563
E2 = F * (2 - F)


def ecef(lon_deg: np.ndarray, lat_deg: np.ndarray, h: np.ndarray | float = 0.0) -> np.ndarray:
    """Earth-centred, earth-fixed coordinates (metres) of WGS84 lon/lat/ellipsoidal height."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    n = A / np.sqrt(1 - E2 * np.sin(lat) ** 2)
    h = np.asarray(h, dtype=float)
    return np.stack([(n + h) * np.cos(lat) * np.cos(lon), (n + h) * np.cos(lat) * np.sin(lon),
                     (n * (1 - E2) + h) * np.sin(lat)], axis=-1)


def enu_basis(lon_deg: float, lat_deg: float) -> np.ndarray:
    """Columns east, north, up (unit vectors in ECEF) at a point."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    return np.column_stack([east, north, up])


class LocalFrame:
    """The east-north-up frame at a point on the ellipsoid: local metres and the tile ``transform``."""

    def __init__(self, lon_deg: float, lat_deg: float):
        self.origin = ecef(np.array(lon_deg), np.array(lat_deg))
        self.basis = enu_basis(lon_deg, lat_deg)

    def to_local(self, lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
        """(n, 2) east/north metres of points on the ellipsoid (their up offset, < 1 m in a tile, dropped)."""
        local = (ecef(lon_deg, lat_deg) - self.origin) @ self.basis
        return local[:, :2]

    def transform(self) -> list[float]:
        """The 4×4 local → ECEF matrix, column-major (the 3D Tiles ``transform``)."""
        m = np.eye(4)
        m[:3, :3] = self.basis
        m[:3, 3] = self.origin
        return [float(v) for v in m.T.reshape(-1)]
