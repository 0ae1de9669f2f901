"""The map page and its export never name a restricted layer or a personal field to anonymous callers;
``/map/config`` describes exactly what the caller's key may read."""

from __future__ import annotations

import json
import re

from cim_service.webmap.page import build_page_config

PERSONAL = ("id_number", "公民身份号码", "phone", "手机号码")


def _page_config(html: str) -> dict:
    match = re.search(r"window\.CIM_CONFIG\s*=\s*(\{.*?\});?\s*</script>", html, re.S)
    assert match, "the page embeds its configuration"
    return json.loads(match.group(1))


def _layer_ids(config: dict) -> set[str]:
    return {layer["id"] for layer in config["layers"]}


def test_anonymous_page_describes_public_layers_only(api, catalog):
    html = api.get("/map").text
    config = _page_config(html)
    public = {spec.id for spec in catalog if spec.access.value == "public"}
    assert _layer_ids(config) == public
    assert "people" not in html and "organisations" not in html
    for word in PERSONAL:
        assert word not in html
    deck_ids = {layer["id"] for layer in config["deck"]["layers"]}
    assert "people" not in deck_ids and "cameras" in deck_ids


def test_map_config_follows_the_key(api, analyst, officer):
    anonymous = api.get("/map/config")
    assert anonymous.status_code == 200 and anonymous.headers["cache-control"] == "private, no-store"
    assert "people" not in _layer_ids(anonymous.json())

    as_analyst = api.get("/map/config", headers=analyst).json()
    assert "organisations" in _layer_ids(as_analyst) and "people" not in _layer_ids(as_analyst)

    as_officer = api.get("/map/config", headers=officer).json()
    people = next(layer for layer in as_officer["layers"] if layer["id"] == "people")
    assert {"name", "id_number", "phone"} <= {f["name"] for f in people["fields"]}
    assert "people" in {layer["id"] for layer in as_officer["deck"]["layers"]}

    assert api.get("/map/config", headers={"X-API-Key": "cim_not-a-key"}).status_code == 401


def test_export_configuration_is_the_anonymous_one(catalog):
    config = build_page_config(catalog)
    text = json.dumps(config, ensure_ascii=False)
    assert "people" not in _layer_ids(config) and '"people"' not in text
    for word in PERSONAL:
        assert word not in text
