"""The ``cim`` command exposes every command group the README documents."""

from typer.testing import CliRunner

import cim_service.commands
from cim_service.cli import app


def test_every_command_module_is_present_and_registered():
    import importlib
    import pkgutil

    names = [m.name for m in pkgutil.iter_modules(cim_service.commands.__path__)]
    assert names
    for name in names:
        module = importlib.import_module(f"cim_service.commands.{name}")  # a missing module is a failure here
        assert callable(module.register)
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for command in ["db", "ingest", "demo", "serve", "indicators", "map"]:
        assert command in res.output


def test_db_group_lists_its_commands():
    res = CliRunner().invoke(app, ["db", "--help"])
    assert res.exit_code == 0
    for sub in ["start", "stop", "status", "migrate"]:
        assert sub in res.output
