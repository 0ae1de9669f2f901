/* Where the map's labels go (pure: no DOM, no deck.gl): the text in the chosen language; a line's name set
 * along the line glyph by glyph (each character at its own place on the projected path, turned with it, read
 * left to right, never across a sharp bend), wherever the line runs in view and again along a long road from
 * z14 (every ~400 px), clear of the point symbols and the panels over the map; a line label without a path
 * turned along its anchor (never upside down); and collisions: labels are placed by priority (the catalog's
 * style.label.priority, then the order given) and one that would overlap a placed one (any of its glyphs) is
 * left out. */

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
  // the first vertex at or beyond s (binary search: long roads have many vertices)
  let lo = 1;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid] < s) lo = mid + 1; else hi = mid;
  }
  const length = cum[lo] - cum[lo - 1];
  return [lo, length > 0 ? (s - cum[lo - 1]) / length : 0];
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
  if (backwards(glyphs)) return slide(screen.slice().reverse(), world.slice().reverse(), 1 - at, widths, maxBend);
  return glyphs;
}

/** Tell whether glyphs set along a path read right to left (or a vertical name top to bottom, as upright()
 * turns a line label the other way). */
function backwards(glyphs) {
  const [first, last] = [glyphs[0].screen, glyphs[glyphs.length - 1].screen];
  return last[0] < first[0] || (last[0] === first[0] && last[1] > first[1]);
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
    const glyphs = setFrom(screen, world, cum, start, widths, maxBend);
    if (glyphs) return glyphs;
  }
  return null;
}

/** Return the glyphs of a name set along a path from arc length `start` in the path's direction, or null where
 * two neighbouring glyphs turn by more than `maxBend`. */
function setFrom(screen, world, cum, start, widths, maxBend) {
  const glyphs = [];
  let s = start;
  for (let g = 0; g < widths.length; g += 1) {
    const [i0, t0] = locate(cum, s);
    const [i1, t1] = locate(cum, s + widths[g]);
    const a = lerp(screen[i0 - 1], screen[i0], t0);
    const b = lerp(screen[i1 - 1], screen[i1], t1);
    const angle = (Math.atan2(a[1] - b[1], b[0] - a[0]) * 180) / Math.PI;
    if (glyphs.length && turn(glyphs[glyphs.length - 1].angle, angle) > maxBend) return null;
    const [im, tm] = locate(cum, s + widths[g] / 2);
    glyphs.push({ index: g, screen: lerp(screen[im - 1], screen[im], tm),
      position: lerp(world[im - 1], world[im], tm), angle });
    s += widths[g];
  }
  return glyphs;
}

/** Return a line's path ready for placing names along it: its points on screen and in the world, the cumulative
 * lengths on screen (pixels) and the total. */
export function screenPath(screen, world) {
  const cum = cumulative(screen);
  return { screen, world, cum, total: cum[cum.length - 1], reverse: null };
}

function reversed(path) {
  if (!path.reverse) path.reverse = screenPath(path.screen.slice().reverse(), path.world.slice().reverse());
  return path.reverse;
}

/** Return the glyphs of a name (advances `widths`) centred at arc length `s` (pixels) of a screenPath, read left to
 * right (set from the path's other end when its direction runs right to left), or null where it does not fit on
 * the path or would cross a bend sharper than `maxBend` between two glyphs. */
export function setAt(path, s, widths, maxBend = MAX_BEND) {
  const width = widths.reduce((a, b) => a + b, 0);
  const start = s - width / 2;
  if (path.screen.length < 2 || start < 0 || start + width > path.total) return null;
  const glyphs = setFrom(path.screen, path.world, path.cum, start, widths, maxBend);
  if (!glyphs || !backwards(glyphs)) return glyphs;
  const back = reversed(path);
  return setFrom(back.screen, back.world, back.cum, back.total - s - width / 2, widths, maxBend);
}

/** Return the stretches [s0, s1] (arc lengths, pixels) of a screenPath that lie inside the w×h view, in path
 * order (each segment clipped to the view, Liang-Barsky; touching pieces joined). */
