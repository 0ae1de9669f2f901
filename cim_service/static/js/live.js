/* The live map's logic: the /events stream (its parser, the subscription URL, reconnection), the sensors'
 * status colours (the service's `status` events: a first reading, a silence, an alert raised or cleared), the throttled refetch of live tiles (at most once a second per layer, by a `live=` epoch in the
 * tile URL), and the list of active alerts. Pure: no DOM, no deck.gl (live-panel.js draws and wires it).
 *
 * Sensor layers are those the page configuration marks `live` (the catalog's `sensing.live`); the alert layer is
 * the one playing the `alert_feed` role: no layer id is written here. */

/** Status colours of live sensors (RGBA), the legend's order. */
export const STATUS_COLOURS = {
  ok: [34, 170, 85, 235],
  warning: [250, 173, 20, 245],
  alarm: [230, 30, 40, 255],
  offline: [140, 140, 150, 210],
};
export const STATUSES = Object.keys(STATUS_COLOURS);
/** Severity order of alerts (the panel lists the most severe first). */
export const SEVERITY_RANK = { alarm: 0, warning: 1, offline: 2 };
/** Least time between two refetches of one layer's tiles. */
export const REFETCH_MS = 1000;
/** Period of the indicators' refetch (the operations screen's KPI cards). */
export const INDICATOR_REFRESH_MS = 60000;
/** Active alerts the panel asks for at start and after a reset. */
export const ALERT_LIMIT = 200;
/** The role of the alerts' layer (catalog role `alert_feed`). */
export const ALERT_ROLE = 'alert_feed';
/** Most layers one subscription names (the service's bound). */
export const MAX_LAYERS = 100;

export const LIVE_STRINGS = {
  zh: {
    alertsTitle: '实时告警', activeAlerts: '活动告警', noAlerts: '当前无告警', since: '起', ok: '正常', warning: '预警',
    alarm: '告警', offline: '离线', live: '实时状态', connected: '已连接', disconnected: '连接中断',
  },
  en: {
    alertsTitle: 'Live alerts', activeAlerts: 'Active alerts', noAlerts: 'No active alert', since: 'since', ok: 'OK',
    warning: 'Warning', alarm: 'Alarm', offline: 'Offline', live: 'Live status', connected: 'connected',
    disconnected: 'reconnecting',
  },
};

/** Return the live interface string `key` in `lang`. */
export function liveText(lang, key) {
  return (LIVE_STRINGS[lang] || LIVE_STRINGS.zh)[key] || key;
}

/** Return the ids of the sensor layers of the configuration (those with a live state). */
export function liveLayerIds(config) {
  return (config.layers || []).filter((l) => l.live).map((l) => l.id);
}

/** Return the id of the alert layer (role `alert_feed`), or null. */
export function alertLayerId(config) {
  return (config.roles && config.roles[ALERT_ROLE]) || null;
}

/** Return the /events URL subscribing to the alerts, to the sensors' live status (when the map has sensor
 * layers) and to the changes of the map's layers (bounded). */
export function eventsUrl(config) {
  const base = (config.endpoints && config.endpoints.events) || '/events';
  const ids = (config.layers || []).map((l) => l.id).slice(0, MAX_LAYERS);
  const layers = ids.length ? `&layers=${ids.map(encodeURIComponent).join(',')}` : '';
  const status = liveLayerIds(config).length ? '&status=true' : '';
  return `${base}?alerts=true${status}${layers}`;
}

/** Return the /alerts URL of the active alerts. */
export function alertsUrl(config) {
  const base = (config.endpoints && config.endpoints.alert_list) || '/alerts';
  return `${base}?limit=${ALERT_LIMIT}`;
}

/** Return the colour of a sensor of `status` (offline for an unknown or missing one). */
export function statusColour(status) {
  return STATUS_COLOURS[status] || STATUS_COLOURS.offline;
}

