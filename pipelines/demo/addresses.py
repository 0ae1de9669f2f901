"""The standard-address base (一标): compounds of buildings with rooms, plus street-front door plates.

Addresses are written as Shanghai door plates from each town's real road names (``路 + 弄 + 号`` or
``路 + 弄 + 幢`` in residential compounds, with ``室`` or ``单元 + 室`` for rooms, ``路 + 号`` for street fronts) and
passed through :func:`cim_service.core.address.parse_address`, so ``address_code``, the level fields and
``parse_level`` are the parser's own. Building addresses come first; room addresses share their
building's point. ``residential`` marks homes.
"""

from __future__ import annotations

import zlib

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from cim_service.core.address import address_code, parse_address
from pipelines.demo.blocks import Packer
from pipelines.demo.geo import offset, rng_for
from pipelines.demo.outline import district_outline
from pipelines.demo.sampling import context, sample_points
from pipelines.demo.scales import Scale
from pipelines.demo.urbanform import STREET_BLOCK, Kind, compound_kind, street_kind, town_form

#: real road names of each town (a selection), used to write door plates
TOWN_ROADS: dict[str, tuple[str, ...]] = {
    "江川路街道": ("江川路", "沪闵路", "华坪路", "鹤庆路", "东川路", "兰坪路", "昆阳路", "碧江路", "石化路", "永德路"),
    "古美街道": ("古美路", "平阳路", "万源路", "古龙路", "顾戴路", "平吉路", "平南路", "梅陇西路"),
    "新虹街道": ("申长路", "申虹路", "天山西路", "甬虹路", "申贵路", "润虹路", "扬虹路", "华翔路"),
    "浦锦街道": ("浦锦路", "浦星公路", "浦申路", "丰南路", "林展路", "芦恒路", "新骏环路", "浦秀路"),
    "莘庄镇": ("莘松路", "莘建路", "莘东路", "都市路", "沁春路", "莘朱路", "春申路", "报春路", "西环路", "庙泾路"),
    "七宝镇": ("漕宝路", "七莘路", "新镇路", "富强街", "青年路", "航东路", "七宝南路", "沪星路", "中春路", "新龙路"),
    "颛桥镇": ("沪闵路", "颛兴路", "银都路", "向阳路", "颛盛路", "光华路", "中沟路", "都会路", "北松公路"),
    "华漕镇": ("北翟路", "纪翟路", "华翔路", "华漕路", "诸光路", "金丰路", "许泾路", "繁兴路"),
    "虹桥镇": ("虹梅路", "吴中路", "红松路", "虹井路", "虹泉路", "虹莘路", "伊犁南路", "金汇路", "龙柏路"),
    "梅陇镇": ("莲花南路", "虹梅南路", "梅陇路", "春申路", "朱梅路", "景联路", "曙建路", "华西路", "罗锦路"),
    "吴泾镇": ("龙吴路", "剑川路", "永德路", "元江路", "虹梅南路", "通海路", "紫龙路", "尚义路"),
    "马桥镇": ("元江路", "北松公路", "银春路", "同心路", "俞塘路", "金都路", "彭渡路", "华银路", "旗忠路"),
    "浦江镇": ("浦星公路", "陈行公路", "沈杜公路", "三鲁公路", "江月路", "联航路", "召楼路", "恒南路", "汇臻路"),
    "莘庄工业区": ("春东路", "申富路", "元江路", "中春路", "光华路", "瓶北路", "申南路", "春光路", "金都路"),
}
_ESTATE_A = ("锦绣", "金色", "阳光", "绿地", "万科", "春申", "东方", "华府", "明珠", "水岸", "景城", "紫藤",
             "银杏", "康城", "星河", "翠湖", "湾畔", "世纪", "梅园", "名都")
_ESTATE_B = ("花园", "苑", "新村", "家园", "公寓", "名邸", "佳苑", "小区")
COLUMNS = ["address_code", "full_address", "district", "town", "community", "road", "lane", "sub_lane", "number",
           "building", "unit", "room", "poi", "parse_level", "residential"]