export function visibleRuns(path, w, h) {
  const runs = [];
  const { screen, cum } = path;
  const clip = [0, 1];
  for (let i = 1; i < screen.length; i += 1) {
    const [a, b] = [screen[i - 1], screen[i]];
    const dx = b[0] - a[0];
    const dy = b[1] - a[1];
    clip[0] = 0;
    clip[1] = 1;
    if (!(edge(clip, -dx, a[0]) && edge(clip, dx, w - a[0]) && edge(clip, -dy, a[1]) && edge(clip, dy, h - a[1]))) {
      continue;
    }
    const length = cum[i] - cum[i - 1];
    const s0 = cum[i - 1] + clip[0] * length;
    const s1 = cum[i - 1] + clip[1] * length;
    const last = runs[runs.length - 1];
    if (last && s0 - last[1] < 1e-6) last[1] = s1; else runs.push([s0, s1]);
  }
  return runs;
}

/** One edge of the Liang-Barsky clipping: narrow the segment's range `clip` [t0, t1]; false when nothing is left. */
function edge(clip, p, q) {
  if (p === 0) return q >= 0 && clip[1] > clip[0];
  const r = q / p;
  if (p < 0) { if (r > clip[0]) clip[0] = r; } else if (r < clip[1]) clip[1] = r;
  return clip[1] > clip[0];
}

function overlaps(a, b) {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

/** Cell size (pixels) of the grid that finds the placed labels near a candidate. */
const CELL = 64;

/** Return a grid of boxes [x0, y0, x1, y1]: `free(box)` tells whether a box overlaps none of those added. */
function boxGrid() {
  const grid = new Map(); // cell key (a number) -> boxes
  const key = (gx, gy) => gx * 65536 + gy;
  return {
    free: (box) => {
      for (let gx = Math.floor(box[0] / CELL); gx <= Math.floor(box[2] / CELL); gx += 1) {
        for (let gy = Math.floor(box[1] / CELL); gy <= Math.floor(box[3] / CELL); gy += 1) {
          const boxes = grid.get(key(gx, gy));
          if (boxes) for (const other of boxes) if (overlaps(box, other)) return false;
        }
      }
      return true;
    },
    add: (box) => {
      for (let gx = Math.floor(box[0] / CELL); gx <= Math.floor(box[2] / CELL); gx += 1) {
        for (let gy = Math.floor(box[1] / CELL); gy <= Math.floor(box[3] / CELL); gy += 1) {
          const k = key(gx, gy);
          (grid.get(k) || grid.set(k, []).get(k)).push(box);
        }
      }
    },
  };
}

/** Pixels kept between two names of the same road (or roads of one name) from REPEAT_ZOOM on: a road that runs
 * on across the view carries its name again about this far on. Below REPEAT_ZOOM a name is placed once a view. */
export const REPEAT_PX = 400;
export const REPEAT_ZOOM = 14;
/** Most places tried for one name: for its first placement, and again for its repeats. */
const MAX_TRIES = 30;

const bboxes = new WeakMap();

/** Return the [lon0, lat0, lon1, lat1] box of a path (computed once per path). */
function bboxOf(path) {
  let box = bboxes.get(path);
  if (!box) {
    box = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [x, y] of path) {
      if (x < box[0]) box[0] = x;
      if (y < box[1]) box[1] = y;
      if (x > box[2]) box[2] = x;
      if (y > box[3]) box[3] = y;
    }
    bboxes.set(path, box);
  }
  return box;
}

/** Return the point at arc length `s` of a screenPath. */
function pointAt(path, s) {
  const [i, t] = locate(path.cum, s);
  return lerp(path.screen[i - 1], path.screen[i], t);
}

/**
 * Return the labels to draw in a view: `layers` are the label layers of /map/labels ({id, size, priority,
 * placement, min_zoom, color, labels: [{zh, en, position, toward, path, at}]}, with `offset` and `symbol` from
 * labels.js); `view` is {width, height, zoom, bounds?: [lon0, lat0, lon1, lat1], covered?: [[x0, y0, x1, y1]]
 * (panels over the map, pixels)}; `project([lon, lat])` gives screen pixels; `shown(layerId)` whether a layer is
 * on. Each label placed is {layer, text, position, angle, size, color, offset, priority, glyphs}: a line's name
 * with a path is set along it glyph by glyph (`glyphs` [{text, position, angle}], each glyph's box kept clear of
 * the other labels, of the symbols of the point layers shown (`symbol`: their radius in pixels) and of the
 * `covered` rectangles), any other label at its position (`glyphs` null). `padding` pixels are kept between
 * labels.
 *
 * Layers are placed by priority (then in the order given). The names of a line layer are placed where the lines
 * run in view, whatever their anchors: first each name once (the name with the longest stretch in view first, at
 * the middle of that stretch or as near it as it fits), then, from REPEAT_ZOOM on, each again along its roads
 * every REPEAT_PX or so where there is room (a stretch of length L in view has round(L / REPEAT_PX) evenly spread
 * slots; a name slides within its slot to where it fits).
 */
