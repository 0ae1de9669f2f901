"""Plan indicators of Minhang's 2021-2025 digital-transformation plan, measured on the map.

- ``indicators.yaml`` / ``catalog.py``: the declarative catalog (id, names, unit, target, 约束性/预期性,
  2020 baseline, computation kind, input layers, parameters, how a district target applies to a town);
- ``context.py``: one computation run (transaction, temporary town / district tables in EPSG:4549);
- ``compute.py``: SQL measures per kind; ``coverage.py``: service-radius coverage polygons;
  ``results.py``: value, target, status and gap text per area; ``keyareas.py``: 5G key areas;
- ``gaps.py``: gap layers (``kind: derived``); ``raster.py``: the camera-density COG;
  ``suggest.py``: greedy maximal-coverage site suggestions;
- ``engine.py``: results stored in ``cim_meta.indicator_result`` keyed by the input layers' versions,
  recomputed only when one changed; ``tables.py``: flat rows for CSV / XLSX / the terminal.

Town targets: densities and shares apply to every town as they are; count targets (cameras, 5G stations,
IoT nodes, smart lockers) are apportioned by the town's share of the district area (the plan gives no
per-town figures). A town with no feature to measure (e.g. no metro entrance) is ``no_data``, as is every
area when a required input layer is empty.
"""
