"""The SensorThings mirror of a sensing layer, as its declaration says: entities written, undeclared ones gone.

:func:`sync` is what an ingest of a sensing layer runs in its transaction (and ``cim sensors sync``): the Things,
Locations and Datastreams of :func:`cim_service.store.sta_entities.sync_layer`, then the catalog-made
Datastreams the declaration no longer makes (a property removed from the layer's ``sensing:``, a feature whose
kind no longer senses it, a feature that left the layer) deleted with their readings, aggregates and latest
values (:mod:`cim_service.store.observations`) and their alerts (foreign keys). Datastreams created through the
SensorThings API are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from cim_service.core.catalog import LayerSpec
from cim_service.store import observations, sta_entities


@dataclass
class SyncResult:
    """What :func:`sync` wrote and removed."""

    things: int
    datastreams: int
    moved: int
    deleted_datastreams: int


def sync(conn: Connection, spec: LayerSpec) -> SyncResult:
    """Write the layer's SensorThings entities and delete the Datastreams (and readings) it no longer declares."""
    report = sta_entities.sync_layer(conn, spec)
    gone = sta_entities.undeclared_datastreams(conn, spec)
    if gone:
        observations.delete_datastreams(conn, gone)
    deleted = sta_entities.delete_datastream_rows(conn, spec, gone)
    return SyncResult(report.things, report.datastreams, report.moved, deleted)
