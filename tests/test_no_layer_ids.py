"""No layer id is written into code: the service, the pipelines and the core name layers only through the catalog.

Issue 9's rule, checked over every module outside ``layers/``, the demo generator, the migrations and the tests:
no string constant (docstrings and the API's ``*_KEY`` result keys aside) is a layer id or table, a qualified
``cim.<table>``, or contains a layer id with an underscore as a word. A layer id that is also a declared field name
(``district`` is the address field filled by the parser as well as a layer) may appear as that field's name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from cim_service.core.settings import PROJECT_ROOT

SKIP_PARTS = {"demo", "alembic", "__pycache__"}


def _modules() -> list[Path]:
    found = []
    for package in ("cim_service", "pipelines"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if not SKIP_PARTS & set(path.relative_to(PROJECT_ROOT).parts):
                found.append(path)
    return found


def literals(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings nor the API's result keys (``*_KEY = ...``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.endswith("_KEY")
                                                for t in node.targets):
            skip.add(id(node.value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip]


def test_no_module_names_a_layer(catalog):
    fields = {field.name for spec in catalog for field in spec.fields}
    names = ({spec.id for spec in catalog} | {spec.table for spec in catalog})
    modules = _modules()
    found = []
    for path in modules:
        for line, text in literals(path):
            for name in names:
                qualified = re.search(rf'\bcim"?\."?{name}\b', text)
                word = "_" in name and re.search(rf"\b{name}\b", text)
                exact = text == name and name not in fields
                if exact or qualified or word:
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {name!r} in {text[:60]!r}")
    assert len(modules) > 60, "the scan found too few modules: the layout moved"
    assert found == [], "layer ids written into code (declare a role or a catalog field instead):\n" + "\n".join(found)
