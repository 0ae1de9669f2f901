"""One computation run: a connection, the catalogs, settings, and the shared temporary tables.

All areas and distances are measured in EPSG:4549 (CGCS2000 / 3-degree Gauss-Kruger CM 120E, metres;
Minhang lies 1.3-1.6 degrees from the central meridian, so the scale error is below 0.03 %) or on the
spheroid (geography). Temporary tables live for the run's transaction:

- ``_ind_town``: town polygons (name, area_km2, geom in 4549), and ``_ind_town_sub`` the same subdivided,
  in 4326 (for point-in-town joins on the layers' GIST index) and in 4549 (for overlays);
- ``_ind_district``: the district outline in 4549 (the layer with the ``district_outline`` role, else the
  union of the towns: the ``town_boundaries`` layer);
- ``_asof_<table>``: with ``at`` (a run as of a past date), each dated input layer as it stood at the end of
  that day (:mod:`cim_service.indicators.asof`), read instead of the layer's table through :meth:`Context.table`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cim_service.core.catalog import Catalog, LayerSpec, Role
from cim_service.core.settings import Settings
from cim_service.indicators.asof import asof_source
from cim_service.indicators.catalog import IndicatorCatalog

METRIC_SRID = 4549
#: the name used for district-wide rows
DISTRICT = "闵行区"
#: its English name (the gap sentences in English)
DISTRICT_EN = "Minhang District"
#: vertices per subdivided piece (ST_Subdivide): small pieces make index joins and overlays fast
SUBDIVIDE = 128


@dataclass
class Context:
    """A connection in an open transaction plus what every indicator needs."""

    conn: Connection
    layers: Catalog
    settings: Settings
    indicators: IndicatorCatalog
    prepared: set[str] = field(default_factory=set)
    #: measure the layers as of the end of this day (None: as they are now)
    at: date | None = None
    _binds: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def table(self, layer_id: str) -> str:
        """Quoted table of a layer (identifiers come from the catalog only), or its as-of copy with ``at``."""
        spec = self.layers.get(layer_id)
        if self.at is None:
            return spec.qualified_table
        source = asof_source(self.conn, spec, self.at)
        if source is None:  # nothing dated: the layer as it is now
            return spec.qualified_table
        name = f"_asof_{spec.table}"
        if name not in self.prepared:
            sql, params = source
            self.execute(
                f"""
                CREATE TEMP TABLE {name} ON COMMIT DROP AS {sql};
                ALTER TABLE {name} ADD PRIMARY KEY (id);
                CREATE INDEX ON {name} USING gist (geom);
                ANALYZE {name}
                """,
                **params,
            )
            self.prepared.add(name)
        return name

    def spec(self, layer_id: str) -> LayerSpec:
        """Declaration of a layer."""
        return self.layers.get(layer_id)

    def scalar(self, sql: str, **params: object) -> object:
        """Run a query returning one value."""
        return self.conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[sa.Row]:
        """Run a query returning rows."""
        return list(self.conn.execute(sa.text(sql), params))

    def array(self, sql: str, columns: int, **params: object) -> np.ndarray:
        """Run a query of numeric (or boolean) columns into a float array of shape (rows, columns).

        Rows are fetched from the driver's cursor in one go (SQLAlchemy's per-row processing costs more than
        the query for hundreds of thousands of points); NULL becomes NaN.
        """
        result = self.conn.execute(sa.text(sql), params)
        rows = result.cursor.fetchall() if result.cursor is not None else []
        if not rows:
            return np.empty((0, columns))
        return np.asarray(rows, dtype=float).reshape(len(rows), columns)

    def execute(self, sql: str, **params: object) -> None:
        """Run one statement or a script of statements separated by ``;`` at line ends."""
        for statement in (s.strip() for s in sql.split(";\n")):
            statement = statement.rstrip(";").strip()
            if statement:
                self.conn.execute(sa.text(statement), params)

    def count(self, layer_id: str) -> int:
        """Number of features of a layer."""
        return int(self.scalar(f"SELECT count(*) FROM {self.table(layer_id)}") or 0)

    def where(self, layer_id: str, flt: object, alias: str = "s") -> tuple[str, dict[str, object]]:
        """SQL condition of a ``where`` / ``where_not`` filter over declared fields; values are bound.

        Field names are checked against the layer's declaration (KeyError otherwise) and quoted; each call
        binds its values under fresh names, so several filters can share a statement.
        """
        spec = self.spec(layer_id)
        clauses, params = ["TRUE"], {}
        for op, items in (("=", getattr(flt, "where", {})), ("IS DISTINCT FROM", getattr(flt, "where_not", {}))):
            for name, value in sorted(items.items()):
                spec.field(name)
                key = f"f{next(self._binds)}"
                clauses.append(f'{alias}."{name}" {op} :{key}')
                params[key] = value
        return " AND ".join(clauses), params

    @cached_property
    def empty_layers(self) -> set[str]:
        """Layers that have no feature at all."""
        empty = set()
        for spec in self.layers:
            has = self.scalar(f"SELECT EXISTS (SELECT 1 FROM {spec.qualified_table})")
            if not has:
                empty.add(spec.id)
        return empty

    # -- areas ------------------------------------------------------------------------------------
    def prepare_areas(self) -> None:
        """Create the town and district temporary tables once per run."""
        if "areas" in self.prepared:
            return
        towns = self.layers.require_role(Role.town_boundaries).qualified_table
        district = self.layers.require_role(Role.district_outline).qualified_table
        self.execute(
            f"""
            CREATE TEMP TABLE _ind_town ON COMMIT DROP AS
            SELECT name, max(name_en) AS name_en,
                   ST_Multi(ST_Union(ST_MakeValid(ST_Transform(geom, {METRIC_SRID}))))::geometry AS geom
              FROM {towns} WHERE name IS NOT NULL GROUP BY name;
            ALTER TABLE _ind_town ADD COLUMN area_km2 double precision;
            UPDATE _ind_town SET area_km2 = ST_Area(geom) / 1e6;
            CREATE TEMP TABLE _ind_town_sub ON COMMIT DROP AS
            SELECT name, g AS geom_m, ST_Transform(g, 4326) AS geom
              FROM (SELECT name, ST_Subdivide(geom, {SUBDIVIDE}) AS g FROM _ind_town) s;
            CREATE INDEX ON _ind_town_sub USING gist (geom);
            CREATE INDEX ON _ind_town_sub USING gist (geom_m);
            CREATE TEMP TABLE _ind_district ON COMMIT DROP AS
            SELECT ST_Multi(ST_Union(ST_MakeValid(ST_Transform(geom, {METRIC_SRID}))))::geometry AS geom
              FROM {district};
            UPDATE _ind_district SET geom = (SELECT ST_Multi(ST_Union(geom)) FROM _ind_town)
             WHERE geom IS NULL;
            CREATE TEMP TABLE _ind_district_sub ON COMMIT DROP AS
            SELECT g AS geom_m, ST_Transform(g, 4326) AS geom
              FROM (SELECT ST_Subdivide(geom, {SUBDIVIDE}) AS g FROM _ind_district) s;
            CREATE INDEX ON _ind_district_sub USING gist (geom_m);
            CREATE INDEX ON _ind_district_sub USING gist (geom);
            ANALYZE _ind_town_sub; ANALYZE _ind_district_sub;
            """
        )
        self.prepared.add("areas")

    def point_towns(self, layer_id: str) -> str:
        """Create ``_ind_pt_<layer>`` (id, town) for the layer's features inside a town; return its name.

        One join of the subdivided towns against the layer's GIST index (each piece is prepared once),
        instead of a town lookup per feature.
        """
        name = f"_ind_pt_{self.spec(layer_id).table}"
        if name in self.prepared:
            return name
        self.prepare_areas()
        self.execute(
            f"""
            CREATE TEMP TABLE {name} ON COMMIT DROP AS
            SELECT DISTINCT ON (s.id) s.id, t.name AS town
              FROM _ind_town_sub t JOIN {self.table(layer_id)} s ON ST_Intersects(t.geom, s.geom)
             ORDER BY s.id, t.name;
            ALTER TABLE {name} ADD PRIMARY KEY (id);
            ANALYZE {name}
            """
        )
        self.prepared.add(name)
        return name

    @cached_property
    def district_area_km2(self) -> float | None:
        """Area of the district outline (or of the union of towns), km²; None when neither is loaded."""
        self.prepare_areas()
        value = self.scalar("SELECT ST_Area(geom) / 1e6 FROM _ind_district")
        return float(value) if value else None

    @cached_property
    def towns(self) -> list[tuple[str, str | None, float]]:
        """Towns as (name, name_en, area_km2), by name."""
        self.prepare_areas()
        return [(r[0], r[1], float(r[2])) for r in self.rows(
            "SELECT name, name_en, area_km2 FROM _ind_town ORDER BY name")]

    def town_names(self) -> set[str]:
        """Names of the loaded towns."""
        return {t[0] for t in self.towns}
