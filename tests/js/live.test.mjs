import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  alertRow, applyAlertEvent, countAlerts, createRefetcher, createSseParser, epochUrl, eventsUrl, layerEventActions,
  liveLayerIds, liveLayerProps, sensorStatus, shanghaiTime, STATUS_COLOURS, statusColour, statusesAfterAlert,
  statusesAfterStatus, statusesOfAlerts,
} from '../../cim_service/static/js/live.js';
import { pageConfig } from './fixtures.mjs';

function liveConfig() {
  const config = pageConfig();
  config.layers.find((l) => l.id === 'dots').live = true;
  config.endpoints.events = '/events';
  return config;
}

test('the sensor layers are those the configuration marks live, and the stream subscribes to alerts, statuses and layers', () => {
  const config = liveConfig();
  assert.deepEqual(liveLayerIds(config), ['dots']);
  assert.equal(eventsUrl(config), '/events?alerts=true&status=true&layers=qu,jiezhen,dots,secret');
  const none = pageConfig();
  none.endpoints.events = '/events';
  assert.equal(eventsUrl(none), '/events?alerts=true&layers=qu,jiezhen,dots,secret', 'no sensor layer: no statuses');
});

test('status events set the sensors they name; a layer to read again loses its live statuses', () => {
  const start = { dots: { 7: 'alarm' }, other: { 1: 'ok' } };
  const first = statusesAfterStatus(start, { statuses: { dots: { 9: 'ok' } }, refetch: [] });
  assert.deepEqual(first, { dots: { 7: 'alarm', 9: 'ok' }, other: { 1: 'ok' } });
  assert.deepEqual(start, { dots: { 7: 'alarm' }, other: { 1: 'ok' } }, 'a new object: the old one is kept');
  assert.equal(sensorStatus({ id: 9, properties: { status: 'offline' } }, 'dots', first), 'ok',
    'a first normal reading: ok over the tile\'s offline');
  const offline = statusesAfterStatus(first, { statuses: { dots: { 7: 'offline' } }, refetch: [] });
  assert.equal(sensorStatus({ id: 7, properties: { status: 'alarm' } }, 'dots', offline), 'offline');
  assert.equal(statusesAfterStatus(offline, { statuses: { dots: { 7: 'offline' } }, refetch: [] }), offline,
    'nothing new: the same object (no repaint)');
  const again = statusesAfterStatus(offline, { statuses: {}, refetch: ['dots'] });
  assert.deepEqual(again, { other: { 1: 'ok' } });
  assert.equal(sensorStatus({ id: 7, properties: { status: 'warning' } }, 'dots', again), 'warning',
    'read again: the tile\'s status');
});

test('a bundle holding a sensor layer reads its tiles again when that layer is to be reloaded', () => {
  const bundle = { '@@type': 'MVTLayer', id: '__tiles_points', members: ['shops', 'dots'], data: '/tiles?c=x',
    renderSubLayers: () => [] };
  const kept = liveLayerProps([bundle], ['dots'], {}, { version: 1, reloads: {} })[0];
  assert.equal(kept.data, '/tiles?c=x');
  const reloaded = liveLayerProps([bundle], ['dots'], {}, { version: 1, reloads: { dots: 2, shops: 5 } })[0];
  assert.equal(reloaded.data, '/tiles?c=x&live=2');
  assert.equal(liveLayerProps([bundle], ['dots'], {}, { version: 1, reloads: { dots: 2 } })[0], reloaded);
});

test('the parser takes events split anywhere, JSON data, ids, retry and comments', () => {
  const events = [];
  const comments = [];
  const parser = createSseParser((e) => events.push(e), (c) => comments.push(c));
  const text = 'retry: 3000\n: subscribed\n\nid: 7\nevent: alert\ndata: {"id": 5, "change": "raised"}\n\n'
    + ': heartbeat\n\nid: 8\r\nevent: layer\r\ndata: {"layer": "dots", "version": 3}\r\n\r\ndata: plain\n\n';
  for (let i = 0; i < text.length; i += 5) parser.feed(text.slice(i, i + 5));
  assert.deepEqual(events, [
    { type: 'alert', id: '7', data: { id: 5, change: 'raised' } },
    { type: 'layer', id: '8', data: { layer: 'dots', version: 3 } },
    { type: 'message', id: null, data: 'plain' },
  ]);
  assert.deepEqual(comments, ['subscribed', 'heartbeat']);
  assert.equal(parser.retry, 3000);
  assert.equal(parser.lastId, '8');
  parser.feed('id: 9\nevent: reset\ndata: {"final": true}'); // not complete without its blank line
  assert.equal(events.length, 3);
  parser.feed('\n\n');
  assert.equal(events[3].type, 'reset');
});

