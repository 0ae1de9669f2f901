/* Where the map's labels go (pure: no DOM, no deck.gl): the text in the chosen language, the angle of a line's
 * label on screen (never upside down), and collisions: labels are placed by priority (the catalog's
 * style.label.priority, then the order given) and one that would overlap a placed one is left out. */

/** Return the text of a label item ({zh, en}) in `lang` (Chinese when it has no English). */
export function labelText(item, lang) {
  return (lang === 'en' && item.en) || item.zh || '';
}

/** Return `degrees` turned by a half turn when needed so that text reads left to right: within (-90, 90]. */
export function upright(degrees) {
  let a = ((degrees % 360) + 540) % 360 - 180; // (-180, 180]
  if (a > 90) a -= 180;
  if (a <= -90) a += 180;
  return a;
}

/** Return the screen angle (degrees, counter-clockwise, upright) of the segment from `a` to `b` (pixels, y down). */
export function screenAngle(a, b) {
  return upright((Math.atan2(a[1] - b[1], b[0] - a[0]) * 180) / Math.PI);
}

/** Return the estimated size [width, height] in pixels of `text` at `size` px (CJK characters are square). */
export function textSize(text, size) {
  let width = 0;
  for (const ch of text) width += ch.codePointAt(0) > 0x2e80 ? size : size * 0.6;
  return [width, size * 1.25];
}

/** Return the axis-aligned box [x0, y0, x1, y1] of a w×h rectangle centred on (x, y) turned by `degrees`. */
export function rotatedBox(x, y, w, h, degrees) {
  const r = (degrees * Math.PI) / 180;
  const c = Math.abs(Math.cos(r));
  const s = Math.abs(Math.sin(r));
  const hw = (w * c + h * s) / 2;
  const hh = (w * s + h * c) / 2;
  return [x - hw, y - hh, x + hw, y + hh];
}

function overlaps(a, b) {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

/** Cell size (pixels) of the grid that finds the placed labels near a candidate. */
const CELL = 64;

/**
 * Return the labels to draw in a view: `layers` are the label layers of /map/labels ({id, size, priority,
 * placement, min_zoom, color, labels: [{zh, en, position, toward}]}); `view` is {width, height, zoom};
 * `project([lon, lat])` gives screen pixels; `shown(layerId)` whether a layer is on. Each label placed is
 * {layer, text, position, angle, size, color, offset, priority}; `padding` pixels are kept between labels.
 */
export function placeLabels(layers, view, project, lang, shown = () => true, padding = 4) {
  const candidates = [];
  layers.forEach((layer, li) => {
    if (view.zoom < (layer.min_zoom || 0) || !shown(layer.id)) return;
    const offset = layer.offset || [0, 0];
    layer.labels.forEach((item, i) => {
      const text = labelText(item, lang);
      if (!text) return;
      candidates.push({ layer, li, i, item, text, offset });
    });
  });
  candidates.sort((a, b) => (b.layer.priority - a.layer.priority) || (a.li - b.li) || (a.i - b.i));
  const grid = new Map();
  const placed = [];
  const seen = new Set();
  for (const c of candidates) {
    const [x, y] = project(c.item.position);
    if (!(x >= 0 && y >= 0 && x <= view.width && y <= view.height)) continue;
    const angle = c.item.toward ? screenAngle([x, y], project(c.item.toward)) : 0;
    const [w, h] = textSize(c.text, c.layer.size);
    const box = rotatedBox(x + c.offset[0], y + c.offset[1], w + 2 * padding, h + 2 * padding, angle);
    const cells = [];
    for (let gx = Math.floor(box[0] / CELL); gx <= Math.floor(box[2] / CELL); gx += 1) {
      for (let gy = Math.floor(box[1] / CELL); gy <= Math.floor(box[3] / CELL); gy += 1) cells.push(`${gx},${gy}`);
    }
    if (cells.some((k) => (grid.get(k) || []).some((other) => overlaps(box, other)))) continue;
    // one line's repeated anchors: the same name of the same layer at most once per view at this zoom's spacing
    const key = `${c.layer.id}\u0000${c.text}`;
    if (c.item.toward && seen.has(key) && view.zoom < 14) continue;
    seen.add(key);
    for (const k of cells) (grid.get(k) || grid.set(k, []).get(k)).push(box);
    placed.push({ layer: c.layer.id, text: c.text, position: c.item.position, angle, size: c.layer.size,
      color: c.layer.color, offset: c.offset, priority: c.layer.priority });
  }
  return placed;
}

/** Tell whether the camera moved enough since `last` for the labels to be placed again. */
export function viewMoved(last, now) {
  if (!last) return true;
  return Math.abs(last.zoom - now.zoom) > 0.05 || Math.abs((last.bearing || 0) - (now.bearing || 0)) > 1
    || Math.abs((last.pitch || 0) - (now.pitch || 0)) > 1
    || Math.abs(last.longitude - now.longitude) * 2 ** now.zoom > 28
    || Math.abs(last.latitude - now.latitude) * 2 ** now.zoom > 28; // ~20 px
}
