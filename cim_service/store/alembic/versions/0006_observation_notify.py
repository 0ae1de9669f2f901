"""Pushed observations: ``NOTIFY cim_observations`` from statement-level triggers on ``cim_sta.latest``.

Every writer of readings (MQTT bridge, STA POST, dataArray) upserts ``cim_sta.latest`` in its transaction; two
AFTER triggers (INSERT, UPDATE) with a transition table send, once per statement, the ids of the datastreams whose
latest value changed: comma-separated, in chunks of at most :data:`CHUNK` ids (a datastream id has at most 10
digits, so a payload stays under PostgreSQL's 8000-byte NOTIFY limit). The notifications are delivered at commit,
after the alert trigger's ``cim_alert_changed`` of the same transaction; the ``/events`` hub
(``cim_service.sensing.events``) reads the rows by id, and only those of datastreams somebody subscribed to.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHANNEL = "cim_observations"
#: datastream ids per notification: 700 × (10 digits + comma) = 7,700 bytes < 8,000
CHUNK = 700

DDL = f"""
CREATE FUNCTION cim_sta.observations_notify() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  ids text[];
  n integer;
BEGIN
  SELECT array_agg(datastream_id::text) INTO ids FROM new_rows;  -- one pass, no sort
  n := coalesce(cardinality(ids), 0);
  FOR i IN 0 .. (n - 1) / {CHUNK} LOOP
    EXIT WHEN n = 0;
    PERFORM pg_notify('{CHANNEL}', array_to_string(ids[i * {CHUNK} + 1 : (i + 1) * {CHUNK}], ','));
  END LOOP;
  RETURN NULL;
END $$;
CREATE TRIGGER observations_notify_insert AFTER INSERT ON cim_sta.latest
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cim_sta.observations_notify();
CREATE TRIGGER observations_notify_update AFTER UPDATE ON cim_sta.latest
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cim_sta.observations_notify();
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER IF EXISTS observations_notify_insert ON cim_sta.latest;
    DROP TRIGGER IF EXISTS observations_notify_update ON cim_sta.latest;
    DROP FUNCTION IF EXISTS cim_sta.observations_notify();
    """)
