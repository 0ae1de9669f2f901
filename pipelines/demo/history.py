"""A believable yearly history of the demo, 2020 → 2025: the frames of :func:`build_demo` are the 2025 state.

Each year's state is loaded as a snapshot, dated in the layers' history (``store.history``) on July 1st of the
year (:func:`load_date`), so a read ``at=<Y>-12-31`` sees year Y and an instant before 2020-07-01 is before the
history begins. What changes from year to year:

- **growing device layers** (:data:`GROWING`): each feature appears in one year; a town's share of its 2025
  features present in year Y is ``b + (1 - b) * ((Y - 2020) / 5) ** g``, with a pace per town (:data:`PACES`:
  ahead, steady, late, stalled; ``b`` its 2020 baseline share, ``g`` how late its growth comes). The feature's own
  date (``installed_at``/``built_at``) is redrawn inside the year it appears (before the baseline for 2020), so
  the history and the features' dates agree. Features dated before 2020 by the generator (4G stations) stay in
  the baseline;
- **cameras moved**: 3 % of the cameras present by 2022 stood 30-150 m away until a later year;
- **cameras replaced**: 2 % of the cameras installed after 2020 replace an older device at the same place (its
  own GB/T 28181 id) that is deleted the year the new one appears;
- **sensors removed**: 4 % more IoT nodes than in 2025 existed in 2020; each is deleted in a year 2021-2025.

Other layers (district, towns, addresses, people, …) are loaded once, in 2020. Everything is deterministic in
the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from pipelines.demo.geo import rng_for

YEARS = tuple(range(2020, 2026))
#: growing layers and the date field redrawn in the year a feature appears (None: no date field)
GROWING: dict[str, str | None] = {
    "cameras": "installed_at", "base_stations": "built_at", "iot_nodes": "installed_at",
    "charging_stations": None, "smart_poles": None, "smart_lockers": "installed_at",
    "waterlogging_sensors": "installed_at",
}
#: pace name -> (2020 baseline share, lateness exponent)
PACES = {"ahead": (0.55, 0.6), "steady": (0.45, 1.0), "late": (0.35, 2.0), "stalled": (0.25, 4.0)}
MOVED_SHARE, REPLACED_SHARE, REMOVED_SHARE = 0.03, 0.02, 0.04


def load_date(year: int) -> datetime:
    """The instant a demo year's state takes effect in the history."""
    return datetime(year, 7, 1, tzinfo=UTC)


def town_paces(towns: gpd.GeoDataFrame, seed: int) -> dict[str, str]:
    """A pace per town (deterministic in the seed), every pace used when there are enough towns."""
    rng = rng_for(seed, "history:paces")
    names = list(towns["name"])
    order = rng.permutation(len(names))
    kinds = list(PACES)
    return {names[i]: kinds[k % len(kinds)] for k, i in enumerate(order)}


def _town_index(frame: gpd.GeoDataFrame, towns: gpd.GeoDataFrame) -> np.ndarray:
    """Index into ``towns`` of each feature's town (nearest for features outside every town)."""
    geoms = np.asarray(frame.geometry.array, dtype=object)
    pts = shapely.point_on_surface(geoms)
    tree = shapely.STRtree(np.asarray(towns.geometry.array, dtype=object))
    feat, town = tree.query(pts, predicate="within")
    out = np.full(len(frame), -1)
    out[feat] = town
    missing = np.flatnonzero(out < 0)
    if len(missing):
        out[missing] = tree.query_nearest(pts[missing], return_distance=False)[1]
    return out


def _appearance_years(rng: np.random.Generator, town_of: np.ndarray, paces: list[str]) -> np.ndarray:
    u = rng.random(len(town_of))
    years = np.full(len(town_of), YEARS[-1])
    for year in reversed(YEARS):
        t = (year - YEARS[0]) / (YEARS[-1] - YEARS[0])
        base = np.array([PACES[paces[i]][0] for i in town_of])
        gamma = np.array([PACES[paces[i]][1] for i in town_of])
        share = base + (1 - base) * t ** gamma
        years = np.where(u <= share, year, years)
    return years


def _dates_in_year(rng: np.random.Generator, years: np.ndarray, original: pd.Series | None) -> pd.Series:
    """A date in the 12 months before each year's load date; 2020 keeps an earlier original date."""
    start = np.array([np.datetime64(f"{y - 1}-07-02") for y in years])
    days = rng.integers(0, 365, len(years))
    drawn = pd.Series((start + days).astype("datetime64[s]"))
    if original is None:
        return drawn
    orig = pd.to_datetime(original).reset_index(drop=True)
    base = (years == YEARS[0]) & (orig <= pd.Timestamp("2020-07-01")).to_numpy()
    return drawn.where(~base, orig.astype("datetime64[s]"))


