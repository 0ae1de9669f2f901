"""The tree stays clean by the project's own ruff rules (pyproject.toml), notebooks included."""

import subprocess
import sys

from cim_service.core.settings import PROJECT_ROOT


def test_ruff_finds_nothing():
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
