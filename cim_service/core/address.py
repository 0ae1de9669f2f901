"""Shanghai standard-address parser for the 一标多实 address base ("一标") of Minhang District.

Free-form Chinese addresses are split into the levels of GA/T 2000.32: district 区, town 街镇,
community 居委/村, road 街路巷, lane 弄, sub_lane 支弄, number 号, building 幢, unit 单元, room 室; plus
``poi`` (a named estate or place: 小区/公寓/花苑/新村/工地 ...), ``group`` (村民小组/生产队), ``hamlet``
(a natural village of a rural address: 宅/浜/埭/圈 …, ``临江村西新队罗汉松``, ``南塘村顾家宅``),
``cross_road`` (the second road of an intersection, ``浦建路东方路交界口``), ``alternates`` (further door plates
of one entry, ``茅台路597弄茅台路715弄``) and ``extra`` (text that could not be assigned).

Towns and districts of the whole of Shanghai, by official, former and short names, come from the gazetteer
(:mod:`cim_service.core.gazetteer`); former districts (闸北区, 卢湾区, 南汇区 …) are read as today's.

The parser is a deterministic left-to-right scanner over :func:`normalize_text` output; every level
is optional and the finest one reached is reported by :meth:`ParsedAddress.level`. Conventions:

* ``xx村`` is a community (administrative village / 村委) unless it is a residential estate named
  ``<2+ chars><numeral>村`` or ``…新村`` (古美一村, 华漕新村), which is a ``poi``.
* A ``poi``, ``group`` or ``hamlet`` alone counts as community-level precision.
* :meth:`ParsedAddress.is_complete` = road and (lane or number): usable to door-plate precision.
* When the text names no district but a Minhang town, ``district`` is inferred as 闵行区.

Measured (``python -m cim_service.core.address PATH``, ``address`` column, ``street_level`` as town hint):

* ``../shared/data/addresses/minhang_addresses_gcj02.csv`` (1,748 rows): every row reaches at least community
  level (community 164, road 23, lane 1,013, number 548); 1,747 rows (99.9 %) are fully parsed (the other,
  ``春申路2560号春申路3799弄100支弄``, has a second door plate with a sub-lane), and 1,560 rows (89.2 %) are
  complete door-plate addresses (road + lane/number); the rest are villages, estates (新村), old-town streets
  and construction sites.
* the Shanghai-wide set of the same public source (Stockard/Shanghai-COVID-2022 ``data/use_backup/geo.csv``
  at 5946969, 26,105 rows of all 16 districts): 99.7 % fully parsed (was 92.2 % before the rural forms and the
  gazetteer); what is left is mostly text that is no address (bulletin remarks) and typos (``斜土路1358路``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import json
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cim_service.core.gazetteer import DISTRICT_ALIASES, Town, gazetteer

__all__ = [
    "LEVELS",
    "MINHANG_TOWNS",
    "SHANGHAI_DISTRICTS",
    "TOWN_ALIASES",
    "ParsedAddress",
    "address_code",
    "canonical_town",
    "shanghai_town",
    "normalize_text",
    "parse_address",
    "report_parse_rate",
]

#: Levels from coarse to fine, as returned by :meth:`ParsedAddress.level`.
LEVELS = ("none", "district", "town", "community", "road", "lane", "number", "building", "unit", "room")

#: Official Minhang towns/subdistricts -> 9-digit NBS 统计用区划代码. 莘庄工业区 is a development
#: zone with town-level statistics; NBS lists it as 310112501 (its 5xx block is for such zones).
MINHANG_TOWNS: dict[str, str] = {
    "江川路街道": "310112001",
    "古美街道": "310112006",
    "新虹街道": "310112008",
    "浦锦街道": "310112009",
    "莘庄镇": "310112101",
    "七宝镇": "310112102",
    "颛桥镇": "310112103",
    "华漕镇": "310112106",
    "虹桥镇": "310112107",
    "梅陇镇": "310112108",
    "吴泾镇": "310112110",
    "马桥镇": "310112112",
    "浦江镇": "310112114",
    "莘庄工业区": "310112501",
}

#: Variant and former names (with their 镇/街道 suffix) -> official name. Former towns map to the
#: town they were merged into (2000-2001); parts of them may since belong to a newer subdistrict
#: (e.g. 浦锦街道 was split from 浦江镇), so treat these as a best guess.
TOWN_ALIASES: dict[str, str] = {
    "古美路街道": "古美街道",
    "江川街道": "江川路街道",
    "闵行镇": "江川路街道",  # "老闵行", the old town now administered as 江川路街道
    "莘庄工业园区": "莘庄工业区",
    "上海莘庄工业区": "莘庄工业区",
    "闵行莘庄工业区": "莘庄工业区",
    "北桥镇": "颛桥镇",  # merged 2000
    "塘湾镇": "吴泾镇",
    "陈行镇": "浦江镇",  # 陈行/杜行/鲁汇 merged into 浦江镇 in 2000
    "杜行镇": "浦江镇",
    "鲁汇镇": "浦江镇",
    "诸翟镇": "华漕镇",
}

#: Shanghai districts -> 6-digit administrative code (used for non-Minhang / unknown towns).
SHANGHAI_DISTRICTS: dict[str, str] = {
    "黄浦区": "310101",
    "徐汇区": "310104",
    "长宁区": "310105",
    "静安区": "310106",
    "普陀区": "310107",
    "虹口区": "310109",
    "杨浦区": "310110",
    "闵行区": "310112",
    "宝山区": "310113",
    "嘉定区": "310114",
    "浦东新区": "310115",
    "金山区": "310116",
    "松江区": "310117",
    "青浦区": "310118",
    "奉贤区": "310120",
    "崇明区": "310151",
}

_DEFAULT_DISTRICT = "闵行区"

# --------------------------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------------------------

_TRAD = str.maketrans({"號": "号", "樓": "楼", "區": "区", "鎮": "镇", "單": "单", "棟": "栋", "閔": "闵",
                      "邨": "村"})
_CN_DIGITS = {ch: i for i, ch in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMBER = re.compile(
    r"(?:^|(?<=[路街巷弄号幢栋楼座层元村组队道镇苑园区里坊]))([零〇一二两三四五六七八九十百千]+)"
    r"(?=号|弄|支弄|幢|栋|单元|室|组|座|层|楼|队)"
)
_BUILDING_WORDS = re.compile(r"(?<=[0-9A-Za-z])(?:号楼|栋|座|#楼|#)")
_REMARKS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】")
_WHITESPACE = re.compile(r"\s+")
_PIPE_NUMBER = re.compile(r"\|(\d+)$")
#: characters whose absence lets :func:`normalize_text` skip a substitution (the result is the same)
_REMARK_OPENERS = frozenset("([【")
_DASHES = frozenset("—－~")
_CN_NUMERALS = frozenset("零〇一二两三四五六七八九十百千")


def _cn_to_arabic(text: str) -> str:
    """Convert a simple Chinese numeral (八十八, 五零二, 十二) to an Arabic digit string."""
    if not any(ch in _CN_UNITS for ch in text):
        return "".join(str(_CN_DIGITS[ch]) for ch in text)
    total, digit = 0, 0
    for ch in text:
        if ch in _CN_UNITS:
            total += (digit or 1) * _CN_UNITS[ch]
            digit = 0
        else:
            digit = _CN_DIGITS[ch]
    return str(total + digit)


def normalize_text(s: str) -> str:
    """Normalise an address string for parsing.

    NFKC (full-width digits, letters and brackets -> ASCII), a few traditional characters ->
    simplified, all whitespace and bracketed remarks removed, simple Chinese numerals before a level
    word converted (``八十八弄`` -> ``88弄``, ``三号楼`` -> ``3号楼``) and building words unified
    (``3号楼``/``3栋``/``A座``/``3#`` -> ``3幢``).
    """
    text = s or ""
    if not unicodedata.is_normalized("NFKC", text):  # most texts are (and the quick check is cheaper)
        text = unicodedata.normalize("NFKC", text)
    text = _WHITESPACE.sub("", text.translate(_TRAD))
    if "|" in text:
        text = _PIPE_NUMBER.sub(r"\1号", text)  # geocoder style 'road|number'
        text = text.replace("|", "")
    if not _REMARK_OPENERS.isdisjoint(text):
        text = _REMARKS.sub("", text)
    if not _DASHES.isdisjoint(text):
        text = text.replace("—", "-").replace("－", "-").replace("~", "-")
    if not _CN_NUMERALS.isdisjoint(text):
        text = _CN_NUMBER.sub(lambda m: _cn_to_arabic(m.group(1)), text)
    text = _BUILDING_WORDS.sub("幢", text)
    return text.strip(",，。;；:：、-")


def canonical_town(name: str) -> str | None:
    """Return the official Minhang town name for *name* (official, alias or bare stem), else ``None``."""
    if not name:
        return None
    key = normalize_text(name)
    for prefix in ("上海市", "上海", "闵行区"):
        if key.startswith(prefix) and key != prefix:
            key = key[len(prefix) :]
    if key in MINHANG_TOWNS:
        return key
    if key in TOWN_ALIASES:
        return TOWN_ALIASES[key]
    return _TOWN_STEMS.get(key)


def _town_stems() -> dict[str, str]:
    stems: dict[str, str] = {}
    for full in [*MINHANG_TOWNS, *TOWN_ALIASES]:
        official = TOWN_ALIASES.get(full, full)
        for suffix in ("街道", "镇"):
            if full.endswith(suffix):
                stems.setdefault(full[: -len(suffix)], official)
    stems["江川"] = "江川路街道"
    return stems


_TOWN_STEMS = _town_stems()


def shanghai_town(name: str | None) -> Town | None:
    """Return the Shanghai township named ``name`` (official, former or short name; any district), else ``None``."""
    if not name:
        return None
    key = normalize_text(name)
    for prefix in ("上海市", "上海"):
        key = key.removeprefix(prefix) or key
    for district in [*SHANGHAI_DISTRICTS, *DISTRICT_ALIASES]:
        if key.startswith(district) and key != district:
            key = key[len(district):]
            break
    official = canonical_town(key)
    return gazetteer().lookup(official or key)

# --------------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedAddress:
    """A Shanghai address split into GA/T 2000.32 levels (numbers without their level word)."""

    province: str | None
    city: str | None
    district: str | None
    town: str | None
    community: str | None
    road: str | None
    lane: str | None
    sub_lane: str | None
    number: str | None
    building: str | None
    unit: str | None
    room: str | None
    poi: str | None
    raw: str
    normalized: str
    group: str | None = None
    extra: str | None = None
    hamlet: str | None = None
    cross_road: str | None = None
    alternates: tuple[str, ...] = ()

    def level(self) -> str:
        """Return the finest level reached (one of :data:`LEVELS`); sub_lane counts as lane."""
        checks = (
            ("room", self.room),
            ("unit", self.unit),
            ("building", self.building),
            ("number", self.number),
            ("lane", self.lane or self.sub_lane),
            ("road", self.road),
            ("community", self.community or self.poi or self.group or self.hamlet),
            ("town", self.town),
            ("district", self.district),
        )
        return next((name for name, value in checks if value), "none")

    def is_complete(self) -> bool:
        """Return True for a door-plate address: a road (街路巷) and a lane (弄) or number (号)."""
        return bool(self.road and (self.lane or self.number))

    def is_fully_parsed(self) -> bool:
        """Return True when every character was assigned to a level (no ``extra``) and level != none."""
        return self.extra is None and self.level() != "none"

    def standard_address(self) -> str:
        """Return the canonical text 上海市{district}{town}{road}{lane}弄{sub_lane}支弄{number}号….

        Then {building}幢{unit}单元{room}室; only present parts are written and district defaults
        to 闵行区. Without a road the base is the community (+ group, + hamlet), else the poi, else any
        unassigned text.
        """
        parts = ["上海市", self.district or _DEFAULT_DISTRICT, self.town or ""]
        if self.road:
            parts.append(self.road)
            if self.cross_road:
                parts.append(f"{self.cross_road}口")
        elif self.community or self.group or self.hamlet:
            parts += [self.community or "", self.group or "", self.hamlet or ""]
        elif self.poi:
            parts.append(self.poi)
        elif self.extra:
            parts.append(self.extra)
        for value, word in (
            (self.lane, "弄"),
            (self.sub_lane, "支弄"),
            (self.number, "号"),
            (self.building, "幢"),
            (self.unit, "单元"),
            (self.room, "室"),
        ):
            if value:
                parts.append(f"{value}{word}")
        return "".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """Return all fields as a plain dict."""
        out = dataclasses.asdict(self)
        out["alternates"] = list(self.alternates)
        return out


# --------------------------------------------------------------------------------------------
# Scanner
# --------------------------------------------------------------------------------------------

# CJK ideographs (basic, extension A and B) and "_", which real files put for a character their encoding lacked
# (宝山区 "_川路" for 蕰川路): a name character of unknown identity
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0002a6df_"
_NAME = rf"(?:(?![路弄号])[{_CJK}])"  # a name character that cannot cross a road/lane/number word
_POI_SUFFIX = (
    r"(?:小区|公寓|花园|花苑|家园|新苑|名苑|苑|街坊|大厦|广场|中心|大楼|商城|公馆|别墅|名邸|邸|府|"
    r"庭|园|城|湾|工地生活区|生活区|工地|宿舍|基地|厂区|厂|市场)"
)
_ROAD_SUFFIX = r"(?:公路|大道|大街|路|街|巷|弄|浜|道)"

_RE_PROVINCE = re.compile(r"(?:中国)?(上海市|上海)")
_RE_DISTRICT = re.compile("|".join(sorted([*SHANGHAI_DISTRICTS, *DISTRICT_ALIASES], key=len, reverse=True))
                          + "|闵行(?![区路])")


@functools.cache
def _town_forms() -> dict[str, str]:
    """Every spelling of a Shanghai town as it reads after normalisation -> its official name.

    Official names and aliases of the gazetteer, as written and normalised (brackets dropped:
    ``中国(上海)自由贸易试验区(保税片区)`` reads ``中国自由贸易试验区``), and without a leading ``上海``
    (the province word is consumed first: ``上海松江出口加工区`` reads ``松江出口加工区``).
    """
    g = gazetteer()
    forms: dict[str, str] = {}
    for name in [*g.towns, *g.aliases, *MINHANG_TOWNS, *TOWN_ALIASES]:
        official = TOWN_ALIASES.get(name) or g.aliases.get(name) or name
        for form in (name, normalize_text(name)):
            forms.setdefault(form, official)
            if form.startswith("上海") and len(form) > 4:
                forms.setdefault(form.removeprefix("上海"), official)
    return forms


@functools.cache
def _re_known_town() -> re.Pattern[str]:
    """Every Shanghai town name and alias (the gazetteer), not followed by a road word (洋泾镇路)."""
    names = sorted(_town_forms(), key=len, reverse=True)
    return re.compile("(?:" + "|".join(map(re.escape, names)) + ")(?![路街巷弄道])")


@functools.cache
def _re_town_stem() -> re.Pattern[str]:
    """Town names without 镇/街道 (三林, 张江), only before a village, team or hamlet (三林镇 is matched above)."""
    stems = sorted(gazetteer().stems, key=len, reverse=True)
    return re.compile("(?:" + "|".join(map(re.escape, stems)) + ")(?=[^路街巷弄道号新])")
_RE_GENERIC_TOWN = re.compile(rf"(?:(?![村路弄号])[{_CJK}]){{2,5}}?(?:街道|镇)(?![路街巷弄道村])")
_RE_COMMUNITY_EXPLICIT = re.compile(
    rf"[{_CJK}0-9A-Za-z]{{1,12}}?(?:居民委员会|居委会|居委|村民委员会|村委会|村委)"
)
_RE_VILLAGE = re.compile(rf"[{_CJK}]{{1,3}}村村|{_NAME}{{1,8}}?村(?![路街巷道委民])"
                         rf"|[{_CJK}]{{1,3}}[路弄]村(?![路街巷道委民])")
_RE_ESTATE_VILLAGE = re.compile(r"^.{2,}(?:新村|[东西南北中]?[一二三四五六七八九十]+村)$")
_RE_GROUP = re.compile(r"(\d+)(?:村民小组|生产队|组|队)")
_RE_NAMED_GROUP = re.compile(rf"{_NAME}{{1,6}}?(?:村民小组|生产队|队)|{_NAME}{{1,6}}?\d+(?:组|队)")
# A poi must not be the start of a road name ("花园浜路12号").
_RE_POI = re.compile(
    rf"(?:{_NAME}|[A-Za-z0-9]){{1,20}}{_POI_SUFFIX}(?![路街巷弄道浜])(?![{_CJK}]*?{_ROAD_SUFFIX}\d)"
)
# Prefer a road name directly followed by a door number ("北街路12号"), else the shortest one.
_RE_ROAD_NUMBERED = re.compile(rf"[{_CJK}]{{1,12}}?{_ROAD_SUFFIX}(?=\d)")
_RE_ROAD = re.compile(rf"[{_CJK}]{{1,12}}?{_ROAD_SUFFIX}")
_RE_POI_LOOSE = re.compile(rf"(?:{_NAME}|[A-Za-z0-9]){{1,20}}{_POI_SUFFIX}")
_RE_POI_TAIL = re.compile(rf"^\D*{_POI_SUFFIX}$")

_ID = r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?"
_CHAIN: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lane", re.compile(r"(\d+(?:-\d+)?)弄(?!堂)")),
    ("sub_lane", re.compile(r"(\d+)支弄")),
    ("number", re.compile(r"(\d+(?:-\d+)?[A-Za-z甲乙丙丁]?)号")),
    ("building", re.compile(rf"({_ID})幢")),
    ("unit", re.compile(r"(\d+)单元")),
    ("room", re.compile(rf"({_ID})室")),
)
_RE_BARE_ROOM = re.compile(r"(\d{3,5})$")
_HAMLET_WORDS = r"(?:宅|埭|圈|家浜|家庄|家堂|家角|家湾|家桥|家弄|家门|油车|庙)"
_RE_HAMLET_END = re.compile(rf"[{_CJK}]{{1,8}}?{_HAMLET_WORDS}(?:[东南西北]|[东南西北]?[头里])?$")
_RE_PLAIN_NAME = re.compile(rf"[{_CJK}]{{2,10}}$")
_RE_NOT_HAMLET = re.compile(rf"(?:.*(?:公路|大道|大街|路|街)$)|(?:.*{_POI_SUFFIX}$)")
_RE_CROSS_ROAD = re.compile(rf"([{_CJK}]{{1,12}}?(?:公路|大道|大街|路|街))(?:交界口|交叉口|路口|口|(?=工地|$))")
_RE_PLACE_ROAD = re.compile(rf"[{_CJK}]{{2,8}}(?=\d+(?:-\d+)?[弄号])")
_RE_PLATE_SEQUENCE = re.compile(rf"(?:[{_CJK}]{{1,12}}?{_ROAD_SUFFIX}\d+(?:-\d+)?(?:弄|号)(?:\d+号)?)+$")
_RE_PLATE = re.compile(rf"[{_CJK}]{{1,12}}?{_ROAD_SUFFIX}\d+(?:-\d+)?(?:弄|号)(?:\d+号)?")
_RE_PHASE = re.compile(r"-?[东南西北中]?[零一二三四五六七八九十百\d]*(?:期|坊|街坊|区|居)$")
_RE_ESTATE = re.compile(rf"[{_CJK}]{{1,8}}?(?:新村|[东西南北中]?[一二三四五六七八九十\d]+村)")
_RE_HAMLET = re.compile(rf"[{_CJK}]{{1,8}}?{_HAMLET_WORDS}(?=\d)")
_RE_NUMBER_SUFFIX = re.compile(r"[甲乙丙丁]$")
_RE_BARE_NUMBER = re.compile(r"(\d+(?:-\d+)?)$")
_RE_DOORPLATE = re.compile(rf"[{_CJK}]{{1,12}}?{_ROAD_SUFFIX}\d+(?:-\d+)?[号弄]")


class _Scanner:
    """A cursor over the normalised text that fills a dict of fields."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.f: dict[str, str | None] = {}

    def rest(self) -> str:
        return self.text[self.pos :]

    def take(self, pattern: re.Pattern[str], group: int = 0) -> str | None:
        m = pattern.match(self.text, self.pos)
        if not m or m.end() == self.pos:
            return None
        self.pos = m.end()
        return m.group(group)

    def put(self, key: str, value: str | None) -> None:
        if value and not self.f.get(key):
            self.f[key] = value

    def append_extra(self, value: str) -> None:
        self.f["extra"] = (self.f.get("extra") or "") + value


def _scan_admin(sc: _Scanner) -> None:
    if sc.take(_RE_PROVINCE):
        sc.put("province", "上海市")
        sc.put("city", "上海市")
    district = sc.take(_RE_DISTRICT)
    district = "闵行区" if district == "闵行" else DISTRICT_ALIASES.get(district or "", district)
    sc.put("district", district)
    town = sc.take(_re_known_town())
    if town:
        sc.put("town", _official_town(town))
        return
    m = _re_town_stem().match(sc.text, sc.pos)
    if m:
        rest = sc.text[m.end():]
        estate = _RE_ESTATE_VILLAGE.match(sc.text[sc.pos:_end_of(_RE_VILLAGE, rest) + m.end()])
        if not estate and (_RE_HAMLET_END.fullmatch(rest) or _RE_VILLAGE.match(rest)
                           or _RE_NAMED_GROUP.match(rest)):
            sc.pos = m.end()
            sc.put("town", _official_town(m.group(0)))
            return
    m = _RE_GENERIC_TOWN.match(sc.text, sc.pos)
    # A generic 'xx镇' must be followed by more address text, otherwise it is just a place name.
    if m and m.end() < len(sc.text):
        sc.pos = m.end()
        sc.put("town", m.group(0))


def _end_of(pattern: re.Pattern[str], text: str) -> int:
    m = pattern.match(text)
    return m.end() if m else 0


def _official_town(name: str) -> str:
    """The official name of a town named by an official, former or short name."""
    if name in MINHANG_TOWNS or name in TOWN_ALIASES:
        return TOWN_ALIASES.get(name, name)
    if name in _town_forms():
        return _town_forms()[name]
    town = gazetteer().lookup(name)
    return town.name if town else name


_COMMITTEE_SUFFIXES = (
    ("村民委员会", "村"),
    ("村委会", "村"),
    ("村委", "村"),
    ("居民委员会", "居委"),
    ("居委会", "居委"),
)


def _canonical_community(name: str) -> str:
    """Shorten committee words: 'xx村民委员会/村委会/村委' -> 'xx村', 'xx居民委员会/居委会' -> 'xx居委'."""
    for suffix, short in _COMMITTEE_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            return stem if short == "村" and stem.endswith("村") else stem + short
    return name


def _classify_village(sc: _Scanner, name: str) -> None:
    if _RE_ESTATE_VILLAGE.match(name):
        sc.put("poi", name)
    else:
        sc.put("community", name)


def _scan_community(sc: _Scanner) -> None:
    explicit = sc.take(_RE_COMMUNITY_EXPLICIT)
    if explicit:
        sc.put("community", _canonical_community(explicit))
    else:
        village = sc.take(_RE_VILLAGE)
        if village:
            _classify_village(sc, village)
    group = _RE_GROUP.match(sc.text, sc.pos) or _RE_NAMED_GROUP.match(sc.text, sc.pos)
    if group:
        sc.pos = group.end()
        sc.put("group", group.group(0))
    rest = sc.rest()
    if (sc.f.get("community") or sc.f.get("group")) and _RE_PLAIN_NAME.match(rest) \
            and not _RE_NOT_HAMLET.match(rest):
        sc.pos = len(sc.text)
        sc.put("hamlet", rest)  # a natural village: 临江村西新队罗汉松, 南塘村顾家宅


def _scan_place(sc: _Scanner) -> None:
    if not sc.f.get("poi") and not sc.f.get("community"):
        sc.put("poi", sc.take(_RE_POI))
    road = sc.take(_RE_ROAD_NUMBERED) or sc.take(_RE_ROAD)
    if road is None and not sc.f.get("poi") and not sc.f.get("community"):
        road = sc.take(_RE_PLACE_ROAD)  # an old lane named after a place: 东八灶80弄
    sc.put("road", road)
    if road and sc.pos < len(sc.text) and not sc.text[sc.pos].isdigit():
        cross = _RE_CROSS_ROAD.match(sc.text, sc.pos)
        if cross and (cross.end() == len(sc.text) or not sc.text[cross.end()].isdigit()):
            sc.pos = cross.end()
            sc.put("cross_road", cross.group(1))  # 浦建路东方路交界口


_CHAIN_WORDS = {"lane": "弄", "sub_lane": "支弄", "number": "号", "building": "幢", "unit": "单元", "room": "室"}


def _scan_chain(sc: _Scanner) -> None:
    for key, pattern in _CHAIN:
        if sc.pos >= len(sc.text) or _CHAIN_WORDS[key] not in sc.text[sc.pos:]:
            continue  # (cheap test first: most texts stop at a lane or number)
        sc.put(key, sc.take(pattern, 1))
        if key == "number" and sc.f.get("number") and _RE_NUMBER_SUFFIX.match(sc.text, sc.pos):
            sc.f["number"] = f"{sc.f['number']}{sc.text[sc.pos]}"  # 重庆南路12号丙
            sc.pos += 1
    f = sc.f
    if f.get("road") and not f.get("number"):
        sc.put("number", sc.take(_RE_BARE_NUMBER, 1))  # informal "莘松路470", "虹梅路3297弄12"
        building = f.get("building") or ""
        if "-" in building and not f.get("lane") and not f.get("number"):
            f["number"], f["building"] = building.split("-", 1)  # "都会路2338-122号楼"
    if not sc.f.get("room") and (sc.f.get("building") or sc.f.get("unit") or sc.f.get("number")):
        sc.put("room", sc.take(_RE_BARE_ROOM, 1))


def _scan_residual(sc: _Scanner) -> None:
    """Assign what is left: a village/estate/group/poi name, else keep it in ``extra``."""
    while sc.pos < len(sc.text):
        rest = sc.rest()
        if _RE_DOORPLATE.match(rest):
            if sc.f.get("road") and _RE_PLATE_SEQUENCE.match(rest):
                # further door plates of one entry (a block on two streets): parsed, kept apart
                sc.f["alternates"] = tuple(m.group(0) for m in _RE_PLATE.finditer(rest))  # type: ignore[assignment]
            else:
                sc.append_extra(rest)  # a second door plate followed by text that is no door plate
            break
        if not sc.f.get("hamlet") and _RE_HAMLET_END.match(rest):
            sc.put("hamlet", rest)  # 三林镇王家宅, 巨野路大陆家宅
            break
        hamlet = sc.take(_RE_HAMLET) if not sc.f.get("hamlet") else None
        if hamlet:
            sc.put("hamlet", hamlet)  # 凤城路赵家宅16号
            continue
        if sc.f.get("poi") and not sc.f.get("road") and _RE_PHASE.match(rest):
            sc.f["poi"] = f"{sc.f['poi']}{rest}"  # an estate's phase or block: 首创旭辉城一期, 迎园十坊
            break
        if rest[0].isdigit() and any(sc.f.get(k) for k in ("poi", "community", "hamlet")) \
                and not sc.f.get("number"):
            before = sc.pos
            _scan_chain(sc)  # a door plate inside an estate: 铁路新村21号
            if sc.pos > before:
                continue
        village = sc.take(_RE_VILLAGE) if not sc.f.get("community") else None
        if village:
            _classify_village(sc, village)
            continue
        estate = sc.take(_RE_ESTATE) if not sc.f.get("poi") else None
        if estate:
            sc.put("poi", estate)  # 普善路铁路新村21号, 东海2村
            continue
        if _RE_POI_TAIL.match(rest) and not sc.f.get("poi"):
            sc.put("poi", rest)  # e.g. 对面工地, 东兰路口工地
            break
        poi = sc.take(_RE_POI_LOOSE) if not sc.f.get("poi") else None
        if poi:
            sc.put("poi", poi)
            continue
        if _RE_PLAIN_NAME.match(rest) and not any(sc.f.get(k) for k in _PLACE_KEYS):
            sc.put("poi", rest)  # a bare place or estate name: 水云间, 锦绣华都
            break
        sc.append_extra(rest)
        break


_PLACE_KEYS = ("community", "road", "poi", "group", "hamlet", "lane", "number")


def _resolve_town(fields: dict[str, str | None], town_hint: str | None) -> None:
    if not fields.get("town") and town_hint:
        hint = normalize_text(town_hint)
        fields["town"] = canonical_town(hint) or hint
    if not fields.get("district") and fields.get("town") in MINHANG_TOWNS:
        fields["district"] = _DEFAULT_DISTRICT
    elif not fields.get("district") and fields.get("town"):
        town = gazetteer().lookup(fields["town"] or "")
        if town is not None:
            fields["district"] = town.district


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ParsedAddress) if f.name not in ("raw", "normalized"))