def _offset(rng: np.random.Generator, geoms: np.ndarray, lo_m: float, hi_m: float) -> np.ndarray:
    d = rng.uniform(lo_m, hi_m, len(geoms)) / 111_000.0
    a = rng.uniform(0, 2 * np.pi, len(geoms))
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    return shapely.points(x + d * np.cos(a) / np.cos(np.radians(y)), y + d * np.sin(a))


def yearly_frames(frames: dict[str, gpd.GeoDataFrame], seed: int) -> dict[int, dict[str, gpd.GeoDataFrame]]:
    """The state of each growing layer in each year (2025 = ``frames``, its dates redrawn as described)."""
    towns = frames["towns"]
    paces = town_paces(towns, seed)
    pace_list = [paces[n] for n in towns["name"]]
    out: dict[int, dict[str, gpd.GeoDataFrame]] = {y: {} for y in YEARS}
    for layer, date_field in GROWING.items():
        if layer not in frames:
            continue
        rng = rng_for(seed, f"history:{layer}")
        final = frames[layer].reset_index(drop=True).copy()
        years = _appearance_years(rng, _town_index(final, towns), pace_list)
        if date_field is not None and date_field in final.columns:
            original = pd.to_datetime(final[date_field])
            early = (original < pd.Timestamp("2020-01-01")).to_numpy()
            if layer == "base_stations":  # stations built before 2020 (4G) are part of the baseline
                years = np.where(early, YEARS[0], years)
            final[date_field] = _dates_in_year(rng, years, final[date_field]).to_numpy()
        geoms = np.asarray(final.geometry.array, dtype=object)
        moved_until = np.zeros(len(final), dtype=int)
        extra = None
        if layer == "cameras":
            cand = np.flatnonzero(years <= 2022)
            moved = rng.choice(cand, size=int(len(cand) * MOVED_SHARE), replace=False) if len(cand) else cand
            moved_until[moved] = [rng.integers(years[i] + 1, YEARS[-1] + 1) for i in moved]
            old_geoms = geoms.copy()
            old_geoms[moved] = _offset(rng, geoms[moved], 30, 150)
            cand = np.flatnonzero(years > YEARS[0])
            replaced = rng.choice(cand, size=int(len(cand) * REPLACED_SHARE), replace=False) if len(cand) else cand
            extra = final.iloc[replaced].copy()
            extra["device_id"] = [f"{d[:14]}9{i:05d}" for i, d in enumerate(extra["device_id"])]
            extra["camera_type"] = "bullet"
            if "installed_at" in extra.columns:
                extra["installed_at"] = pd.Timestamp("2016-03-01")
            extra = extra.set_geometry(_offset(rng, geoms[replaced], 1, 5))
            extra_until = years[replaced]
        elif layer == "iot_nodes":
            n = int(len(final) * REMOVED_SHARE)
            src = rng.choice(len(final), size=n, replace=len(final) < n) if len(final) else np.array([], int)
            extra = final.iloc[src].copy()
            extra["node_id"] = [f"MHIOTR{i + 1:06d}" for i in range(n)]
            if "installed_at" in extra.columns:
                extra["installed_at"] = pd.Timestamp("2019-05-01")
            extra = extra.set_geometry(_offset(rng, geoms[src], 50, 400))
            extra_until = rng.integers(YEARS[0] + 1, YEARS[-1] + 1, n)
        for year in YEARS:
            present = years <= year
            frame = final[present].copy()
            if layer == "cameras":
                use_old = (moved_until > year)[present]
                g = np.asarray(frame.geometry.array, dtype=object)
                g[use_old] = old_geoms[present][use_old]
                frame = frame.set_geometry(g)
            if extra is not None and (extra_until > year).any():
                frame = pd.concat([frame, extra[extra_until > year]], ignore_index=True)
            out[year][layer] = gpd.GeoDataFrame(frame.reset_index(drop=True), crs=4326)
    return out


def load_history(load: Callable[[str, gpd.GeoDataFrame, int], object], frames: dict[str, gpd.GeoDataFrame],
                 seed: int, layer_ids: list[str]) -> dict[int, dict[str, gpd.GeoDataFrame]]:
    """Call ``load(layer_id, frame, year)`` for every layer of ``layer_ids``: static ones in 2020, then every
    growing layer year by year. Return the yearly frames."""
    yearly = yearly_frames(frames, seed)
    for layer_id in layer_ids:
        if layer_id not in GROWING:
            load(layer_id, frames[layer_id], YEARS[0])
    for year in YEARS:
        for layer_id in layer_ids:
            if layer_id in GROWING:
                load(layer_id, yearly[year][layer_id], year)
    return yearly
