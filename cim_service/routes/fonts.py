"""Glyphs, sprites and labels, all served by the service itself (no font service, no CDN).

- ``/fonts/{fontstack}/{range}.pbf``: MapLibre SDF glyph ranges of Noto Sans CJK SC (``cim_service.styles.glyphs``);
  a range not built yet is built on first request in the worker thread (a few hundred ms) and cached;
- ``/sprites/{name}.png|.json``, ``/sprites/{name}@2x.png|.json``: the catalog's point symbols;
- ``/map/labels``: the web map's labels (anchors of the labelled layers the caller may read, their style) and
  the URL of the WOFF2 subset that draws them;
- ``/fonts/web/{digest}.woff2``: that subset (immutable: its name is the digest of its characters and font).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cim_service.auth import Principal, can_read_layer, get_principal
from cim_service.errors import InvalidParameter, NotFound, ServiceUnavailable, error_responses
from cim_service.features.formats import json_response
from cim_service.offloop import off_loop
from cim_service.styles.glyphs import FONTSTACK, GlyphStore, GlyphsUnavailable, parse_range
from cim_service.styles.labels import (
    FONT_FAMILY,
    WebFonts,
    characters,
    fetch_anchors,
    label_layer_entry,
    labelled_layers,
)
from cim_service.styles.render import SPRITE
from cim_service.styles.sprites import Sprite, build_sprite

router = APIRouter(tags=["Styles"], responses=error_responses(400, 404))
PBF = "application/x-protobuf"
WOFF2 = "font/woff2"
#: glyphs and sprites change only with the font or the catalog (a restart): a day; subsets never change
CACHE_DAY = "public, max-age=86400"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
_SPRITE_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_-]{1,64}?)(?P<ratio>@2x)?\.(?P<ext>png|json)$")


def _glyphs(request: Request) -> GlyphStore:
    return request.app.state.glyphs


def _fontstack(fontstack: str) -> None:
    """Accept a fontstack naming ours (MapLibre asks for the layer's ``text-font`` list, comma-separated)."""
    names = [n.strip().lower() for n in fontstack.split(",")]
    if FONTSTACK.lower() not in names:
        raise NotFound(f"fontstack {fontstack[:100]!r} not found; fontstacks: {FONTSTACK}")


@router.get("/fonts/web/{name}", summary="The web map's label font (WOFF2 subset)", response_class=Response,
            responses={200: {"content": {WOFF2: {}}}})
async def web_font(request: Request, name: str) -> Response:
    """A WOFF2 subset of Noto Sans CJK SC made for the map's labels (its name comes from ``/map/labels``)."""
    digest = name.removesuffix(".woff2")
    data = request.app.state.webfonts.cached(digest) if name.endswith(".woff2") else None
    if data is None:
        raise NotFound(f"font {name[:100]!r} not found (font names come from /map/labels)")
    return Response(data, media_type=WOFF2, headers={"Cache-Control": CACHE_IMMUTABLE})


@router.get("/fonts/{fontstack}/{range}.pbf", summary="A glyph range (MapLibre SDF glyphs)", response_class=Response,
            responses={200: {"content": {PBF: {}}}})
async def glyph_range(request: Request, fontstack: str, range: str) -> Response:  # noqa: A002 - the URL's name
    """256 glyphs of Noto Sans CJK SC as signed distance fields (MapLibre's ``glyphs`` protobuf)."""
    try:
        start = parse_range(range)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None
    _fontstack(fontstack)
    store = _glyphs(request)
    try:
        data = store.cached(start)  # a file read of ~200 kB (the first call checks the cache's stamp)
        if data is None:
            data = await off_loop(store.range, start)
    except GlyphsUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    return Response(data, media_type=PBF, headers={"Cache-Control": CACHE_DAY})


def _sprite(request: Request, ratio: int) -> Sprite:
    sprites: dict[int, Sprite] = request.app.state.sprites
    if ratio not in sprites:
        sprites[ratio] = build_sprite(request.app.state.catalog, ratio)
    return sprites[ratio]


@router.get("/sprites/{name}", summary="The sprite sheet of the point symbols", response_class=Response,
            responses={200: {"content": {"image/png": {}, "application/json": {}}}})
async def sprite(request: Request, name: str) -> Response:
    """``default.png`` / ``default.json`` (1x) and ``default@2x.png`` / ``default@2x.json``."""
    m = _SPRITE_NAME.match(name)
    if m is None or m.group("name") != SPRITE:
        raise NotFound(f"sprite {name[:100]!r} not found; sprites: {SPRITE}.png, {SPRITE}.json, {SPRITE}@2x.png, "
                       f"{SPRITE}@2x.json")
    sheet = await off_loop(_sprite, request, 2 if m.group("ratio") else 1)
    if m.group("ext") == "png":
        return Response(sheet.png, media_type="image/png", headers={"Cache-Control": CACHE_DAY})
    return Response(sheet.json, media_type="application/json", headers={"Cache-Control": CACHE_DAY})


@router.get("/map/labels", summary="The web map's labels and their font")
async def map_labels(request: Request, principal: Principal = Depends(get_principal)) -> Response:
    """Label anchors of the labelled layers the caller may read (Chinese and English text), their label style,
    and the WOFF2 font subset (``font.url``) holding every character of them."""
    specs = [s for s in labelled_layers(request.app.state.catalog) if can_read_layer(s, principal)]

    async def fetch(session) -> list[dict]:  # noqa: ANN001
        return [label_layer_entry(spec, await fetch_anchors(session, spec)) for spec in specs]

    layers = await request.app.state.db.run(fetch)
    texts = [t for layer in layers for item in layer["labels"] for t in (item["zh"], item["en"])]
    fonts: WebFonts = request.app.state.webfonts
    try:
        digest = await off_loop(fonts.build, characters(texts))
    except GlyphsUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    font = {"family": FONT_FAMILY, "url": f"{str(request.base_url).rstrip('/')}/fonts/web/{digest}.woff2"}
    return json_response({"font": font, "layers": layers})