/**
 * Return a parser of a text/event-stream: `feed(text)` takes the next chunk (any split) and calls
 * `onEvent({type, id, data})` per complete event (data parsed as JSON when it is JSON); `retry` and `lastId`
 * hold the stream's last `retry:` and `id:`; comment lines (heartbeats) call `onComment(text)`.
 */
export function createSseParser(onEvent, onComment = () => {}) {
  const parser = { retry: null, lastId: null, events: 0 };
  let buffer = '';
  let type = '';
  let data = [];
  let id = null;
  const dispatch = () => {
    if (data.length) {
      const text = data.join('\n');
      let body = text;
      try { body = JSON.parse(text); } catch (error) { /* not JSON: the text itself */ }
      if (id !== null) parser.lastId = id;
      parser.events += 1;
      onEvent({ type: type || 'message', id, data: body });
    }
    type = ''; data = []; id = null;
  };
  parser.feed = (chunk) => {
    buffer += chunk;
    let at;
    while ((at = buffer.search(/\r\n|\r|\n/)) >= 0) {
      if (at === buffer.length - 1 && buffer.endsWith('\r')) break; // a CR LF may be split: wait for the LF
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + (buffer.startsWith('\r\n', at) ? 2 : 1));
      if (line === '') { dispatch(); continue; }
      if (line.startsWith(':')) { onComment(line.slice(1).trim()); continue; }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id') id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) parser.retry = Number(value);
    }
  };
  return parser;
}

/**
 * Return a refetch scheduler: `request(id)` bumps layer `id`'s epoch now when its last bump is at least
 * REFETCH_MS ago, else once at that time (requests in between are merged). `onBump(id, epoch)` is called at each.
 * `clock()` reads milliseconds, `later(fn, ms)` schedules.
 */
export function createRefetcher(onBump, clock, later, minMs = REFETCH_MS) {
  const epochs = {};
  const last = {};
  const pending = {};
  const bump = (id) => {
    pending[id] = false;
    last[id] = clock();
    epochs[id] = (epochs[id] || 0) + 1;
    onBump(id, epochs[id]);
  };
  return {
    epochs,
    request(id) {
      if (pending[id]) return false;
      const wait = last[id] === undefined ? 0 : last[id] + minMs - clock();
      if (wait <= 0) { bump(id); return true; }
      pending[id] = true;
      later(() => bump(id), wait);
      return false;
    },
  };
}

/** Return `url` with the layer's live epoch (`live=`), so a bumped epoch makes deck.gl fetch its tiles again. */
export function epochUrl(url, epoch) {
  if (!epoch || typeof url !== 'string') return url;
  return `${url}${url.includes('?') ? '&' : '?'}live=${epoch}`;
}

/** The ring drawn round every sensor coloured by its status. */
export const SENSOR_RING = [255, 255, 255, 255];

/**
 * Return the live statuses of the sensors (`{layer: {featureId: status}}`, a new object) once the alerts given
 * are the active alerts after `event` (an alert event): the feature the event names takes the severity of its
 * most severe active alert, or `ok` when none is left (a cleared alert: a reading came and is within the levels).
 */
export function statusesAfterAlert(statuses, alerts, event) {
  if (!event || !event.layer || event.feature_id === undefined || event.feature_id === null) return statuses;
  const own = alerts.filter((a) => a.layer === event.layer && a.feature_id === event.feature_id
    && a.severity in SEVERITY_RANK).sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity]);
  const layer = Object.assign({}, statuses[event.layer], { [event.feature_id]: own.length ? own[0].severity : 'ok' });
  return Object.assign({}, statuses, { [event.layer]: layer });
}

/**
 * Return the live statuses (a new object, or `statuses` when nothing changed) after a `status` event of the
 * service (`{statuses: {layer: {featureId: status}}, refetch: [layer]}`): the features it names take their status;
 * the layers in `refetch` (too many changes at once: their tiles are read again) lose their live statuses, so the
 * tiles' own show.
 */
