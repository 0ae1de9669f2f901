/* Where the map's labels go (pure: no DOM, no deck.gl): the text in the chosen language; a line's name set
 * along the line glyph by glyph (each character at its own place on the projected path, turned with it, read
 * left to right, never across a sharp bend); a line label without a path turned along its anchor (never upside
 * down); and collisions: labels are placed by priority (the catalog's style.label.priority, then the order
 * given) and one that would overlap a placed one (any of its glyphs) is left out. */

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

/** Return the advance (pixels) of one glyph at `size` px: CJK characters are square, others ~0.6 of the size. */
export function glyphWidth(ch, size) {
  return ch.codePointAt(0) > 0x2e80 ? size : size * 0.6;
}

/** Return the advances of a name's glyphs set along a line: CJK ones a little apart (a tenth of the size). */
export function glyphWidths(text, size) {
  return Array.from(text, (ch) => glyphWidth(ch, size) + (ch.codePointAt(0) > 0x2e80 ? size * 0.1 : 0));
}

/** Return the estimated size [width, height] in pixels of `text` at `size` px (CJK characters are square). */
export function textSize(text, size) {
  let width = 0;
  for (const ch of text) width += glyphWidth(ch, size);
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

/** Largest turn (degrees) between two neighbouring glyphs of a name set along a line. */
export const MAX_BEND = 30;

function turn(a, b) {
  return Math.abs(((b - a + 540) % 360) - 180);
}

function cumulative(points) {
  const out = [0];
  for (let i = 1; i < points.length; i += 1) {
    out.push(out[i - 1] + Math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]));
  }
  return out;
}

/** Return the segment index and share along it of arc length `s` on a path with cumulative lengths `cum`. */
function locate(cum, s) {
  let i = 1;
  while (i < cum.length - 1 && cum[i] < s) i += 1;
  const length = cum[i] - cum[i - 1];
  return [i, length > 0 ? (s - cum[i - 1]) / length : 0];
}

