"""A bind-parameter accumulator: SQL text with ``$n`` placeholders and the values to send with it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from cim_service.core.catalog import FieldSpec


class Params:
    """Collect bound values; :meth:`bind` returns the typed placeholder to put into SQL text."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def bind(self, value: Any, cast: str | None = None) -> str:
        """Add ``value`` and return its placeholder (``$n`` or ``$n::cast``)."""
        self.values.append(value)
        placeholder = f"${len(self.values)}"
        if cast is None:
            cast = python_cast(value)
        return f"{placeholder}::{cast}" if cast else placeholder


def python_cast(value: Any) -> str | None:
    """PostgreSQL type for a Python literal (so untyped contexts such as ``$1 = $2`` work)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, datetime):
        return "timestamptz"
    if isinstance(value, date):
        return "date"
    if isinstance(value, str):
        return "text"
    return None


def quote_ident(name: str) -> str:
    """Double-quote a catalog identifier (validated ``^[a-z][a-z0-9_]*$`` by the catalog)."""
    return f'"{name}"'


def field_cast(field: FieldSpec) -> str:
    """PostgreSQL type of a declared field."""
    return field.type.sql