export function statusesAfterStatus(statuses, event) {
  if (!event) return statuses;
  let out = statuses;
  for (const layer of event.refetch || []) {
    if (out[layer]) { out = Object.assign({}, out); delete out[layer]; }
  }
  for (const [layer, byFeature] of Object.entries(event.statuses || {})) {
    const known = out[layer] || {};
    if (Object.entries(byFeature).every(([fid, status]) => known[fid] === status)) continue;
    out = Object.assign({}, out, { [layer]: Object.assign({}, known, byFeature) });
  }
  return out;
}

/** Return the live statuses once the active alerts given were read (at start or after a reset): the features of
 * those alerts at their most severe one, the other features already known `ok` (their alerts cleared meanwhile). */
export function statusesOfAlerts(statuses, alerts) {
  let out = statuses;
  for (const [layer, byFeature] of Object.entries(statuses)) {
    for (const [fid, status] of Object.entries(byFeature)) {
      const active = alerts.some((a) => a.layer === layer && String(a.feature_id) === fid);
      if (!active && status !== 'ok') out = statusesAfterAlert(out, alerts, { layer, feature_id: fid });
    }
  }
  for (const a of alerts) {
    const known = out[a.layer] && out[a.layer][a.feature_id];
    const next = statusesAfterAlert(out, alerts, a);
    if (next[a.layer][a.feature_id] !== known) out = next;
  }
  return out;
}

/** Return the id of a tile feature: the MVT feature id, or its `id` property (the multi-layer tiles' features,
 * as the bundles decode them). */
export function featureId(feature) {
  if (!feature) return undefined;
  if (feature.id !== undefined && feature.id !== null) return feature.id;
  return feature.properties ? feature.properties.id : undefined;
}

/** Return the status of sensor `feature` of layer `layerId`: the live one the events gave it, else the one
 * its tile carried (offline for none). */
export function sensorStatus(feature, layerId, statuses) {
  const byLayer = statuses && statuses[layerId];
  const id = featureId(feature);
  const live = byLayer && id !== undefined ? byLayer[id] : undefined;
  return live || (feature && feature.properties && feature.properties.status);
}

/** Return the props styling sensors of layer `id` by their live status over `base` (a layer's or sub-layer's
 * props): fill by status, a white ring, a least radius; `trigger` repaints them when it changes. */
export function sensorStyle(id, statuses, trigger, base) {
  return {
    getFillColor: (f) => statusColour(sensorStatus(f, id, statuses)),
    // a white ring and a few pixels at least: a red alarm stays visible on a red (short of target) town
    stroked: true, getLineColor: SENSOR_RING, lineWidthUnits: 'pixels', getLineWidth: 1.5,
    lineWidthMinPixels: 1.5, pointRadiusMinPixels: Math.max(base.pointRadiusMinPixels || 0, 4),
    updateTriggers: Object.assign({}, base.updateTriggers, { getFillColor: trigger }),
  };
}

/** The live props last made of each bundle (by its props): deck.gl rebuilds a bundle's sub-layers on new props,
 * so they are made anew only when the live state changed. */
const liveBundles = new WeakMap();

/**
 * Return the props of a bundle of layers (3D view: `members` drawn by one MVTLayer from the multi-layer tiles)
 * whose sensor members are coloured by status: its sub-layers of those members restyled, repainted (a new
 * `renderSubLayers` update trigger, the tiles kept) when `version` changes. `onPaint(version)` is called as they are.
 */
function liveBundleProps(p, liveIds, statuses, version, onPaint, reloads) {
  const ids = p.members.filter((id) => liveIds.includes(id));
  if (!ids.length || typeof p.renderSubLayers !== 'function') return p;
  const reload = ids.reduce((n, id) => n + (reloads[id] || 0), 0);
  const kept = liveBundles.get(p);
  if (kept && kept.version === version && kept.reload === reload) return kept.props;
  const render = p.renderSubLayers;
  const props = Object.assign({}, p, {
    data: epochUrl(p.data, reload), // read again only when the service asked to (a `status` event's refetch)
    updateTriggers: Object.assign({}, p.updateTriggers, { renderSubLayers: version }),
    renderSubLayers: (sub) => [].concat(render(sub) || []).map((layer) => {
      const id = layer && ids.find((m) => layer.id === `${sub.id}-${m}`);
      if (!id) return layer;
      onPaint(version);
      return layer.clone(sensorStyle(id, statuses, version, layer.props));
    }),
  });
  liveBundles.set(p, { version, reload, props });
  return props;
}

