/* Hover tooltips and the click panel: a feature's title and attributes, completed from the features API. */
import { ROLE, roleLayer } from '#cim/config.js';
import { featureUrl, getJSON } from '#cim/data.js';
import { refreshTooltip } from '#cim/deck.js';
import { $ } from '#cim/dom.js';
import { cellText, featureTitle, fieldRows, formatValue } from '#cim/format.js';
import { localTitle } from '#cim/i18n.js';
import { lookupTown, townValues } from '#cim/indicators.js';
import { pickedLayerId, standsAsColumns } from '#cim/layers.js';
import { aggregated, currentIndicator } from '#cim/state.js';

/** Return the id of the catalog layer of a picked object (tile sub-layers belong to their tile layer; a bundle
 * of layers from the multi-layer tiles gives the layer its feature came from). */
export function rootId(info) {
  let layer = info.layer;
  while (layer && layer.parent) layer = layer.parent;
  return pickedLayerId(layer ? layer.id : null, info.object);
}

/** Return the tooltip of a hovered feature (a town adds its value of the selected indicator), or null. */
export function tooltip(app, info) {
  app.hover = info && info.object && info.layer ? info : null; // the language switch writes it again
  if (!app.hover) return null;
  const { state } = app;
  const layerId = rootId(info);
  const props = info.object.properties || {};
  const meta = state.layers[layerId];
  let text = featureTitle(meta, props, state.lang);
  if (meta && meta.is_point && aggregated(state, app.view())) { // a thinned tile's cell: its point count
    text = `${localTitle(meta, state.lang)} × ${formatValue(Number(props.count) || 1)}\n${app.t('aggregates')} · ${app.t('zoomForPoints')}`;
  } else if (layerId === roleLayer(state.config, ROLE.towns)) {
    const ind = currentIndicator(state);
    const row = lookupTown(townValues(ind), props.name);
    if (row) text += `\n${app.title(ind)}: ${formatValue(row.value)} (${app.t(row.status || 'unknown')})`;
  }
  return { text, style: { fontSize: '12px' } };
}

/** Write the tooltip shown now (if any) in the page's language. */
export function renderTooltip(app) {
  if (app.hover) refreshTooltip(app.deck, tooltip(app, app.hover), app.hover);
}

function showClickPanel(app, layerId, props) {
  app.clickPanel = { layerId, props };
  renderClickPanel(app);
  $('town-panel').hidden = true; // one panel at a time, in the same place
  app.townPanel = null;
  $('click-panel').hidden = false;
}

/** Draw the open click panel (the feature last shown) in the page's language: on the language switch too. */
export function renderClickPanel(app) {
  const open = app.clickPanel;
  if (!open) return;
  const { layerId, props } = open;
  const meta = app.state.layers[layerId];
  $('click-title').textContent = featureTitle(meta, props, app.state.lang);
  const table = $('click-table');
  table.replaceChildren();
  for (const [k, v] of fieldRows(meta, props, app.state.lang)) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = cellText(v);
  }
}

/**
 * Return what a click at `info` is on: below the zoom points are drawn from (aggregates), only a town can be
 * clicked (the town under the pointer, never a point); in the 3D view a gap column gives the town under it;
 * otherwise what deck.gl picked.
 */
export function clickTarget(app, info) {
  const towns = roleLayer(app.state.config, ROLE.towns);
  if (!info || !towns) return info;
  if (info.object && rootId(info) === towns) return info;
  const under = () => app.deck.pickObject({ x: info.x, y: info.y, radius: 0, layerIds: [towns] });
  if (aggregated(app.state, app.view())) return under();
  // in the 3D view the gap cells stand as columns over the whole district (the ops screen's pitched camera sees
  // nothing else): a click on a column opens the town it stands in, whose panel gives every gap
  if (info.object && standsAsColumns(app.state.layers[rootId(info)], app.state.view3d)) return under() || info;
  return info;
}

/** On a click: a town opens the town panel (and is selected); any other feature shows its attributes, then all
 * of them as the features API gives them to the caller. */
export async function onClick(app, picked) {
  const info = clickTarget(app, picked);
  if (!info || !info.object) return;
  const { state } = app;
  const layerId = rootId(info);
  if (layerId === roleLayer(state.config, ROLE.towns) && app.openTown) {
    const name = info.object.properties && info.object.properties.name;
    if (name) app.openTown(name);
    return;
  }
  const props = Object.assign({}, info.object.properties || {});
  showClickPanel(app, layerId, props);
  const fid = info.object.id !== undefined ? info.object.id : props.id;
  if (state.config.inline || fid === undefined || fid === null || !state.layers[layerId]) return;
  try {
    const full = await getJSON(featureUrl(state.config, layerId, fid), state.apiKey);
    showClickPanel(app, layerId, Object.assign(props, full.properties || {}));
  } catch (error) {
    console.warn('feature details unavailable', error.message);
  }
}

/** Close the click panel with its button. */
export function wireClickPanel(app) {
  $('click-close').addEventListener('click', () => { $('click-panel').hidden = true; app.clickPanel = null; });
}
