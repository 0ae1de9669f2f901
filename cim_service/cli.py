"""The ``cim`` command: database, ingest, demo data, server, indicators, map export, progress reports, MQTT
broker and sensors.

Each command group lives in its own module under ``cim_service.commands`` and adds itself to the app
through ``register(app)``; the groups are imported and registered here by name (a missing one fails at start).
"""

from __future__ import annotations

import typer

from cim_service.commands import broker, db, demo, glyphs, history, indicators, ingest, report, sensors, serve, tiles
from cim_service.commands import map as map_command

app = typer.Typer(
    name="cim",
    help="Minhang CIM一张图: spatial data service for Minhang District, Shanghai.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

db.register(app)
ingest.register(app)
demo.register(app)
serve.register(app)
indicators.register(app)
history.register(app)
map_command.register(app)
report.register(app)
tiles.register(app)
glyphs.register(app)
broker.register(app)
sensors.register(app)