test('a layer is refetched at most once a second: requests in between are merged into one', () => {
  let now = 0;
  const timers = [];
  const bumps = [];
  const r = createRefetcher((id, epoch) => bumps.push([id, epoch, now]), () => now, (fn, ms) => timers.push([fn, ms]));
  assert.equal(r.request('dots'), true);
  now = 200;
  assert.equal(r.request('dots'), false);
  now = 300;
  assert.equal(r.request('dots'), false);
  assert.equal(timers.length, 1);
  assert.equal(timers[0][1], 800);
  now = 1000;
  timers[0][0]();
  assert.deepEqual(bumps, [['dots', 1, 0], ['dots', 2, 1000]]);
  assert.equal(r.request('other'), true);
  now = 2500;
  assert.equal(r.request('dots'), true);
  assert.deepEqual(r.epochs, { dots: 3, other: 1 });
});

test('live layers are coloured by status with their tiles at the epoch; other layers pass unchanged', () => {
  const tiles = '/collections/dots/tiles/WebMercatorQuad/{z}/{x}/{y}';
  const props = [{ '@@type': 'MVTLayer', id: 'dots', data: tiles, getFillColor: [1, 2, 3, 4] },
    { '@@type': 'MVTLayer', id: 'secret', data: '/s' }, null];
  const [dots, secret, none] = liveLayerProps(props, ['dots'], { dots: 4 });
  assert.equal(dots.data, `${tiles}?live=4`);
  assert.deepEqual(dots.getFillColor({ properties: { status: 'alarm' } }), STATUS_COLOURS.alarm);
  assert.deepEqual(dots.getFillColor({ properties: {} }), STATUS_COLOURS.offline);
  assert.deepEqual(dots.updateTriggers.getFillColor, [4, 0]);
  assert.equal(dots.stroked, true, 'a ring round each sensor: its status colour stands out on any town colour');
  assert.deepEqual(dots.getLineColor, [255, 255, 255, 255]);
  assert.ok(dots.pointRadiusMinPixels >= 4 && dots.lineWidthMinPixels >= 1);
  assert.equal(secret, props[1]);
  assert.equal(none, null);
  assert.equal(epochUrl('/t?at=2024-12-31', 2), '/t?at=2024-12-31&live=2');
  assert.equal(epochUrl('/t', 0), '/t');
  assert.deepEqual(statusColour('nonsense'), STATUS_COLOURS.offline);
});

test('alert events give each named sensor the status of its most severe active alert, ok once none is left', () => {
  const warn = { id: 1, layer: 'dots', feature_id: 7, severity: 'warning' };
  const alarm = { id: 2, layer: 'dots', feature_id: 7, severity: 'alarm' };
  let statuses = statusesAfterAlert({}, [warn], warn);
  assert.deepEqual(statuses, { dots: { 7: 'warning' } });
  statuses = statusesAfterAlert(statuses, [alarm, warn], alarm);
  assert.equal(statuses.dots[7], 'alarm');
  statuses = statusesAfterAlert(statuses, [warn], Object.assign({}, alarm, { change: 'cleared' }));
  assert.equal(statuses.dots[7], 'warning', 'the warning is still active');
  const before = statuses;
  statuses = statusesAfterAlert(statuses, [], Object.assign({}, warn, { change: 'cleared' }));
  assert.equal(statuses.dots[7], 'ok');
  assert.equal(before.dots[7], 'warning', 'a new object: the old state is kept');
  assert.equal(statusesAfterAlert(statuses, [], { id: 9, layer: 'dots' }), statuses, 'no feature: unchanged');
  assert.deepEqual(statusesOfAlerts({}, [alarm, { id: 3, layer: 'dots', feature_id: 8, severity: 'offline' }]),
    { dots: { 7: 'alarm', 8: 'offline' } });
  // read again after a reset: a feature whose alert cleared meanwhile is ok, an unchanged list changes nothing
  const reread = statusesOfAlerts({ dots: { 7: 'alarm', 8: 'offline' } }, [alarm]);
  assert.deepEqual(reread, { dots: { 7: 'alarm', 8: 'ok' } });
  assert.equal(statusesOfAlerts(reread, [alarm]), reread);
  // the live status wins over the tile's, the tile's is kept for the others
  assert.equal(sensorStatus({ id: 7, properties: { status: 'offline' } }, 'dots', statuses), 'ok');
  assert.equal(sensorStatus({ id: 8, properties: { status: 'warning' } }, 'dots', statuses), 'warning');
  assert.equal(sensorStatus({ id: 7, properties: { status: 'alarm' } }, 'other', statuses), 'alarm');
  assert.equal(sensorStatus({ properties: { id: 7, status: 'offline' } }, 'dots', statuses), 'ok',
    'a bundle\'s feature: its id among its properties');
});

