"""Batch geocoding of an uploaded CSV: decode it by the ingest's encoding rules, geocode a column, write CSV.

The upload is decoded as the ingest decodes a file (:mod:`pipelines.encoding`): the encoding named by the
caller, else the byte-order mark's, else a checked UTF-8/GB18030 guess; binary data and undecodable text are
refused with the row. Every row keeps its cells and gets ``address_code``, ``match_level``, ``score``, the point
in the chosen CRS (``lon``/``lat``, or ``x``/``y`` for a projected CRS) and ``town``; a column name the file
already has is prefixed with ``geocode_``. Output: UTF-8 with a byte-order mark, CRLF rows, cells made
spreadsheet-safe (:func:`cim_service.excel.excel_safe`). CPU work: run it off the event loop.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from cim_service.errors import InvalidParameter
from cim_service.excel import excel_safe
from cim_service.features.crs import OutputCrs
from cim_service.geocode.index import AddressIndex
from cim_service.geocode.service import Geocoder, parse_cached, to_output
from pipelines.encoding import EncodingError, bom_encoding, display_name, given_encoding, guess

ADDED = ("address_code", "match_level", "score")


@dataclass(frozen=True)
class BatchRequest:
    """What to geocode: the uploaded bytes, the address column, an optional town column, CRS, encoding, row cap."""

    data: bytes
    column: str
    town_column: str | None
    crs: OutputCrs
    encoding: str | None
    max_rows: int


def decode_upload(data: bytes, given: str | None) -> str:
    """The upload as text; 400 naming the row for binary data or text that does not decode."""
    try:
        bom = bom_encoding(data)
        if given:
            chosen = given_encoding(given)
            if bom is not None and bom.codec != chosen.codec:
                raise EncodingError(f"the upload starts with a {bom.display} byte-order mark, not {chosen.display}")
            codec, skip = (bom.codec, bom.bom) if bom else (chosen.codec, 0)
        elif bom is not None:
            codec, skip = bom.codec, bom.bom
        else:
            codec, skip = guess(data.split(b"\n")[:2000], what="upload"), 0
    except EncodingError as exc:
        raise InvalidParameter(f"parameter 'encoding': {exc}") from None
    body = data[skip:]
    if codec.startswith(("utf-8", "gb")) and b"\x00" in body:
        row = body[: body.index(b"\x00")].count(b"\n")
        raise InvalidParameter(f"row {row}: binary data (a NUL byte), not a text CSV")
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        row = body[: exc.start].count(b"\n")
        raise InvalidParameter(f"row {row}: not valid {display_name(codec)} text (byte offset {exc.start + skip}); "
                               f"name the encoding with parameter 'encoding'") from None


def geocode_csv(req: BatchRequest, index: AddressIndex) -> tuple[str, int]:
    """Geocode every row of the upload; return the CSV text and the number of rows. 400 naming row/field."""
    text = decode_upload(req.data, req.encoding)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidParameter("the upload is empty: a CSV with a header row is expected") from None
    except csv.Error as exc:
        raise InvalidParameter(f"row 0 (header): {exc}") from None
    if req.column not in header:
        raise InvalidParameter(f"parameter 'column': {req.column!r} is not a column of the upload "
                               f"(columns: {', '.join(header[:50])})")
    if req.town_column is not None and req.town_column not in header:
        raise InvalidParameter(f"parameter 'town_column': {req.town_column!r} is not a column of the upload")
    at = header.index(req.column)
    town_at = header.index(req.town_column) if req.town_column else None
    axes = ("x", "y") if req.crs.projected else ("lon", "lat")
    added = [*ADDED, *axes, "town"]
    out_names = [name if name not in header else f"geocode_{name}" for name in added]
    rows: list[list[str]] = []
    found: list[tuple] = []
    number = 0  # records after the header, 1-based (as the ingest numbers CSV rows)
    try:
        for row in reader:
            number += 1
            if len(rows) >= req.max_rows:
                raise InvalidParameter(f"row {number}: more than {req.max_rows} rows; split the upload")
            if not row:
                continue
            if len(row) != len(header):
                raise InvalidParameter(f"row {number}: {len(row)} fields where the header has {len(header)}")
            hint = row[town_at].strip() or None if town_at is not None else None
            address = row[at]
            p = parse_cached(address.strip(), hint) if address.strip() else None
            candidates = index.match(p, 1) if p is not None else []
            if p is not None and not candidates:
                area = index.area(p)
                candidates = [area] if area else []
            rows.append(row)
            found.append((p, candidates[0] if candidates else None))
    except csv.Error as exc:
        raise InvalidParameter(f"row {number + 1}: {exc}") from None
    lon, lat = [], []
    for p, c in found:
        if c is not None:
            x, y = Geocoder.position(index, p, c)
            lon.append(x)
            lat.append(y)
    points = iter(to_output(lon, lat, req.crs))
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([excel_safe(h) for h in [*header, *out_names]])
    for row, (p, c) in zip(rows, found, strict=True):
        cells = [excel_safe(v) for v in row]
        if c is None:
            writer.writerow([*cells, "", "none", 0, "", "", ""])
            continue
        first, second = next(points)
        x, y = (second, first) if req.crs.lat_first else (first, second)  # columns are always lon/x then lat/y
        code = index.value("address_code", c.row) if c.row >= 0 else ""
        town = index.value("town", c.row) if c.row >= 0 else (p.town if c.level == "town" else "")
        writer.writerow([*cells, excel_safe(code or ""), c.level, c.score, x, y, excel_safe(town or "")])
    return buf.getvalue(), len(rows)
