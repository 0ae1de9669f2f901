"""``cim tiles export``: a PMTiles v3 archive of the public layers, for offline use and CDNs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from cim_service.commands import console, fail, open_database

tiles_app = typer.Typer(help="Vector tile archives (PMTiles).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``tiles`` group to ``cim``."""
    app.add_typer(tiles_app, name="tiles")


@tiles_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Archive to write, e.g. minhang.pmtiles (serve it from "
                                        "CIM_PMTILES_DIR at /pmtiles/{name}).")],
    collections: Annotated[str | None, typer.Option(help="Comma-separated public collections (default: all "
                                                         "public ones).")] = None,
    minzoom: Annotated[int, typer.Option(min=0, max=22, help="Lowest zoom.")] = 0,
    maxzoom: Annotated[int, typer.Option(min=0, max=22, help="Highest zoom.")] = 14,
) -> None:
    """Write the public layers' vector tiles (the service's own MVT, gzip'ed) as a PMTiles v3 archive."""
    from cim_service.errors import InvalidParameter
    from cim_service.store.db import Database
    from cim_service.tiles.archive import public_layers, write_pmtiles

    settings, engine, catalog = open_database()
    engine.dispose()
    wanted = [c.strip() for c in collections.split(",") if c.strip()] if collections else None

    async def run():  # noqa: ANN202
        db = Database(settings.database_url, max_size=4, statement_timeout_ms=settings.statement_timeout_ms)
        await db.open()
        try:
            return await write_pmtiles(db, public_layers(list(catalog), wanted), out, minzoom=minzoom,
                                       maxzoom=maxzoom, max_features=settings.max_features_per_tile)
        finally:
            await db.close()

    try:
        summary = asyncio.run(run())
    except InvalidParameter as exc:
        fail(str(exc))
        return
    console.print(f"{summary.path}: {summary.tiles} tiles, z{summary.minzoom}-{summary.maxzoom}, "
                  f"{summary.bytes / 1e6:.1f} MB, layers {', '.join(summary.layers)}", highlight=False)
