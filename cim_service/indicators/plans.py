"""Query plans of the indicator SQL: record what an engine runs and find the plan shapes that degrade.

The indicator SQL must plan well on any PostgreSQL, including a stock cluster (``work_mem`` 4 MB), not only
on the tuned project-local one. :class:`PlanRecorder` listens on an engine and, before every plannable
statement (SELECT, INSERT, UPDATE, DELETE, CREATE TABLE AS), asks the server for its plan
(``EXPLAIN (VERBOSE, FORMAT JSON)``, optionally with ``ANALYZE, BUFFERS``) on the same connection, so
temporary tables of the run are visible, and times the statement itself. :func:`degrading_patterns`
names the shapes whose cost grows with the product of two inputs instead of their sum:

- a hashed SubPlan (``x IN (SELECT ...)``): once its hash table no longer fits in ``work_mem`` the planner
  falls back to rescanning the subquery for every outer row (on a stock server the plan-scale address
  coverage query, 300,000 addresses against 250,000 covered ids, never finished);
- a SubPlan that scans a relation sequentially for each outer row (no index condition inside);
- a nested loop whose inner side is a sequential scan of a large relation (no index to drive it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: statements EXPLAIN accepts (others, e.g. CREATE INDEX, ANALYZE, SAVEPOINT, are not planned)
PLANNABLE = re.compile(r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE\s+TEMP(ORARY)?\s+TABLE\s+\S+(\s+ON\s+COMMIT\s+"
                       r"DROP)?\s+AS)\b", re.IGNORECASE)
#: a relation scanned sequentially inside a per-row SubPlan, or under a nested loop, counts as large from here
LARGE_ROWS = 1_000
SCANS = ("Seq Scan", "Sample Scan", "Subquery Scan", "CTE Scan", "Function Scan", "Materialize")


@dataclass
class Statement:
    """One statement run on the recorded engine, with its plan and how long it took."""

    sql: str
    plan: dict[str, Any] | None
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        """Degrading plan shapes of this statement (empty when it plans well)."""
        return degrading_patterns(self.plan) if self.plan else []

    def head(self, width: int = 100) -> str:
        """The statement on one line, shortened."""
        text = " ".join(self.sql.split())
        return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class PlanRecorder:
    """Plans and timings of every plannable statement an engine runs while :meth:`record` is active."""

    analyze: bool = False
    statements: list[Statement] = field(default_factory=list)

    @contextmanager
    def record(self, engine: Engine) -> Iterator[PlanRecorder]:
        """Record the statements run on ``engine`` inside the ``with`` block."""
        sa.event.listen(engine, "before_cursor_execute", self._before, retval=True)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        try:
            yield self
        finally:
            sa.event.remove(engine, "before_cursor_execute", self._before)
            sa.event.remove(engine, "after_cursor_execute", self._after)

    def _before(self, conn: sa.Connection, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> tuple[str, Any]:
        match = None if executemany else PLANNABLE.match(statement)
        plan, rewritten = None, statement
        if match and not self.analyze:
            plan = self._explain(cursor, statement, parameters, "VERBOSE, FORMAT JSON")
        elif match and match.group(1).upper() in ("SELECT", "WITH"):
            # ANALYZE runs the statement: a read-only one is simply run twice (once for its plan)
            plan = self._explain(cursor, statement, parameters, "ANALYZE, BUFFERS, VERBOSE, FORMAT JSON")
        elif match and match.group(1).upper().startswith("CREATE"):
            rewritten = f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) {statement}"  # creates the table once
        elif match:  # writes whose result the caller reads (RETURNING, counts): planned, not analysed
            plan = self._explain(cursor, statement, parameters, "VERBOSE, FORMAT JSON")
        if match:  # recorded now, so a statement that fails (e.g. cut off by a timeout) is listed too
            recorded = Statement(statement, plan)
            self.statements.append(recorded)
            conn.info["cim_plan_statement"] = (recorded, time.perf_counter(), rewritten is not statement)
        return rewritten, parameters

    def _after(self, conn: sa.Connection, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        recorded = conn.info.pop("cim_plan_statement", None)
        if recorded is None:
            return
        stmt, started, rewritten = recorded
        stmt.seconds = time.perf_counter() - started
        if rewritten:
            stmt.plan = _document(cursor.fetchone()[0])

    @staticmethod
    def _explain(cursor: Any, statement: str, parameters: Any, options: str) -> dict[str, Any]:
        with cursor.connection.cursor() as cur:
            cur.execute(f"EXPLAIN ({options}) {statement}", parameters or None)
            return _document(cur.fetchone()[0])

    @property
    def problems(self) -> list[tuple[Statement, str]]:
        """Every degrading plan shape found, with its statement."""
        return [(s, p) for s in self.statements for p in s.problems]

    def slowest(self, n: int = 10) -> list[Statement]:
        """The ``n`` statements that took longest."""
        return sorted(self.statements, key=lambda s: -s.seconds)[:n]


def _document(doc: Any) -> dict[str, Any]:
    """The plan of an ``EXPLAIN (FORMAT JSON)`` result value (a JSON text or its parsed list)."""
    return (json.loads(doc) if isinstance(doc, str) else doc)[0]


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan tree, depth first."""
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _scans_large(node: dict[str, Any]) -> str | None:
    """Name of a large relation ``node``'s subtree reads sequentially (no index condition), if any."""
    for sub in _nodes(node):
        if sub.get("Node Type") in SCANS and sub.get("Plan Rows", 0) >= LARGE_ROWS:
            return _relation(sub)
    return None


def _relation(node: dict[str, Any]) -> str:
    """The first relation (or CTE) ``node``'s subtree reads, e.g. the table under a Materialize."""
    names = [n.get("Relation Name") or n.get("CTE Name") for n in _nodes(node)]
    return next((str(n) for n in names if n), str(node["Node Type"]))


def _hashed(plan: dict[str, Any]) -> set[str]:
    """Names of the SubPlans a VERBOSE plan evaluates through a hash table (``(hashed SubPlan 1)`` in expressions)."""
    return set(re.findall(r"hashed (SubPlan \d+)", json.dumps(plan)))


def degrading_patterns(plan: dict[str, Any]) -> list[str]:
    """Describe the plan shapes of ``plan`` (an ``EXPLAIN (VERBOSE, FORMAT JSON)`` document) that degrade with size."""
    found = []
    hashed = _hashed(plan)
    for node in _nodes(plan["Plan"]):
        name = str(node.get("Subplan Name", "SubPlan"))
        if node.get("Parent Relationship") == "SubPlan" and name in hashed:
            found.append(f"hashed {name} over {_relation(node)} (falls back to a rescan per row "
                         f"once it outgrows work_mem)")
        elif node.get("Parent Relationship") == "SubPlan":  # run for every outer row (InitPlans run once)
            big = _scans_large(node)
            if big:
                found.append(f"{name} scans {big} sequentially for every outer row")
        if node.get("Node Type") == "Nested Loop" and len(node.get("Plans", [])) == 2:
            outer, inner = node["Plans"]
            if outer.get("Plan Rows", 0) >= LARGE_ROWS and inner.get("Node Type") in SCANS \
                    and inner.get("Plan Rows", 0) >= LARGE_ROWS:
                found.append(f"nested loop rescans {_relation(inner)} "
                             f"({inner.get('Plan Rows')} rows) for each of {outer.get('Plan Rows')} rows")
    return found
