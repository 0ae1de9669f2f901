"""Local glyphs, sprites and labels: glyph ranges decoded with protobuf (MapLibre's glyphs.proto), built on
demand and cached, the sprite sheet consistent with its index and the catalog, the style's symbol layers and
the SLD's TextSymbolizer, the web map's labels and their WOFF2 font subset."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from fontTools.ttLib import TTFont
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from PIL import Image

from cim_service.styles.glyphs import BUFFER, FONTSTACK, GlyphStore, range_name
from cim_service.tiles.labels import has_label_points, label_layer_name

SE = "{http://www.opengis.net/se}"
OGC = "{http://www.opengis.net/ogc}"


def _glyphs_message():
    """The message class of MapLibre's glyphs.proto, declared here (not taken from the encoder under test)."""
    f = descriptor_pb2.FileDescriptorProto(name="glyphs_test.proto", package="llmr.glyphs", syntax="proto2")
    glyph = f.message_type.add(name="glyph")
    t = descriptor_pb2.FieldDescriptorProto
    opt, req, rep = t.LABEL_OPTIONAL, t.LABEL_REQUIRED, t.LABEL_REPEATED
    for name, number, kind, label in (("id", 1, t.TYPE_UINT32, req), ("bitmap", 2, t.TYPE_BYTES, opt),
                                      ("width", 3, t.TYPE_UINT32, req), ("height", 4, t.TYPE_UINT32, req),
                                      ("left", 5, t.TYPE_SINT32, req), ("top", 6, t.TYPE_SINT32, req),
                                      ("advance", 7, t.TYPE_UINT32, req)):
        glyph.field.add(name=name, number=number, type=kind, label=label)
    stack = f.message_type.add(name="fontstack")
    stack.field.add(name="name", number=1, type=t.TYPE_STRING, label=req)
    stack.field.add(name="range", number=2, type=t.TYPE_STRING, label=req)
    stack.field.add(name="glyphs", number=3, type=t.TYPE_MESSAGE, type_name=".llmr.glyphs.glyph", label=rep)
    top = f.message_type.add(name="glyphs")
    top.field.add(name="stacks", number=1, type=t.TYPE_MESSAGE, type_name=".llmr.glyphs.fontstack", label=rep)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("llmr.glyphs.glyphs"))


GLYPHS = _glyphs_message()


def _decode(data: bytes) -> dict[int, object]:
    msg = GLYPHS()
    msg.ParseFromString(data)  # required fields are checked: a glyph without its metrics does not parse
    assert len(msg.stacks) == 1
    return msg.stacks[0], {g.id: g for g in msg.stacks[0].glyphs}


def _sdf(g) -> np.ndarray:
    return np.frombuffer(g.bitmap, dtype=np.uint8).reshape(g.height + 2 * BUFFER, g.width + 2 * BUFFER)


def test_glyph_range_decodes_with_sdf_bitmaps(api, settings):
    start = ord("莘") // 256 * 256
    folder = settings.home / "glyphs" / FONTSTACK.replace(" ", "_")
    cache = folder / f"{range_name(start)}.pbf"
    assert not cache.exists()  # not built ahead in the test home: this request builds it
    url = f"/fonts/{FONTSTACK},Arial Unicode MS Regular/{range_name(start)}.pbf"
    r = api.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert cache.is_file() and cache.read_bytes() == r.content  # cached on disk, stamped
    assert json.loads((folder / "stamp.json").read_text())["font"]
    stack, glyphs = _decode(r.content)
    assert stack.name == FONTSTACK and stack.range == range_name(start)
    assert all(start <= cp < start + 256 for cp in glyphs) and len(glyphs) > 200
    g = glyphs[ord("莘")]
    assert 16 <= g.width <= 26 and 16 <= g.height <= 26 and 20 <= g.advance <= 26
    field = _sdf(g)
    assert field.max() >= 192 and field[0, 0] < 64  # inside the strokes past the edge (192); the buffer outside
    # a second glyph differs (the bitmaps are the glyphs' own)
    assert bytes(glyphs[ord("莘") + 1].bitmap) != bytes(g.bitmap)
    again = api.get(url)
    assert again.content == r.content

    latin = _decode(api.get(f"/fonts/{FONTSTACK}/0-255.pbf").content)[1]
    assert latin[ord(" ")].width == 0 and not latin[ord(" ")].bitmap and latin[ord(" ")].advance > 0
    a = latin[ord("A")]
    assert _sdf(a).shape == (a.height + 6, a.width + 6) and a.top < 0  # node-fontnik's top: below the ascender