def _door_plates(rng: np.random.Generator, scale: Scale) -> pd.DataFrame:
    """Generate building addresses in groups: compounds (路+弄+号/幢, residential) and street fronts (路+号).

    Each group is laid out by its kind (:mod:`pipelines.demo.urbanform`) and packed into the free land nearest
    its target (:mod:`pipelines.demo.blocks`): the point drawn for it, or, for the town form's ``join_share`` of
    groups, the cluster of an earlier group of its town, picked in proportion to the clusters' sizes (so
    the built-up blocks grow continuous around their first points). A group finding no land
    nearby stays at its point.
    """
    n_buildings = max(10, int(scale.addresses * 0.3))
    lon, lat, town = sample_points(rng, n_buildings, road_share=0.15, centre_share=0.3, centre_sd_m=800.0)
    names = np.asarray(context().names, dtype=object)
    polygons = context().polygons
    packer = Packer()
    nuclei: dict[str, list[tuple[float, float]]] = {}  # per town, the cluster point of each group placed
    rows = []
    used: dict[tuple[str, str], int] = {}
    i = 0
    while i < n_buildings:
        t = names[town[i]]
        form = town_form(t)
        road = TOWN_ROADS[t][rng.integers(0, len(TOWN_ROADS[t]))]
        k = used.get((t, road), 0)
        if rng.random() < form.compound_share:
            size = int(min(rng.integers(form.compound_size[0], form.compound_size[1] + 1), n_buildings - i))
            used[(t, road)] = k + 1
            lane = 100 + 20 * k + int(rng.integers(0, 20))
            poi = _ESTATE_A[rng.integers(0, len(_ESTATE_A))] + _ESTATE_B[rng.integers(0, len(_ESTATE_B))]
            word = "幢" if rng.random() < 0.2 else "号"  # newer estates number 幢 (with 单元), older ones 号
            kind, angle = compound_kind(t, road, lane), compound_angle(t, road, lane)
            plates = [f"{road}{lane}弄{j + 1}{word}" for j in range(size)]
        else:
            size = int(min(rng.integers(form.street_size[0], form.street_size[1] + 1), n_buildings - i,
                           STREET_BLOCK))
            block = -(-k // STREET_BLOCK)  # the group starts a block of door numbers (numbers leave gaps)
            used[(t, road)] = (block + 1) * STREET_BLOCK
            numbers = [1 + 2 * (block * STREET_BLOCK + j) for j in range(size)]
            poi = None
            kind, angle = street_kind(t, road, numbers[0]), street_angle(t, road, numbers[0])
            plates = [f"{road}{n}号" for n in numbers]
        dx, dy, w, h = _group_layout(kind, size, angle, rng.normal(0, 1, size), rng.normal(0, 1, size))
        earlier = nuclei.setdefault(t, [])  # the cluster each earlier group of the town joined
        join = bool(earlier) and rng.random() < form.join_share
        target = earlier[rng.integers(0, len(earlier))] if join else (lon[i], lat[i])
        at = packer.place(*target, w, h, polygons[town[i]])
        cx, cy = at if at is not None else (lon[i], lat[i])
        if at is not None:
            earlier.append(target)
        bx, by = offset(np.full(size, cx), np.full(size, cy), dx, dy)
        inside = shapely.contains_xy(district_outline(), bx, by)
        bx, by = np.where(inside, bx, cx), np.where(inside, by, cy)
        res = poi is not None
        rows += [(t, plate, x, y, res, poi) for plate, x, y in zip(plates, bx, by, strict=True)]
        i += size
    return pd.DataFrame(rows, columns=["town", "plate", "lon", "lat", "residential", "poi"])


def compound_angle(town: str, road: str, lane: int) -> float:
    """Rotation (radians, within ±0.15) of the compound at ``road`` + ``lane``弄 of ``town``: its rows face south."""
    return (zlib.crc32(f"{town}|{road}|{lane}".encode()) % 1000) / 1000.0 * 0.3 - 0.15


def street_angle(town: str, road: str, number: int) -> float:
    """Rotation (radians) of the street-front group holding door ``number`` of ``road`` in ``town``."""
    return compound_angle(town, road, 100_000 + (number - 1) // 2 // STREET_BLOCK)


def _group_layout(kind: Kind, size: int, angle: float, jx: np.ndarray,
                  jy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Offsets (metres) of a group's buildings in rows of its kind, jittered, and the group's box (w, h metres)."""
    per_row = max(1, int(np.ceil(np.sqrt(size * kind.row_m / kind.along_m))))
    n_rows = -(-size // per_row)
    k = np.arange(size)
    x = (k % per_row - (per_row - 1) / 2) * kind.along_m + jx * 0.04 * kind.along_m
    y = ((n_rows - 1) / 2 - k // per_row) * kind.row_m + jy * 0.03 * kind.row_m
    c, s = np.cos(angle), np.sin(angle)
    w, h = per_row * kind.along_m, n_rows * kind.row_m
    return x * c - y * s, x * s + y * c, abs(w * c) + abs(h * s), abs(w * s) + abs(h * c)


def _rooms(rng: np.random.Generator, buildings: pd.DataFrame, n_rooms: int) -> pd.DataFrame:
    """Generate room addresses in residential buildings: ``号 + 室``, or ``幢 + 单元 + 室`` in newer estates."""
    res = buildings.index[buildings["residential"]].to_numpy()
    host = np.sort(rng.choice(res, size=n_rooms, replace=True))
    floors = rng.integers(1, 19, n_rooms)
    flat = rng.integers(1, 5, n_rooms)
    unit = rng.integers(1, 4, n_rooms)
    b = buildings.loc[host].reset_index(drop=True)
    plate = [
        f"{p}{u}单元{f}{r:02d}室" if p.endswith("幢") else f"{p}{f}{r:02d}室"
        for p, u, f, r in zip(b["plate"], unit, floors, flat, strict=True)
    ]
    return b.assign(plate=plate)


def _parsed(frame: pd.DataFrame) -> pd.DataFrame:
    """Parse every door plate with the project's address parser; fill codes and levels."""
    records = []
    for town, plate in zip(frame["town"], frame["plate"], strict=True):
        p = parse_address(f"上海市闵行区{town}{plate}")
        records.append((address_code(p), p.standard_address(), p.district, p.town, p.community, p.road, p.lane,
                        p.sub_lane, p.number, p.building, p.unit, p.room, p.level()))
    cols = ["address_code", "full_address", "district", "town", "community", "road", "lane", "sub_lane", "number",
            "building", "unit", "room", "parse_level"]
    return pd.DataFrame(records, columns=cols, index=frame.index)


#: parse levels of building (door-plate) addresses, as opposed to rooms
BUILDING_LEVELS = ("number", "building")


def building_addresses(addresses: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the building-level addresses (号 or 幢), one per house."""
    return addresses[addresses["parse_level"].isin(BUILDING_LEVELS)]


def addresses(scale: Scale, seed: int) -> gpd.GeoDataFrame:
    """Return the ``addresses`` layer (building addresses first, then rooms)."""
    rng = rng_for(seed, "addresses")
    buildings = _door_plates(rng, scale)
    wanted = max(0, scale.addresses - len(buildings))
    rooms = _rooms(rng, buildings, 0)
    while len(rooms) < wanted:  # distinct rooms; a few draws hit the same room twice
        more = _rooms(rng, buildings, int((wanted - len(rooms)) * 1.2) + 10)
        rooms = pd.concat([rooms, more], ignore_index=True)
        rooms = rooms[~rooms.duplicated(["town", "plate"])]
    rooms = rooms.iloc[:wanted]
    frame = pd.concat([buildings, rooms], ignore_index=True).iloc[: scale.addresses]
    parsed = _parsed(frame)
    parsed["poi"] = frame["poi"]
    parsed["residential"] = frame["residential"].astype(bool)
    return gpd.GeoDataFrame(parsed[COLUMNS], geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326)