export function placeLabels(layers, view, project, lang, shown = () => true, padding = 4) {
  const order = [];
  layers.forEach((layer, li) => { if (view.zoom >= (layer.min_zoom || 0) && shown(layer.id)) order.push({ layer, li }); });
  order.sort((a, b) => (b.layer.priority - a.layer.priority) || (a.li - b.li));
  const inView = ([x, y]) => x >= 0 && y >= 0 && x <= view.width && y <= view.height;
  const ctx = { view, padding, labels: boxGrid(), symbols: boxGrid(), placed: [], seen: new Set() };
  // the symbols of the point layers shown and the panels over the map, which the names along the lines keep off
  for (const rect of view.covered || []) ctx.symbols.add(rect);
  layers.forEach((layer) => {
    if (!layer.symbol || !shown(layer.id)) return;
    for (const item of layer.labels) {
      const [x, y] = project(item.position);
      if (inView([x, y])) ctx.symbols.add([x - layer.symbol, y - layer.symbol, x + layer.symbol, y + layer.symbol]);
    }
  });
  for (const { layer } of order) {
    const along = [];
    for (const item of layer.labels) {
      const text = labelText(item, lang);
      if (!text) continue;
      if (item.path && item.path.length >= 2) along.push({ item, text });
      else placeAnchored(ctx, layer, item, text, project(item.position), project);
    }
    if (along.length) placeNames(ctx, layer, along, project);
  }
  return ctx.placed;
}

/** Place a label at its anchor (a point's, or a line label turned along the line towards `toward`). */
function placeAnchored(ctx, layer, item, text, [x, y], project) {
  const { view, padding } = ctx;
  if (!(x >= 0 && y >= 0 && x <= view.width && y <= view.height)) return;
  const offset = layer.offset || [0, 0];
  const angle = item.toward ? screenAngle([x, y], project(item.toward)) : 0;
  const [w, h] = textSize(text, layer.size);
  const box = rotatedBox(x + offset[0], y + offset[1], w + 2 * padding, h + 2 * padding, angle);
  if (!ctx.labels.free(box)) return;
  // one line's repeated anchors: the same name of the same layer at most once per view below REPEAT_ZOOM
  const key = `${layer.id}\u0000${text}`;
  if (item.toward && ctx.seen.has(key) && view.zoom < REPEAT_ZOOM) return;
  ctx.seen.add(key);
  ctx.labels.add(box);
  ctx.placed.push({ layer: layer.id, text, position: item.position, angle, size: layer.size, color: layer.color,
    offset, priority: layer.priority, glyphs: null });
}

/** Place the names of a line layer along the stretches of their lines in view (placeLabels). */
function placeNames(ctx, layer, along, project) {
  const { view } = ctx;
  const names = new Map();
  const b = view.bounds;
  // from REPEAT_ZOOM on, a stretch of length L in view has round(L / REPEAT_PX) slots for its name, evenly spread
  const spacing = view.zoom >= REPEAT_ZOOM ? REPEAT_PX : Infinity;
  for (const { item, text } of along) {
    if (b) {
      const box = bboxOf(item.path);
      if (box[0] > b[2] || box[2] < b[0] || box[1] > b[3] || box[3] < b[1]) continue;
    }
    let name = names.get(text);
    if (!name) {
      const widths = glyphWidths(text, layer.size);
      const width = widths.reduce((x, y) => x + y, 0);
      name = { text, widths, width, step: Math.max(width / 2, 12), runs: [], centres: [] };
      names.set(text, name);
    }
    const path = screenPath(item.path.map(project), item.path);
    for (const [s0, s1] of visibleRuns(path, view.width, view.height)) {
      const length = s1 - s0;
      if (length <= name.width) continue;
      const n = Math.max(1, Math.round(length / spacing));
      const slots = Array.from({ length: n }, (_, k) => s0 + ((k + 0.5) * length) / n);
      const mid = (s0 + s1) / 2;
      slots.sort((p, q) => Math.abs(p - mid) - Math.abs(q - mid)); // the middle first
      name.runs.push({ path, length, half: length / (2 * n), slots });
    }
  }
  const list = [...names.values()].filter((n) => n.runs.length);
  for (const n of list) n.runs.sort((p, q) => q.length - p.length);
  list.sort((p, q) => (q.runs[0].length - p.runs[0].length) || (p.text < q.text ? -1 : 1));
  // each name once: in the slot nearest the middle of its longest stretch in view, or as near it as it fits
  for (const n of list) {
    const budget = { tries: MAX_TRIES };
    for (const run of n.runs) {
      if (run.slots.some((s) => fillSlot(ctx, layer, n, run, s, budget, 0)) || budget.tries <= 0) break;
    }
  }
  if (view.zoom < REPEAT_ZOOM) return;
  // then the other slots, where no name of the same road is near already
  for (const n of list) {
    const budget = { tries: MAX_TRIES };
    for (const run of n.runs) {
      for (const s of run.slots) {
        const [x, y] = pointAt(run.path, s);
        if (n.centres.some((c) => Math.hypot(c[0] - x, c[1] - y) < REPEAT_PX / 2)) continue;
        fillSlot(ctx, layer, n, run, s, budget, REPEAT_PX / 2);
        if (budget.tries <= 0) break;
      }
    }
  }
}

