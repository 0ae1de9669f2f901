"""Build the whole demo dataset (:func:`build_demo`) and load it into the database (:func:`load_demo`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy.engine import Engine

from cim_service.core.catalog import Catalog, LayerSpec, Role
from pipelines.demo import addresses as addr
from pipelines.demo import basemap, devices, houses, metro, people, roads, sites, towns
from pipelines.demo import buildings as bldg
from pipelines.demo.outline import district_frame
from pipelines.demo.scales import get_scale
from pipelines.load import LoadResult, load_geodataframe

DEFAULT_SEED = 20210101
#: load order: the district first (other layers are checked against it), then base layers, then the rest
LAYER_ORDER = (
    "district", "towns", "shanghai_townships", "water", "parks", "planning_zones", "key_areas", "main_roads",
    "addresses", "buildings", "built_up", "houses", "organisations", "people",
    "cameras", "base_stations", "iot_nodes", "charging_stations", "smart_poles", "smart_lockers",
    "metro_stations", "metro_entrances", "bus_stops", "underground_spaces", "waterlogging_sensors",
)


def build_demo(scale: str = "baseline", seed: int = DEFAULT_SEED) -> dict[str, gpd.GeoDataFrame]:
    """Generate the demo dataset: one WGS84 GeoDataFrame per source layer.

    Parameters
    ----------
    scale : {'small', 'baseline', 'plan'}
        Feature counts (see :mod:`pipelines.demo.scales`).
    seed : int
        Random seed; the same scale and seed always give identical frames.

    Returns
    -------
    dict of str to geopandas.GeoDataFrame
        Frames keyed by layer id, in load order, with the catalog's field names as columns.
    """
    sc = get_scale(scale)
    out: dict[str, gpd.GeoDataFrame] = {
        "district": district_frame(),
        "towns": towns.towns_frame(),
        "planning_zones": roads.zones_frame(),
        "key_areas": roads.key_areas_frame(),
        "main_roads": roads.roads_frame(),
    }
    out["water"] = basemap.water_frame()
    out["parks"] = basemap.parks_frame()
    out["addresses"] = addr.addresses(sc, seed)
    out["buildings"] = bldg.buildings(out["addresses"], seed, keep_out=basemap.keep_out())
    out["built_up"] = basemap.built_up_frame(out["buildings"])
    out["houses"] = houses.houses(out["addresses"], seed, out["buildings"])
    out["addresses"] = bldg.link_addresses(out["addresses"], out["buildings"])
    out["organisations"] = houses.organisations(sc, out["addresses"], seed)
    out["people"] = people.people(sc, out["addresses"], seed)
    out["cameras"] = devices.cameras(sc, seed)
    out["base_stations"] = devices.base_stations(sc, seed)
    out["iot_nodes"] = devices.iot_nodes(sc, seed)
    out["charging_stations"] = devices.charging_stations(sc, seed)
    out["smart_poles"] = devices.smart_poles(sc, seed)
    out["smart_lockers"] = devices.smart_lockers(sc, seed)
    # the context layer of all Shanghai townships holds, in the demo, Minhang's own towns
    out["shanghai_townships"] = out["towns"][["name", out["towns"].geometry.name]].assign(district="闵行区")
    out["metro_stations"] = metro.stations_frame()
    out["metro_entrances"] = metro.entrances_frame(out["metro_stations"], seed)
    out["bus_stops"] = sites.bus_stops(sc, seed)
    out["underground_spaces"] = sites.underground_spaces(sc, seed)
    buildings = addr.building_addresses(out["addresses"])
    homes = buildings[buildings["residential"]]
    out["waterlogging_sensors"] = sites.waterlogging_sensors(sc, seed, {
        "地铁出入口": out["metro_entrances"], "公交站点": out["bus_stops"],
        "地下空间": out["underground_spaces"], "小区道路": homes,
    })
    return {layer: out[layer] for layer in LAYER_ORDER}


def frame_sha256(gdf: gpd.GeoDataFrame) -> str:
    """Content hash of a frame (attributes as CSV + geometry WKB): equal frames, equal hashes."""
    h = hashlib.sha256()
    h.update(",".join(map(str, gdf.columns)).encode("utf-8"))
    h.update(gdf.drop(columns=gdf.geometry.name).to_csv(index=False, lineterminator="\n").encode("utf-8"))
    for wkb in shapely.to_wkb(np.asarray(gdf.geometry.array, dtype=object)):
        h.update(wkb)
    return h.hexdigest()


def _layer_frame(spec: LayerSpec, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Keep the declared fields (in catalog order) and the geometry."""
    cols = [f for f in spec.field_names if f in gdf.columns]
    return gdf[[*cols, gdf.geometry.name]]


