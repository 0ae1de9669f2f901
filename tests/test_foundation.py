import sqlalchemy as sa

from cim_service.core.catalog import LAYER_SCHEMA, Access
from cim_service.store.migrate import migrate


def test_postgis_is_real(engine):
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT postgis_lib_version()")).scalar_one()
    assert version.split(".")[0] == "3"


def test_every_layer_has_a_table_with_its_fields(engine, catalog):
    insp = sa.inspect(engine)
    tables = set(insp.get_table_names(schema=LAYER_SCHEMA))
    for spec in catalog:
        assert spec.table in tables
        cols = {c["name"] for c in insp.get_columns(spec.table, schema=LAYER_SCHEMA)}
        assert set(spec.field_names) <= cols
        assert {"id", "feature_key", "geom", "geom_3857", "outside_district"} <= cols


def test_migrate_is_idempotent(engine, catalog):
    report = migrate(engine, catalog)
    assert report.created_tables == [] and report.added_columns == []


def test_people_personal_fields_are_declared_restricted(catalog):
    people = catalog.get("people")
    assert people.access is Access.restricted
    assert set(people.personal_fields) == {"name", "id_number", "phone"}