/**
 * Return the layer props with the live layers coloured by status and their tiles at their epoch, and the bundles
 * holding live layers (3D view) with those members coloured by status; other props pass unchanged.
 *
 * `live.statuses` are the statuses the status and alert events gave (`statusesAfterStatus`, `statusesAfterAlert`),
 * `live.version` counts their changes, `live.onPaint(version)` is told when a bundle's sensors are drawn at a
 * version, `live.reloads` (`{layer: n}`) counts the times a bundle holding that sensor layer must read its tiles again.
 */
export function liveLayerProps(props, liveIds, epochs, live = {}) {
  const statuses = live.statuses || {};
  const version = live.version || 0;
  const onPaint = live.onPaint || (() => {});
  const reloads = live.reloads || {};
  return props.map((p) => {
    if (p && Array.isArray(p.members) && p['@@type'] === 'MVTLayer') {
      return liveBundleProps(p, liveIds, statuses, version, onPaint, reloads);
    }
    if (!p || !liveIds.includes(p.id) || p['@@type'] !== 'MVTLayer') return p;
    const epoch = epochs[p.id] || 0;
    return Object.assign({}, p, { data: epochUrl(p.data, epoch) }, sensorStyle(p.id, statuses, [epoch, version], p));
  });
}

/** Return the active alerts after an `alert` event (a cleared alert leaves the list; others are replaced). */
export function applyAlertEvent(alerts, event) {
  const rest = alerts.filter((a) => a.id !== event.id);
  if (event.change === 'cleared' || event.state === 'cleared' || event.cleared_at) return rest;
  return sortAlerts([...rest, event]);
}

/** Return the alerts most severe first, then the newest raised first. */
export function sortAlerts(alerts) {
  return [...alerts].sort((a, b) => (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9)
    || String(b.raised_at || '').localeCompare(String(a.raised_at || '')) || b.id - a.id);
}

/** Return active alerts counted by severity (every severity present). */
export function countAlerts(alerts) {
  const counts = { alarm: 0, warning: 0, offline: 0 };
  for (const a of alerts) if (a.severity in counts) counts[a.severity] += 1;
  return counts;
}

/** Return the time of day of an RFC 3339 instant in Asia/Shanghai (HH:MM), or '' for none. */
export function shanghaiTime(iso) {
  const t = Date.parse(iso || '');
  if (Number.isNaN(t)) return '';
  const d = new Date(t + 8 * 3600 * 1000);
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

/** Return the panel row of an alert: severity, site (layer title, site kind, key), town, value with unit, since. */
export function alertRow(alert, lang) {
  const title = alert.layer_title ? (lang === 'en' ? alert.layer_title.en : alert.layer_title.zh) : alert.layer;
  const site = [title, alert.site_kind, alert.feature_key].filter(Boolean).join(' · ');
  const value = typeof alert.value === 'number' ? `${Math.round(alert.value * 10) / 10}${alert.unit ? ' ' + alert.unit : ''}` : '—';
  return {
    id: alert.id, severity: alert.severity, label: liveText(lang, alert.severity), site, town: alert.town || '',
    value, since: shanghaiTime(alert.raised_at),
    view: typeof alert.lon === 'number' && typeof alert.lat === 'number'
      ? { longitude: alert.lon, latitude: alert.lat, zoom: 16 } : null,
  };
}

/** Return what a layer event asks for: refetch that layer's tiles; and reload the indicators (debounced by the caller). */
export function layerEventActions(event, liveIds, drawnIds) {
  const id = event && event.layer;
  return { refetch: drawnIds.includes(id) || liveIds.includes(id) ? id : null, indicators: Boolean(id) };
}
