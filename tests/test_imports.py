"""Imports run one way (core <- store <- pipelines / indicators / service <- app <- commands): the import-linter
contracts of pyproject.toml hold, and the app and the CLI are wired by name."""

from __future__ import annotations

import ast
import subprocess
import sys

from cim_service.core.settings import PROJECT_ROOT

CONTRACTS = ["Layers:", "The core knows no database and no HTTP", "The store knows no HTTP and no CLI",
             "Pipelines serve no HTTP", "Ingest, indicators, features and the web map",
             "Tiles, indicators, ingest and the web map", "No import cycles"]


def test_import_contracts_are_kept():
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                               "sys.exit(lint_imports_command())", "--no-cache"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    kept = [line for line in run.stdout.splitlines() if line.endswith(" KEPT")]
    for name in CONTRACTS:
        assert any(line.startswith(name) for line in kept), f"contract {name!r} not checked:\n{run.stdout[-3000:]}"
    assert "0 broken" in run.stdout


def _imported_names(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | \
           {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_no_module_is_loaded_by_a_string_name():
    for path in [*(PROJECT_ROOT / "cim_service").rglob("*.py"), *(PROJECT_ROOT / "pipelines").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "find_spec" not in text and "import_module(" not in text, path
        assert "importlib" not in _imported_names(path), path


def test_every_router_and_command_group_is_wired():
    from cim_service.app import create_app
    from cim_service.cli import app as cli
    from cim_service.core.settings import Settings

    app = create_app(Settings(database_url="postgresql://cim@127.0.0.1:1/none", environment="test"))
    paths = set(app.openapi()["paths"]) | {getattr(r, "path", None) for r in app.routes}
    for path in ("/", "/conformance", "/collections/{collectionId}/items", "/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
                 "/indicators", "/map", "/healthz"):
        assert path in paths, path
    names = {c.name for c in cli.registered_commands} | {g.name for g in cli.registered_groups}  # typer API
    assert {"db", "ingest", "ingest-batches", "rejects", "demo", "serve", "keys", "indicators", "map"} <= names
