"""The 实有人口 (residents): synthetic names, valid ID numbers and mobiles, at residential room addresses."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from pipelines.demo.common import points_frame
from pipelines.demo.geo import rng_for
from pipelines.demo.identifiers import id_numbers, mobiles
from pipelines.demo.scales import Scale

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严"
)
GIVEN = (
    "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国文辉玲萍红鹏飞斌宇浩凯鑫晨"
    "欣怡佳悦子涵梓轩俊杰雨婷嘉琪思远博文志强海燕慧颖晓东家豪雪梅春生"
)
#: registered residents are from Minhang; others from Shanghai districts and other provinces' capitals
OTHER_REGIONS = np.array(["310104", "310105", "310115", "320102", "320583", "330102", "340102", "360102",
                          "370102", "410102", "420102", "430102", "510104", "130102", "230102", "350102"])


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    rank_weight = 1.0 / (np.arange(len(SURNAMES)) + 4.0)  # common surnames first, a long tail
    sur = np.array(list(SURNAMES))[rng.choice(len(SURNAMES), size=n, p=rank_weight / rank_weight.sum())]
    giv = np.array(list(GIVEN))
    first = giv[rng.integers(0, len(giv), n)]
    second = np.where(rng.random(n) < 0.7, giv[rng.integers(0, len(giv), n)], "")
    return np.char.add(np.char.add(sur, first), second).astype(object)


def _unique_ids(rng: np.random.Generator, region: np.ndarray, birth: np.ndarray, male: np.ndarray) -> np.ndarray:
    """ID numbers with the sequence's parity set by gender; collisions are redrawn."""
    seq = rng.integers(0, 500, len(region)) * 2 + male.astype(int)
    ids = id_numbers(region, birth, seq)
    for _ in range(20):
        dup = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
        if not len(dup):
            break
        seq[dup] = rng.integers(0, 500, len(dup)) * 2 + male[dup].astype(int)
        ids[dup] = id_numbers(region[dup], birth[dup], seq[dup])
    return ids


def people(scale: Scale, addresses: gpd.GeoDataFrame, seed: int) -> gpd.GeoDataFrame:
    """Return the ``people`` layer: 1-4 residents per occupied residential room, linked by address_code."""
    rng = rng_for(seed, "people")
    rooms = addresses[(addresses["parse_level"] == "room") & addresses["residential"]]
    if len(rooms) == 0:
        rooms = addresses[addresses["residential"]]
    n = scale.people
    host = np.sort(rng.choice(len(rooms), size=n, replace=True))
    at = rooms.iloc[host]
    male = rng.random(n) < 0.51
    kind = np.array(["registered", "resident", "floating"], dtype=object)[rng.choice(3, n, p=[0.45, 0.2, 0.35])]
    region = np.where(kind == "registered", "310112", OTHER_REGIONS[rng.integers(0, len(OTHER_REGIONS), n)])
    age_days = (rng.beta(2.0, 2.6, n) * 90 * 365.25).astype(np.int64)
    birth = np.datetime64("2020-12-31", "D") - age_days
    return points_frame({
        "person_id": [f"MHRK{i + 1:07d}" for i in range(n)],
        "address_code": at["address_code"].to_numpy(),
        "name": _names(rng, n),
        "id_number": _unique_ids(rng, region, birth, male),
        "phone": np.where(age_days > 8 * 365, mobiles(rng, n), None),
        "gender": np.where(male, "M", "F").astype(object),
        "birth_year": birth.astype("datetime64[Y]").astype(np.int64) + 1970,
        "residence_type": kind,
    }, at.geometry.x.to_numpy(), at.geometry.y.to_numpy())
