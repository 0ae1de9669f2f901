"""The one schema definition (store/schema.py) and the migrations agree; every system table has one owner."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cim_service.core.settings import PROJECT_ROOT
from cim_service.store.schema import META_SCHEMA, STA_SCHEMA, metadata, sta_metadata

OWNERS = {"ingest_batch": "batches.py", "ingest_reject": "rejects.py", "layer_state": "layer_state.py",
          "api_key": "api_keys.py", "access_log": "access_log.py", "indicator_result": "indicator_results.py",
          "history_purge": "history.py"}
STA_OWNERS = {**{t: "sta_entities.py" for t in (
    "thing", "location", "thing_location", "historical_location", "hist_location_location", "sensor",
    "observed_property", "datastream", "feature_of_interest")},
    "observation": "observations.py", "latest": "observations.py", "observation_hourly": "observations.py",
    "dead_letter": "dead_letters.py",
    **{t: "alerts.py" for t in ("alert_rule", "alert_watch", "alert_feed", "alert", "alert_change")}}
#: daily partitions of cim_sta.observation (created by store.observations, not by the migrations)
PARTITION = re.compile(r"^observation_p\d{8}$")


def _only_meta(name, type_, parent_names) -> bool:
    if type_ == "schema":
        return name == META_SCHEMA
    if type_ == "table":
        return parent_names.get("schema_name") == META_SCHEMA and name != "alembic_version"
    return True


def _only_sta(name, type_, parent_names) -> bool:
    if type_ == "schema":
        return name == STA_SCHEMA
    if type_ == "table":
        return parent_names.get("schema_name") == STA_SCHEMA and not PARTITION.match(name)
    return True


def test_autogenerate_finds_no_difference(engine):
    for md, only in ((metadata, _only_meta), (sta_metadata, _only_sta)):
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "include_schemas": True, "include_name": only, "compare_type": True,
                "compare_server_default": True, "target_metadata": md})
            diff = compare_metadata(ctx, md)
        assert diff == [], diff


def test_schema_declares_every_system_table_once():
    assert set(metadata.tables) == {f"{META_SCHEMA}.{t}" for t in OWNERS}
    assert set(sta_metadata.tables) == {f"{STA_SCHEMA}.{t}" for t in STA_OWNERS}


def test_each_system_table_is_reached_from_its_own_module_only():
    """No SQL on a system table outside its owner module (tests, migrations and the schema aside)."""
    sources = [p for p in [*(PROJECT_ROOT / "cim_service").rglob("*.py"), *(PROJECT_ROOT / "pipelines").rglob("*.py")]
               if "alembic" not in p.parts and p.name != "schema.py"]
    for table, owner in OWNERS.items():
        sql = re.compile(rf"\b(FROM|INTO|UPDATE|JOIN|TABLE|COPY)\s+(\{{META_SCHEMA\}}|{META_SCHEMA})\.{table}\b", re.I)
        users = sorted(str(p.relative_to(PROJECT_ROOT)) for p in sources if sql.search(p.read_text(encoding="utf-8")))
        assert users == [], (table, users)
        text = (PROJECT_ROOT / "cim_service" / "store" / owner).read_text(encoding="utf-8")
        assert f'TABLE = "{META_SCHEMA}.{table}"' in text, owner


def test_each_sensing_table_is_reached_from_its_own_module_only():
    sources = [p for p in [*(PROJECT_ROOT / "cim_service").rglob("*.py"), *(PROJECT_ROOT / "pipelines").rglob("*.py")]
               if "alembic" not in p.parts and p.name != "schema.py"]
    for table, owner in STA_OWNERS.items():
        sql = re.compile(rf"\b(FROM|INTO|UPDATE|JOIN|TABLE|COPY)\s+{STA_SCHEMA}\.{table}\b", re.I)
        users = sorted(str(p.relative_to(PROJECT_ROOT)) for p in sources
                       if p.name != owner and sql.search(p.read_text(encoding="utf-8")))
        assert users == [], (table, users)
        text = (PROJECT_ROOT / "cim_service" / "store" / owner).read_text(encoding="utf-8")
        assert f"{STA_SCHEMA}.{table}" in text, owner
