/* CIM一张图 web map, the entry module: renders the pydeck spec in window.CIM_CONFIG with the bundled deck.gl
 * (createDeck / updateDeck) and wires the panels. Every request goes to the serving origin; the static export
 * passes its data inline (CIM_CONFIG.inline) and makes no request at all.
 *
 * The modules ('#cim/<name>' is static/js/<name>, mapped by the page's import map):
 *   pure (no DOM, no deck.gl, unit-tested with node --test): config, state, i18n, format, colour, geometry,
 *     indicators, inline, metrics (window.__cimMetrics), chart (trajectory charts)
 *   data access: data (requests with the API key, the page's early requests)
 *   deck.gl: deck (the deck, layer classes, views), layers (layer props from the spec and the state)
 *   labels: label-place (pure: text, angle, collisions), labels (their data, font and TextLayer)
 *   page: dom, layer-panel, legend, indicator-panel, click-panel, town-panel (a town's indicators and
 *     trajectories; town: selecting a town), search, language, load (base layers,
 *     indicators, rasters, an API key's configuration), controls (zoom, compass, 3D switch, scale bar),
 *     time (the time slider), ops (the operations screen's KPI cards), live-panel (the /events stream: sensors
 *     by status, the alert panel and feed; its logic in live.js, pure) */
import { tooltip, onClick, wireClickPanel } from '#cim/click-panel.js';
import { wireControls, updateControls } from '#cim/controls.js';
import { createMap, currentView, flyTo, makeLayer, mvtLoaders } from '#cim/deck.js';
import { $, showStatus } from '#cim/dom.js';
import { bboxCorners, fitOpening } from '#cim/fly.js';
import { fitBounds } from '#cim/geometry.js';
import { localTitle, translate } from '#cim/i18n.js';
import { wireIndicatorSelect } from '#cim/indicator-panel.js';
import { applyLanguage, wireLanguageSwitch } from '#cim/language.js';
import { deckLayerProps, drawnLayerIds, extrudedLayerIds, pendingTileLayers } from '#cim/layers.js';
import { renderLayerList } from '#cim/layer-panel.js';
import { labelLayerProps, labelsAfterFrame, labelsAtRest, loadLabels } from '#cim/labels.js';
import { renderLegend } from '#cim/legend.js';
import { liveProps, renderLive, wireLive } from '#cim/live-panel.js';
import { loadBase, loadIndicatorAt, loadIndicators, loadRasters, wireApiKey } from '#cim/load.js';
import { createMetrics, observeTileRequests, recordFrame, tileHooks } from '#cim/metrics.js';
import { createMotion, motionAfterFrame, motionSettled, moving, SETTLE_MS } from '#cim/motion.js';
import { renderKpis } from '#cim/ops.js';
import { wireSearch } from '#cim/search.js';
import { baseLoaded, createState } from '#cim/state.js';
import { renderTimeLabel, wireTime } from '#cim/time.js';
import { openTown } from '#cim/town.js';
import { wireTownPanel } from '#cim/town-panel.js';

const config = window.CIM_CONFIG;
const metrics = createMetrics(window);
const state = createState(config);
const container = $('deck-container');
document.body.classList.toggle('screen-ops', config.screen === 'ops');
const districtView = fitBounds(config.district_bbox, container.clientWidth, container.clientHeight);
const startView = state.view3d ? Object.assign({}, districtView, config.view_3d) : districtView;
const { deck, classes, software } = createMap(container, config.deck, startView);
if (config.screen === 'ops') { // the whole district at the ops camera, beside the map's controls and legend
  metrics.opsFit = fitOpening(deck, container.clientWidth, container.clientHeight, startView,
    bboxCorners(config.district_bbox));
  if (metrics.opsFit) deck.setProps({ initialViewState: metrics.opsFit.target });
}

/** What the page's modules share: configuration, state, metrics, the deck, and the redraw. */
const app = {
  config, state, metrics, deck, classes,
  t: (key) => translate(state.lang, key),
  title: (obj) => localTitle(obj, state.lang),
  flyTo: (view, duration) => flyTo(deck, view, duration),
  view: () => currentView(deck),
  render,
  renderPanels: () => { renderLayerList(app); renderTimeLabel(app); renderKpis(app); },
  indicatorChanged: () => loadIndicatorAt(app),
  openTown: (name) => openTown(app, name),
};
const env = {
  classes,
  loaders: mvtLoaders(),
  tileHooks: (id) => tileHooks(metrics, id, (layerId, error) => {
    showStatus(app.t('tileError'));
    console.warn('tile error', layerId, error && error.message);
  }),
};