test('a bundle holding a sensor layer restyles that member\'s sub-layers and repaints on a new live state only', () => {
  const subLayer = (id, props) => ({ id, props, clone: (extra) => subLayer(id, Object.assign({}, props, extra)) });
  const bundle = {
    '@@type': 'MVTLayer', id: '__tiles_points', members: ['shops', 'dots'], updateTriggers: { getTileData: 'k' },
    renderSubLayers: (sub) => [subLayer(`${sub.id}-shops`, { pointRadiusMinPixels: 2 }),
      subLayer(`${sub.id}-dots`, { pointRadiusMinPixels: 2, updateTriggers: { getPointRadius: 1 } })],
  };
  const other = { '@@type': 'MVTLayer', id: '__tiles_over', members: ['shops'], renderSubLayers: () => [] };
  const painted = [];
  const live = { statuses: { dots: { 5: 'alarm' } }, version: 3, onPaint: (v) => painted.push(v) };
  const [points, over] = liveLayerProps([bundle, other], ['dots'], {}, live);
  assert.equal(over, other, 'no sensor member: unchanged');
  assert.notEqual(points, bundle);
  assert.equal(points.data, bundle.data, 'the same tiles: no refetch');
  assert.deepEqual(points.updateTriggers, { getTileData: 'k', renderSubLayers: 3 });
  const [shops, dots] = points.renderSubLayers({ id: '__tiles_points-1-2-3' });
  assert.equal(shops.props.getFillColor, undefined, 'other members keep their style');
  assert.deepEqual(dots.props.getFillColor({ id: 5, properties: { status: 'ok' } }), STATUS_COLOURS.alarm);
  assert.deepEqual(dots.props.getFillColor({ id: 6, properties: { status: 'ok' } }), STATUS_COLOURS.ok);
  assert.deepEqual(dots.props.updateTriggers, { getPointRadius: 1, getFillColor: 3 });
  assert.ok(dots.props.stroked && dots.props.pointRadiusMinPixels >= 4);
  assert.deepEqual(painted, [3]);
  assert.equal(liveLayerProps([bundle], ['dots'], {}, live)[0], points, 'the same live state: the same props');
  const next = liveLayerProps([bundle], ['dots'], {}, Object.assign({}, live, { version: 4 }))[0];
  assert.notEqual(next, points);
  assert.equal(next.updateTriggers.renderSubLayers, 4);
});

test('alert events keep the active list: raised and escalated replace, cleared removes, most severe first', () => {
  let alerts = [];
  alerts = applyAlertEvent(alerts, { id: 1, change: 'raised', severity: 'warning', raised_at: '2026-07-01T08:00:00Z' });
  alerts = applyAlertEvent(alerts, { id: 2, change: 'raised', severity: 'offline', raised_at: '2026-07-01T09:00:00Z' });
  alerts = applyAlertEvent(alerts, { id: 3, change: 'raised', severity: 'warning', raised_at: '2026-07-01T09:30:00Z' });
  assert.deepEqual(alerts.map((a) => a.id), [3, 1, 2]);
  alerts = applyAlertEvent(alerts, { id: 1, change: 'escalated', severity: 'alarm', raised_at: '2026-07-01T08:00:00Z' });
  assert.deepEqual(alerts.map((a) => [a.id, a.severity]), [[1, 'alarm'], [3, 'warning'], [2, 'offline']]);
  assert.deepEqual(countAlerts(alerts), { alarm: 1, warning: 1, offline: 1 });
  alerts = applyAlertEvent(alerts, { id: 3, change: 'cleared', severity: 'warning' });
  assert.deepEqual(alerts.map((a) => a.id), [1, 2]);
});

test('an alert row names severity, site, town, value with unit and the time it was raised (Shanghai)', () => {
  const row = alertRow({ id: 9, severity: 'alarm', layer: 'dots', layer_title: { zh: '积水', en: 'Water' },
    site_kind: '地铁出入口', feature_key: 'WL-1', town: '莘庄镇', value: 42.46, unit: 'cm',
    raised_at: '2026-07-01T08:05:00Z', lon: 121.38, lat: 31.11 }, 'en');
  assert.deepEqual(row, { id: 9, severity: 'alarm', label: 'Alarm', site: 'Water · 地铁出入口 · WL-1', town: '莘庄镇',
    value: '42.5 cm', since: '16:05', view: { longitude: 121.38, latitude: 31.11, zoom: 16 } });
  assert.equal(alertRow({ id: 1, severity: 'offline', value: null }, 'zh').value, '—');
  assert.equal(shanghaiTime('not a time'), '');
});

test('a layer event refetches a drawn or live layer and reloads the indicators', () => {
  assert.deepEqual(layerEventActions({ layer: 'dots', version: 2 }, ['dots'], ['qu']), { refetch: 'dots', indicators: true });
  assert.deepEqual(layerEventActions({ layer: 'qu', version: 2 }, ['dots'], ['qu']), { refetch: 'qu', indicators: true });
  assert.deepEqual(layerEventActions({ layer: 'elsewhere' }, ['dots'], ['qu']), { refetch: null, indicators: true });
});
