"""The deterministic Minhang demo dataset: every source layer of the catalog, generated from a seed.

``build_demo(scale, seed)`` returns one WGS84 GeoDataFrame per layer; ``load_demo(engine, catalog,
...)`` loads them through :func:`pipelines.load.load_geodataframe`. Nothing is downloaded: the only
input is the district outline shipped in ``cim_service/data`` (see its README).
"""

from pipelines.demo.build import DEFAULT_SEED, build_demo, frame_sha256, load_demo
from pipelines.demo.scales import SCALES

__all__ = ["DEFAULT_SEED", "SCALES", "build_demo", "frame_sha256", "load_demo"]
