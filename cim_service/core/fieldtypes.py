"""The one table of attribute types: what each catalog field type is in PostgreSQL, JSON Schema, tiles and pandas.

Every part that needs to know a field type asks this table: the layer tables' DDL (``store.layer_tables``), bound
parameter casts (``features.sql``), queryables and tile schemas, the MVT columns, the ingest staging table and the
validation messages. Adding a type means adding one row here (and its parser in ``pipelines.validate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class FieldType(StrEnum):
    """Attribute types a layer field may declare."""

    text = "text"
    integer = "integer"
    bigint = "bigint"
    float = "float"
    boolean = "boolean"
    date = "date"
    timestamp = "timestamp"
    json = "json"

    @property
    def info(self) -> TypeInfo:
        """This type's row of :data:`FIELD_TYPES`."""
        return FIELD_TYPES[self]

    @property
    def sql(self) -> str:
        """PostgreSQL column type (also the cast of bound values)."""
        return FIELD_TYPES[self].sql


@dataclass(frozen=True)
class TypeInfo:
    """Everything the service says about one field type."""

    #: PostgreSQL column type, as ``pg_catalog.format_type`` spells it; also the cast of a bound value
    sql: str
    #: JSON Schema of a value in GeoJSON properties (queryables, OpenAPI)
    json_schema: dict[str, Any]
    #: the value is sent as text in vector tiles (MVT has no date, time or object values)
    text_in_tiles: bool
    #: TileJSON ``vector_layers[].fields`` type
    tilejson: str
    #: pandas dtype of a parsed column (what ``pipelines.validate`` produces)
    pandas_dtype: str
    #: what a value must be, for one-line validation messages ("'x' is not <expected>")
    expected: str
    #: Apache Arrow type of a value in the file exports (GeoParquet, FlatGeobuf, GeoPackage), as pyarrow spells it
    arrow: str = "string"
    #: numeric types take ``minimum``/``maximum`` rules
    numeric: bool = False

    @property
    def tile_schema(self) -> dict[str, Any]:
        """JSON Schema of the value as a vector tile carries it (objects become JSON text)."""
        return {"type": "string"} if self.json_schema.get("type") == "object" else dict(self.json_schema)


_S = {"type": "string"}
FIELD_TYPES: MappingProxyType[FieldType, TypeInfo] = MappingProxyType({
    FieldType.text: TypeInfo("text", _S, False, "String", "object", "text", "string"),
    FieldType.integer: TypeInfo("integer", {"type": "integer"}, False, "Number", "Int64", "an integer", "int32",
                                True),
    FieldType.bigint: TypeInfo("bigint", {"type": "integer"}, False, "Number", "Int64", "an integer", "int64", True),
    FieldType.float: TypeInfo("double precision", {"type": "number"}, False, "Number", "float64", "a number",
                              "float64", True),
    FieldType.boolean: TypeInfo("boolean", {"type": "boolean"}, False, "Boolean", "boolean",
                                "a boolean (true/false)", "bool"),
    FieldType.date: TypeInfo("date", {"type": "string", "format": "date"}, True, "String", "object", "a date",
                             "date32"),
    FieldType.timestamp: TypeInfo("timestamp with time zone", {"type": "string", "format": "date-time"}, True,
                                  "String", "datetime64[ns, UTC]", "a date-time", "timestamp[us, tz=UTC]"),
    FieldType.json: TypeInfo("jsonb", {"type": "object"}, True, "String", "object", "valid JSON", "string"),
})
