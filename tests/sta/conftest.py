"""Fixtures of the SensorThings API tests: the service under TestClient, API keys of each role."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cim_service.app import create_app
from cim_service.auth import create_api_key

STA = "/sta/v1.1"


@pytest.fixture(scope="module")
def api(settings) -> Iterator[TestClient]:
    """The service under TestClient (lifespan runs)."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def keys(engine) -> dict[str, str]:
    """One clear API key per role (sensor, admin, analyst, officer)."""
    tag = uuid.uuid4().hex[:8]
    return {role: create_api_key(engine, f"sta-{role}-{tag}", role) for role in ("sensor", "admin", "analyst",
                                                                               "officer")}


def basic(key: str, user: str = "frost") -> dict[str, str]:
    """HTTP Basic auth with the API key as password (what FROST clients send)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def thing_body(name: str, lon: float, lat: float, n_datastreams: int = 1) -> dict:
    """A Thing with one Location and ``n_datastreams`` Datastreams, each with its Sensor and ObservedProperty."""
    return {
        "name": name, "description": f"{name} test station", "properties": {"kind": "test", "floor": 2},
        "Locations": [{"name": f"{name} site", "description": "kerb", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [lon, lat]}}],
        "Datastreams": [{
            "name": f"{name} depth {i}", "description": "water depth",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "centimetre", "symbol": "cm",
                                  "definition": "http://qudt.org/vocab/unit/CentiM"},
            "Sensor": {"name": f"gauge {i}", "description": "ultrasonic gauge", "encodingType": "text/html",
                       "metadata": "https://example.invalid/gauge"},
            "ObservedProperty": {"name": f"water depth {i}", "definition": "http://example.invalid/depth",
                                 "description": "depth of standing water"},
        } for i in range(n_datastreams)],
    }
