"""Helpers of the ingest tests: the database state a refused ingest must leave exactly as it was."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from cim_service.cli import app
from cim_service.core.catalog import Catalog
from pipelines.ingest import IngestError, ingest_file


def database_state(engine: Engine, catalog: Catalog) -> tuple:
    """Return batches, rejects, layer versions and every source layer's row count and last batch."""
    with engine.connect() as conn:
        state = [
            conn.execute(sa.text("SELECT count(*), coalesce(max(id), 0) FROM cim_meta.ingest_batch")).one(),
            conn.execute(sa.text("SELECT count(*) FROM cim_meta.ingest_reject")).scalar(),
            tuple(conn.execute(sa.text("SELECT layer_id, version FROM cim_meta.layer_state ORDER BY 1")).all()),
        ]
        for spec in catalog:
            if spec.kind != "derived":
                state.append(conn.execute(sa.text(
                    f"SELECT count(*), max(batch_id), max(updated_at) FROM {spec.qualified_table}"
                )).one())
    return tuple(state)


@pytest.fixture(scope="session")
def db_state(catalog: Catalog) -> Callable[[Engine], tuple]:
    """``db_state(engine)``: the state a refused ingest must not change (see :func:`database_state`)."""
    return lambda engine: database_state(engine, catalog)


def assert_refused(engine: Engine, url: str, catalog: Catalog, layer: str, path: Path, options: dict,
                   pattern: str) -> None:
    """Check that ingesting ``path`` fails with one line matching ``pattern``, by API and CLI, changing nothing.

    Through :func:`ingest_file` the :class:`IngestError` message must match; through ``cim ingest`` the exit
    code must be 1 and the output one ``error:`` line, without a traceback.
    """
    before = database_state(engine, catalog)
    with pytest.raises(IngestError) as info:
        ingest_file(engine, catalog, layer, path, **options)
    message = str(info.value)
    assert re.search(pattern, message), message
    assert "\n" not in message and message.isprintable(), message
    assert database_state(engine, catalog) == before

    args = ["ingest", layer, str(path)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    result = CliRunner().invoke(app, args, env={"CIM_DATABASE_URL": url, "COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and re.search(pattern, lines[0]), result.output
    assert database_state(engine, catalog) == before


@pytest.fixture(scope="session")
def refused(catalog: Catalog) -> Callable[..., None]:
    """``refused(engine, url, layer, path, options, pattern)``: see :func:`assert_refused`."""
    return lambda engine, url, layer, path, options, pattern: assert_refused(
        engine, url, catalog, layer, path, options, pattern)
