"""The sprite sheet of the catalog's point symbols (MapLibre ``sprite``: a PNG and its JSON index, 1x and @2x).

Every point layer's symbol is a circle of its ``style.radius`` in its fill colour with a ring in its line colour,
drawn with Pillow (supersampled, then reduced: smooth edges). Icons are packed in one row, in catalog order;
the JSON names each icon by its layer id: ``{id: {x, y, width, height, pixelRatio}}``. The sheet depends on the
catalog only, so it is made once per process and ratio.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from cim_service.core.catalog import Catalog, LayerSpec

#: pixels around the circle (room for its ring) and the supersampling factor
PAD = 2
SUPERSAMPLE = 4
RATIOS = (1, 2)


@dataclass(frozen=True)
class Sprite:
    """One sprite sheet: the PNG and its index."""

    png: bytes
    index: dict[str, dict[str, int]]

    @property
    def json(self) -> bytes:
        """The index as JSON bytes."""
        return json.dumps(self.index, separators=(",", ":")).encode()


def point_layers(catalog: Catalog) -> list[LayerSpec]:
    """The layers whose symbols are on the sheet: the point layers."""
    return [spec for spec in catalog if spec.geometry.is_point]


def _icon(spec: LayerSpec, ratio: int):  # noqa: ANN202 - a PIL image
    from PIL import Image, ImageDraw

    st = spec.style
    size = round((2 * st.radius + 2 * PAD) * ratio)
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    ring = max(1, round(ratio * SUPERSAMPLE))
    inset = PAD * ratio * SUPERSAMPLE - ring
    fill = tuple(st.fill[:3]) + ((st.fill[3] if len(st.fill) > 3 else 255),)
    line = tuple(st.line[:3]) + ((st.line[3] if len(st.line) > 3 else 255),)
    draw.ellipse([inset, inset, big - 1 - inset, big - 1 - inset], fill=fill, outline=line, width=ring)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def build_sprite(catalog: Catalog, ratio: int) -> Sprite:
    """The sheet of the catalog's point symbols at a pixel ratio (1 or 2)."""
    from PIL import Image

    if ratio not in RATIOS:
        raise ValueError(f"sprite pixel ratio {ratio} is not one of {RATIOS}")
    icons = [(spec.id, _icon(spec, ratio)) for spec in point_layers(catalog)]
    width = max(1, sum(im.width for _, im in icons))
    height = max([1] + [im.height for _, im in icons])
    sheet = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    index: dict[str, dict[str, int]] = {}
    x = 0
    for layer_id, im in icons:
        sheet.paste(im, (x, 0))
        index[layer_id] = {"x": x, "y": 0, "width": im.width, "height": im.height, "pixelRatio": ratio}
        x += im.width
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return Sprite(buf.getvalue(), index)
