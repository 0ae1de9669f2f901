"""Fixtures of the export tests: the service on the small demo, API keys, files written to a temp folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import create_api_key


@pytest.fixture(scope="module")
def api(settings, demo_database_url) -> Iterator[TestClient]:
    """The service under TestClient on the small demo (lifespan runs)."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def officer(engine) -> dict[str, str]:
    """Headers of an officer key (restricted layers, personal data)."""
    return {"X-API-Key": create_api_key(engine, f"export-officer-{uuid.uuid4().hex[:8]}", "officer")}


@pytest.fixture(scope="session")
def analyst(engine) -> dict[str, str]:
    """Headers of an analyst key (internal layers, no restricted ones)."""
    return {"X-API-Key": create_api_key(engine, f"export-analyst-{uuid.uuid4().hex[:8]}", "analyst")}
