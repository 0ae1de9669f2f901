/* The map's state: language, API key, per-layer visibility and opacity, indicators, base data, selection, the
 * 3D view and the time slider's day.
 * window.__cimMap.state is this object (the browser tests set `visible` through it). Pure: no DOM. */
import { addLayerDefaults, baseLayerIds, contextLayerIds, layerIndex } from '#cim/config.js';
import { inlineLayer } from '#cim/inline.js';

/** Return the initial state of a page configuration. */
export function createState(config) {
  const state = {
    config,
    layers: layerIndex(config),
    lang: 'zh',
    apiKey: '',
    visible: {},
    opacity: {},
    indicators: [],
    indicatorId: null,
    indicatorsLoaded: false,
    base: {},
    selectedTown: null,
    rasterUrl: null,
    marker: null,
    view3d: config.view_mode === '3d' || config.screen === 'ops',
    at: null,
    indicatorAt: {},
  };
  addLayerDefaults(config.deck.layers, state.visible, state.opacity);
  if (state.view3d) showContext(state);
  return state;
}

/** Show the layers the 3D view is made of: the basemap and the extruded layers (height field). */
export function showContext(state) {
  for (const id of contextLayerIds(state.config)) state.visible[id] = true;
}

/** Switch the 3D view on or off (on: the basemap and the extruded layers are shown). */
export function setView3d(state, on) {
  state.view3d = Boolean(on);
  if (state.view3d) showContext(state);
}

/** Set the time slider's day (`YYYY-MM-DD`, null for now): tiles of layers with history and indicators as of it. */
export function setAt(state, day) {
  if (day !== null && !/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`not a day: ${day}`);
  state.at = day;
}

/**
 * Take the layers, deck spec and roles of another configuration (an API key's, from /map/config).
 *
 * The page configuration object is updated in place (it is window.CIM_CONFIG); visibility and opacity the
 * user already chose are kept, new layers get their declared defaults.
 */
export function applyConfig(state, config) {
  const { layers, deck, roles, groups } = config;
  Object.assign(state.config, { layers, deck, roles, groups, public_layers: config.public_layers });
  state.layers = layerIndex(state.config);
  addLayerDefaults(state.config.deck.layers, state.visible, state.opacity);
}

/** Return whether the layer `id` may be drawn: public layers always, others once a key is given. */
export function allowed(state, id) {
  const meta = state.layers[id];
  return !meta || meta.access === 'public' || Boolean(state.apiKey);
}

/** Return the selected indicator (as of the time slider's day once that has loaded), or null. */
export function currentIndicator(state) {
  const past = state.at && state.indicatorAt[`${state.indicatorId}@${state.at}`];
  return past || state.indicators.find((i) => i.id === state.indicatorId) || null;
}

/** Keep the indicator `id` as of `day` (the result of /indicators/{id}?at=day). */
export function addIndicatorAt(state, id, day, result) {
  state.indicatorAt[`${id}@${day}`] = result;
}

/** Return whether every base layer of the configuration has its features. */
export function baseLoaded(state) {
  return baseLayerIds(state.config).every((id) => Boolean(state.base[id]));
}

/** Return whether the layer `id` has anything to draw: always on the live page; in the static export, the
 * base layers and the exported ones only. */
export function available(state, id) {
  const inline = state.config.inline;
  return !inline || baseLayerIds(state.config).includes(id) || Boolean(inlineLayer(inline, id));
}

/** Return whether the camera `view` shows aggregates: below the zoom the point layers' tiles are thinned from
 * (config.points_from_zoom; their features are grid cells with a `count`), points drawn as proportional symbols. */
export function aggregated(state, view) {
  const from = state.config.points_from_zoom;
  return Boolean(view) && typeof from === 'number' && view.zoom < from;
}
