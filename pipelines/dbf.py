"""Read a shapefile's attribute table (.dbf) directly: exact values, a checked text encoding, every record counted.

GDAL reads a .dbf without a .cpg as ISO-8859-1, which turns the GBK text of most Chinese shapefiles into
mojibake (``丰巢`` -> ``·á³²``) without a word; it reads 20-digit numeric fields as floats, cuts a value at a
NUL byte, and pairs shapes with records only as far as the shorter file goes. Here the records are read
as the bytes they are (dBase III: types C, N, F, L, D), the encoding is the user's, else the .cpg's when
it is UTF-8 or a Chinese one and the bytes agree, else a checked guess (:func:`pipelines.encoding.guess`);
a cell that does not decode, or holds a NUL byte inside its value, is a row fault naming the record, the
field and the byte offset.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.encoding import MAX_BAD_SHARE, EncodingError, Spot, canonical_codec, display_name, guess

#: .cpg contents and dBase language driver ids that name an encoding we trust for non-ASCII text
_TRUSTED_CPG = {"utf-8": "utf-8", "utf8": "utf-8", "65001": "utf-8", "gbk": "gb18030", "936": "gb18030",
                "cp936": "gb18030", "ansi 936": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030",
                "54936": "gb18030"}
_TRUSTED_LDID = {0x4D: "gb18030", 0x7A: "gb18030"}
_TRUE = frozenset(b"TtYy")
_FALSE = frozenset(b"FfNn")
READABLE_TYPES = "CNFLD"


class DbfError(ValueError):
    """A .dbf that cannot be read (the message says why)."""


@dataclass(frozen=True)
class DbfField:
    """One field descriptor of a .dbf."""

    name: str
    kind: str
    length: int
    offset: int


@dataclass
class DbfTable:
    """The records of a .dbf as text cells (``None`` for blanks), by 1-based record number."""

    frame: pd.DataFrame
    faults: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)


def read_dbf(path: Path, *, encoding: str | None = None) -> DbfTable:
    """Read all records of ``path``; the encoding as given, declared (and agreeing) or guessed."""
    data = path.read_bytes()
    header_len, record_len, count, ldid, descriptors = _header(data, path.name)
    available = max(len(data) - header_len, 0) // record_len
    notes = []
    if available < count:
        notes.append(f"{path.name} is truncated: its header announces {count} records, the file holds {available}")
        count = available
    raw = np.frombuffer(data, dtype=np.uint8, count=count * record_len, offset=header_len).reshape(count, record_len)
    fields = _fields(descriptors, record_len, path.name)
    cells = {f: raw[:, f.offset:f.offset + f.length].copy().view(f"S{f.length}").ravel().tolist() for f in fields}
    codec = _choose_encoding(path, encoding, ldid, descriptors, cells, notes)
    table = DbfTable(frame=pd.DataFrame(index=pd.RangeIndex(1, count + 1)), encoding=codec, notes=notes)
    deleted = raw[:, 0] == ord("*")
    table.deleted = [int(i) + 1 for i in np.flatnonzero(deleted)]
    columns = {}
    for f in fields:
        name = _field_name(f.name, codec)
        start = header_len + f.offset
        columns[name] = [
            _cell(f, name, cell, codec, row, start + (row - 1) * record_len, table.faults)
            for row, cell in enumerate(cells[f], start=1)
        ]
    table.frame = pd.DataFrame(columns, index=pd.RangeIndex(1, count + 1), dtype=object)
    return table


def _header(data: bytes, name: str) -> tuple[int, int, int, int, bytes]:
    if len(data) < 33:
        raise DbfError(f"{name}: not a dBase file (only {len(data)} bytes)")
    count = int.from_bytes(data[4:8], "little")
    header_len = int.from_bytes(data[8:10], "little")
    record_len = int.from_bytes(data[10:12], "little")
    if header_len < 33 or header_len > len(data) or record_len < 1:
        raise DbfError(f"{name}: not a dBase file (bad header)")
    end = data.find(b"\r", 32, header_len)
    if end < 0 or (end - 32) % 32:
        raise DbfError(f"{name}: not a dBase file (its field descriptors do not end)")
    return header_len, record_len, count, data[29], data[32:end]


def _fields(descriptors: bytes, record_len: int, name: str) -> list[DbfField]:
    fields = []
    offset = 1  # after the deletion flag
    for i in range(0, len(descriptors), 32):
        d = descriptors[i:i + 32]
        kind = chr(d[11])
        length = d[16]
        label = d[:11].split(b"\x00", 1)[0]
        if kind not in READABLE_TYPES:
            shown = label.decode("latin-1")
            raise DbfError(f"{name}: field {shown!r} has dBase type {kind!r}; only C, N, F, L and D can be read")
        fields.append(DbfField(label.decode("latin-1"), kind, length, offset))
        offset += length
    if offset > record_len:
        raise DbfError(f"{name}: not a dBase file (its fields are longer than its records)")
    return fields


def _field_name(latin1: str, codec: str) -> str:
    try:
        return latin1.encode("latin-1").decode(codec).strip()
    except UnicodeDecodeError:
        return latin1.strip()


def _choose_encoding(
    path: Path, given: str | None, ldid: int, descriptors: bytes, cells: dict[DbfField, list[bytes]],
    notes: list[str],
) -> str:
    """Return the codec of the text cells: given, declared by .cpg/LDID when the bytes agree, or guessed."""
    if given:
        try:
            return canonical_codec(given)
        except EncodingError as exc:
            raise DbfError(f"{path.name}: {exc}") from None
    units = [c for f, col in cells.items() if f.kind == "C" for c in col if not c.isascii()]
    units += [descriptors[i:i + 11] for i in range(0, len(descriptors), 32) if not descriptors[i:i + 11].isascii()]
    cpg_text = _cpg(path)
    declared = _TRUSTED_CPG.get(cpg_text.lower()) if cpg_text else _TRUSTED_LDID.get(ldid)
    if not units:
        return declared or "utf-8"
    if declared and _fits(units, declared):
        return declared
    try:
        found = guess(units, what=f"{path.name} text")
    except EncodingError as exc:
        said = f" (its .cpg says {cpg_text!r})" if cpg_text else ""
        raise DbfError(f"{path.name}: {exc}{said}") from None
    if cpg_text:
        notes.append(f"{path.with_suffix('.cpg').name} says {cpg_text!r}, but the text of {path.name} is "
                     f"{display_name(found)}; read as {display_name(found)}")
    return found


def _cpg(path: Path) -> str | None:
    for suffix in (".cpg", ".CPG"):
        cpg = path.with_suffix(suffix)
        if cpg.exists():
            return cpg.read_bytes()[:64].decode("ascii", errors="replace").strip() or None
    return None


def _fits(units: list[bytes], codec: str) -> bool:
    bad = 0
    for u in units:
        try:
            u.decode(codec)
        except UnicodeDecodeError:
            bad += 1
    return bad <= MAX_BAD_SHARE * len(units)


def _cell(
    f: DbfField, name: str, cell: bytes, codec: str, row: int, offset: int, faults: dict
) -> str | None:
    """Return one cell as text (None when blank); record a fault for a cell that cannot be read."""
    value = cell.rstrip(b" \x00")
    if not value.strip(b" "):
        return None
    if b"\x00" in value:
        at = offset + cell.index(b"\x00")
        faults.setdefault(row, (name, f"a NUL byte inside the value at byte offset {at}"))
        return None
    if f.kind == "L":
        flag = value.strip()[:1]
        return "true" if flag[0] in _TRUE else "false" if flag[0] in _FALSE else None
    if f.kind == "D":
        text = value.strip().decode("ascii", errors="replace")
        if text == "00000000":
            return None
        return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else text
    try:
        return codecs.decode(value, codec if f.kind == "C" else "ascii")
    except UnicodeDecodeError as exc:
        spot = Spot(offset + exc.start, value[exc.start:exc.end], codec if f.kind == "C" else "ascii")
        faults.setdefault(row, (name, spot.describe()))
        return None
