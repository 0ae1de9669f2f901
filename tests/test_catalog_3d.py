"""Catalog declarations of the 3D city: extrusion height, English labels, references between layers."""

from __future__ import annotations

import pytest
import yaml

from cim_service.core.catalog import Catalog, LayerSpec, load_catalog

BASE = {
    "id": "blocks", "table": "blocks", "title_zh": "块", "title_en": "Blocks", "geometry": "MultiPolygon",
    "key": ["block_id"],
    "fields": [{"name": "block_id", "type": "text", "title_zh": "编号", "title_en": "Id"},
               {"name": "h", "type": "float", "title_zh": "高", "title_en": "Height"},
               {"name": "n", "type": "integer", "title_zh": "层", "title_en": "Floors"},
               {"name": "label", "type": "text", "title_zh": "名", "title_en": "Label"}],
}


def _spec(**changes) -> LayerSpec:
    return LayerSpec.model_validate({**BASE, **changes})


def test_height_field_makes_a_polygon_layer_extruded():
    spec = _spec(height_field="h", ingest={"height_from_floors": {"height": "h", "floors": "n", "storey_height_m": 3}})
    assert spec.extruded and spec.ingest.height_from_floors.storey_height_m == 3.0
    assert not _spec().extruded


@pytest.mark.parametrize(("changes", "message"), [
    ({"height_field": "label"}, "must be a number field"),
    ({"height_field": "nope"}, "is not a declared field"),
    ({"height_field": "h", "geometry": "Point"}, "needs polygon geometry"),
    ({"ingest": {"height_from_floors": {"height": "h", "floors": "label", "storey_height_m": 3}}}, "number field"),
    ({"ingest": {"height_from_floors": {"height": "h", "floors": "n", "storey_height_m": 0}}}, "greater than 0"),
    ({"label_field_en": "name_en"}, "is not a declared field"),
    ({"style": {"columns": {"field": "label", "metres_per_unit": 2}}}, "must be a declared number field"),
    ({"style": {"columns": {"field": "h", "metres_per_unit": 2}}, "geometry": "Point"}, "needs polygon geometry"),
    ({"style": {"columns": {"field": "h", "metres_per_unit": 0}}}, "greater than 0"),
    ({"style": {"ramp": {"met": [[0, 0, 0]], "not_met": [[1, 1, 1], [2, 2, 2]]}}}, "at least 2"),
    ({"style": {"ramp": {"met": [[0, 0, 0], [0, 0, 300]], "not_met": [[1, 1, 1], [2, 2, 2]]}}}, "0-255"),
])
def test_wrong_3d_declarations_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        _spec(**changes)


def test_the_catalog_declares_the_town_ramps_and_gap_columns(catalog):
    towns = catalog.role("town_boundaries")
    assert towns.style.ramp is not None and len(towns.style.ramp.met) >= 2
    columns = [spec for spec in catalog if spec.style.columns is not None]
    assert columns and all(spec.kind == "derived" for spec in columns), "the gap layers stand as columns in 3D"


def test_references_must_name_a_layer_with_a_one_field_key(tmp_path):
    fields = [*BASE["fields"], {"name": "addr", "type": "text", "title_zh": "址", "title_en": "Address",
                                "references": "elsewhere"}]
    with pytest.raises(ValueError, match="references 'elsewhere'"):
        Catalog([_spec(fields=fields)])
    target = _spec(id="elsewhere", table="elsewhere")
    assert Catalog([_spec(fields=fields), target]).get("blocks").field("addr").references == "elsewhere"
    (tmp_path / "blocks.yaml").write_text(yaml.safe_dump({**BASE, "fields": fields}), encoding="utf-8")
    with pytest.raises(ValueError, match="references"):
        load_catalog(tmp_path)


def test_the_catalogs_buildings_link_to_the_standard_addresses(catalog):
    extruded = [s for s in catalog if s.extruded]
    assert extruded
    standard = catalog.require_role("standard_addresses")
    for spec in extruded:
        refs = {f.references for f in spec.fields if f.references}
        assert standard.id in refs, spec.id
    for spec in catalog:
        if spec.label_field_en:
            assert spec.field(spec.label_field_en).type.value == "text"