def layer_frames(catalog: Catalog, frames: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    """Select the catalog's source layers from the demo frames, columns in catalog order.

    Raises ValueError when a source layer of the catalog has no demo frame.
    """
    missing = [s.id for s in catalog if s.kind == "source" and s.id not in frames]
    if missing:
        raise ValueError(f"the demo generates no data for source layers {missing}")
    return {
        layer_id: _layer_frame(catalog.get(layer_id), gdf)
        for layer_id, gdf in frames.items()
        if layer_id in catalog and catalog.get(layer_id).kind == "source"
    }


def load_demo(
    engine: Engine,
    catalog: Catalog,
    scale: str = "baseline",
    seed: int = DEFAULT_SEED,
    progress: Callable[[str, LoadResult], None] | None = None,
    *,
    replace: bool = True,
    frames: dict[str, gpd.GeoDataFrame] | None = None,
    history: bool = False,
) -> dict[str, LoadResult]:
    """Build the demo and load it into every source layer of the catalog.

    Parameters
    ----------
    engine : Engine
        Engine on a migrated database.
    catalog : Catalog
        The layer catalog; every ``kind: source`` layer must have a demo frame.
    scale, seed
        As :func:`build_demo`.
    progress : callable, optional
        Called with ``(layer_id, result)`` after each layer is loaded.
    replace : bool
        Load each layer as a snapshot: rows that are not part of this demo (another scale or seed, earlier
        ingests) are deleted in the same transaction as the load, so each layer holds exactly the demo and a
        killed load changes nothing. Re-running with the same scale and seed changes nothing.
    frames : dict, optional
        Frames already built by ``build_demo(scale, seed)`` (built here when omitted).
    history : bool
        Load a yearly history 2020 → 2025 instead (:mod:`pipelines.demo.history`): one dated snapshot per year
        and growing layer, ending with the demo. Needs layers whose history holds nothing after 2020-07-01
        (a fresh database).

    Returns
    -------
    dict of str to LoadResult
        One result per layer ('committed', or 'unchanged' when the layer already held this demo).
    """
    frames = build_demo(scale, seed) if frames is None else frames
    results: dict[str, LoadResult] = {}
    if history:
        return _load_history(engine, catalog, scale, seed, frames, progress, replace)
    for layer_id, frame in layer_frames(catalog, frames).items():
        spec = catalog.get(layer_id)
        results[layer_id] = load_geodataframe(
            engine, spec, frame, source_name=f"demo-{scale}-seed{seed}-{layer_id}",
            source_sha256=frame_sha256(frame), source_crs="EPSG:4326",
            options={"demo": {"scale": scale, "seed": seed}}, replace=replace,
            outline=catalog.role(Role.district_outline),
        )
        if progress is not None:
            progress(layer_id, results[layer_id])
    return results


def _load_history(engine: Engine, catalog: Catalog, scale: str, seed: int, frames: dict[str, gpd.GeoDataFrame],
                  progress: Callable[[str, LoadResult], None] | None, replace: bool) -> dict[str, LoadResult]:
    """Load the demo's yearly history (see :mod:`pipelines.demo.history`); the results of the last loads."""
    from cim_service.store import history as history_store
    from pipelines.demo import history as demo_history

    selected = layer_frames(catalog, frames)
    first = demo_history.load_date(demo_history.YEARS[0])
    with engine.connect() as conn:
        for layer_id in selected:
            latest = history_store.latest_change(conn, catalog.get(layer_id))
            if latest is not None and latest > first:
                raise ValueError(f"layer {layer_id!r} has history after {first:%Y-%m-%d} (last change {latest}); "
                                 "load the demo history into a fresh database")
    results: dict[str, LoadResult] = {}

    def load(layer_id: str, frame: gpd.GeoDataFrame, year: int) -> None:
        spec = catalog.get(layer_id)
        frame = _layer_frame(spec, frame)
        results[layer_id] = load_geodataframe(
            engine, spec, frame, source_name=f"demo-{scale}-seed{seed}-{year}-{layer_id}",
            source_sha256=frame_sha256(frame), source_crs="EPSG:4326",
            options={"demo": {"scale": scale, "seed": seed, "year": year}}, replace=replace,
            outline=catalog.role(Role.district_outline), valid_at=demo_history.load_date(year),
        )
        if progress is not None:
            progress(layer_id, results[layer_id])

    demo_history.load_history(load, frames, seed, list(selected))
    return results
