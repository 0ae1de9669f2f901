/* deck.gl access: the deck of the map's deck.gl bundle (tools/deckgl: window.createDeck / updateDeck), its layer
 * classes, the loaders.gl MVT loader, and view changes. */

/** Layer classes the map makes; the bundle exports createDeck/updateDeck only, so they are taken from probes. */
export const LAYER_TYPES = ['GeoJsonLayer', 'MVTLayer', 'TileLayer', 'BitmapLayer', 'LineLayer', 'TextLayer'];
const PROBE = '__probe_';

/**
 * Return the WebGL context attributes of the map's canvas; `software`: the browser's WebGL is a software renderer.
 *
 * A software renderer (SwiftShader: a machine without a usable GPU, e.g. a virtual desktop) gets no
 * multisampling: 4x MSAA shades four samples per pixel on the CPU and resolves them every frame, several times
 * the cost of a frame without it (points and labels draw their own smooth edges; polygon and line edges are
 * stepped). The drawing buffer stays preserved (luma.gl's default): without it a click picks nothing in
 * headless Chromium.
 */
export function contextAttributes(software) {
  return software ? { antialias: false } : {};
}

/** Renderer names of software WebGL (Chromium's SwiftShader, Mesa's llvmpipe and softpipe). */
const SOFTWARE_RENDERERS = /swiftshader|llvmpipe|softpipe|software/i;

/** Return whether the browser's WebGL 2 renders in software, by the renderer name of a probe context (false when
 * the browser does not tell it). */
export function softwareWebGL(doc = document) {
  const gl = doc.createElement('canvas').getContext('webgl2');
  if (!gl) return false;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : '';
  const lose = gl.getExtension('WEBGL_lose_context');
  if (lose) lose.loseContext(); // the probe's context is not kept
  return SOFTWARE_RENDERERS.test(renderer);
}

/** Create the deck in `container` with the views of the deck spec; return it, its layer classes and whether its
 * WebGL renders in software. */
export function createMap(container, deckSpec, initialViewState) {
  const probes = LAYER_TYPES.map((type) => ({ '@@type': type, id: `${PROBE}${type}`, visible: false }));
  const software = softwareWebGL();
  const webgl = contextAttributes(software);
  const deck = window.createDeck({
    container,
    jsonInput: { initialViewState, views: deckSpec.views, layers: probes, deviceProps: { webgl } },
    tooltip: false,
  });
  const classes = {};
  for (const layer of deck.props.layers || []) if (layer) classes[layer.id.replace(PROBE, '')] = layer.constructor;
  deck.setProps({ layers: [] });
  return { deck, classes, software };
}

/** Return the MVT loaders (the vendored loaders.gl build, parsing on the main thread), if loaded. */
export function mvtLoaders() {
  return window.loaders && window.loaders.MVTLoader ? [window.loaders.MVTLoader] : undefined;
}

/** Return a layer instance of props carrying their class name in '@@type'. */
export function makeLayer(classes, props) {
  const { '@@type': type, ...rest } = props;
  return new classes[type](rest);
}

/** Fly to `view` (longitude, latitude, zoom) in `duration` ms; the pitch and bearing are kept unless given. */
export function flyTo(deck, view, duration = 1200) {
  const now = currentView(deck) || {};
  const target = Object.assign({ pitch: now.pitch || 0, bearing: now.bearing || 0 }, view, {
    transitionDuration: duration,
    transitionInterpolator: { '@@type': 'FlyToInterpolator' },
  });
  window.updateDeck({ initialViewState: target }, deck);
}

/** Move the camera by `change` (any of longitude, latitude, zoom, pitch, bearing) from where it is now. */
export function moveCamera(deck, change, duration = 400) {
  const now = currentView(deck);
  if (!now) return;
  flyTo(deck, Object.assign({}, now, change), duration);
}

/** Return the current camera (centre, zoom, pitch, bearing) of the map, or null before the first frame. */
export function currentView(deck) {
  const vp = deck.getViewports()[0];
  return vp ? { longitude: vp.longitude, latitude: vp.latitude, zoom: vp.zoom, pitch: vp.pitch, bearing: vp.bearing }
    : null;
}

/** Show `content` (getTooltip's result for `info`) in the deck's tooltip if one is shown now: the language switch
 * rewrites the tooltip under a pointer that has not moved (deck.gl asks getTooltip again only on a move). */
export function refreshTooltip(deck, content, info) {
  const widgets = deck.widgetManager && deck.widgetManager.getWidgets ? deck.widgetManager.getWidgets() : [];
  const widget = widgets.find((w) => w && w.id === 'default-tooltip');
  if (!widget || !widget.isVisible || !info || typeof widget.setTooltip !== 'function') return false;
  widget.setTooltip(content, info.x, info.y);
  return true;
}
