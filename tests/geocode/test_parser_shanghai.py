"""The address parser beyond Minhang: rural forms, every district's towns (old and new names), Shanghai-wide rate."""

from __future__ import annotations

import pytest

from cim_service.core.address import address_code, parse_address, shanghai_town
from cim_service.core.gazetteer import gazetteer

SHOWN = ("district", "town", "community", "group", "hamlet", "road", "cross_road", "lane", "number", "poi",
         "alternates", "extra")


def _fields(text: str, hint: str | None = None) -> dict:
    d = parse_address(text, town_hint=hint).as_dict()
    return {k: d[k] for k in SHOWN if d[k]}


# hand-checked: (text, town hint, expected fields)
CASES = [
    ("临江村西新队罗汉松", "三林镇",
     {"district": "浦东新区", "town": "三林镇", "community": "临江村", "group": "西新队", "hamlet": "罗汉松"}),
    ("南塘村顾家宅", None, {"community": "南塘村", "hamlet": "顾家宅"}),
    ("南汇区惠南镇城南村一队朱家宅", None,
     {"district": "浦东新区", "town": "惠南镇", "community": "城南村", "group": "1队", "hamlet": "朱家宅"}),
    ("上海市浦东新区川沙镇姚家宅", None, {"district": "浦东新区", "town": "川沙新镇", "hamlet": "姚家宅"}),
    ("张江诸家宅", None, {"district": "浦东新区", "town": "张江镇", "hamlet": "诸家宅"}),
    ("北蔡朱家队朱家宅", None, {"district": "浦东新区", "town": "北蔡镇", "group": "朱家队", "hamlet": "朱家宅"}),
    ("书院镇北窑1组", None, {"district": "浦东新区", "town": "书院镇", "group": "北窑1组"}),
    ("七宝镇联明村3组", None, {"district": "闵行区", "town": "七宝镇", "community": "联明村", "group": "3组"}),
    ("陈村村", "马陆镇", {"district": "嘉定区", "town": "马陆镇", "community": "陈村村"}),
    ("谈弄村", "高东镇", {"district": "浦东新区", "town": "高东镇", "community": "谈弄村"}),
    ("凤城路赵家宅16号", None, {"road": "凤城路", "hamlet": "赵家宅", "number": "16"}),
    ("浦建路东方路交界口工地生活区", "塘桥街道",
     {"district": "浦东新区", "town": "塘桥街道", "road": "浦建路", "cross_road": "东方路", "poi": "工地生活区"}),
    ("茅台路597弄茅台路715弄", "仙霞新村街道",
     {"district": "长宁区", "town": "仙霞新村街道", "road": "茅台路", "lane": "597", "alternates": ["茅台路715弄"]}),
    ("普善路铁路新村21号", "宝山路街道",
     {"district": "静安区", "town": "宝山路街道", "road": "普善路", "poi": "铁路新村", "number": "21"}),
    ("重庆南路12号丙", None, {"road": "重庆南路", "number": "12丙"}),
    ("首创旭辉城一期", "嘉定工业区", {"district": "嘉定区", "town": "嘉定工业区", "poi": "首创旭辉城一期"}),
    ("东八灶80弄", "周浦镇", {"district": "浦东新区", "town": "周浦镇", "road": "东八灶", "lane": "80"}),
    ("_川路1498弄", "吴淞街道", {"district": "宝山区", "town": "吴淞街道", "road": "_川路", "lane": "1498"}),
    ("西北新邨", None, {"poi": "西北新村"}),
    # former districts are read as today's
    ("上海市闸北区共和新路3088弄", None, {"district": "静安区", "road": "共和新路", "lane": "3088"}),
    ("崇明县城桥镇西门路100号", None, {"district": "崇明区", "town": "城桥镇", "road": "西门路", "number": "100"}),
    # an estate named like a village stays an estate (the town stem 古美 is not split off)
    ("古美一村", "古美街道", {"district": "闵行区", "town": "古美街道", "poi": "古美一村"}),
    # what is no address stays unassigned
    ("1例为到崇送货司机", None, {"extra": "1例为到崇送货司机"}),
    ("斜土路1358路", None, {"road": "斜土路", "extra": "1358路"}),
]


@pytest.mark.parametrize(("text", "hint", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hand_checked(text, hint, expected):
    assert _fields(text, hint) == expected


def test_rural_levels_and_standard_text():
    p = parse_address("临江村西新队罗汉松", town_hint="三林镇")
    assert p.level() == "community" and p.is_fully_parsed() and not p.is_complete()
    assert p.standard_address() == "上海市浦东新区三林镇临江村西新队罗汉松"
    assert address_code(p).startswith("310115130")  # 三林镇's NBS code
    # the hamlet is part of the address: two hamlets of one village are two addresses
    assert address_code(parse_address("南塘村顾家宅")) != address_code(parse_address("南塘村张家宅"))


def test_gazetteer_covers_every_district():
    g = gazetteer()
    assert len(g.towns) == 234
    districts = {t.district for t in g.towns.values()}
    assert len(districts) == 16
    assert all(t.code.startswith("31") and len(t.code) == 9 for t in g.towns.values())
    assert len({t.code for t in g.towns.values()}) == len(g.towns)


@pytest.mark.parametrize(
    ("name", "official", "district"),
    [
        ("三林镇", "三林镇", "浦东新区"),
        ("三林", "三林镇", "浦东新区"),
        ("川沙镇", "川沙新镇", "浦东新区"),  # former name
        ("芦潮港镇", "南汇新城镇", "浦东新区"),
        ("潍坊街道", "潍坊新村街道", "浦东新区"),
        ("上海市宝山区吴淞街道", "吴淞街道", "宝山区"),
        ("闸北区彭浦镇", "彭浦镇", "静安区"),
        ("城桥镇", "城桥镇", "崇明区"),
        ("横沙乡", "横沙乡", "崇明区"),
        ("杜行镇", "浦江镇", "闵行区"),
        ("古美路街道", "古美街道", "闵行区"),
        ("不存在镇", None, None),
    ],
)
def test_shanghai_town(name, official, district):
    town = shanghai_town(name)
    assert (town.name if town else None, town.district if town else None) == (official, district)


def test_every_town_name_is_read_in_an_address():
    """Each official name in front of a door plate is recognised as that town (and its district is inferred)."""
    wrong = []
    for town in gazetteer().towns.values():
        p = parse_address(f"{town.name}测试路1号")
        if (p.town, p.district, p.road) != (town.name, town.district, "测试路"):
            wrong.append((town.name, p.town, p.district, p.road))
    assert wrong == []
