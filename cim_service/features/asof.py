"""``at=<RFC 3339 instant>``: read a layer as it was at an instant, from its history (``store.history``).

Distinct from ``datetime``, which filters on a feature's own temporal property. A full date means the start
of that day in UTC. An instant before the layer's history begins is refused, saying where it begins; a layer
without history (a derived layer) is refused too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cim_service.core.catalog import LayerSpec
from cim_service.errors import InvalidParameter
from cim_service.features.temporal import parse_instant
from cim_service.store import history
from cim_service.store.db import Database


def parse_at(text: str, parameter: str = "at") -> datetime:
    """Parse ``at``: an RFC 3339 date-time (UTC when no zone) or a full date (its start, UTC)."""
    if not text.strip():
        raise InvalidParameter(f"parameter {parameter!r}: expected an RFC 3339 instant, e.g. 2023-06-30T12:00:00Z")
    value = parse_instant(text, parameter)
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


async def check_at(db: Database, specs: list[LayerSpec], at: datetime, parameter: str = "at") -> None:
    """Refuse ``at`` for a layer without history or before the layer's history begins (400 saying where)."""
    for spec in specs:
        if not history.has_history(spec):
            raise InvalidParameter(f"parameter {parameter!r}: collection {spec.id!r} keeps no history "
                                   "(it is derived from other layers and recomputed)")
    begins = await db.run(lambda session: _begins(session, specs))
    for spec in specs:
        start = begins[spec.id]
        if start is not None and at < start:
            raise InvalidParameter(f"parameter {parameter!r}: the history of collection {spec.id!r} begins at "
                                   f"{start.astimezone(UTC).isoformat().replace('+00:00', 'Z')}; "
                                   f"{at.isoformat().replace('+00:00', 'Z')} is before it")


async def _begins(session, specs: list[LayerSpec]) -> dict[str, datetime | None]:
    return {spec.id: await history.fetch_begins(session, spec) for spec in specs}


def source(spec: LayerSpec, at_placeholder: str) -> str:
    """The relation of the layer as of the bound instant (for the query builders)."""
    return history.as_of_source(spec, at_placeholder)
