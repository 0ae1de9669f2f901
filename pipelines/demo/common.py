"""Helpers shared by the demo layer generators: frames, dates, weighted choices."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd


def points_frame(columns: dict[str, object], lon: np.ndarray, lat: np.ndarray) -> gpd.GeoDataFrame:
    """Build a WGS84 point GeoDataFrame."""
    return gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(lon, lat), crs=4326)


def random_dates(rng: np.random.Generator, n: int, start: str, end: str) -> pd.Series:
    """Uniform random dates between ``start`` and ``end`` (inclusive), as datetime64 at midnight."""
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    days = rng.integers(0, int((hi - lo).astype(int)) + 1, n)
    return pd.Series((lo + days).astype("datetime64[s]"))


def pick(rng: np.random.Generator, values: list[str], weights: list[float], n: int) -> np.ndarray:
    """Draw ``n`` values with the given relative weights."""
    p = np.asarray(weights, dtype=float)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p / p.sum())]


def weighted_subset(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` distinct items drawn with probability proportional to ``weights``."""
    k = min(k, len(weights))
    p = np.asarray(weights, dtype=float)
    return np.sort(rng.choice(len(p), size=k, replace=False, p=p / p.sum()))
