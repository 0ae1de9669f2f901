/* The map's state: language, API key, per-layer visibility and opacity, indicators, base data, selection.
 * window.__cimMap.state is this object (the browser tests set `visible` through it). Pure: no DOM. */
import { addLayerDefaults, baseLayerIds, layerIndex } from '#cim/config.js';
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
  };
  addLayerDefaults(config.deck.layers, state.visible, state.opacity);
  return state;
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

/** Return the selected indicator, or null. */
export function currentIndicator(state) {
  return state.indicators.find((i) => i.id === state.indicatorId) || null;
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
