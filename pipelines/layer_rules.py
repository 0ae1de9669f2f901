"""The ingest rules a layer declares in its YAML (``ingest:``, :class:`cim_service.core.catalog.IngestRules`).

- ``parse_address: true`` (the standard addresses): a file with only an address text column gets its GA/T
  2000.32 levels, a standard address text and an ``address_code`` from :mod:`cim_service.core.address` before
  validation;
- ``merge_on: name`` with ``merge_lists: [lines]`` (the metro stations): files with one row per line and station
  are aggregated so a transfer station is one feature whose ``lines`` lists every line (e.g. ``1号线,5号线``);
- ``height_from_floors: {height, floors, storey_height_m}`` (the buildings): a row without a height (no column,
  or an empty cell) gets ``floors × storey_height_m`` metres; a height given in the file is kept as written.
"""

from __future__ import annotations

import re

import geopandas
import pandas as pd

from cim_service.core.catalog import LayerSpec

ADDRESS_LEVELS = ("community", "road", "lane", "sub_lane", "number", "building", "unit", "room", "poi")
_PREFIX = "__derived_"


def prepare(spec: LayerSpec, raw: pd.DataFrame, mapping: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Return ``raw`` and ``mapping`` completed with the layer's derived columns (before validation)."""
    if derives_address(spec, mapping) and "address_code" not in mapping:
        raw, mapping = _parse_addresses(raw, mapping)
    rule = spec.ingest.height_from_floors
    if rule is not None and rule.floors in mapping:
        raw, mapping = _heights_from_floors(raw, mapping, rule.height, rule.floors, rule.storey_height_m)
    return raw, mapping


def _blank(values: pd.Series) -> pd.Series:
    """True where a raw cell holds no value (missing, NaN or only spaces)."""
    return values.isna() | values.astype("string").str.strip().fillna("").eq("")


def _heights_from_floors(raw: pd.DataFrame, mapping: dict[str, str], height: str, floors: str,
                         storey_m: float) -> tuple[pd.DataFrame, dict[str, str]]:
    """Fill missing heights with floors × storey height; floors that are no number stay for validation to reject."""
    count = pd.to_numeric(raw[mapping[floors]].astype("string").str.strip(), errors="coerce")
    derived = (count * storey_m).round(2)
    out = raw.copy()
    column = _PREFIX + height
    if height in mapping:
        given = raw[mapping[height]]
        out[column] = given.where(~_blank(given), derived.astype(object).where(derived.notna(), None))
    else:
        out[column] = derived.astype(object).where(derived.notna(), None)
    return out, {**mapping, height: column}


def aggregate(spec: LayerSpec, gdf: geopandas.GeoDataFrame) -> geopandas.GeoDataFrame:
    """Return validated features merged per feature where the layer needs it (after validation)."""
    on = spec.ingest.merge_on
    if on is not None and on in gdf.columns and len(gdf):
        return _merge_rows(gdf, on, [c for c in spec.ingest.merge_lists if c in gdf.columns])
    return gdf


def needs_whole_file(spec: LayerSpec) -> bool:
    """Tell whether :func:`aggregate` needs all rows at once (no streaming)."""
    return spec.ingest.merge_on is not None


def derives_address(spec: LayerSpec, mapping: dict) -> bool:
    """Tell whether the address parser fills this file's fields (the layer says so and the file has the text)."""
    return spec.ingest.parse_address and "full_address" in mapping


def _parse_addresses(raw: pd.DataFrame, mapping: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    from cim_service.core.address import address_code, canonical_town, parse_address

    texts = raw[mapping["full_address"]]
    hints = raw[mapping["town"]] if "town" in mapping else pd.Series([None] * len(raw), index=raw.index)
    rows = []
    for text, hint in zip(texts, hints, strict=True):
        hint = hint if isinstance(hint, str) and hint.strip() else None
        if not isinstance(text, str) or not text.strip():
            rows.append({})
            continue
        p = parse_address(text, town_hint=hint)
        town = (canonical_town(hint) if hint else None) or p.town
        row = {name: getattr(p, name) for name in ADDRESS_LEVELS}
        row |= {"address_code": address_code(p), "full_address": p.standard_address(),
                "district": p.district, "town": town, "parse_level": p.level()}
        rows.append(row)
    derived = pd.DataFrame(rows, index=raw.index)
    out = raw.copy()
    new_mapping = dict(mapping)
    for name in derived.columns:
        if name in mapping and name not in ("full_address", "town", "district"):
            continue  # the file's own value wins
        column = _PREFIX + name
        out[column] = derived[name].where(derived[name].notna(), None)
        if name in ("town", "district") and name in mapping:
            out[column] = out[column].where(out[column].notna(), raw[mapping[name]])
        new_mapping[name] = column
    return out, new_mapping


def _line_order(line: str) -> tuple[int, str]:
    match = re.search(r"\d+", line)
    return (int(match.group()) if match else 10_000, line)


def _merge_rows(gdf: geopandas.GeoDataFrame, on: str, lists: list[str]) -> geopandas.GeoDataFrame:
    def join(values: pd.Series) -> str | None:
        items = sorted({str(v) for v in values.dropna() if str(v).strip()}, key=_line_order)
        return ",".join(items) or None

    first = gdf.groupby(on, sort=False, as_index=False).first()
    for column in lists:
        joined = gdf.groupby(on, sort=False)[column].agg(join)
        first[column] = first[on].map(joined)
    out = geopandas.GeoDataFrame(first, geometry=gdf.geometry.name, crs=gdf.crs)
    out.index = gdf.drop_duplicates(on).index
    return out
