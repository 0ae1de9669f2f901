"""Tests for cim_service.core.address: normalisation, level parsing, standard address, code, real-data rate."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest

from cim_service.core.address import (
    LEVELS,
    MINHANG_TOWNS,
    TOWN_ALIASES,
    ParsedAddress,
    address_code,
    canonical_town,
    main,
    normalize_text,
    parse_address,
    report_parse_rate,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ADDRESSES_CSV = SHARED_DATA / "addresses" / "minhang_addresses_gcj02.csv"

LEVEL_FIELDS = ("town", "community", "road", "lane", "sub_lane", "number", "building", "unit", "room", "poi")


def _parsed_fields(p: ParsedAddress) -> dict[str, str]:
    return {k: v for k, v in p.as_dict().items() if k in (*LEVEL_FIELDS, "group", "extra") and v}


# (text, town_hint, expected non-empty level fields, level, is_complete)
CASES = [
    # synthetic, full GA/T chain with a variant town name
    (
        "上海市闵行区古美路街道平南路88弄1号3幢2单元502室",
        None,
        {
            "town": "古美街道",
            "road": "平南路",
            "lane": "88",
            "number": "1",
            "building": "3",
            "unit": "2",
            "room": "502",
        },
        "room",
        True,
    ),
    ("虹梅路１２３４号", None, {"road": "虹梅路", "number": "1234"}, "number", True),
    (
        "莘庄镇莘松路958弄12支弄3号",
        None,
        {"town": "莘庄镇", "road": "莘松路", "lane": "958", "sub_lane": "12", "number": "3"},
        "number",
        True,
    ),
    # real rows of minhang_addresses_gcj02.csv (address column, street_level as hint)
    ("北江燕路228弄", "浦锦街道", {"town": "浦锦街道", "road": "北江燕路", "lane": "228"}, "lane", True),
    ("安乐村", "颛桥镇", {"town": "颛桥镇", "community": "安乐村"}, "community", False),
    ("宝联路100号", "七宝镇", {"town": "七宝镇", "road": "宝联路", "number": "100"}, "number", True),
    (
        "沪青平公路899号",
        "新虹街道",
        {"town": "新虹街道", "road": "沪青平公路", "number": "899"},
        "number",
        True,
    ),
    (
        "三鲁公路3419号工地",
        "浦江镇",
        {"town": "浦江镇", "road": "三鲁公路", "number": "3419", "poi": "工地"},
        "number",
        True,
    ),
    (
        "七莘路2465弄30支弄",
        "七宝镇",
        {"town": "七宝镇", "road": "七莘路", "lane": "2465", "sub_lane": "30"},
        "lane",
        True,
    ),
    ("古美一村", "古美街道", {"town": "古美街道", "poi": "古美一村"}, "community", False),
    ("华漕新村", "华漕镇", {"town": "华漕镇", "poi": "华漕新村"}, "community", False),
    ("五一村", "梅陇镇", {"town": "梅陇镇", "community": "五一村"}, "community", False),
    ("联盛花苑", "七宝镇", {"town": "七宝镇", "poi": "联盛花苑"}, "community", False),
    ("莘南花苑一街坊", "莘庄镇", {"town": "莘庄镇", "poi": "莘南花苑一街坊"}, "community", False),
    (
        "元江路4805弄跃进村",
        "马桥镇",
        {"town": "马桥镇", "road": "元江路", "lane": "4805", "community": "跃进村"},
        "lane",
        True,
    ),
    (
        "万源路2289弄 王泥浜村",
        "虹桥镇",
        {"town": "虹桥镇", "road": "万源路", "lane": "2289", "community": "王泥浜村"},
        "lane",
        True,
    ),
    ("沟水弄8号", "七宝镇", {"town": "七宝镇", "road": "沟水弄", "number": "8"}, "number", True),
    ("杜行东街", "浦江镇", {"town": "浦江镇", "road": "杜行东街"}, "road", False),
    (
        "虹莘路东兰路口工地",
        "浦锦街道",
        {"town": "浦锦街道", "road": "虹莘路", "poi": "工地"},  # cross_road 东兰路
        "road",
        False,
    ),
    ("马桥西街小区58弄", "莘庄镇", {"town": "莘庄镇", "poi": "马桥西街小区", "lane": "58"}, "lane", False),
    ("董家队", None, {"group": "董家队"}, "community", False),
    (
        "莘松路470号莘松路958弄",
        "莘庄镇",
        {"town": "莘庄镇", "road": "莘松路", "number": "470"},  # alternates ("莘松路958弄",)
        "number",
        True,
    ),
    # real rows of the complete_address column (geocoder 'road|number' style)
    ("上海市闵行区上中西路|711", None, {"road": "上中西路", "number": "711"}, "number", True),
    ("上海市闵行区东兰路|307号", None, {"road": "东兰路", "number": "307"}, "number", True),
    # synthetic: villages with groups, committees, Chinese numerals, building words, aliases
    (
        "上海市闵行区梅陇镇许泾村3组12号",
        None,
        {"town": "梅陇镇", "community": "许泾村", "group": "3组", "number": "12"},
        "number",
        False,
    ),
    ("浦江镇汇东村村民委员会", None, {"town": "浦江镇", "community": "汇东村"}, "community", False),
    ("古美街道古美一村居委会", None, {"town": "古美街道", "community": "古美一村居委"}, "community", False),
    ("平南路八十八弄三号", None, {"road": "平南路", "lane": "88", "number": "3"}, "number", True),
    (
        "上海闵行区华漕镇纪翟路888号3号楼2单元1203",
        None,
        {"town": "华漕镇", "road": "纪翟路", "number": "888", "building": "3", "unit": "2", "room": "1203"},
        "room",
        True,
    ),
    (
        "闵行区七宝镇漕宝路1555弄A座1201室",
        None,
        {"town": "七宝镇", "road": "漕宝路", "lane": "1555", "building": "A", "room": "1201"},
        "room",
        True,
    ),
    ("江川街道鹤庆路838号", None, {"town": "江川路街道", "road": "鹤庆路", "number": "838"}, "number", True),
    (
        "闵行区莘庄工业区春东路508号",
        None,
        {"town": "莘庄工业区", "road": "春东路", "number": "508"},
        "number",
        True,
    ),
    (
        "莘庄镇莘松路１２３弄（近沪闵路）",
        None,
        {"town": "莘庄镇", "road": "莘松路", "lane": "123"},
        "lane",
        True,
    ),
    ("古美一村12号502室", None, {"poi": "古美一村", "number": "12", "room": "502"}, "room", False),
    ("花园浜路12号", None, {"road": "花园浜路", "number": "12"}, "number", True),
    ("上海市闵行区马桥镇", None, {"town": "马桥镇"}, "town", False),
]


@pytest.mark.parametrize(("text", "hint", "expected", "level", "complete"), CASES, ids=[c[0] for c in CASES])
def test_parse_cases(text, hint, expected, level, complete):
    p = parse_address(text, town_hint=hint)
    assert _parsed_fields(p) == expected
    assert p.level() == level
    assert p.is_complete() is complete
    assert p.raw == text


def test_full_example_admin_fields_and_standard_address():
    p = parse_address("上海市闵行区古美路街道平南路88弄1号3幢2单元502室")
    assert (p.province, p.city, p.district) == ("上海市", "上海市", "闵行区")
    assert p.standard_address() == "上海市闵行区古美街道平南路88弄1号3幢2单元502室"
    assert p.is_fully_parsed()


@pytest.mark.parametrize(
    ("text", "hint", "standard"),
    [
        ("莘庄镇莘松路958弄12支弄3号", None, "上海市闵行区莘庄镇莘松路958弄12支弄3号"),
        ("北江燕路228弄", "浦锦街道", "上海市闵行区浦锦街道北江燕路228弄"),
        ("虹梅路１２３４号", None, "上海市闵行区虹梅路1234号"),
        ("安乐村", "颛桥镇", "上海市闵行区颛桥镇安乐村"),
        ("上海市闵行区梅陇镇许泾村3组12号", None, "上海市闵行区梅陇镇许泾村3组12号"),
        ("联盛花苑", "七宝镇", "上海市闵行区七宝镇联盛花苑"),
        ("上海市徐汇区龙吴路|5492号", None, "上海市徐汇区龙吴路5492号"),
        ("元江路4805弄跃进村", "马桥镇", "上海市闵行区马桥镇元江路4805弄"),
        ("上海闵行区华漕镇纪翟路888号3号楼2单元1203", None, "上海市闵行区华漕镇纪翟路888号3幢2单元1203室"),
    ],
)
def test_standard_address(text, hint, standard):
    p = parse_address(text, town_hint=hint)
    assert p.standard_address() == standard
    assert p.standard_address().count("上海市") == 1
    # Re-parsing the standard address is a fixed point for door-plate addresses.
    if p.is_complete():
        again = parse_address(p.standard_address())
        assert again.standard_address() == standard


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("虹梅路１２３４号", "虹梅路1234号"),
        ("平南路 88 弄\u30001 号", "平南路88弄1号"),
        ("平南路八十八弄三号", "平南路88弄3号"),
        ("3号楼二单元五零二室", "3幢2单元502室"),
        ("12栋", "12幢"),
        ("Ａ座", "A幢"),
        ("5#楼", "5幢"),
        ("莘松路958弄（近沪闵路）", "莘松路958弄"),
        ("东兰路|307", "东兰路307号"),
        ("莘松路470號", "莘松路470号"),
        ("古美一村", "古美一村"),  # a numeral inside a name is left alone
        ("五一村", "五一村"),
    ],
)
def test_normalize_text(raw, normalized):
    assert normalize_text(raw) == normalized


@pytest.mark.parametrize(
    ("name", "official"),
    [
        ("古美路街道", "古美街道"),
        ("古美街道", "古美街道"),
        ("古美", "古美街道"),
        ("江川街道", "江川路街道"),
        ("江川", "江川路街道"),
        ("莘庄", "莘庄镇"),
        ("莘庄工业区", "莘庄工业区"),
        ("上海莘庄工业区", "莘庄工业区"),
        ("上海市闵行区七宝镇", "七宝镇"),
        ("浦锦街道", "浦锦街道"),
        ("杜行镇", "浦江镇"),
        ("航头镇", None),
        ("", None),
    ],
)
def test_canonical_town(name, official):
    assert canonical_town(name) == official


def test_town_tables():
    assert len(MINHANG_TOWNS) == 14
    assert all(re.fullmatch(r"310112\d{3}", code) for code in MINHANG_TOWNS.values())
    assert len(set(MINHANG_TOWNS.values())) == len(MINHANG_TOWNS)
    assert MINHANG_TOWNS["江川路街道"] == "310112001" and MINHANG_TOWNS["浦江镇"] == "310112114"
    assert set(TOWN_ALIASES.values()) <= set(MINHANG_TOWNS)
    assert not set(TOWN_ALIASES) & set(MINHANG_TOWNS)


def test_town_hint_only_when_text_has_none():
    assert parse_address("七宝镇宝联路100号", town_hint="古美街道").town == "七宝镇"
    assert parse_address("宝联路100号", town_hint="七宝").town == "七宝镇"
    p = parse_address("航中路418号", town_hint="航头镇")  # a non-Minhang town: its district from the gazetteer
    assert p.town == "航头镇" and p.district == "浦东新区"


@pytest.mark.parametrize(
    ("text", "district", "town", "road"),
    [
        ("上海闵行莘庄镇莘松路958弄", "闵行区", "莘庄镇", "莘松路"),
        ("上海市闵行区闵行路12号", "闵行区", None, "闵行路"),
        ("闵行路12号", None, None, "闵行路"),
        ("航头镇航头路1号", "浦东新区", "航头镇", "航头路"),
        ("新镇路12号", None, None, "新镇路"),
        ("诸翟镇西街97弄", "闵行区", "华漕镇", "西街"),
    ],
)
def test_admin_prefixes(text, district, town, road):
    p = parse_address(text)
    assert (p.district, p.town, p.road) == (district, town, road)


@pytest.mark.parametrize("text", ["", "   ", "hello", "？？"])
def test_unparseable_input_does_not_crash(text):
    p = parse_address(text)
    assert p.level() == "none"
    assert not p.is_complete() and not p.is_fully_parsed()


def test_level_order_and_as_dict():
    p = parse_address("平南路88弄")
    assert p.level() in LEVELS
    d = p.as_dict()
    assert d["road"] == "平南路" and d["lane"] == "88" and d["raw"] == "平南路88弄"
    assert set(d) >= {*LEVEL_FIELDS, "province", "city", "district", "raw", "normalized"}
    assert json.loads(json.dumps(d, ensure_ascii=False)) == d


def test_parsed_address_is_frozen():
    p = parse_address("平南路88弄")
    with pytest.raises(AttributeError):
        p.road = "x"  # type: ignore[misc]


def test_address_code_definition():
    p = parse_address("上海市闵行区古美路街道平南路88弄1号3幢2单元502室")
    expected = "310112006" + hashlib.sha1(p.standard_address().encode("utf-8")).hexdigest()[:12]
    assert address_code(p) == expected
    assert re.fullmatch(r"[0-9a-z]{9,40}", address_code(p))  # the catalog's address_code pattern


def test_address_code_is_stable_across_spellings():
    a = parse_address("上海市闵行区古美路街道平南路88弄1号3幢2单元502室")
    b = parse_address("古美街道平南路八十八弄1号3号楼2单元502室")
    c = parse_address("平南路88弄1号3栋2单元502", town_hint="古美")
    assert address_code(a) == address_code(b) == address_code(c)
    assert address_code(a) != address_code(parse_address("古美街道平南路88弄1号3幢2单元503室"))


@pytest.mark.parametrize(
    ("text", "hint", "prefix"),
    [
        ("莘松路958弄", "莘庄镇", "310112101"),
        ("春东路508号", "莘庄工业区", "310112501"),
        ("上海市徐汇区龙吴路5492号", None, "310104000"),
        ("航中路418号", "航头镇", "310115137"),  # the gazetteer's code of 浦东新区航头镇
        ("虹梅路1234号", None, "310112000"),
    ],
)
def test_address_code_prefix(text, hint, prefix):
    assert address_code(parse_address(text, town_hint=hint)).startswith(prefix)


# ------------------------------------------------------------------------------------------------
# Real data
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def addresses_csv() -> Path:
    if not ADDRESSES_CSV.exists():
        pytest.fail(f"real address file missing: {ADDRESSES_CSV}")
    return ADDRESSES_CSV


def test_parse_rate_on_real_file(addresses_csv):
    report = report_parse_rate(addresses_csv)
    assert report["rows"] == 1748
    assert sum(report["by_level"].values()) == 1748
    # Measured: 1,742 fully parsed (99.7 %), 1,560 complete (89.2 %), nothing below community level.
    assert report["fully_parsed_share"] >= 0.98
    assert report["complete_share"] >= 0.87
    assert set(report["by_level"]) <= {"community", "road", "lane", "number"}


def test_real_rows_agree_with_source_town(addresses_csv):
    with open(addresses_csv, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    minhang = [r for r in rows if r["street_level"] in MINHANG_TOWNS]
    parsed = [parse_address(r["address"], town_hint=r["street_level"]) for r in minhang]
    assert all(p.town == r["street_level"] for p, r in zip(parsed, minhang, strict=True))
    assert all(address_code(p).startswith(MINHANG_TOWNS[p.town]) for p in parsed)
    # Every door-plate row keeps its number in the standard address.
    for p in parsed:
        if p.is_complete():
            assert (p.lane or p.number) in p.standard_address()


def test_main_prints_json_report(addresses_csv, capsys):
    assert main([str(addresses_csv)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 1748 and "by_level" in report and "fully_parsed_share" in report
