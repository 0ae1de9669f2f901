"""Spreadsheet safety of exported text: cells that Excel or LibreOffice would run as formulas.

A CSV or XLSX written for planners is opened in Excel. A text value such as ``=cmd|' /C calc'!A0`` or
``@SUM(...)`` in a cell is then read as a formula (OWASP "CSV injection"). Every exporter passes text cells through
:func:`excel_safe`, which prefixes such text with ``'`` (shown as the original text, never evaluated).
"""

from __future__ import annotations

from typing import Any

#: first characters that make a spreadsheet read a cell as a formula (OWASP's list)
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula with ``'``; other values are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value
