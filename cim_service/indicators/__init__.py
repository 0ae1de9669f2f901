"""Plan indicators of Minhang's 2021-2025 digital-transformation plan, measured on the map.

Everything an indicator, gap layer or site suggestion reads, writes or is parameterised by is declared in
``indicators.yaml`` (and in the ``*.yaml`` of ``CIM_INDICATORS_DIR``) and computed by generic kinds:

- ``catalog.py``: the declarations (indicators, coverages, derived outputs, suggestion kinds), their input
  layers and checks against the layer catalog; ``kinds.py``: the kinds and their parameters;
- ``context.py``: one computation run (transaction, temporary town / district tables in EPSG:4549, from the
  ``town_boundaries`` / ``district_outline`` roles of the layer catalog);
- ``compute.py``: SQL measures per kind; ``coverage.py``: service-radius coverage polygons;
  ``results.py``: value, target, status and gap text per area; ``keyareas.py``: areas with targets of their own;
- ``gaps.py``: gap layers (``kind: derived``); ``raster.py``: density COGs; ``suggest.py``: greedy
  maximal-coverage site suggestions;
- ``engine.py``: results stored in ``cim_meta.indicator_result`` keyed by the input layers' versions,
  recomputed only when one changed, each computation bounded by statement and lock timeouts;
  ``freshness.py`` / ``refresher.py``: the derived outputs kept current; ``plans.py``: query plans checked
  for shapes that degrade on a stock PostgreSQL; ``tables.py``: flat rows for CSV / XLSX / the terminal.

Town targets: densities and shares apply to every town as they are; count targets (cameras, 5G stations,
IoT nodes, smart lockers) are apportioned by the town's share of the district area (the plan gives no
per-town figures). A town with no feature to measure (e.g. no metro entrance) is ``no_data``, as is every
area when a required input layer is empty.
"""
