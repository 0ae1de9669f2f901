"""Hand-made requests against /sta/v1.1: every query option, paths, writes, bad input, auth.

Entities are created over the API by the module fixture and compared with the database, never with constants
typed here: ids come from the Location headers, counts from SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.store import observations
from tests.sta.conftest import STA, basic, thing_body

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _id(resp) -> int:
    assert resp.status_code == 201, resp.text
    loc = resp.headers["location"]
    return int(loc[loc.rindex("(") + 1:-1])


@pytest.fixture(scope="module")
def world(api, keys, engine):
    """Two Things (one with two Datastreams), 20 observations on the first Datastream, 5 on the second."""
    h = {"X-API-Key": keys["sensor"]}
    t1 = _id(api.post(f"{STA}/Things", json=thing_body("Alpha pump", 121.40, 31.10, 2), headers=h))
    t2 = _id(api.post(f"{STA}/Things", json=thing_body("Beta gauge", 121.50, 31.20, 1), headers=h))
    ds = api.get(f"{STA}/Things({t1})/Datastreams").json()["value"]
    d1, d2 = ds[0]["@iot.id"], ds[1]["@iot.id"]
    d3 = api.get(f"{STA}/Things({t2})/Datastreams").json()["value"][0]["@iot.id"]
    times = [NOW - timedelta(minutes=20 - i) for i in range(20)]
    r = api.post(f"{STA}/CreateObservations", headers=h, json=[
        {"Datastream": {"@iot.id": d1}, "components": ["phenomenonTime", "result"],
         "dataArray": [[iso(t), float(i)] for i, t in enumerate(times)]},
        {"Datastream": {"@iot.id": d2}, "components": ["phenomenonTime", "result", "resultQuality"],
         "dataArray": [[iso(times[i]), 100 + i, "good"] for i in range(5)]}])
    assert r.status_code == 201, r.text
    assert len(r.json()) == 25
    return {"things": (t1, t2), "ds": (d1, d2, d3), "times": times}


def test_landing_lists_entity_sets_and_conformance(api):
    doc = api.get(STA).json()
    names = [v["name"] for v in doc["value"]]
    assert names == ["Things", "Locations", "HistoricalLocations", "Sensors", "ObservedProperties", "Datastreams",
                     "Observations", "FeaturesOfInterest"]
    assert all(v["url"].endswith(f"{STA}/{v['name']}") for v in doc["value"])
    assert any(c.endswith("/req/request-data") for c in doc["serverSettings"]["conformance"])
    assert any(c.endswith("/req/request-data") for c in api.get("/conformance").json()["conformsTo"])


def test_links_and_navigation(api, world):
    t1 = world["things"][0]
    thing = api.get(f"{STA}/Things({t1})").json()
    assert thing["@iot.selfLink"].endswith(f"{STA}/Things({t1})")
    assert thing["Datastreams@iot.navigationLink"].endswith(f"/Things({t1})/Datastreams")
    assert thing["properties"] == {"kind": "test", "floor": 2}
    locs = api.get(f"{STA}/Things({t1})/Locations").json()["value"]
    assert locs[0]["location"] == {"type": "Point", "coordinates": [121.40, 31.10]}
    hist = api.get(f"{STA}/Things({t1})/HistoricalLocations?$expand=Locations").json()["value"]
    assert len(hist) == 1 and hist[0]["Locations"][0]["@iot.id"] == locs[0]["@iot.id"]
    d1 = world["ds"][0]
    ds = api.get(f"{STA}/Datastreams({d1})/Thing").json()
    assert ds["@iot.id"] == t1
    assert api.get(f"{STA}/Datastreams({d1})/Sensor").json()["name"] == "gauge 0"
    obs = api.get(f"{STA}/Datastreams({d1})/Observations?$top=1").json()["value"][0]
    assert obs["Datastream@iot.navigationLink"].endswith(f"/Observations({obs['@iot.id']})/Datastream")
    one = api.get(f"{STA}/Observations({obs['@iot.id']})").json()
    assert one["result"] == obs["result"] and one["phenomenonTime"] == obs["phenomenonTime"]
    # the FeatureOfInterest was generated from the Thing's Location
    foi = api.get(f"{STA}/Observations({obs['@iot.id']})/FeatureOfInterest").json()
    assert foi["feature"] == locs[0]["location"]
    assert api.get(f"{STA}/Things({t1})/Datastreams({d1})").json()["@iot.id"] == d1
    assert api.get(f"{STA}/Things({t1})/Datastreams({world['ds'][2]})").status_code == 404


def test_value_and_ref(api, world):
    t1 = world["things"][0]
    assert api.get(f"{STA}/Things({t1})/name").json() == {"name": "Alpha pump"}
    r = api.get(f"{STA}/Things({t1})/name/$value")
    assert r.status_code == 200 and r.text == "Alpha pump" and r.headers["content-type"].startswith("text/plain")
    refs = api.get(f"{STA}/Things({t1})/Datastreams/$ref").json()["value"]
    assert [set(x) for x in refs] == [{"@iot.selfLink"}] * 2
    assert refs[0]["@iot.selfLink"].endswith(f"/Datastreams({world['ds'][0]})")
    assert api.get(f"{STA}/Things(999999)").status_code == 404
    assert api.get(f"{STA}/Things(999999)/name/$value").status_code == 404
    assert api.get(f"{STA}/Gizmos").status_code == 404
    assert api.get(f"{STA}/Things({t1})/Gizmos").status_code == 404


def test_top_skip_count_and_next_link(api, world, engine):
    d1 = world["ds"][0]
    doc = api.get(f"{STA}/Datastreams({d1})/Observations?$top=7&$count=true&$orderby=phenomenonTime").json()
    with engine.connect() as conn:
        n = observations.count(conn, d1)
    assert doc["@iot.count"] == n == 20
    assert [o["result"] for o in doc["value"]] == [float(i) for i in range(7)]
    nxt = doc["@iot.nextLink"]
    assert "$skip=7" in nxt and "$top=7" in nxt
    page2 = api.get(nxt.replace("http://testserver", "")).json()
    assert [o["result"] for o in page2["value"]] == [float(i) for i in range(7, 14)]
    last = api.get(f"{STA}/Datastreams({d1})/Observations?$skip=14&$orderby=phenomenonTime").json()
    assert len(last["value"]) == 6 and "@iot.nextLink" not in last
    zero = api.get(f"{STA}/Datastreams({d1})/Observations?$top=0&$count=true").json()
    assert zero["value"] == [] and zero["@iot.count"] == 20 and "@iot.nextLink" not in zero


def test_top_is_clamped_to_the_maximum(settings, world):
    """``$top`` above ``CIM_STA_MAX_TOP`` is clamped (as FROST does); the next link pages on at the maximum."""
    with TestClient(create_app(settings.model_copy(update={"sta_max_top": 5}))) as small:
        doc = small.get(f"{STA}/Datastreams({world['ds'][0]})/Observations?$top=100000000").json()
    assert len(doc["value"]) == 5 and "$top=5" in doc["@iot.nextLink"] and "$skip=5" in doc["@iot.nextLink"]


def test_orderby_and_select(api, world):
    d1 = world["ds"][0]
    desc = api.get(f"{STA}/Datastreams({d1})/Observations?$orderby=result desc&$top=3").json()["value"]
    assert [o["result"] for o in desc] == [19.0, 18.0, 17.0]
    sel = api.get(f"{STA}/Things?$select=name,@iot.id&$orderby=name").json()["value"]
    assert all(set(x) == {"name", "@iot.id"} for x in sel)
    names = [x["name"] for x in sel]
    assert names == sorted(names)
    t1, t2 = world["things"]
    by_thing = api.get(f"{STA}/Datastreams", params={
        "$orderby": "Thing/name desc,name", "$select": "name",
        "$filter": f"Thing/@iot.id eq {t1} or Thing/@iot.id eq {t2}"}).json()["value"]
    assert by_thing[0]["name"].startswith("Beta")


def test_expand_nested_with_options(api, world):
    t1 = world["things"][0]
    q = ("$expand=Datastreams($orderby=name;$expand=Observations($top=3;$orderby=phenomenonTime desc;"
         "$select=result)),Locations&$filter=name eq 'Alpha pump'")
    doc = api.get(f"{STA}/Things?{q}").json()
    assert [t["@iot.id"] for t in doc["value"]] == [t1]
    thing = doc["value"][0]
    assert "Datastreams@iot.navigationLink" not in thing and len(thing["Locations"]) == 1
    first = thing["Datastreams"][0]
    assert [o["result"] for o in first["Observations"]] == [19.0, 18.0, 17.0]
    assert set(first["Observations"][0]) == {"result"}
    # a path expand and counts inside an expand
    doc = api.get(f"{STA}/Observations", params={"$top": "1", "$expand": "Datastream/Thing",
                                                 "$filter": f"Datastream/@iot.id eq {world['ds'][0]}"}).json()
    assert doc["value"][0]["Datastream"]["Thing"]["@iot.id"] in world["things"]
    doc = api.get(f"{STA}/Things({t1})?$expand=Datastreams($count=true;$top=1)").json()
    assert doc["Datastreams@iot.count"] == 2 and len(doc["Datastreams"]) == 1


@pytest.mark.parametrize("flt, expected", [
    ("result gt 15", [16, 17, 18, 19]),
    ("result ge 15 and result lt 17", [15, 16]),
    ("result eq 3 or result eq 5", [3, 5]),
    ("not (result lt 18)", [18, 19]),
    ("result ne 0 and result le 2", [1, 2]),
    ("result add 1 eq 5", [4]),
    ("result sub 1 eq 5", [6]),
    ("result mul 2 eq 10", [5]),
    ("result div 2 eq 4", [8]),
    ("result mod 7 eq 0", [0, 7, 14]),
    ("-result eq -9", [9]),
    ("round(result div 4) eq 5", [18, 19]),
])
def test_filter_arithmetic_and_logic(api, world, flt, expected):
    d1 = world["ds"][0]
    doc = api.get(f"{STA}/Datastreams({d1})/Observations", params={"$filter": flt, "$orderby": "result"}).json()
    assert [o["result"] for o in doc["value"]] == [float(x) for x in expected], doc


@pytest.mark.parametrize("flt, expected", [
    ("substringof('pump', name)", ["Alpha pump"]),
    ("startswith(name, 'Beta')", ["Beta gauge"]),
    ("endswith(name, 'gauge')", ["Beta gauge"]),
    ("contains(name, 'ha p')", ["Alpha pump"]),
    ("length(name) eq 10", ["Alpha pump", "Beta gauge"]),
    ("tolower(name) eq 'alpha pump'", ["Alpha pump"]),
    ("toupper(name) eq 'BETA GAUGE'", ["Beta gauge"]),
    ("indexof(name, 'pump') eq 6", ["Alpha pump"]),
    ("substring(name, 0, 4) eq 'Beta'", ["Beta gauge"]),
    ("properties/floor eq 2 and properties/kind eq 'test'", ["Alpha pump", "Beta gauge"]),
    ("Datastreams/name eq 'Alpha pump depth 1'", ["Alpha pump"]),
    ("geo.intersects(Locations/location, geography'POLYGON((121.3 31.0, 121.45 31.0, 121.45 31.15, "
     "121.3 31.15, 121.3 31.0))')", ["Alpha pump"]),
    ("st_within(Locations/location, geography'POLYGON((121.45 31.15, 121.55 31.15, 121.55 31.25, "
     "121.45 31.25, 121.45 31.15))')", ["Beta gauge"]),
    ("geo.distance(Locations/location, geography'POINT(121.4 31.1)') lt 0.01", ["Alpha pump"]),
    ("st_intersects(Locations/location, geography'POINT(121.5 31.2)')", ["Beta gauge"]),
])
def test_filter_string_json_spatial_and_navigation(api, world, flt, expected):
    ids = set(world["things"])
    doc = api.get(f"{STA}/Things", params={"$filter": flt, "$orderby": "name"}).json()
    assert [t["name"] for t in doc["value"] if t["@iot.id"] in ids] == expected, doc


def test_filter_times_and_intervals(api, world):
    d1, times = world["ds"][0], world["times"]
    url = f"{STA}/Datastreams({d1})/Observations"

    def results(flt: str) -> list[float]:
        r = api.get(url, params={"$filter": flt, "$orderby": "phenomenonTime"})
        assert r.status_code == 200, r.text
        return [o["result"] for o in r.json()["value"]]

    assert results(f"phenomenonTime ge {iso(times[17])}") == [17.0, 18.0, 19.0]
    assert results(f"phenomenonTime lt {iso(times[2])}") == [0.0, 1.0]
    assert results(f"resultTime eq {iso(times[4])}") == [4.0]
    interval = f"{iso(times[3])}/{iso(times[6])}"
    assert results(f"phenomenonTime eq {interval}") == [3.0, 4.0, 5.0, 6.0]
    assert results(f"phenomenonTime lt {interval}") == [0.0, 1.0, 2.0]
    assert results(f"phenomenonTime gt {interval}") == [float(i) for i in range(7, 20)]
    assert results(f"during(phenomenonTime, {interval})") == [3.0, 4.0, 5.0, 6.0]
    assert results(f"before(phenomenonTime, {iso(times[1])})") == [0.0]
    # the Datastream's phenomenonTime covers its observations
    ds = api.get(f"{STA}/Datastreams({d1})").json()
    assert ds["phenomenonTime"] == f"{iso(times[0])}/{iso(times[19])}"
    hit = api.get(f"{STA}/Datastreams", params={"$filter": f"phenomenonTime eq {iso(times[10])}"}).json()["value"]
    assert d1 in [d["@iot.id"] for d in hit] and world["ds"][2] not in [d["@iot.id"] for d in hit]


@pytest.mark.parametrize("query, option", [
    ({"$filter": "name eq"}, "$filter"),
    ({"$filter": "name eq 'x' and"}, "$filter"),
    ({"$filter": "nosuch eq 1"}, "$filter"),
    ({"$filter": "name gt 3"}, "$filter"),
    ({"$filter": "frobnicate(name)"}, "$filter"),
    ({"$filter": "geo.intersects(Locations/location, geography'POINT(1)')"}, "$filter"),
    ({"$filter": "geo.intersects(Locations/location, geography'POINT(500 1)')"}, "$filter"),
    ({"$filter": "Datastreams eq 1"}, "$filter"),
    ({"$filter": "phenomenonTime gt 2020-13-45T00:00:00Z"}, "$filter"),
    ({"$filter": "(" * 60 + "name eq 'x'" + ")" * 60}, "$filter"),
    ({"$filter": "length(name)"}, "$filter"),
    ({"$filter": "length(name)" + " add 1" * 1300 + " gt 0"}, "$filter"),
    ({"$filter": " or ".join(["length(name) eq 1"] * 400)}, "$filter"),
    ({"$top": "-1"}, "$top"),
    ({"$top": "ten"}, "$top"),
    ({"$skip": "1.5"}, "$skip"),
    ({"$count": "yes"}, "$count"),
    ({"$orderby": "nosuch desc"}, "$orderby"),
    ({"$orderby": "Datastreams/name"}, "$orderby"),
    ({"$select": "name,,"}, "$select"),
    ({"$select": "nosuch"}, "$select"),
    ({"$expand": "Gizmos"}, "$expand"),
    ({"$expand": "Datastreams($top=x)"}, "$expand(Datastreams)/$top"),
    ({"$expand": "Datastreams($filter=name eq)"}, "$expand(Datastreams)/$filter"),
    ({"$expand": "Datastreams($expand=Gizmos)"}, "$expand"),
    ({"$expand": "Datastreams(($top=1)"}, "$expand"),
    ({"$frobnicate": "1"}, "$frobnicate"),
    ({"$resultFormat": "dataArray"}, "$resultFormat"),
    ({"$expand": ",".join(["Datastreams($expand=Observations,Sensor,ObservedProperty)"] * 8)}, "$expand"),
    ({"$expand": "Datastreams($expand=Thing($expand=Datastreams($expand=Thing($expand=Datastreams("
                 "$expand=Thing($expand=Locations))))))"}, "$expand"),
])
def test_bad_query_is_400_naming_the_option(api, world, query, option):
    r = api.get(f"{STA}/Things", params=query)
    assert r.status_code == 400, r.text
    assert option in r.json()["description"], r.json()


def test_division_by_zero_is_400(api, world):
    r = api.get(f"{STA}/Observations", params={"$filter": "result div 0 gt 1"})
    assert r.status_code == 400 and "$filter" in r.json()["description"]


def test_filter_values_are_bound_not_spliced(api, world):
    hostile = "x'); DROP TABLE cim_sta.thing; --"
    r = api.get(f"{STA}/Things", params={"$filter": f"name eq '{hostile.replace(chr(39), chr(39) * 2)}'"})
    assert r.status_code == 200 and r.json()["value"] == []
    assert api.get(f"{STA}/Things({world['things'][0]})").status_code == 200


def test_writes_need_the_sensor_writer_scope(api, keys, world):
    body = thing_body("Gamma", 121.3, 31.0)
    assert api.post(f"{STA}/Things", json=body).status_code == 401
    assert api.post(f"{STA}/Things", json=body, headers={"X-API-Key": "cim_wrong"}).status_code == 401
    assert api.post(f"{STA}/Things", json=body, headers={"X-API-Key": keys["analyst"]}).status_code == 403
    assert api.post(f"{STA}/Things", json=body, headers={"X-API-Key": keys["officer"]}).status_code == 403
    assert api.post(f"{STA}/Things", json=body, headers=basic(keys["analyst"])).status_code == 403
    assert api.post(f"{STA}/Things", json=body, headers=basic("cim_wrong")).status_code == 401
    r = api.post(f"{STA}/Things", json=body, headers={"Authorization": f"Bearer {keys['admin']}"})
    t = _id(r)
    assert api.delete(f"{STA}/Things({t})").status_code == 401
    assert api.delete(f"{STA}/Things({t})", headers=basic(keys["sensor"])).status_code == 200
    assert api.get(f"{STA}/Things({t})").status_code == 404
    assert api.post(f"{STA}/CreateObservations", json=[]).status_code == 401


def test_post_observation_to_datastream_and_latest(api, keys, world, engine):
    d3 = world["ds"][2]
    h = basic(keys["sensor"])
    t = NOW - timedelta(seconds=5)
    r = api.post(f"{STA}/Datastreams({d3})/Observations", json={"phenomenonTime": iso(t), "result": 42.5}, headers=h)
    oid = _id(r)
    assert oid == observations.observation_id(d3, t)
    assert r.json()["result"] == 42.5
    with engine.connect() as conn:
        latest = observations.latest(conn, d3)
    assert latest["result"] == 42.5 and latest["phenomenon_time"] == t
    # a text result, an explicit FeatureOfInterest, resultTime and parameters
    r = api.post(f"{STA}/Observations", headers=h, json={
        "phenomenonTime": iso(t + timedelta(seconds=1)), "result": "dry", "resultTime": iso(t),
        "parameters": {"battery": 88}, "Datastream": {"@iot.id": d3},
        "FeatureOfInterest": {"name": "kerb", "description": "kerb at gate", "encodingType": "application/geo+json",
                              "feature": {"type": "Point", "coordinates": [121.5, 31.2]}}})
    oid2 = _id(r)
    doc = api.get(f"{STA}/Observations({oid2})?$expand=FeatureOfInterest").json()
    assert doc["result"] == "dry" and doc["parameters"] == {"battery": 88}
    assert doc["FeatureOfInterest"]["name"] == "kerb"
    # PATCH and DELETE of an observation
    assert api.patch(f"{STA}/Observations({oid})", json={"result": 43}, headers=h).status_code == 200
    assert float(api.get(f"{STA}/Observations({oid})/result/$value").text) == 43
    assert api.delete(f"{STA}/Observations({oid})", headers=h).status_code == 200
    assert api.get(f"{STA}/Observations({oid})").status_code == 404


def test_patch_and_json_patch(api, keys, world):
    t2 = world["things"][1]
    h = {"X-API-Key": keys["sensor"]}
    r = api.patch(f"{STA}/Things({t2})", json={"description": "renamed", "properties": {"kind": "test", "floor": 3}},
                  headers=h)
    assert r.status_code == 200 and r.json()["description"] == "renamed"
    r = api.patch(f"{STA}/Things({t2})", content=b'[{"op": "replace", "path": "/description", "value": "again"}]',
                  headers={**h, "Content-Type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["description"] == "again"
    assert api.patch(f"{STA}/Things({t2})", json={"colour": "red"}, headers=h).status_code == 400
    assert api.patch(f"{STA}/Things(99999999)", json={"name": "x"}, headers=h).status_code == 404
    # moving a Thing records a HistoricalLocation
    r = api.patch(f"{STA}/Things({t2})", headers=h, json={"Locations": [{
        "name": "new site", "description": "moved", "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [121.51, 31.21]}}]})
    assert r.status_code == 200
    assert len(api.get(f"{STA}/Things({t2})/HistoricalLocations").json()["value"]) == 2
    assert api.get(f"{STA}/Things({t2})/Locations").json()["value"][0]["name"] == "new site"


@pytest.mark.parametrize("body, member", [
    ({"description": "no name"}, "name"),
    ({"name": 5, "description": "x"}, "name"),
    ({"name": "x", "description": "x", "colour": "red"}, "colour"),
    ({"name": "x", "description": "x", "properties": [1]}, "properties"),
    ({"name": "x", "description": "x", "Locations": [{"name": "l", "description": "d",
                                                       "encodingType": "application/geo+json",
                                                       "location": {"type": "Point", "coordinates": [400, 1]}}]},
     "Locations[0]/location"),
    ({"name": "x", "description": "x", "Datastreams": [{"name": "d", "description": "d",
                                                         "observationType": "m",
                                                         "unitOfMeasurement": {"name": "c"},
                                                         "Sensor": {"@iot.id": 99999999},
                                                         "ObservedProperty": {"@iot.id": 1}}]},
     "Datastreams[0]/Sensor/@iot.id"),
])
def test_bad_bodies_are_400_naming_the_member(api, keys, engine, body, member):
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM cim_sta.thing")).scalar_one()
    r = api.post(f"{STA}/Things", json=body, headers={"X-API-Key": keys["sensor"]})
    assert r.status_code == 400, r.text
    assert member in r.json()["description"]
    with engine.connect() as conn:  # nothing of a refused deep insert is kept
        assert conn.execute(sa.text("SELECT count(*) FROM cim_sta.thing")).scalar_one() == before


@pytest.mark.parametrize("body, member", [
    ("not json", "JSON"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["result"], "dataArray": [[1, 2]]}], "dataArray[0]"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime"], "dataArray": []}], "components"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["result", "colour"], "dataArray": []}], "components"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result"],
       "dataArray": [["yesterday", 1]]}], "dataArray[0]/phenomenonTime"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result"],
       "dataArray": [["2999-01-01T00:00:00Z", 1]]}], "dataArray[0]/phenomenonTime"),
    ([{"Datastream": {"@iot.id": 2147483000}, "components": ["result"], "dataArray": [[1]]}], "Datastream"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result"],
       "dataArray": [["todayZ", 1]]}], "dataArray[0]/phenomenonTime"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result"],
       "dataArray": [["NaTZ", 1]]}], "dataArray[0]/phenomenonTime"),
    ({"Datastream": 1}, "body"),
])
def test_bad_data_arrays_are_400(api, keys, body, member):
    kwargs = {"content": body.encode()} if isinstance(body, str) else {"json": body}
    r = api.post(f"{STA}/CreateObservations", headers={"X-API-Key": keys["sensor"],
                                                       "Content-Type": "application/json"}, **kwargs)
    assert r.status_code == 400, r.text
    assert member in r.json()["description"]


def test_delete_thing_removes_its_datastreams_and_observations(api, keys, engine):
    h = {"X-API-Key": keys["sensor"]}
    t = _id(api.post(f"{STA}/Things", json=thing_body("Doomed", 121.35, 31.05), headers=h))
    d = api.get(f"{STA}/Things({t})/Datastreams").json()["value"][0]["@iot.id"]
    r = api.post(f"{STA}/CreateObservations", headers=h, json=[{
        "Datastream": {"@iot.id": d}, "components": ["result", "phenomenonTime"],
        "dataArray": [[1.5, iso(NOW - timedelta(seconds=30))], [2.5, iso(NOW - timedelta(seconds=20))]]}])
    assert r.status_code == 201 and len(r.json()) == 2
    assert api.delete(f"{STA}/Things({t})", headers=h).status_code == 200
    assert api.get(f"{STA}/Datastreams({d})").status_code == 404
    with engine.connect() as conn:
        assert observations.count(conn, d) == 0
    assert api.delete(f"{STA}/Things({t})", headers=h).status_code == 404


def test_column_and_row_paths_of_data_arrays_write_the_same(api, keys, engine, world):
    """Numeric rows take the column-wise reader; a component it does not take (resultQuality) sends the body the
    general way; both write the same rows through the one batch writer."""
    h = {"X-API-Key": keys["sensor"]}
    t = _id(api.post(f"{STA}/Things", json=thing_body("Twins", 121.36, 31.06, 2), headers=h))
    a, b = [d["@iot.id"] for d in api.get(f"{STA}/Things({t})/Datastreams").json()["value"]]
    times = [NOW - timedelta(seconds=100 - i, milliseconds=123) for i in range(50)]
    rows = [[iso(x), float(i) * 1.5] for i, x in enumerate(times)]
    fast = api.post(f"{STA}/CreateObservations", headers=h, json=[
        {"Datastream": {"@iot.id": a}, "components": ["phenomenonTime", "result"], "dataArray": rows}])
    slow_rows = [[x.astimezone(timezone(timedelta(hours=8))).isoformat(timespec="milliseconds"), r, None]
                 for x, (_, r) in zip(times, rows, strict=True)]
    slow = api.post(f"{STA}/CreateObservations", headers=h, json=[
        {"Datastream": {"@iot.id": b}, "components": ["phenomenonTime", "result", "resultQuality"],
         "dataArray": slow_rows}])
    assert fast.status_code == slow.status_code == 201
    assert [link.rsplit("(", 1)[1] for link in fast.json()] == \
        [f"{observations.observation_id(a, x.replace(microsecond=x.microsecond // 1000 * 1000))})" for x in times]
    with engine.connect() as conn:
        fa, fb = observations.fetch(conn, a), observations.fetch(conn, b)
        la, lb = observations.latest(conn, a), observations.latest(conn, b)
    own = ("id", "datastream_id")
    assert [{k: v for k, v in r.items() if k not in own} for r in fa] == \
        [{k: v for k, v in r.items() if k not in own} for r in fb]
    # one FeatureOfInterest generated for the Thing's Location, shared by both datastreams (as FROST does)
    foi = api.get(f"{STA}/Datastreams({a})/Observations?$top=1&$expand=FeatureOfInterest").json()["value"][0]
    assert {r["feature_id"] for r in fa + fb} == {foi["FeatureOfInterest"]["@iot.id"]}
    loc = api.get(f"{STA}/Things({t})/Locations").json()["value"][0]
    assert foi["FeatureOfInterest"]["feature"] == loc["location"]
    assert len(fa) == 50 and fa[-1]["result"] == 49 * 1.5 and fa[0]["feature_id"] is not None
    assert la["phenomenon_time"] == lb["phenomenon_time"] == fa[-1]["phenomenon_time"]
    assert la["result"] == lb["result"] == 73.5
    ds = api.get(f"{STA}/Datastreams({a})").json()
    assert ds["phenomenonTime"] == f"{iso(fa[0]['phenomenon_time'])}/{iso(fa[-1]['phenomenon_time'])}"


def test_data_array_of_many_one_row_groups_in_one_copy(api, keys, engine, world):
    """A gateway's body (one-row groups, offsets, out-of-order readings, a FeatureOfInterest/id component): the
    links answer the rows in the body's order, the latest value is the newest reading, the datastreams' times
    cover them all."""
    h = {"X-API-Key": keys["sensor"]}
    t = _id(api.post(f"{STA}/Things", json=thing_body("Gateway", 121.37, 31.07, 2), headers=h))
    a, b = [d["@iot.id"] for d in api.get(f"{STA}/Things({t})/Datastreams").json()["value"]]
    base = NOW - timedelta(minutes=30)
    offsets = [7, 3, 9, 1, 5, 8, 2, 6, 4, 0]  # seconds, out of order
    cst = timezone(timedelta(hours=8))
    body = [{"Datastream": {"@iot.id": a if k % 2 == 0 else b}, "components": ["phenomenonTime", "result"],
             "dataArray": [[(base + timedelta(seconds=s)).astimezone(cst).isoformat(timespec="milliseconds"),
                            float(s)]]} for k, s in enumerate(offsets)]
    foi = api.get(f"{STA}/Datastreams({world['ds'][0]})/Observations?$top=1&$expand=FeatureOfInterest").json()
    foi_id = foi["value"][0]["FeatureOfInterest"]["@iot.id"]
    body.append({"Datastream": {"@iot.id": b}, "components": ["result", "phenomenonTime", "FeatureOfInterest/id"],
                 "dataArray": [[42.0, iso(base - timedelta(seconds=1)), foi_id]]})
    r = api.post(f"{STA}/CreateObservations", headers=h, json=body)
    assert r.status_code == 201, r.text
    expect = [(a if k % 2 == 0 else b, base + timedelta(seconds=s)) for k, s in enumerate(offsets)]
    expect.append((b, base - timedelta(seconds=1)))
    assert r.json() == [f"http://testserver{STA}/Observations({observations.observation_id(d, x)})"
                        for d, x in expect]
    with engine.connect() as conn:
        la, lb = observations.latest(conn, a), observations.latest(conn, b)
        rows_b = observations.fetch(conn, b)
    assert (la["phenomenon_time"], la["result"]) == (base + timedelta(seconds=9), 9.0)
    assert (lb["phenomenon_time"], lb["result"]) == (base + timedelta(seconds=8), 8.0)
    assert [r["feature_id"] == foi_id for r in rows_b] == [True, False, False, False, False, False]
    ds = api.get(f"{STA}/Datastreams({b})").json()
    assert ds["phenomenonTime"] == f"{iso(base - timedelta(seconds=1))}/{iso(base + timedelta(seconds=8))}"
