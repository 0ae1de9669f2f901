/* What the page loads after start: the base layers' features, the indicators, the raster listing, and the
 * configuration of an API key (the page itself describes the public layers only). */
import { baseLayerIds } from '#cim/config.js';
import { getJSON, itemsUrl, rasterLegendUrl, rasterTemplate } from '#cim/data.js';
import { $, showStatus } from '#cim/dom.js';
import { renderIndicators } from '#cim/indicator-panel.js';
import { defaultIndicatorId, indicatorList } from '#cim/indicators.js';
import { inlineBase } from '#cim/inline.js';
import { renderLayerList } from '#cim/layer-panel.js';
import { addIndicatorAt, applyConfig } from '#cim/state.js';

/**
 * Load the features of the base layers (district outline, town boundaries) and draw them.
 *
 * They are drawn only once `tileRequestsSent` resolves: the first draw of the polygon and line layers blocks
 * the main thread while software WebGL compiles their pipelines, and the tiles should be on their way
 * meanwhile, not wait behind it.
 */
export async function loadBase(app, tileRequestsSent) {
  const { state } = app;
  const { inline } = state.config;
  const ids = baseLayerIds(state.config);
  const collections = inline
    ? ids.map((id) => inlineBase(inline, id))
    : await Promise.all(ids.map((id) => getJSON(itemsUrl(state.config, id), state.apiKey)));
  if (!inline) await tileRequestsSent;
  ids.forEach((id, i) => { state.base[id] = collections[i]; });
  app.render();
}

/** Load the indicators (the export's inlined ones) and show the current or the default one. */
export async function loadIndicators(app) {
  const { state } = app;
  try {
    const data = state.config.inline ? state.config.inline.indicators : await getJSON(state.config.endpoints.indicators, state.apiKey);
    state.indicators = indicatorList(data);
    state.indicatorId = defaultIndicatorId(state.indicators, state.indicatorId || state.config.default_indicator);
  } catch (error) {
    console.warn('indicators unavailable', error.message);
    state.indicators = [];
  }
  state.indicatorsLoaded = true;
  renderIndicators(app);
  if (app.renderPanels) app.renderPanels();
  app.render();
}

/** Find the raster layer's PNG tiles in the raster listing, and its value legend (the export has no raster). */
export async function loadRasters(app) {
  const { state } = app;
  if (state.config.inline) return;
  try {
    state.rasterUrl = rasterTemplate(await getJSON(state.config.endpoints.rasters, state.apiKey), state.config.raster);
    const legend = rasterLegendUrl(state.rasterUrl);
    if (legend && legend !== state.rasterUrl) state.rasterLegend = await getJSON(legend, state.apiKey, null);
  } catch (error) {
    console.warn('rasters unavailable', error.message);
  }
  renderLayerList(app);
  app.render();
}

async function loadConfig(state) {
  applyConfig(state, await getJSON(state.config.endpoints.config, state.apiKey, null));
}

/** On a new API key: take the key's configuration (back to the public one if it is refused) and reload. */
export function wireApiKey(app) {
  const { state } = app;
  $('api-key').addEventListener('change', async () => {
    state.apiKey = $('api-key').value.trim();
    if (!state.config.inline) {
      try {
        await loadConfig(state);
      } catch (error) {
        console.warn('map configuration unavailable', error.message);
        showStatus(app.t('keyRejected'));
        state.apiKey = '';
        await loadConfig(state).catch(() => {});
      }
    }
    renderLayerList(app);
    app.render();
    loadIndicators(app);
  });
}

/** Load the selected indicator as of the time slider's day (/indicators/{id}?at=), then redraw. */
export async function loadIndicatorAt(app) {
  const { state } = app;
  const { at: day, indicatorId: id } = state;
  if (!day || !id || state.config.inline || state.indicatorAt[`${id}@${day}`]) return;
  const url = `${state.config.endpoints.indicator.replace('{id}', encodeURIComponent(id))}?at=${day}`;
  try {
    addIndicatorAt(state, id, day, await getJSON(url, state.apiKey, null));
    app.metrics.indicatorAtRequests += 1;
  } catch (error) {
    console.warn('indicator as of a day unavailable', error.message);
    return;
  }
  renderIndicators(app);
  app.render();
}
