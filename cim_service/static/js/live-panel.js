/* The live map on the page: subscribes to /events (fetch streaming, so the API key travels as a header; a
 * reconnection after `retry:` sends Last-Event-ID), recolours the sensor layers by status and refetches their
 * tiles at most once a second on alert and layer events, takes the service's `status` events (a sensor's first
 * reading, a silence, an alert raised or cleared; at most a few a second; a layer with too many changes at once is
 * read again: its tiles in 2D, the bundles holding it in 3D), lists the active alerts (severity, site, value, since;
 * a click flies to one), shows the status legend, and on the operations screen the live alert feed (under the KPI
 * cards) and an "active alerts" KPI card (the last of them). The indicators (the KPI cards of the plan) are fetched
 * again every 60 s and after
 * layer events.
 *
 * window.__cimMetrics.live: {connected, connects, events, resets, lastEventMs, alerts: [{id, datastream,
 * severity}], activeAlerts, epochs: {layer: n}, refetchedAt: {layer: ms}, alertShownAt: {alertId: ms},
 * indicatorLoads, statusColours, statusVersion (changes of the sensors' live statuses the events gave),
 * statusEvents, statusEventAt (ms of the last status event), reloads: {layer: n} (bundle reloads it asked for),
 * paintedVersion / paintedAt (the live state the 3D view's bundled sensors were last drawn at, and when)}. */
import { authHeaders, getJSON } from '#cim/data.js';
import { $, element } from '#cim/dom.js';
import {
  alertLayerId, alertRow, alertsUrl, applyAlertEvent, countAlerts, createRefetcher, createSseParser, eventsUrl,
  INDICATOR_REFRESH_MS, layerEventActions, liveLayerIds, liveLayerProps, liveText, sortAlerts, STATUS_COLOURS,
  STATUSES, statusesAfterAlert, statusesAfterStatus, statusesOfAlerts,
} from '#cim/live.js';
import { loadIndicators } from '#cim/load.js';

const INDICATOR_DEBOUNCE_MS = 2000;

/** Return the live props of the drawn layers (sensor layers by status, at their tile epoch; in the 3D view the
 * sensor members of the bundles by status, repainted on a change of the live state). */
export function liveProps(app, props) {
  const live = app.live;
  if (!live) return props;
  return liveLayerProps(props, live.ids, live.refetcher.epochs, {
    statuses: live.statuses, version: live.statusVersion, reloads: live.reloads,
    onPaint: (version) => { // the 3D view's bundles: their sensors drawn at this live state
      const m = app.metrics.live;
      if (m.paintedVersion !== version) m.paintedAt = performance.now();
      m.paintedVersion = version;
    },
  });
}

function cssColour(c) {
  return `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${(c[3] ?? 255) / 255})`;
}

function panel(app) {
  let node = $('alert-panel');
  if (node) return node;
  node = element('div', 'panel');
  node.id = 'alert-panel';
  if (app.config.screen === 'ops') { // beside the map: the active-alerts card ends the KPI grid, the feed under it
    const card = element('div', 'kpi-alerts-card');
    card.id = 'kpi-alerts';
    $('kpi-list').append(card);
    const column = element('div');
    column.id = 'live-ops';
    column.append(node);
    $('kpi-panel').append(column);
  } else {
    $('map').append(node);
  }
  node.addEventListener('click', (event) => {
    const row = event.target.closest('[data-alert-id]');
    const alert = row && app.live.alerts.find((a) => String(a.id) === row.dataset.alertId);
    const view = alert && alertRow(alert, app.state.lang).view;
    if (view) app.flyTo(view, 1200);
  });
  return node;
}

