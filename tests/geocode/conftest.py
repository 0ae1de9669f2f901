"""Fixtures of the geocoding tests: a database of their own with the real Minhang addresses and townships.

``../shared/data/addresses/minhang_addresses_gcj02.csv`` (GCJ-02) is ingested into the standard addresses
layer (found by its role) and the real township polygons into the town boundaries layer, so the geocoder is
tested on real, messy addresses. Expected answers are read from that database, never written here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.core.catalog import Role
from cim_service.core.settings import Settings
from cim_service.store.db import make_engine
from pipelines.ingest import ingest_file


@pytest.fixture(scope="package")
def geo_db_url(throwaway_database, catalog, shared_data) -> Iterator[str]:
    """A migrated database holding the real addresses and townships."""
    with throwaway_database("geocode") as url:
        engine = make_engine(url)
        try:
            addresses = catalog.require_role(Role.standard_addresses)
            towns = catalog.require_role(Role.town_boundaries)
            result = ingest_file(engine, catalog, addresses.id,
                                 shared_data / "addresses/minhang_addresses_gcj02.csv", crs="gcj02",
                                 lon_col="lng", lat_col="lat")
            assert result.status == "committed", result
            result = ingest_file(engine, catalog, towns.id, shared_data / "boundaries/minhang_townships_wgs84.geojson")
            assert result.status == "committed", result
        finally:
            engine.dispose()
        yield url


@pytest.fixture(scope="package")
def geo_engine(geo_db_url) -> Iterator[sa.Engine]:
    engine = make_engine(geo_db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="package")
def geo_settings(geo_db_url, tmp_path_factory) -> Settings:
    return Settings(database_url=geo_db_url, environment="test", home=tmp_path_factory.mktemp("geocode-home"),
                    gap_refresh=False)


@pytest.fixture(scope="package")
def geo_api(geo_settings) -> Iterator[TestClient]:
    with TestClient(create_app(geo_settings)) as client:
        yield client


@pytest.fixture(scope="package")
def address_table(catalog) -> str:
    return catalog.require_role(Role.standard_addresses).qualified_table


def rows(engine: sa.Engine, sql: str, **params) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()
