"""Build the items SQL: one statement returns the whole GeoJSON ``features`` array as text, built in PostgreSQL.

No per-feature Python objects: PostgreSQL renders each feature with ``ST_AsGeoJSON`` and ``json_build_object``
and ``string_agg`` joins them; the route wraps the text in the FeatureCollection envelope and returns it as-is.

``numberMatched`` comes from the layer's recorded feature count (``store.layer_state``) when nothing narrows the
query, else from a count capped at :data:`COUNT_CAP` (omitted when the cap is exceeded, as OGC allows), in the same
statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cim_service.core.catalog import FieldSpec, LayerSpec
from cim_service.features.crs import OutputCrs, geometry_sql
from cim_service.features.sql import Params, quote_ident
from cim_service.store import history, layer_state

COUNT_CAP = 100_000


@dataclass
class ItemsQuery:
    """A validated items request, ready to render as SQL."""

    spec: LayerSpec
    properties: list[FieldSpec]
    crs: OutputCrs
    order: list[tuple[str, bool]]
    limit: int
    offset: int
    params: Params = field(default_factory=Params)
    where: list[str] = field(default_factory=list)
    #: the relation to read instead of the layer table (the layer as of an instant, ``features.asof``)
    source: str | None = None
    #: keyset condition of a ``cursor`` (rows after it); not part of ``numberMatched``
    after: str | None = None

    @property
    def relation(self) -> str:
        """FROM item of the query: the layer table, or the as-of source under an alias."""
        return f'{self.source} AS "__src"' if self.source else self.spec.qualified_table


def _digits(crs: OutputCrs) -> int:
    return 15 if crs.python_crs else crs.digits


def feature_text_sql(properties: list[FieldSpec], crs: OutputCrs, id_col: str = '"id"', geom: str = '"__g"') -> str:
    """SQL expression rendering one row as a GeoJSON Feature (text)."""
    return ("'{\"type\":\"Feature\",\"id\":' || " + id_col + " || ',\"geometry\":' || "
            f"coalesce(ST_AsGeoJSON({geom}, {_digits(crs)}), 'null') || ',\"properties\":' || "
            f"{properties_sql(properties)} || '}}'")


def properties_sql(properties: list[FieldSpec]) -> str:
    """SQL expression rendering the selected columns as a JSON object (text), in declaration order."""
    if not properties:
        return "'{}'"
    chunks = [properties[i:i + 50] for i in range(0, len(properties), 50)]  # json_build_object: <= 100 args
    parts = ["json_build_object(" + ", ".join(f"'{f.name}', {quote_ident(f.name)}" for f in chunk) + ")"
             for chunk in chunks]
    if len(parts) == 1:
        return parts[0] + "::text"
    return "(" + " || ".join(p + "::jsonb" for p in parts) + ")::text"


def items_sql(q: ItemsQuery) -> str:
    """The statement returning ``(returned, matched, features_text, last_key)`` for an items page.

    ``last_key`` is the sort key of the page's last feature as a text array (for the keyset ``next`` link);
    reversing every direction of the order also reverses PostgreSQL's default NULL placement.
    """
    p = q.params
    where = " AND ".join(q.where) if q.where else "TRUE"
    sort_cols = [f'{col} AS "__s{i}"' for i, (col, _) in enumerate(q.order)]
    order_page = ", ".join(f"{col} {'ASC' if asc else 'DESC'}" for col, asc in q.order)
    order_agg = ", ".join(f'"__s{i}" {"ASC" if asc else "DESC"}' for i, (_, asc) in enumerate(q.order))
    cols = ", ".join(['"id"', *(quote_ident(f.name) for f in q.properties), *sort_cols,
                      f'{geometry_sql(q.crs)} AS "__g"'])
    limit, offset = p.bind(q.limit, "bigint"), p.bind(q.offset, "bigint")
    if q.where or q.source:  # the recorded count is the current one
        matched = (f"(SELECT count(*) FROM (SELECT 1 FROM {q.relation} WHERE {where} "
                   f"LIMIT {COUNT_CAP + 1}) AS c)")
    else:
        matched = layer_state.feature_count_sql(p.bind(q.spec.id, "text"))
    keys = ", ".join(f'"__s{i}"::text' for i in range(len(q.order)))
    order_last = ", ".join(f'"__s{i}" {"DESC" if asc else "ASC"}' for i, (_, asc) in enumerate(q.order))
    return (
        f"WITH page AS (SELECT {cols} FROM {q.relation} WHERE {where}"
        f"{' AND ' + q.after if q.after else ''} ORDER BY {order_page} LIMIT {limit} OFFSET {offset}) "
        f"SELECT count(*) AS returned, {matched} AS matched, "
        f"coalesce(string_agg({feature_text_sql(q.properties, q.crs)}, ',' ORDER BY {order_agg}), '') AS features, "
        f"(SELECT ARRAY[{keys}] FROM page ORDER BY {order_last} LIMIT 1) AS last_key "
        f"FROM page"
    )


def item_sql(spec: LayerSpec, properties: list[FieldSpec], crs: OutputCrs, params: Params, fid: int,
             source: str | None = None) -> str:
    """The statement returning one feature's GeoJSON text (no row when absent); ``source`` as in ItemsQuery."""
    geom = geometry_sql(crs)
    relation = f'{source} AS "__src"' if source else spec.qualified_table
    return (f"SELECT {feature_text_sql(properties, crs, geom=geom)} AS feature "
            f"FROM {relation} WHERE \"id\" = {params.bind(fid, 'bigint')}")