/** Redraw the alert panel, the status legend and (operations screen) the active-alerts card. */
export function renderLive(app) {
  const { state } = app;
  const live = app.live;
  if (!live) return;
  const lang = state.lang;
  const node = panel(app);
  node.replaceChildren();
  node.hidden = !live.ids.length && !alertLayerId(state.config) && !live.alerts.length; // a catalog without sensors
  const head = element('h3', 'alert-head', liveText(lang, 'alertsTitle'));
  head.append(element('span', `live-dot ${live.connected ? 'on' : 'off'}`, ''));
  head.lastChild.title = liveText(lang, live.connected ? 'connected' : 'disconnected');
  node.append(head);
  if (live.ids.some((id) => state.visible[id])) {
    const legend = element('div', 'live-legend');
    legend.append(element('span', 'live-legend-title', liveText(lang, 'live')));
    for (const status of STATUSES) {
      const item = element('span', 'live-legend-item');
      const chip = element('span', 'live-chip');
      chip.style.background = cssColour(STATUS_COLOURS[status]);
      item.append(chip, liveText(lang, status));
      item.dataset.status = status;
      legend.append(item);
    }
    node.append(legend);
  }
  const list = element('ol', 'alert-list');
  const now = performance.now();
  for (const alert of live.alerts) {
    const row = alertRow(alert, lang);
    const li = element('li', `alert-row severity-${row.severity}`);
    li.dataset.alertId = String(row.id);
    li.append(element('span', 'alert-badge', row.label), element('span', 'alert-site', row.site),
      element('span', 'alert-town', row.town), element('span', 'alert-value', row.value),
      element('span', 'alert-since', row.since ? `${row.since} ${liveText(lang, 'since')}` : ''));
    list.append(li);
    if (!(row.id in app.metrics.live.alertShownAt)) app.metrics.live.alertShownAt[row.id] = now;
  }
  if (!live.alerts.length) list.append(element('li', 'alert-none', liveText(lang, 'noAlerts')));
  node.append(list);
  const card = $('kpi-alerts');
  if (card) {
    const counts = countAlerts(live.alerts);
    card.replaceChildren(element('div', 'kpi-title', liveText(lang, 'activeAlerts')),
      element('div', 'kpi-value', String(live.alerts.length)),
      element('div', 'kpi-foot', [['alarm', counts.alarm], ['warning', counts.warning], ['offline', counts.offline]]
        .map(([k, n]) => `${liveText(lang, k)}\u00a0${n}`).join(' · '))); // a line breaks between counts only
    card.classList.toggle('status-not_met', counts.alarm + counts.warning > 0);
    card.classList.toggle('status-met', counts.alarm + counts.warning === 0);
  }
  const m = app.metrics.live;
  m.alerts = live.alerts.map((a) => ({ id: a.id, datastream: a.datastream, severity: a.severity }));
  m.activeAlerts = live.alerts.length;
}

/** Take the sensors' live statuses and, when they changed, repaint the map (no tile is fetched for it). */
function setStatuses(app, statuses) {
  if (statuses === app.live.statuses) return;
  app.live.statuses = statuses;
  app.live.statusVersion += 1;
  app.metrics.live.statusVersion = app.live.statusVersion;
  app.render();
}

async function loadAlerts(app) {
  try {
    const body = await getJSON(alertsUrl(app.state.config), app.state.apiKey, null);
    app.live.alerts = sortAlerts(body.alerts || []);
    setStatuses(app, statusesOfAlerts(app.live.statuses, app.live.alerts));
  } catch (error) {
    console.warn('alerts unavailable', error.message);
  }
  renderLive(app);
}

function reloadIndicators(app) {
  if (app.state.at || app.state.config.inline) return; // the time slider shows a past day: leave it
  app.metrics.live.indicatorLoads += 1;
  loadIndicators(app);
}

/** Ask for a refetch of a sensor layer's tiles once the events of this chunk of the stream are taken (an alert
 * and the status event of the same readings come together: one refetch, not one now and one a second later). */
function requestRefetch(live, layer) {
  if (!live.toRefetch.size) queueMicrotask(() => {
    const layers = [...live.toRefetch];
    live.toRefetch.clear();
    for (const id of layers) live.refetcher.request(id);
  });
  live.toRefetch.add(layer);
}