function lerp(a, b, t) {
  return [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
}

/**
 * Return the glyphs of a name set along a line, or null where it does not fit.
 *
 * `screen` is the line's path projected (pixels, y down), `world` the same points ([lon, lat]); `at` is where the
 * name's middle should go (share of the path's length); `widths` the glyphs' advances (pixels). The name slides
 * along the path from `at` (up to its own length either way) to the first place where it fits on the path and
 * no two neighbouring glyphs turn by more than `maxBend`; a name that would run right to left is set from the
 * path's other end, so it reads left to right. Each glyph: {index, screen: [x, y], position: [lon, lat], angle} (angle
 * in degrees counter-clockwise on screen, the TextLayer's getAngle).
 */
export function placeAlong(screen, world, at, widths, maxBend = MAX_BEND) {
  const glyphs = slide(screen, world, at, widths, maxBend);
  if (!glyphs) return null;
  const [first, last] = [glyphs[0].screen, glyphs[glyphs.length - 1].screen];
  // read left to right (and a vertical name bottom to top, as upright() turns a line label): else from the
  // path's other end
  if (last[0] < first[0] || (last[0] === first[0] && last[1] > first[1])) {
    return slide(screen.slice().reverse(), world.slice().reverse(), 1 - at, widths, maxBend);
  }
  return glyphs;
}

/** Return the glyphs of a name set along the path in its own direction (placeAlong), or null. */
function slide(screen, world, at, widths, maxBend) {
  if (screen.length < 2 || !widths.length) return null;
  const cum = cumulative(screen);
  const total = cum[cum.length - 1];
  const width = widths.reduce((a, b) => a + b, 0);
  if (!(total > width)) return null;
  const centre = at * total;
  for (const shift of [0, 0.25, -0.25, 0.5, -0.5, 0.75, -0.75, 1, -1]) {
    const start = centre + shift * width - width / 2;
    if (start < 0 || start + width > total) continue;
    const glyphs = [];
    let s = start;
    let ok = true;
    for (let g = 0; g < widths.length && ok; g += 1) {
      const [i0, t0] = locate(cum, s);
      const [i1, t1] = locate(cum, s + widths[g]);
      const a = lerp(screen[i0 - 1], screen[i0], t0);
      const b = lerp(screen[i1 - 1], screen[i1], t1);
      const angle = (Math.atan2(a[1] - b[1], b[0] - a[0]) * 180) / Math.PI;
      if (glyphs.length && turn(glyphs[glyphs.length - 1].angle, angle) > maxBend) ok = false;
      const [im, tm] = locate(cum, s + widths[g] / 2);
      glyphs.push({ index: g, screen: lerp(screen[im - 1], screen[im], tm),
        position: lerp(world[im - 1], world[im], tm), angle });
      s += widths[g];
    }
    if (ok) return glyphs;
  }
  return null;
}

function overlaps(a, b) {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

/** Cell size (pixels) of the grid that finds the placed labels near a candidate. */
const CELL = 64;

/**
 * Return the labels to draw in a view: `layers` are the label layers of /map/labels ({id, size, priority,
 * placement, min_zoom, color, labels: [{zh, en, position, toward, path, at}]}); `view` is {width, height,
 * zoom}; `project([lon, lat])` gives screen pixels; `shown(layerId)` whether a layer is on. Each label placed is
 * {layer, text, position, angle, size, color, offset, priority, glyphs}: a line's label with a path is set along
 * it (placeAlong; `glyphs` [{text, position, angle}], each glyph's box kept clear of the other labels), any
 * other at its position (`glyphs` null). `padding` pixels are kept between labels.
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
  const cellsOf = (box) => {
    const cells = [];
    for (let gx = Math.floor(box[0] / CELL); gx <= Math.floor(box[2] / CELL); gx += 1) {
      for (let gy = Math.floor(box[1] / CELL); gy <= Math.floor(box[3] / CELL); gy += 1) cells.push(`${gx},${gy}`);
    }
    return cells;
  };
  const free = (box) => cellsOf(box).every((k) => !(grid.get(k) || []).some((other) => overlaps(box, other)));
  for (const c of candidates) {
    const [x, y] = project(c.item.position);
    if (!(x >= 0 && y >= 0 && x <= view.width && y <= view.height)) continue;
    const size = c.layer.size;
    let boxes;
    let glyphs = null;
    let angle = 0;
    if (c.item.path) { // set along the line, glyph by glyph
      const widths = glyphWidths(c.text, size);
      const along = placeAlong(c.item.path.map(project), c.item.path, c.item.at ?? 0.5, widths);
      if (!along) continue;
      const chars = Array.from(c.text);
      glyphs = along.map((g) => ({ text: chars[g.index], position: g.position, angle: g.angle }));
      boxes = along.map((g) => rotatedBox(g.screen[0], g.screen[1], widths[g.index] + 2 * padding,
        size * 1.25 + 2 * padding, g.angle));
      if (boxes.some((b) => b[0] < 0 || b[1] < 0 || b[2] > view.width || b[3] > view.height)) continue;
      angle = along[Math.floor(along.length / 2)].angle;
    } else {
      angle = c.item.toward ? screenAngle([x, y], project(c.item.toward)) : 0;
      const [w, h] = textSize(c.text, size);
      boxes = [rotatedBox(x + c.offset[0], y + c.offset[1], w + 2 * padding, h + 2 * padding, angle)];
    }
    if (!boxes.every(free)) continue;
    // one line's repeated anchors: the same name of the same layer at most once per view at this zoom's spacing
    const key = `${c.layer.id}\u0000${c.text}`;
    if ((c.item.toward || c.item.path) && seen.has(key) && view.zoom < 14) continue;
    seen.add(key);
    for (const box of boxes) for (const k of cellsOf(box)) (grid.get(k) || grid.set(k, []).get(k)).push(box);
    const position = glyphs ? glyphs[Math.floor(glyphs.length / 2)].position : c.item.position;
    placed.push({ layer: c.layer.id, text: c.text, position, angle, size, color: c.layer.color, offset: c.offset,
      priority: c.layer.priority, glyphs });
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
