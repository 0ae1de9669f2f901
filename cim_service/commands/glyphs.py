"""``cim glyphs build``: build ahead the glyph ranges the map's labels need (the rest are built on request).

The characters are those of the catalog's texts (titles, descriptions, enums), the demo's names (towns, roads,
metro stations, rivers, parks) and Latin-1. A range already built for the same font and builder is kept (the
cache's stamp), so a second run costs nothing. ``scripts/bootstrap`` runs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from cim_service.commands import console, fail

glyphs_app = typer.Typer(help="Map glyphs (MapLibre SDF glyph ranges of Noto Sans CJK SC).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``glyphs`` group to ``cim``."""
    app.add_typer(glyphs_app, name="glyphs")


def _strings(value: Any) -> Iterator[str]:
    """Every string inside nested tuples, lists, dicts and dataclass-like objects."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _strings(v)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _strings(getattr(value, name))


def demo_names() -> str:
    """The names the demo gives its towns, roads, stations, rivers and parks."""
    from pipelines.demo import basemap, metro, roads, towns

    tables = [towns.TOWNS, roads.ROADS, roads.ROAD_NAMES_EN, metro.STATIONS, basemap.RIVERS, basemap.PARKS]
    return "".join(s for table in tables for s in _strings(table))


def catalog_texts(catalog_dir: Path | None = None) -> str:
    """Every string of the layer declarations (titles, descriptions, enum values)."""
    from cim_service.core.catalog import load_catalog

    return "".join(_strings([spec.model_dump() for spec in load_catalog(catalog_dir)]))


@glyphs_app.command("build")
def build(
    text: Annotated[str, typer.Option(help="Further characters whose ranges to build.")] = "",
) -> None:
    """Build the glyph ranges of the catalog's texts, the demo's names and Latin (kept when up to date)."""
    from cim_service.core.settings import Settings
    from cim_service.styles.glyphs import GlyphStore, GlyphsUnavailable, ranges_of

    settings = Settings()
    store = GlyphStore(settings.home / "glyphs")
    chars = catalog_texts(settings.catalog_dir) + demo_names() + text
    t0 = time.perf_counter()
    try:
        built = store.build(chars)
    except GlyphsUnavailable as exc:
        fail(str(exc))
    wanted = len(set(ranges_of(chars)) | {0})
    console.print(f"glyphs: {len(built)} of {wanted} ranges built in {time.perf_counter() - t0:.1f} s "
                  f"({wanted - len(built)} up to date) in {store.folder}")