function onEvent(app, event) {
  const live = app.live;
  const m = app.metrics.live;
  m.events += 1;
  m.lastEventMs = performance.now();
  if (event.type === 'alert') {
    live.alerts = applyAlertEvent(live.alerts, event.data);
    setStatuses(app, statusesAfterAlert(live.statuses, live.alerts, event.data));
    if (live.ids.includes(event.data.layer)) requestRefetch(live, event.data.layer); // its sensors' status
    renderLive(app);
  } else if (event.type === 'status') {
    m.statusEvents += 1;
    m.statusEventAt = performance.now();
    for (const layer of event.data.refetch || []) { // too many changes at once: read that layer's tiles again
      if (!live.ids.includes(layer)) continue;
      live.reloads[layer] = (live.reloads[layer] || 0) + 1;
      m.reloads[layer] = live.reloads[layer];
      requestRefetch(live, layer);
    }
    // the 2D view's tiles carry the status (their binary features have no id to match a live status by): read
    // them again, at most once a second; the 3D view's bundled sensors are repainted by the live statuses
    for (const layer of Object.keys(event.data.statuses || {})) {
      if (live.ids.includes(layer)) requestRefetch(live, layer);
    }
    setStatuses(app, statusesAfterStatus(live.statuses, event.data));
    if ((event.data.refetch || []).length) app.render();
  } else if (event.type === 'layer') {
    const drawn = app.state.config.deck.layers.map((s) => s.id);
    const act = layerEventActions(event.data, live.ids, drawn);
    if (act.refetch) live.refetcher.request(act.refetch);
    if (act.indicators) {
      clearTimeout(live.indicatorTimer);
      live.indicatorTimer = setTimeout(() => reloadIndicators(app), INDICATOR_DEBOUNCE_MS);
    }
  } else if (event.type === 'reset') {
    m.resets += 1;
    for (const id of live.ids) live.refetcher.request(id);
    loadAlerts(app);
  }
}

async function stream(app) {
  const live = app.live;
  const m = app.metrics.live;
  const parser = createSseParser((event) => onEvent(app, event));
  const headers = Object.assign({ Accept: 'text/event-stream' }, authHeaders(app.state.apiKey));
  if (live.lastId) headers['Last-Event-ID'] = live.lastId;
  const controller = new AbortController();
  live.abort = controller;
  try {
    const response = await fetch(eventsUrl(app.state.config), { headers, signal: controller.signal, cache: 'no-store' });
    if (!response.ok || !response.body) throw new Error(`${response.status} /events`);
    live.connected = true;
    m.connected = true;
    m.connects += 1;
    renderLive(app);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (parser.lastId) live.lastId = parser.lastId;
      if (parser.retry) live.retryMs = parser.retry;
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    console.warn('events stream', error.message);
  }
  live.connected = false;
  m.connected = false;
  renderLive(app);
  if (!controller.signal.aborted) live.reconnect = setTimeout(() => stream(app), live.retryMs);
}

/** Start the live map (the live service only: the static export has no stream). */
export function wireLive(app) {
  if (app.config.inline) return;
  app.metrics.live = {
    connected: false, connects: 0, events: 0, resets: 0, lastEventMs: null, alerts: [], activeAlerts: 0,
    epochs: {}, refetchedAt: {}, alertShownAt: {}, indicatorLoads: 0, statusColours: STATUS_COLOURS,
    statusVersion: 0, paintedVersion: null, paintedAt: null, statusEvents: 0, statusEventAt: null,
    reloads: {},
  };
  app.live = {
    ids: liveLayerIds(app.config), alerts: [], connected: false, lastId: null, retryMs: 3000, statuses: {},
    statusVersion: 0, reloads: {}, toRefetch: new Set(),
    refetcher: createRefetcher((id, epoch) => {
      app.metrics.live.epochs[id] = epoch;
      app.metrics.live.refetchedAt[id] = performance.now();
      app.render();
    }, () => performance.now(), (fn, ms) => setTimeout(fn, ms)),
  };
  loadAlerts(app);
  stream(app);
  setInterval(() => reloadIndicators(app), INDICATOR_REFRESH_MS);
  $('api-key').addEventListener('change', () => setTimeout(() => { // another key reads other layers: again
    if (app.live.abort) app.live.abort.abort();
    clearTimeout(app.live.reconnect);
    app.live.lastId = null;
    app.live.ids = liveLayerIds(app.state.config);
    loadAlerts(app);
    stream(app);
  }, 500)); // after load.js took the key's configuration
  $('lang').addEventListener('click', () => setTimeout(() => renderLive(app), 0));
}
