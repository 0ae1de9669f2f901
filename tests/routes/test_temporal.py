"""Temporal semantics evaluated by PostgreSQL: Allen relations of CQL2 and the `datetime` parameter on timestamps."""

from __future__ import annotations

from datetime import date

import pytest

from cim_service.core.catalog import FieldSpec, FieldType
from cim_service.errors import InvalidParameter
from cim_service.features.sql import Params
from cim_service.features.temporal import TEMPORAL_OPERATORS, TemporalOperand, datetime_condition, temporal_sql
from cim_service.store.db import Database
from tests.routes.conftest import run_async

A = (date(2020, 1, 1), date(2020, 6, 1))
#: b intervals and the relations of A to each that must hold (all other operators must be false)
CASES = [
    ((date(2020, 3, 1), date(2020, 9, 1)), {"t_overlaps", "t_intersects"}),
    ((date(2019, 1, 1), date(2021, 1, 1)), {"t_during", "t_intersects"}),
    ((date(2020, 2, 1), date(2020, 3, 1)), {"t_contains", "t_intersects"}),
    ((date(2020, 6, 1), date(2020, 7, 1)), {"t_meets", "t_intersects"}),
    ((date(2019, 6, 1), date(2020, 1, 1)), {"t_metby", "t_intersects"}),
    ((date(2020, 7, 1), date(2020, 8, 1)), {"t_before", "t_disjoint"}),
    ((date(2019, 7, 1), date(2019, 8, 1)), {"t_after", "t_disjoint"}),
    ((date(2020, 1, 1), date(2020, 6, 1)), {"t_equals", "t_intersects"}),
    ((date(2020, 1, 1), date(2020, 9, 1)), {"t_begins", "t_intersects"}),
    ((date(2020, 1, 1), date(2020, 3, 1)), {"t_begunby", "t_intersects"}),
    ((date(2019, 1, 1), date(2020, 6, 1)), {"t_ends", "t_intersects"}),
    ((date(2020, 3, 1), date(2020, 6, 1)), {"t_endedby", "t_intersects"}),
    ((date(2019, 1, 1), date(2020, 3, 1)), {"t_overlappedby", "t_intersects"}),
]


def _fetch(database_url: str, sql: str, args: list):
    async def run():
        db = Database(database_url, min_size=0)
        await db.open()
        try:
            return await db.fetch(sql, *args)
        finally:
            await db.close()

    return run_async(run)


@pytest.mark.parametrize("b,holds", CASES)
def test_allen_relations(database_url, b, holds):
    p = Params()
    a_op = TemporalOperand(p.bind(A[0], "date"), p.bind(A[1], "date"))
    b_op = TemporalOperand(p.bind(b[0], "date"), p.bind(b[1], "date"))
    cols = ", ".join(f"{temporal_sql(op, a_op, b_op)} AS {op}" for op in TEMPORAL_OPERATORS)
    row = _fetch(database_url, f"SELECT {cols}", p.values)[0]
    assert {op for op in TEMPORAL_OPERATORS if row[op]} == holds


def test_datetime_parameter_on_a_timestamp_field(database_url):
    field = FieldSpec(name="t", type=FieldType.timestamp, title_zh="时间", title_en="Time")
    values = "('2024-03-01T23:59:59+00'::timestamptz), ('2024-03-02T00:00:00+00'), ('2024-02-29T12:00:00+00')"

    def matching(value: str) -> list[str]:
        p = Params()
        cond = datetime_condition(value, field, p)
        rows = _fetch(database_url, f"SELECT t FROM (VALUES {values}) v(t) WHERE {cond} ORDER BY t", p.values)
        return [r["t"].strftime("%m-%dT%H") for r in rows]

    assert matching("2024-03-01") == ["03-01T23"]  # a date instant is the whole (UTC) day
    assert matching("2024-02-29/2024-03-01") == ["02-29T12", "03-01T23"]  # a date end includes its day
    assert matching("2024-03-01T00:00:00Z/..") == ["03-01T23", "03-02T00"]
    assert matching("../2024-03-01T12:00:00+08:00") == ["02-29T12"]
    assert matching("../..") == ["02-29T12", "03-01T23", "03-02T00"]
    assert matching("2024-03-01T12:00:00Z/") == ["03-01T23", "03-02T00"]  # an empty end is open too
    with pytest.raises(InvalidParameter):
        matching("2024-13-01")
    with pytest.raises(InvalidParameter):
        matching("2024-03-01/2024-02-01/2024-01-01")