/** Set a name in the slot at arc length `s` of a stretch: at `s`, else slid either way by half its width at a
 * time within the slot; at least `apart` pixels from the names of the same road placed. */
function fillSlot(ctx, layer, n, run, s, budget, apart) {
  for (let k = 0; budget.tries > 0 && Math.ceil(k / 2) * n.step <= run.half; k += 1) {
    budget.tries -= 1;
    if (setName(ctx, layer, n, run.path, s + (k % 2 ? 1 : -1) * Math.ceil(k / 2) * n.step, apart)) return true;
  }
  return false;
}

/** Set a name centred at arc length `s` of a screenPath where it fits in the view clear of the labels placed and
 * of the symbols; place it and return true, else return false. */
function setName(ctx, layer, n, path, s, apart = 0) {
  const { view, padding } = ctx;
  // the name's middle and ends are on the path, inside its glyphs' boxes: where one is taken, the name cannot go
  // (a cheap test first: most places tried in a crowded view fail here)
  const reach = (n.width - n.widths[0]) / 2;
  if (s < n.width / 2 || s > path.total - n.width / 2) return false;
  for (const at of [s, s - reach, s + reach]) {
    const [x, y] = pointAt(path, at);
    const dot = [x - 1, y - 1, x + 1, y + 1];
    if (!(x > 0 && y > 0 && x < view.width && y < view.height) || !ctx.labels.free(dot) || !ctx.symbols.free(dot)) {
      return false;
    }
  }
  const along = setAt(path, s, n.widths);
  if (!along) return false;
  const centre = along[Math.floor(along.length / 2)].screen;
  if (apart && n.centres.some((c) => Math.hypot(c[0] - centre[0], c[1] - centre[1]) < apart)) return false;
  const height = layer.size * 1.25 + 2 * padding;
  const boxes = along.map((g) => rotatedBox(g.screen[0], g.screen[1], n.widths[g.index] + 2 * padding, height, g.angle));
  if (boxes.some((x) => x[0] < 0 || x[1] < 0 || x[2] > view.width || x[3] > view.height)) return false;
  if (!boxes.every((x) => ctx.labels.free(x) && ctx.symbols.free(x))) return false;
  for (const x of boxes) ctx.labels.add(x);
  const chars = Array.from(n.text);
  const mid = along[Math.floor(along.length / 2)];
  n.centres.push(mid.screen);
  ctx.placed.push({ layer: layer.id, text: n.text, position: mid.position, angle: mid.angle, size: layer.size,
    color: layer.color, offset: layer.offset || [0, 0], priority: layer.priority,
    glyphs: along.map((g) => ({ text: chars[g.index], position: g.position, angle: g.angle })) });
  return true;
}

/** Tell whether the camera moved enough since `last` for the labels to be placed again. */
export function viewMoved(last, now) {
  if (!last) return true;
  return Math.abs(last.zoom - now.zoom) > 0.05 || Math.abs((last.bearing || 0) - (now.bearing || 0)) > 1
    || Math.abs((last.pitch || 0) - (now.pitch || 0)) > 1
    || Math.abs(last.longitude - now.longitude) * 2 ** now.zoom > 28
    || Math.abs(last.latitude - now.latitude) * 2 ** now.zoom > 28; // ~20 px
}