def parse_address(text: str, *, town_hint: str | None = None) -> ParsedAddress:
    """Parse a free-form Shanghai address; *town_hint* fills the town when the text names none."""
    raw = "" if text is None else str(text)
    sc = _Scanner(normalize_text(raw))
    _scan_admin(sc)
    _scan_community(sc)
    _scan_place(sc)
    _scan_chain(sc)
    _scan_residual(sc)
    fields = sc.f
    _resolve_town(fields, town_hint)
    values = {name: fields.get(name) for name in _FIELD_NAMES}
    values["alternates"] = fields.get("alternates") or ()
    values["raw"], values["normalized"] = raw, sc.text
    # the frozen dataclass's __init__ sets its 20 fields one by one through object.__setattr__ (a quarter of a
    # parse); every field is given here, so the instance's dict is filled at once
    parsed = object.__new__(ParsedAddress)
    parsed.__dict__.update(values)
    return parsed


def address_code(p: ParsedAddress) -> str:
    """Return a stable code: 9-digit town NBS code + first 12 hex digits of sha1(standard_address()).

    For a town outside the Minhang table the prefix is the district's 6-digit code + ``000``
    (闵行区 when the district is unknown). The code changes only if the standard address does.
    """
    prefix = MINHANG_TOWNS.get(p.town or "")
    if prefix is None and p.town:
        town = gazetteer().lookup(p.town)
        if town is not None and (p.district is None or town.district == p.district):
            prefix = town.code
    if prefix is None:
        prefix = SHANGHAI_DISTRICTS.get(p.district or _DEFAULT_DISTRICT, SHANGHAI_DISTRICTS["闵行区"]) + "000"
    digest = hashlib.sha1(p.standard_address().encode("utf-8")).hexdigest()[:12]
    return prefix + digest


