"""The ``cim`` command: database, ingest, demo data, server, indicators and map export.

Each command group lives in its own module under ``cim_service.commands`` and adds itself to the app
through ``register(app)``.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="cim",
    help="Minhang CIM一张图: spatial data service for Minhang District, Shanghai.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: command modules, each with ``register(app: typer.Typer) -> None``
COMMAND_MODULES = (
    "cim_service.commands.db",
    "cim_service.commands.ingest",
    "cim_service.commands.demo",
    "cim_service.commands.serve",
    "cim_service.commands.indicators",
    "cim_service.commands.map",
)

for _name in COMMAND_MODULES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name).register(app)
