"""The 实有房屋 (houses) and 实有单位 (organisations) of the demo, linked to standard addresses."""

from __future__ import annotations

import geopandas as gpd
import numpy as np

from pipelines.demo.addresses import building_addresses
from pipelines.demo.common import pick, points_frame
from pipelines.demo.geo import rng_for
from pipelines.demo.identifiers import credit_code
from pipelines.demo.scales import Scale

_BRANDS = ("华东", "申闵", "莘宝", "紫竹", "虹桥", "浦江", "梅陇", "七宝", "锦江", "东川", "春申", "金都", "银都",
           "恒通", "鑫源", "汇丰", "博瑞", "智联", "星联", "海纳")
_TRADES = ("科技", "电子", "贸易", "物流", "信息技术", "生物医药", "机械", "建设工程", "餐饮管理",
           "物业管理", "文化传播", "新材料", "汽车服务", "医疗器械")
_SHOPS = ("便利店", "超市", "餐厅", "面馆", "药房", "理发店", "水果店", "洗衣店", "烟纸店", "咖啡馆")
#: category -> (registration authority + category code of the credit code, share)
CATEGORIES = {"enterprise": ("91", 0.55), "shop": ("92", 0.28), "government": ("11", 0.02),
              "school": ("12", 0.04), "hospital": ("12", 0.02), "other": ("52", 0.09)}


def houses(addresses: gpd.GeoDataFrame, seed: int, bldgs: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Return the ``houses`` layer: one house per building (号 or 幢) address, in its building when it has one.

    A house in a building takes the building's id, use and storeys, and a floor area of storeys × footprint
    (less 10 % of walls and shafts); a house without a building keeps drawn values.
    """
    rng = rng_for(seed, "houses")
    b = building_addresses(addresses)
    n = len(b)
    res = b["residential"].to_numpy()
    use = np.where(res, pick(rng, ["residential", "mixed"], [0.93, 0.07], n),
                   pick(rng, ["commercial", "industrial", "public", "mixed"], [0.45, 0.3, 0.15, 0.1], n))
    floors = np.where(res, rng.choice([5, 6, 6, 11, 14, 18, 24, 30], n), rng.integers(1, 12, n)).astype(np.int64)
    built = np.where(res, rng.integers(1985, 2021, n), rng.integers(1990, 2021, n)).astype(np.int64)
    area = np.round(floors * rng.uniform(300, 900, n), 1)
    building_id = np.full(n, None, dtype=object)
    if bldgs is not None and len(bldgs):
        at = bldgs.set_index("address_code").reindex(b["address_code"].to_numpy())
        has = at["building_id"].notna().to_numpy()
        building_id[has] = at["building_id"].to_numpy()[has]
        use = np.where(has, at["use"].to_numpy(), use)
        floors = np.where(has, at["floors"].fillna(1).to_numpy(), floors).astype(np.int64)
        footprint = at["footprint_m2"].to_numpy(dtype=float)
        area = np.where(has, np.round(floors * np.nan_to_num(footprint) * 0.9, 1), area)
    return points_frame({
        "house_id": [f"MHFW{i + 1:07d}" for i in range(n)],
        "address_code": b["address_code"].to_numpy(),
        "building_id": building_id,
        "use": use,
        "floors": floors,
        "floor_area_m2": area,
        "built_year": built,
    }, b.geometry.x.to_numpy(), b.geometry.y.to_numpy())


def _name(rng: np.random.Generator, category: str, town: str, i: int) -> str:
    brand = _BRANDS[rng.integers(0, len(_BRANDS))]
    if category == "enterprise":
        return f"上海{brand}{_TRADES[rng.integers(0, len(_TRADES))]}有限公司"
    if category == "shop":
        return f"闵行区{brand}{_SHOPS[rng.integers(0, len(_SHOPS))]}"
    if category == "government":
        return f"{town}社区事务受理服务中心" if i % 2 else f"{town}城市运行管理中心"
    if category == "school":
        return f"上海市闵行区{brand}{['小学', '中学', '幼儿园'][i % 3]}"
    if category == "hospital":
        return f"{town}社区卫生服务中心{brand}分中心"
    return f"闵行区{brand}{['志愿者协会', '养老服务社', '文化促进会'][i % 3]}"


def organisations(scale: Scale, addresses: gpd.GeoDataFrame, seed: int) -> gpd.GeoDataFrame:
    """Return the ``organisations`` layer: mostly at street-front addresses, with valid credit codes."""
    rng = rng_for(seed, "organisations")
    b = building_addresses(addresses)
    weights = np.where(b["residential"].to_numpy(), 0.05, 1.0)
    host = np.sort(rng.choice(len(b), size=scale.organisations, p=weights / weights.sum()))
    at = b.iloc[host]
    cats = list(CATEGORIES)
    category = pick(rng, cats, [CATEGORIES[c][1] for c in cats], len(at))
    bodies = rng.choice(list("0123456789"), size=(len(at), 8))
    bodies[:, 0] = np.where(category == "enterprise", "M", bodies[:, 0])  # post-2015 enterprise codes start MA
    bodies[:, 1] = np.where(category == "enterprise", "A", bodies[:, 1])
    towns = at["town"].to_numpy()
    return points_frame({
        "org_id": [f"MHDW{i + 1:06d}" for i in range(len(at))],
        "address_code": at["address_code"].to_numpy(),
        "name": [_name(rng, c, t, i) for i, (c, t) in enumerate(zip(category, towns, strict=True))],
        "credit_code": [credit_code(CATEGORIES[c][0], "310112", "".join(body))
                        for c, body in zip(category, bodies, strict=True)],
        "category": category,
        "employees": np.where(category == "shop", rng.integers(1, 12, len(at)),
                              rng.integers(5, 500, len(at))).astype(np.int64),
    }, at.geometry.x.to_numpy(), at.geometry.y.to_numpy())
