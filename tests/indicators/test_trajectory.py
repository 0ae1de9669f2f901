"""Indicators as of past days and trajectories, on hand-made town histories (features' own dates).

The expected figures are worked out by hand in the comments: least-squares lines through yearly values,
paces and the ranking by how far behind the even path each town is.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.settings import Settings
from cim_service.indicators.engine import IndicatorEngine
from cim_service.indicators.trajectory import fit_line, trajectory_days, years_since


@pytest.fixture
def ind(hand, catalog, settings):
    return IndicatorEngine(hand, catalog, settings)


def town(result, name):
    return next(t for t in result["towns"] if t["town"] == name)


@pytest.fixture
def history(put, sq):
    """甲镇 1 km², 乙镇 49 km²; cameras and lockers installed over the years in 甲镇."""
    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 7000), name="乙镇")
    cams = {"2019-05-01": 1, "2021-03-01": 1, "2022-07-01": 2, "2023-12-31": 3, "2024-02-01": 4}
    i = 0
    for day, n in cams.items():
        for _ in range(n):
            i += 1
            put("cameras", f"POINT({50 + 40 * i} 500)", device_id=f"{i:020d}", camera_type="dome", installed_at=day)
    put("cameras", "POINT(500 900)", device_id=f"{99:020d}", camera_type="dome")  # no date: always there
    lockers = {"2020-06-01": 3, "2021-06-01": 5, "2022-06-01": 5, "2023-06-01": 10}
    j = 0
    for day, n in lockers.items():
        for _ in range(n):
            j += 1
            put("smart_lockers", f"POINT({30 + 30 * j} 300)", locker_id=f"l{j}", installed_at=day)


def test_years_and_days():
    assert years_since(date(2020, 12, 31), 2020) == 0 and years_since(date(2023, 12, 31), 2020) == 3
    assert years_since(date(2024, 7, 1), 2020) == pytest.approx(3 + 183 / 366)
    a, b = fit_line([(1, 3), (2, 5), (3, 8)])
    assert (a, b) == pytest.approx((1 / 3, 2.5))


def test_as_of_counts_own_dates(ind, history):
    # 甲镇 cameras: undated 1 + 2019 1 = 2 at the end of 2020; +1 (2021), +2 (2022), +3 on 2023-12-31 itself
    for day, want in [(date(2018, 12, 31), 1), (date(2020, 12, 31), 2), (date(2021, 12, 31), 3),
                      (date(2023, 12, 30), 5), (date(2023, 12, 31), 8), (date(2024, 2, 1), 12)]:
        r = ind.results(["cameras_total"], at=day)[0]
        assert (r["at"], town(r, "甲镇")["value"], town(r, "乙镇")["value"]) == (day.isoformat(), want, 0)
    assert ind.results(["cameras_total"])[0]["value"] == 12  # now
    # lockers counted since 2021 (the indicator's own filter) and as of the day
    r = ind.results(["smart_lockers_new"], at=date(2022, 12, 31))[0]
    assert town(r, "甲镇")["value"] == 10


def test_trajectory_by_hand(ind, history):
    t = ind.trajectory("camera_density", until=date(2023, 12, 31), last_n=3)
    assert t["days"] == ["2020-12-31", "2021-12-31", "2022-12-31", "2023-12-31"]
    a = town(t, "甲镇")  # density = count on 1 km²: 2, 3, 5, 8
    assert [v["value"] for v in a["values"]] == pytest.approx([2, 3, 5, 8])
    assert a["target"] == 180 and a["target_year"] == 2025
    assert a["pace_needed"] == pytest.approx((180 - 2) / 5)  # 35.6 per year
    assert a["pace_achieved"] == pytest.approx(2.5)  # line through (1,3) (2,5) (3,8)
    assert a["projection"]["value"] == pytest.approx(1 / 3 + 2.5 * 5, abs=1e-4)  # 12.8333 in 2025
    assert "last 3 values" in a["projection"]["method"] and "2025-12-31" in a["projection"]["method"]
    assert a["on_track"] is False
    assert a["pace_needed_from_now"] == pytest.approx((180 - 8) / 2)
    assert a["expected_now"] == pytest.approx(2 + 35.6 * 3)
    assert a["behind_pace"] == pytest.approx((2 + 35.6 * 3 - 8) / 178, abs=1e-4)
    assert "more_per_year" not in a  # a density, not a count
    # last_n = 2: the line through (2,5) and (3,8): slope 3, 8 + 3 x 2 = 14 in 2025
    t2 = ind.trajectory("camera_density", until=date(2023, 12, 31), last_n=2)
    assert town(t2, "甲镇")["projection"]["value"] == pytest.approx(14.0)


def test_count_trajectory_more_per_year_and_ranking(ind, history):
    t = ind.trajectory("smart_lockers_new", until=date(2023, 12, 31), last_n=2)
    a, b = town(t, "甲镇"), town(t, "乙镇")
    assert (a["target"], b["target"]) == (40, 1960)  # 2,000 by area: 1 / 50 and 49 / 50
    assert [v["value"] for v in a["values"]] == [0, 5, 10, 20]  # since 2021: the 2020 lockers never count
    assert a["pace_needed"] == pytest.approx(8.0)  # 40 in 5 years
    assert a["pace_achieved"] == pytest.approx(10.0) and a["projection"]["value"] == pytest.approx(40.0)
    assert a["on_track"] is True
    assert a["more_per_year"] == 10  # (40 - 20) / 2 years left
    assert a["behind_pace"] == pytest.approx((24 - 20) / 40)
    assert b["on_track"] is False and b["more_per_year"] == 980 and b["behind_pace"] == pytest.approx(0.6)
    assert [r["town"] for r in t["towns"]] == ["乙镇", "甲镇"] and [r["rank"] for r in t["towns"]] == [1, 2]
    assert t["on_track_towns"] == 1 and t["behind_towns"] == 1
    assert t["overall"]["values"][-1]["value"] == 20 and t["overall"]["target"] == 2000


def test_trajectory_days_inside_a_year():
    from cim_service.indicators.catalog import load_indicators

    spec = load_indicators().get("cameras_total")
    assert trajectory_days(spec, date(2022, 6, 30)) == [date(2020, 12, 31), date(2021, 12, 31), date(2022, 6, 30)]
    assert trajectory_days(spec, date(2026, 3, 1))[-1] == date(2025, 12, 31)
    assert len(trajectory_days(spec, date(2026, 3, 1))) == 6


def test_past_target_day_is_measured(ind, history):
    t = ind.trajectory("cameras_total", until=date(2026, 1, 5))
    a = town(t, "甲镇")
    assert a["values"][-1] == {"date": "2025-12-31", "year": 2025, "value": 12}
    assert a["projection"] == {"value": 12, "date": "2025-12-31", "method": "measured"}
    assert a["on_track"] is False and a["more_per_year"] == 0


@pytest.fixture
def client(hand, hand_url, tmp_path, history):
    settings = Settings(database_url=hand_url, environment="test", home=tmp_path)
    with TestClient(create_app(settings)) as c:
        yield c


def test_api_at_and_trajectory(client):
    r = client.get("/indicators/cameras_total", params={"at": "2021-12-31", "town": "甲镇"})
    assert r.status_code == 200 and r.json()["value"] == 3 and r.json()["at"] == "2021-12-31"
    assert client.get("/indicators", params={"at": "2022-12-31"}).json()["at"] == "2022-12-31"
    for bad in ("2021-13-01", "yesterday", "2021-1-1", "1999-12-31", "2999-01-01"):
        r = client.get("/indicators/cameras_total", params={"at": bad})
        assert r.status_code == 400 and "'at'" in r.json()["description"], bad
    r = client.get("/indicators/smart_lockers_new/trajectory", params={"at": "2023-12-31", "last_n": 2})
    assert r.status_code == 200
    body = r.json()
    assert [t["town"] for t in body["towns"]] == ["乙镇", "甲镇"] and body["target_year"] == 2025
    one = client.get("/indicators/smart_lockers_new/trajectory",
                     params={"at": "2023-12-31", "last_n": 2, "town": "甲镇"}).json()
    assert [t["town"] for t in one["towns"]] == ["甲镇"] and one["towns"][0]["more_per_year"] == 10
    r = client.get("/indicators/smart_lockers_new/trajectory", params={"at": "2023-12-31", "f": "csv"})
    assert r.status_code == 200 and r.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [row["town"] for row in rows] == ["闵行区", "乙镇", "甲镇"]
    # last_n 3: 5, 10, 20 -> slope 7.5, 34.17 in 2025 < 40
    assert rows[2]["value_2023-12-31"] == "20" and rows[2]["on_track"] == "False"
    assert client.get("/indicators/smart_lockers_new/trajectory", params={"town": "火星镇"}).status_code == 404
    assert client.get("/indicators/nope/trajectory").status_code == 404
    r = client.get("/indicators/smart_lockers_new/trajectory", params={"last_n": 1})
    assert r.status_code == 400 and "last_n" in r.json()["description"]


def test_as_of_reads_the_history_and_own_dates(ind, hand, catalog, put, sq):
    """A camera first loaded in 2021 (installed 2019), moved to 乙镇 in 2022 and removed in 2023; one added 2024."""
    import sqlalchemy as sa

    from cim_service.store import history
    from cim_service.store.layer_state import bump_version

    put("towns", sq(0, 0, 1000), name="甲镇")
    put("towns", sq(1000, 0, 1000), name="乙镇")
    spec = catalog.get("cameras")
    point = "ST_Transform(ST_Translate(ST_GeomFromText(:wkt, 4549), 633000, 3442000), 4326)"

    def change(year: int, month: int, sql: str, **params: object) -> None:
        with hand.begin() as conn:
            history.set_context(conn, actor="test", valid_at=datetime(year, month, 1, tzinfo=UTC))
            conn.execute(sa.text(sql), params)
            bump_version(conn, spec.id, spec.qualified_table)

    insert = (f"INSERT INTO {spec.qualified_table} (feature_key, device_id, camera_type, installed_at, geom, "
              f"outside_district) VALUES (:k, :d, 'dome', CAST(:day AS date), {point}, false)")
    change(2021, 7, insert, k="a", d="1" * 20, day="2019-04-01", wkt="POINT(500 500)")
    change(2021, 7, insert, k="b", d="2" * 20, day="2021-02-01", wkt="POINT(600 500)")
    change(2022, 5, f"UPDATE {spec.qualified_table} SET geom = {point} WHERE feature_key = 'a'", wkt="POINT(1500 500)")
    change(2023, 3, f"DELETE FROM {spec.qualified_table} WHERE feature_key = 'a'")
    change(2024, 8, insert, k="c", d="3" * 20, day="2024-08-01", wkt="POINT(100 100)")

    def counts(day: date) -> tuple[float, float]:
        r = ind.results(["cameras_total"], at=day)[0]
        return town(r, "甲镇")["value"], town(r, "乙镇")["value"]

    assert counts(date(2019, 12, 31)) == (1, 0)  # before the history: what it knows of, by own date (a only)
    assert counts(date(2020, 12, 31)) == (1, 0)
    assert counts(date(2021, 12, 31)) == (2, 0)  # the history: a and b in 甲镇
    assert counts(date(2022, 12, 31)) == (1, 1)  # a moved to 乙镇
    assert counts(date(2023, 12, 31)) == (1, 0)  # a removed
    assert counts(date(2024, 12, 31)) == (2, 0)  # c added
    t = ind.trajectory("cameras_total", until=date(2024, 12, 31))
    assert [v["value"] for v in town(t, "乙镇")["values"]] == [0, 0, 1, 0, 0]