# --------------------------------------------------------------------------------------------
# Measurement on a real file
# --------------------------------------------------------------------------------------------


def _share(n: int, total: int) -> float:
    return round(n / total, 4) if total else 0.0


def report_parse_rate(path: str | Path, column: str = "address", hint_column: str = "street_level") -> dict:
    """Parse every row of a CSV and return counts per level and complete / fully-parsed shares."""
    levels: Counter[str] = Counter()
    complete = fully = rows = 0
    unparsed: list[str] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            rows += 1
            parsed = parse_address(row.get(column) or "", town_hint=row.get(hint_column) or None)
            levels[parsed.level()] += 1
            complete += parsed.is_complete()
            if parsed.is_fully_parsed():
                fully += 1
            else:
                unparsed.append(parsed.raw)
    return {
        "path": str(path),
        "rows": rows,
        "by_level": {name: levels[name] for name in LEVELS if levels[name]},
        "complete": complete,
        "complete_share": _share(complete, rows),
        "fully_parsed": fully,
        "fully_parsed_share": _share(fully, rows),
        "not_fully_parsed_examples": unparsed[:20],
    }


def main(argv: list[str] | None = None) -> int:
    """Print the parse-rate report for a CSV file as JSON."""
    parser = argparse.ArgumentParser(prog="python -m cim_service.core.address", description=main.__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--column", default="address")
    parser.add_argument("--hint-column", default="street_level")
    args = parser.parse_args(argv)
    report = report_parse_rate(args.path, args.column, args.hint_column)
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
