"""Keyset paging: an opaque ``cursor`` naming the last feature of a page in the page's sort order.

A ``next`` link carries ``cursor=<token>``: the sort-key values (as PostgreSQL text) and ``id`` of the page's
last feature, with the sort order they belong to. The next page is then ``WHERE (keys) after (token)`` instead
of ``OFFSET n``, so page 3,000 of a layer costs what page 1 costs (an index range scan on ``id`` for the default
order) and a feature inserted or deleted meanwhile neither shifts nor repeats the rest.

"After" follows PostgreSQL's default ordering: ascending keys put NULLs last, descending keys first; ``id``
(unique) is always the final key, so every feature is visited exactly once. Values travel as text and are bound
back as ``$n::text::<column type>``: text output of every field type reads back to the same value.
"""

from __future__ import annotations

import base64
import binascii

import orjson

from cim_service.core.catalog import LayerSpec
from cim_service.errors import InvalidParameter
from cim_service.features.sql import Params

#: longest accepted token (a sort key is at most a few fields; a text key value is bounded by the query limit)
MAX_TOKEN_CHARS = 4096


def key_columns(order: list[tuple[str, bool]]) -> list[str]:
    """SQL expressions of the sort keys as text (selected with each row, to build the next cursor)."""
    return [f"{col}::text" for col, _ in order]


def _signature(order: list[tuple[str, bool]]) -> list[str]:
    return [("+" if asc else "-") + col.strip('"') for col, asc in order]


def encode(order: list[tuple[str, bool]], values: list[str | None]) -> str:
    """The opaque cursor of a row with sort-key ``values`` (text) under ``order``."""
    raw = orjson.dumps({"o": _signature(order), "v": values})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, order: list[tuple[str, bool]]) -> list[str | None]:
    """The sort-key values of ``token``; a 400 naming ``cursor`` when it is not one of this sort order's."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidParameter(f"parameter 'cursor': longer than {MAX_TOKEN_CHARS} characters")
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidParameter("parameter 'cursor': not a cursor of this service (take it from a 'next' link)") \
            from None
    values = doc.get("v") if isinstance(doc, dict) else None
    if (not isinstance(values, list) or len(values) != len(order)
            or not all(v is None or isinstance(v, str) for v in values)):
        raise InvalidParameter("parameter 'cursor': not a cursor of this service (take it from a 'next' link)")
    if doc.get("o") != _signature(order):
        raise InvalidParameter("parameter 'cursor': it was made for another 'sortby'; keep the sortby of the "
                               "link it came from")
    if values[-1] is None or not values[-1].lstrip("-").isdigit():
        raise InvalidParameter("parameter 'cursor': not a cursor of this service (take it from a 'next' link)")
    return values


def _column_type(spec: LayerSpec, col: str) -> str:
    name = col.strip('"')
    return "bigint" if name == "id" else spec.field(name).type.sql


def after_condition(spec: LayerSpec, order: list[tuple[str, bool]], values: list[str | None],
                    params: Params) -> str:
    """SQL condition selecting the rows after ``values`` in ``order`` (values bound, columns from the catalog)."""
    alternatives = []
    equal: list[str] = []
    for (col, asc), value in zip(order, values, strict=True):
        bound = None if value is None else params.bind(value, f"text::{_column_type(spec, col)}")
        if asc:
            after = "FALSE" if bound is None else f"({col} > {bound} OR {col} IS NULL)"
        else:
            after = f"{col} IS NOT NULL" if bound is None else f"{col} < {bound}"
        if col == '"id"':  # never NULL: the plain comparison keeps the primary-key index usable
            after = f"{col} > {bound}" if asc else f"{col} < {bound}"
        alternatives.append(" AND ".join([*equal, after]))
        equal.append(f"{col} IS NULL" if bound is None else f"{col} = {bound}")
    return "(" + " OR ".join(f"({a})" for a in alternatives) + ")"