def matched_value(matched: int | None, filtered: bool) -> int | None:
    """``numberMatched`` to report: None when the capped count overflowed."""
    if matched is None or (filtered and matched > COUNT_CAP):
        return None
    return int(matched)


def linked_condition(target: LayerSpec, target_field: str, link_field: str, params: Params, fid: int) -> str:
    """WHERE clause of a linked layer: its ``link_field`` equals ``target_field`` of the target's feature ``fid``."""
    return (f"{quote_ident(link_field)} = (SELECT {quote_ident(target_field)} FROM {target.qualified_table} "
            f"WHERE \"id\" = {params.bind(fid, 'bigint')})")


# -- history (store.history's tables) ------------------------------------------------------------------

#: members every history/changes feature carries in its properties, besides the layer's fields
VERSION_MEMBERS = ("valid_from", "valid_to", "op", "actor")


def _versions_sql(spec: LayerSpec, properties: list[FieldSpec], crs: OutputCrs, where: str, limit: str,
                  offset: str, change: bool) -> str:
    cols = ", ".join(['"id"', "hist_id", *(quote_ident(f.name) for f in properties), *VERSION_MEMBERS,
                      f'{geometry_sql(crs)} AS "__g"'])
    members = ", ".join(f"'{m}', {m}" for m in VERSION_MEMBERS) + (", 'change', op" if change else "")
    props = f"(json_build_object({members})::jsonb || {properties_sql(properties)}::jsonb)::text"
    text = ("'{\"type\":\"Feature\",\"id\":' || \"id\" || ',\"geometry\":' || "
            f"coalesce(ST_AsGeoJSON(\"__g\", {_digits(crs)}), 'null') || ',\"properties\":' || {props} || '}}'")
    return (f"WITH page AS (SELECT {cols} FROM {history.table_name(spec)} WHERE {where} "
            f"ORDER BY valid_from, hist_id LIMIT {limit} OFFSET {offset}) "
            f"SELECT count(*) AS returned, coalesce(string_agg({text}, ',' ORDER BY valid_from, hist_id), '') "
            f"AS features FROM page")


def history_sql(spec: LayerSpec, properties: list[FieldSpec], crs: OutputCrs, params: Params, fid: int,
                limit: int, offset: int) -> str:
    """The statement returning ``(returned, features_text)``: a feature's versions, oldest first."""
    where = f'"id" = {params.bind(fid, "bigint")}'
    return _versions_sql(spec, properties, crs, where, params.bind(limit, "bigint"), params.bind(offset, "bigint"),
                         change=False)


def changes_sql(spec: LayerSpec, properties: list[FieldSpec], crs: OutputCrs, params: Params, start: datetime,
                end: datetime, limit: int, offset: int) -> str:
    """The statement returning ``(returned, features_text)``: the changes in ``[start, end)``, in order.

    Each change is a version row: ``insert`` / ``update`` carry the new values, ``delete`` the last ones.
    """
    where = (f"valid_from >= {params.bind(start, 'timestamptz')} AND valid_from < {params.bind(end, 'timestamptz')}")
    return _versions_sql(spec, properties, crs, where, params.bind(limit, "bigint"), params.bind(offset, "bigint"),
                         change=True)