function render() {
  const props = deckLayerProps(state, env).concat(labelLayerProps(state));
  metrics.drawnLayers = drawnLayerIds(props);
  metrics.extrudedLayers = extrudedLayerIds(props);
  deck.setProps({ layers: liveProps(app, props).map((p) => makeLayer(classes, p)) });
  renderLegend(app);
  renderLive(app);
}

/* Software WebGL: the frames of a moving camera are drawn at a lower resolution, the view at rest at full
 * resolution again (motion.js); __cimMetrics.pixelRatio says which (1: full), resolutionSwitches how often it
 * changed. The rest is judged at the start of a frame (a move that goes on has drawn its frame by then), and the
 * labels are placed again there, in the same full-resolution frame (while the camera moves they stay put). */
const motion = createMotion(software);
function drawAt(ratio) {
  deck.setProps({ useDevicePixels: ratio });
  metrics.pixelRatio = ratio === true ? 1 : ratio;
  metrics.resolutionSwitches = motion.switches;
}
function settle() {
  requestAnimationFrame(() => {
    const ratio = motionSettled(motion, performance.now());
    if (ratio === null) { if (motion.reduced) setTimeout(settle, SETTLE_MS / 2); return; }
    drawAt(ratio);
    labelsAtRest(app, currentView(deck));
    deck.redraw('camera at rest: full resolution');
  });
}

window.__cimMap = { deck, state, classes, viewState: () => currentView(deck), render };

let firstFrameDrawn;
const tileRequestsSent = new Promise((resolve) => { firstFrameDrawn = resolve; })
  .then(() => new Promise((resolve) => setTimeout(resolve, 0))); // deck.gl issues tile requests in a task
const meaningful = () => baseLoaded(state) && state.indicatorsLoaded && pendingTileLayers(state, metrics).length === 0;

/* The labels are drawn after the first meaningful paint (the district, the towns' choropleth, the visible layers):
 * their first draw builds the glyph atlas of the CJK characters (an SDF per glyph, on the main thread) and compiles
 * the text pipeline, work that would otherwise delay that paint. Their data is requested early (the page's early
 * requests); they are started at the frame after that paint, or when the base layers failed (no such paint comes),
 * or at the latest LABELS_LATEST_MS after the page's start (a tile request that never ends must not keep the names
 * off the map). */
const LABELS_LATEST_MS = 60000;
let labelsStarted = false;
function startLabels() {
  if (labelsStarted) return;
  labelsStarted = true;
  loadLabels(app);
}
setTimeout(startLabels, Math.max(0, LABELS_LATEST_MS - performance.now()));

deck.setProps({
  pickingRadius: 5,
  getTooltip: (info) => tooltip(app, info),
  onClick: (info) => onClick(app, info),
  onAfterRender: () => {
    const now = performance.now();
    firstFrameDrawn();
    updateControls(app, currentView(deck));
    const ratio = motionAfterFrame(motion, currentView(deck), now, metrics.firstMeaningfulPaintMs !== null);
    if (ratio !== null) { drawAt(ratio); setTimeout(settle, SETTLE_MS); }
    labelsAfterFrame(app, currentView(deck), moving(motion)); // after: the first frame of a move places nothing
    recordFrame(metrics, now, meaningful, (callback) => requestAnimationFrame(callback), () => performance.now());
    if (metrics.firstMeaningfulPaintMs !== null && !labelsStarted) requestAnimationFrame(startLabels);
  },
  onError: (error) => console.error('deck.gl', error),
});
observeTileRequests(metrics);

wireClickPanel(app);
wireTownPanel(app);
wireSearch(app);
wireLanguageSwitch(app);
wireApiKey(app);
wireIndicatorSelect(app);
wireControls(app);
wireTime(app);
wireLive(app);
applyLanguage(app);
loadBase(app, tileRequestsSent).catch((error) => {
  console.error('base layers failed', error.message);
  startLabels();
});
loadIndicators(app);
loadRasters(app);
