/* The map's labels: towns, roads (set along the road glyph by glyph, upright), metro stations, in Chinese or English (the EN
 * switch), placed by priority without overlaps (label-place.js), drawn by one deck.gl TextLayer in the
 * service's own WOFF2 subset of Noto Sans CJK SC (/map/labels names it; the export inlines it as a data: URL).
 * The labels are placed again when the camera has moved (checked after each frame, at most every 150 ms; in
 * software WebGL not while the camera moves: once it rests, in the frame drawn at full resolution again).
 * window.__cimMetrics.labels: {font, fontLoaded, lang, placed, byLayer, placeMs (the last placement's time),
 * texts (first 200)}. */
import { getJSON } from '#cim/data.js';
import { overlayRects } from '#cim/fly.js';
import { placeLabels, viewMoved } from '#cim/label-place.js';
import { allowed } from '#cim/state.js';

export const LABELS_ID = '__labels';
const PLACE_EVERY_MS = 150;

/** Return the label layers of /map/labels with each point layer's text offset below its symbol and the
 * symbol's radius with its ring (pixels: the names along the lines keep off it). */
export function withOffsets(layers, layerMeta) {
  return layers.map((layer) => {
    const meta = layerMeta[layer.id];
    const radius = meta && meta.is_point ? meta.style.radius || 3 : 0;
    const below = radius ? radius + layer.size * 0.75 : 0;
    return Object.assign({}, layer, { offset: [0, below], symbol: radius ? radius + 2 : 0 });
  });
}

async function loadFont(font) {
  if (!font || typeof FontFace === 'undefined') return false;
  const face = new FontFace(font.family, `url(${font.url})`);
  await face.load();
  document.fonts.add(face);
  return true;
}

/** Load the labels (the export's inlined ones) and their font, then place and draw them. */
export async function loadLabels(app) {
  const { state, metrics } = app;
  const inline = state.config.inline;
  metrics.labels = { font: null, fontLoaded: false, lang: state.lang, placed: 0, byLayer: {}, texts: [] };
  try {
    const doc = inline ? inline.labels : await getJSON(state.config.endpoints.labels, state.apiKey);
    if (!doc) return;
    metrics.labels.font = doc.font ? doc.font.family : null;
    metrics.labels.fontLoaded = await loadFont(doc.font).catch((error) => {
      console.warn('label font', error.message);
      return false;
    });
    state.labels = { font: doc.font, layers: withOffsets(doc.layers || [], state.layers), placed: [], view: null };
    placeNow(app);
  } catch (error) {
    console.warn('labels unavailable', error.message);
  }
}

function shownFn(state) {
  return (id) => state.visible[id] !== false && allowed(state, id);
}

function shownKey(state) {
  const shown = shownFn(state);
  return state.labels.layers.map((layer) => (shown(layer.id) ? '1' : '0')).join('');
}

/** Place the labels for the current camera and language, and redraw. */
export function placeNow(app) {
  const { state, deck, metrics } = app;
  const labels = state.labels;
  const viewport = deck.getViewports()[0];
  if (!labels || !viewport) return;
  const view = { width: viewport.width, height: viewport.height, zoom: viewport.zoom };
  if (typeof viewport.getBounds === 'function') view.bounds = viewport.getBounds(); // lines elsewhere are skipped
  // the panels over the map (legend, time bar, controls, live panel): names along the roads would hide there
  view.covered = overlayRects().map((r) => [r.left, r.top, r.right, r.bottom]);
  const started = performance.now();
  labels.placed = placeLabels(labels.layers, view, (p) => viewport.project(p), state.lang, shownFn(state));
  const placeMs = performance.now() - started;
  labels.view = app.view();
  labels.lang = state.lang;
  labels.shown = shownKey(state);
  const byLayer = {};
  for (const p of labels.placed) byLayer[p.layer] = (byLayer[p.layer] || 0) + 1;
  Object.assign(metrics.labels, { lang: state.lang, placed: labels.placed.length, byLayer, placeMs,
    texts: labels.placed.slice(0, 200).map((p) => p.text) });
  app.render();
}

/** Return whether the labels are to be placed again for camera `view`: it moved, or the language or the shown
 * layers changed, since they were placed. */
export function labelsStale(state, view) {
  const labels = state.labels;
  if (!labels || !view) return false;
  return labels.lang !== state.lang || labels.shown !== shownKey(state) || viewMoved(labels.view, view);
}

/** After a frame: place the labels again when they are stale (throttled); `moving`: the camera moves and the
 * placing waits for it to rest (labelsAtRest). */
export function labelsAfterFrame(app, view, moving = false) {
  const labels = app.state.labels;
  if (!labels || labels.timer || moving || !labelsStale(app.state, view)) return;
  labels.timer = setTimeout(() => { labels.timer = null; placeNow(app); }, PLACE_EVERY_MS);
}

/** The camera came to rest at `view`: place the labels now if they are stale (the caller's frame draws them). */
export function labelsAtRest(app, view) {
  const labels = app.state.labels;
  if (!labels || !labelsStale(app.state, view)) return;
  if (labels.timer) { clearTimeout(labels.timer); labels.timer = null; }
  placeNow(app);
}

/** Return what the TextLayer draws of placed labels: a label at its position, or each glyph of a name set
 * along its line at its own position and angle. */
export function drawnGlyphs(placed) {
  const out = [];
  for (const p of placed) {
    if (!p.glyphs) { out.push(p); continue; }
    for (const g of p.glyphs) out.push({ text: g.text, position: g.position, angle: g.angle, size: p.size,
      color: p.color, offset: p.offset });
  }
  return out;
}

/** Return the TextLayer props of the placed labels (none before they load). */
export function labelLayerProps(state) {
  const labels = state.labels;
  if (!labels || !labels.placed.length) return [];
  if (labels.drawnFrom !== labels.placed) { labels.drawn = drawnGlyphs(labels.placed); labels.drawnFrom = labels.placed; }
  return [{
    '@@type': 'TextLayer', id: LABELS_ID, data: labels.drawn, pickable: false,
    fontFamily: labels.font ? `"${labels.font.family}", "Noto Sans CJK SC", sans-serif` : 'sans-serif',
    // a large, sharp SDF atlas with synthetic bold: the thin strokes of CJK stay legible at 12-15 px
    characterSet: 'auto', fontWeight: 'bold',
    fontSettings: { sdf: true, fontSize: 96, buffer: 12, radius: 18, smoothing: 0.05 },
    outlineWidth: 8, outlineColor: [255, 255, 255, 235],
    getPosition: (d) => d.position, getText: (d) => d.text, getSize: (d) => d.size, getAngle: (d) => d.angle,
    getColor: (d) => d.color, getPixelOffset: (d) => d.offset, sizeUnits: 'pixels',
    getTextAnchor: 'middle', getAlignmentBaseline: 'center', billboard: true,
    parameters: { depthTest: false },
    updateTriggers: { getText: [labels.drawn.length, state.lang] },
  }];
}
