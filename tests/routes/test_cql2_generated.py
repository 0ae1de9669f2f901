"""Generated CQL2 (text and JSON, grammar-aware and raw junk) to the parser, the SQL builder and the items route.

The only outcomes allowed are a translation (SQL with placeholders) or :class:`InvalidParameter` from the parser
and builder, and 200 or a 4xx with ``{"code", "description"}`` (no SQL text) from the route. The number of
examples is kept small for CI; ``CIM_FUZZ_EXAMPLES=5000`` runs many more.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cim_service.errors import InvalidParameter
from cim_service.features.cql2 import FilterContext, parse_filter, to_sql
from cim_service.features.crs import SUPPORTED, resolve_crs
from cim_service.features.sql import Params

EXAMPLES = int(os.environ.get("CIM_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])
SQL_TEXT = re.compile(r"\b(SELECT|WHERE|ST_\w+\(|\$\d+|syntax error|Traceback)\b", re.I)

PROPS = ["camera_type", "direction_deg", "fov_deg", "installed_at", "owner", "device_id", "geometry", "id",
         "nosuch", '"camera_type"', "floors"]

# -- grammar-aware CQL2 text --------------------------------------------------------------------

numbers = st.one_of(st.integers(min_value=-2**70, max_value=2**70).map(str),
                    st.floats(allow_nan=False, allow_infinity=False).map(repr),
                    st.sampled_from(["0", "-0", "1e400", "-1e400", "1e-400", ".5", "5.", "0x10", "NaN", "1_000"]))
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).map(lambda s: "'" + s.replace("'", "''")
                                                                                + "'")
dates = st.one_of(st.dates().map(lambda d: f"DATE('{d.isoformat()}')"),
                  st.datetimes().map(lambda d: f"TIMESTAMP('{d.isoformat()}Z')"),
                  st.sampled_from(["DATE('2020-02-30')", "TIMESTAMP('0001-01-01T00:00:00+01:00')",
                                   "TIMESTAMP('9999-12-31T23:59:59-12:00')", "DATE('x')"]))
coords = st.one_of(st.floats(min_value=120.8, max_value=122.2), st.floats(allow_nan=False),
                   st.sampled_from([1e308, -1e308, 0.0, 500.0, 31.1]))
point = st.tuples(coords, coords).map(lambda p: f"{p[0]!r} {p[1]!r}")
ring = st.lists(point, min_size=0, max_size=6).map(lambda ps: "(" + ", ".join(ps + ps[:1]) + ")")
geometries = st.one_of(
    point.map(lambda p: f"POINT({p})"),
    st.lists(point, max_size=5).map(lambda ps: "LINESTRING(" + ", ".join(ps) + ")"),
    st.lists(ring, min_size=1, max_size=2).map(lambda rs: "POLYGON(" + ", ".join(rs) + ")"),
    st.lists(point, min_size=1, max_size=3).map(lambda ps: "MULTIPOINT(" + ", ".join(f"({p})" for p in ps) + ")"),
    st.tuples(coords, coords, coords, coords).map(lambda b: "BBOX({!r}, {!r}, {!r}, {!r})".format(*b)),
    st.sampled_from(["GEOMETRYCOLLECTION(POINT(121 31))", "POLYGON EMPTY", "POINT(121 31 5)"]),
)
scalars = st.one_of(st.sampled_from(PROPS), numbers, strings, dates, st.sampled_from(["TRUE", "false", "NULL"]))


def _expr(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "%", "^"]), children).map(" ".join),
        st.tuples(st.sampled_from(["lower", "upper", "casei", "abs", "nosuch"]), children).map(
            lambda t: f"{t[0]}({t[1]})"),
        children.map(lambda c: f"({c})"),
    )


expressions = st.recursive(scalars, _expr, max_leaves=6)


def _predicate(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["AND", "OR"]), children).map(" ".join),
        children.map(lambda c: f"NOT ({c})"),
        children.map(lambda c: f"({c})"),
    )


atoms = st.one_of(
    st.tuples(expressions, st.sampled_from(["=", "<>", "<", "<=", ">", ">=", "LIKE", "NOT LIKE", "ILIKE"]),
              expressions).map(" ".join),
    st.tuples(expressions, st.lists(expressions, min_size=1, max_size=4)).map(
        lambda t: f"{t[0]} IN ({', '.join(t[1])})"),
    st.tuples(expressions, expressions, expressions).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
    expressions.map(lambda e: f"{e} IS NULL"),
    st.tuples(st.sampled_from(["S_INTERSECTS", "S_WITHIN", "S_CONTAINS", "S_DISJOINT", "S_TOUCHES", "S_CROSSES",
                               "S_OVERLAPS", "S_EQUALS"]), st.sampled_from(["geometry", "owner", "geom"]),
              geometries).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    st.tuples(geometries, numbers, st.sampled_from(["meters", "km", "furlongs"])).map(
        lambda t: f"S_DWITHIN(geometry, {t[0]}, {t[1]}, {t[2]})"),
    st.tuples(st.sampled_from(["T_AFTER", "T_BEFORE", "T_DURING", "T_INTERSECTS", "T_EQUALS", "T_NOPE"]),
              st.sampled_from(["installed_at", "owner", "direction_deg"]),
              st.one_of(dates, st.tuples(dates, dates).map(lambda d: f"INTERVAL({d[0][5:-1]}, {d[1][5:-1]})"),
                        st.just("INTERVAL('..', '..')"))).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    st.sampled_from(["TRUE", "FALSE", "direction_deg", "INCLUDE", "EXCLUDE"]),
)
cql2_text = st.recursive(atoms, _predicate, max_leaves=5)
junk = st.one_of(st.text(max_size=80), st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
                 st.text(alphabet="()'\",=<>%_ AND OR NOT S_INTERSECTS T_AFTER POINT 0123.-e", max_size=80))

# -- CQL2 JSON ---------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10),
                         st.sampled_from(PROPS).map(lambda p: {"property": p}),
                         st.dates().map(lambda d: {"date": d.isoformat()}),
                         st.text(max_size=25).map(lambda t: {"timestamp": t}),
                         st.lists(coords, min_size=0, max_size=3).map(lambda c: {"type": "Point", "coordinates": c}),
                         st.lists(coords, max_size=5).map(lambda c: {"bbox": c}),
                         st.lists(st.text(max_size=20), max_size=3).map(lambda c: {"interval": c}))
OPS = ["and", "or", "not", "=", "<>", "<", ">", "like", "in", "between", "isNull", "+", "-", "*", "/",
       "s_intersects", "s_within", "s_dwithin", "t_after", "t_during", "casei", "accenti", "nosuch"]


def _json(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(lambda op, args: {"op": op, "args": args}, st.sampled_from(OPS), st.lists(children, max_size=3)),
        st.builds(lambda op, args: {"op": op, "args": args}, st.sampled_from(OPS), children),
        st.lists(children, max_size=3),
        st.builds(lambda name, args: {"function": {"name": name, "args": args}},
                  st.sampled_from(["lower", "upper", "nosuch"]), st.lists(children, max_size=2)),
    )


cql2_json = st.recursive(json_scalars, _json, max_leaves=8)


# -- the parser and the SQL builder ---------------------------------------------------------------

@pytest.fixture(scope="module")
def camera_fields(catalog):
    return {f.name: f for f in catalog.get("cameras").public_fields(personal_data=False)}


def _translate(text: str, lang: str | None, fields: dict, crs: str | None = None) -> str | None:
    """Translate, or None when the filter was refused with InvalidParameter; anything else fails the test."""
    try:
        node = parse_filter(text, lang)
        sql = to_sql(node, FilterContext(fields, resolve_crs(crs, "filter-crs"), Params()))
    except InvalidParameter as exc:
        assert exc.description.startswith("parameter 'filter"), exc.description
        return None
    assert "'" not in sql.replace("'-infinity'", "").replace("'infinity'", "").replace("'{}'", ""), sql
    return sql


@FUZZ
@given(text=st.one_of(cql2_text, junk), crs=st.sampled_from([None, *SUPPORTED]))
def test_generated_cql2_text_translates_or_is_refused(camera_fields, text, crs):
    _translate(text, None, camera_fields, crs)


@FUZZ
@given(doc=cql2_json)
def test_generated_cql2_json_translates_or_is_refused(camera_fields, doc):
    _translate(json.dumps(doc), "cql2-json", camera_fields)


@FUZZ
@given(text=st.one_of(junk, st.text(max_size=200)))
def test_raw_junk_as_cql2_json_is_refused(camera_fields, text):
    _translate(text, "cql2-json", camera_fields)


# -- through the items route --------------------------------------------------------------------

def _check_route(api, params: dict[str, str]) -> int:
    r = api.get("/collections/cameras/items", params={**params, "limit": "5"})
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, params, r.text[:300])
    if r.status_code != 200:
        body = r.json()
        assert set(body) == {"code", "description"}, body
        assert not SQL_TEXT.search(body["description"]), body
    return r.status_code


@FUZZ
@given(text=st.one_of(cql2_text, junk), crs=st.sampled_from([None, *SUPPORTED]))
def test_generated_cql2_text_through_the_items_route(api, text, crs):
    params = {"filter": text}
    if crs:
        params["filter-crs"] = crs
    _check_route(api, params)


@FUZZ
@given(doc=cql2_json)
def test_generated_cql2_json_through_the_items_route(api, doc):
    _check_route(api, {"filter": json.dumps(doc), "filter-lang": "cql2-json"})


@FUZZ
@given(name=st.sampled_from(["direction_deg", "installed_at", "camera_type", "bbox", "datetime", "limit", "offset",
                             "crs", "bbox-crs", "sortby", "properties", "f"]),
       value=st.one_of(st.text(max_size=30), numbers, st.integers().map(str)))
def test_generated_parameter_values_through_the_items_route(api, name, value):
    _check_route(api, {name: value})


def test_the_generators_reach_valid_filters(api, camera_fields):
    """The strategies are not all junk: known-good members of each family translate and answer 200."""
    good = ["direction_deg + 1 > 2 AND camera_type IN ('ptz', 'dome')",
            "S_INTERSECTS(geometry, POLYGON((121.3 31.0, 121.4 31.0, 121.4 31.1, 121.3 31.0)))",
            "T_AFTER(installed_at, DATE('2021-01-01')) OR owner IS NULL",
            "S_DWITHIN(geometry, POINT(121.35 31.01), 500, meters)"]
    for text in good:
        assert _translate(text, None, camera_fields) is not None, text
        assert _check_route(api, {"filter": text}) == 200, text