def test_glyph_requests_are_checked(api):
    assert api.get(f"/fonts/{FONTSTACK}/1-256.pbf").status_code == 400
    assert api.get(f"/fonts/{FONTSTACK}/0-511.pbf").status_code == 400
    assert api.get(f"/fonts/{FONTSTACK}/65536-65791.pbf").status_code == 400
    assert api.get(f"/fonts/{FONTSTACK}/x-y.pbf").status_code == 400
    assert api.get("/fonts/Comic Sans/0-255.pbf").status_code == 404
    assert api.get("/fonts/web/0123.woff2").status_code == 404
    assert api.get("/fonts/web/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_sprite_sheet_matches_its_index_and_the_catalog(api, catalog):
    points = {s.id: s for s in catalog if s.geometry.is_point and s.access.value == "public"}
    for suffix, ratio in (("", 1), ("@2x", 2)):
        index = api.get(f"/sprites/default{suffix}.json").json()
        png = api.get(f"/sprites/default{suffix}.png")
        assert png.headers["content-type"] == "image/png"
        sheet = Image.open(io.BytesIO(png.content)).convert("RGBA")
        assert set(points) <= set(index)
        for layer_id, spec in points.items():
            icon = index[layer_id]
            assert icon["pixelRatio"] == ratio
            assert icon["x"] + icon["width"] <= sheet.width and icon["y"] + icon["height"] <= sheet.height
            assert icon["width"] == round((2 * spec.style.radius + 4) * ratio)
            if spec.style.radius < 3:
                continue  # the ring covers the centre of the smallest symbols
            centre = sheet.getpixel((icon["x"] + icon["width"] // 2, icon["y"] + icon["height"] // 2))
            assert all(abs(c - f) <= 3 for c, f in zip(centre[:3], spec.style.fill[:3], strict=True)), layer_id
    assert api.get("/sprites/other.png").status_code == 404
    assert api.get("/sprites/default@3x.png").status_code == 404


def test_style_has_local_glyphs_sprite_and_label_layers(api, catalog):
    style = api.get("/styles/default", params={"f": "mapbox"}).json()
    assert style["glyphs"] == "http://testserver/fonts/{fontstack}/{range}.pbf"
    assert style["sprite"] == "http://testserver/sprites/default"
    labels = [layer for layer in style["layers"] if layer["type"] == "symbol"]
    # a polygon labelled at a point is labelled from its label points (one per feature), the others from themselves
    labelled = {label_layer_name(s) if has_label_points(s) else s.id: s
                for s in catalog if s.style.label is not None and s.access.value == "public"}
    assert {layer["source-layer"] for layer in labels} == set(labelled) and len(labelled) >= 3
    for layer in labels:
        spec = labelled[layer["source-layer"]]
        assert layer["layout"]["text-field"] == ["get", spec.style.label.field]
        assert layer["layout"]["text-font"] == [FONTSTACK] and layer["layout"]["text-size"] == spec.style.label.size
        assert (layer["layout"].get("symbol-placement") == "line") == (spec.style.label.placement == "line")
    priorities = [labelled[layer["source-layer"]].style.label.priority for layer in labels]
    assert priorities == sorted(priorities) and style["layers"][-len(labels):] == labels  # the highest on top
    # every glyph range and sprite the style names is served
    fontstack = labels[0]["layout"]["text-font"][0]
    assert api.get(style["glyphs"].removeprefix("http://testserver").replace("{fontstack}", fontstack)
                   .replace("{range}", "0-255")).status_code == 200
    assert api.get(style["sprite"].removeprefix("http://testserver") + "@2x.json").status_code == 200


def test_sld_text_symbolizer(api, catalog):
    for spec in (s for s in catalog if s.style.label is not None):
        doc = ET.fromstring(api.get(f"/collections/{spec.id}/styles/default", params={"f": "sld"}).content)
        text = doc.find(f".//{SE}TextSymbolizer")
        assert text is not None, spec.id
        assert text.find(f"{SE}Label/{OGC}PropertyName").text == spec.style.label.field
        line = text.find(f"{SE}LabelPlacement/{SE}LinePlacement") is not None
        assert line == (spec.style.label.placement == "line")
    unlabelled = ET.fromstring(api.get("/collections/cameras/styles/default", params={"f": "sld"}).content)
    assert unlabelled.find(f".//{SE}TextSymbolizer") is None


def test_map_labels_and_their_font(api, catalog):
    doc = api.get("/map/labels").json()
    layers = {layer["id"]: layer for layer in doc["layers"]}
    assert set(layers) == {s.id for s in catalog if s.style.label is not None and s.access.value == "public"}
    towns = {item["zh"]: item for item in layers["towns"]["labels"]}
    assert "测试西镇" in towns and towns["测试西镇"]["en"] == "Test West"
    lon, lat = towns["测试西镇"]["position"]
    assert 121.33 <= lon <= 121.345 and 31.0 <= lat <= 31.03  # the interior point of the fixture town
    roads = layers["main_roads"]
    assert roads["placement"] == "line" and roads["labels"]
    assert all(item["toward"] and item["toward"] != item["position"] for item in roads["labels"])
    assert all(item["toward"] is None for item in layers["metro_stations"]["labels"])
    # each road label carries the road around its anchor: a path through the anchor (at its share `at`)
    for item in roads["labels"]:
        path, at = item["path"], item["at"]
        assert len(path) >= 2 and 0 <= at <= 1, item
        lengths = [math.dist(a, b) for a, b in zip(path, path[1:], strict=False)]
        total, goal = sum(lengths), at * sum(lengths)
        for (a, b), length in zip(zip(path, path[1:], strict=False), lengths, strict=True):
            if goal <= length:
                t = goal / length if length else 0
                on = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
                break
            goal -= length
        assert math.dist(on, item["position"]) < 2e-4 + 0.01 * total, (item["zh"], on, item["position"])
    # the path is the whole road (the map names it wherever it runs in view): the lines of one name, joined
    def length(line: list[list[float]]) -> float:
        return sum(math.dist(a, b) for a, b in zip(line, line[1:], strict=False))

    items = api.get("/collections/main_roads/items", params={"limit": 1000}).json()["features"]
    road_length: dict[str, float] = {}
    for f in items:
        g = f["geometry"]
        for line in g["coordinates"] if g["type"] == "MultiLineString" else [g["coordinates"]]:
            road_length[f["properties"]["name"]] = road_length.get(f["properties"]["name"], 0.0) + length(line)
    label_length: dict[str, float] = {}
    for item in roads["labels"]:
        label_length[item["zh"]] = label_length.get(item["zh"], 0.0) + length(item["path"])
    assert set(label_length) == set(road_length)
    for name, total in road_length.items():
        assert abs(label_length[name] - total) < 0.01 * total + 1e-4, (name, label_length[name], total)
    assert all("path" not in item for item in layers["metro_stations"]["labels"])
    font = api.get(doc["font"]["url"].removeprefix("http://testserver"))
    assert font.status_code == 200 and font.headers["content-type"] == "font/woff2"
    assert "immutable" in font.headers["cache-control"]
    cmap = TTFont(io.BytesIO(font.content)).getBestCmap()
    texts = {ch for layer in layers.values() for item in layer["labels"] for t in (item["zh"], item["en"]) if t
             for ch in t if not ch.isspace()}
    assert texts and all(ord(ch) in cmap for ch in texts)
    assert len(font.content) < 1_500_000 and ord("鑫") not in cmap or "鑫" in texts  # a subset, not the font


@pytest.mark.parametrize("layer", ["towns", "main_roads", "metro_stations"])
def test_catalog_declares_labels(catalog, layer):
    label = catalog.get(layer).style.label
    assert label is not None and label.field_en and label.field in catalog.get(layer).field_names


def test_build_ahead_and_the_stamp(tmp_path):
    """``cim glyphs build`` builds the catalog's and the demo's ranges, a second run none; a changed font or
    builder (another stamp) empties the cache."""
    env = {**os.environ, "CIM_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "cim_service", "glyphs", "build"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    folder = tmp_path / "glyphs" / FONTSTACK.replace(" ", "_")
    for ch in ("莘", "闵", "A"):  # a town, the district, Latin
        assert (folder / f"{range_name(ord(ch) // 256 * 256)}.pbf").is_file(), ch
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "glyphs: 0 of" in again.stdout, again.stdout
    (folder / "stamp.json").write_text(json.dumps({"font": "another font", "builder": "0"}))
    store = GlyphStore(tmp_path / "glyphs")
    assert store.cached(0) is None and not (folder / "0-255.pbf").exists()
    assert (folder / "stamp.json").read_text() == store.stamp


def test_label_declarations_are_checked(catalog):
    from cim_service.core.catalog import LayerSpec

    people = catalog.get("people").model_dump()
    personal = next(f["name"] for f in people["fields"] if f["personal"])
    people["style"]["label"] = {"field": personal}
    with pytest.raises(ValueError, match="personal"):
        LayerSpec.model_validate(people)
    roads = catalog.get("main_roads").model_dump()
    roads["style"]["label"]["field"] = "no_such_field"
    with pytest.raises(ValueError, match="not a declared field"):
        LayerSpec.model_validate(roads)
    towns = catalog.get("towns").model_dump()
    towns["style"]["label"]["placement"] = "line"
    with pytest.raises(ValueError, match="line geometry"):
        LayerSpec.model_validate(towns)
