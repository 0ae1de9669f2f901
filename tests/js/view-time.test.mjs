import assert from 'node:assert/strict';
import { test } from 'node:test';

import { atUrl, contextLayerIds, timeDays } from '../../cim_service/static/js/config.js';
import { metresPerPixel, scaleBar } from '../../cim_service/static/js/geometry.js';
import { addIndicatorAt, createState, currentIndicator, setAt, setView3d } from '../../cim_service/static/js/state.js';
import { extrudedLayerIds } from '../../cim_service/static/js/layers.js';
import { indicator, pageConfig } from './fixtures.mjs';

function configWithContext(extra = {}) {
  const config = Object.assign(pageConfig(), { time_years: [2020, 2025], view_3d: { pitch: 55, bearing: -25, zoom: 13.6 } }, extra);
  config.layers.push(
    { id: 'shui', group: '底图', access: 'public', basemap: true, history: true, history_begins: '2020-07-01T00:00:00Z', style: {}, fields: [] },
    { id: 'lou', group: '三维', access: 'public', height_field: 'gao', history: true, style: {}, fields: [] },
  );
  config.deck.layers.unshift(
    { '@@type': 'MVTLayer', id: 'shui', visible: false, data: '/collections/shui/tiles/WebMercatorQuad/{z}/{x}/{y}' },
    { '@@type': 'MVTLayer', id: 'lou', visible: false, data: '/collections/lou/tiles/WebMercatorQuad/{z}/{x}/{y}' },
  );
  return config;
}

test('scale bar: a round length that fits, its width in pixels at the latitude', () => {
  // at the equator, zoom 0: 40075 km over 512 px
  assert.ok(Math.abs(metresPerPixel(0, 0) - 40075016.686 / 512) < 1e-6);
  const bar = scaleBar(31.1, 14, 120);
  const mpp = metresPerPixel(31.1, 14);
  assert.ok(bar.px <= 120 && bar.px > 120 / 5, `width ${bar.px}`);
  assert.ok([1, 2, 5].includes(bar.metres / 10 ** Math.floor(Math.log10(bar.metres))));
  assert.equal(bar.px, Math.round(bar.metres / mpp));
  assert.equal(bar.label, `${bar.metres} m`);
  assert.match(scaleBar(31.1, 9).label, /^\d+ km$/);
});

test('atUrl adds at= to layers whose history has begun by the day only, and only with a day', () => {
  const url = '/collections/x/tiles/WebMercatorQuad/{z}/{x}/{y}';
  const kept = { history: true, history_begins: '2020-07-01T00:00:00+08:00' };
  assert.equal(atUrl(url, kept, '2022-12-31'), `${url}?at=2022-12-31`);
  assert.equal(atUrl(`${url}?f=mvt`, kept, '2022-12-31'), `${url}?f=mvt&at=2022-12-31`);
  assert.equal(atUrl(url, { history: false }, '2022-12-31'), url);
  assert.equal(atUrl(url, kept, null), url);
  assert.equal(atUrl(url, { history: true, history_begins: null }, '2022-12-31'), url, 'no history yet');
  // begun later than the end of the day (Shanghai time): drawn as it is now
  assert.equal(atUrl(url, { history: true, history_begins: '2021-01-01T00:00:00+08:00' }, '2020-12-31'), url);
  assert.equal(atUrl(url, { history: true, history_begins: '2020-12-31T15:59:59Z' }, '2020-12-31'), `${url}?at=2020-12-31`);
});

test('timeDays: the last day of each year of the slider', () => {
  assert.deepEqual(timeDays({ time_years: [2020, 2025] }),
    ['2020-12-31', '2021-12-31', '2022-12-31', '2023-12-31', '2024-12-31', '2025-12-31']);
});

test('the 3D view shows the basemap and the extruded layers; 2D keeps the declared visibility', () => {
  const config = configWithContext();
  assert.deepEqual(contextLayerIds(config), ['shui', 'lou']);
  const flat = createState(config);
  assert.equal(flat.view3d, false);
  assert.equal(flat.visible.shui, false);
  const pitched = createState(configWithContext({ view_mode: '3d' }));
  assert.equal(pitched.view3d, true);
  assert.equal(pitched.visible.shui, true);
  assert.equal(pitched.visible.lou, true);
  setView3d(flat, true);
  assert.equal(flat.visible.lou, true);
  assert.equal(createState(configWithContext({ screen: 'ops' })).view3d, true);
});

test('the time slider day: validated, and the indicator as of it replaces the current one once loaded', () => {
  const state = createState(configWithContext());
  const now = indicator();
  state.indicators = [now];
  state.indicatorId = now.id;
  assert.throws(() => setAt(state, '2022'), /not a day/);
  setAt(state, '2022-12-31');
  assert.equal(currentIndicator(state), now, 'until the past result has loaded');
  const past = Object.assign({}, now, { value: 12 });
  addIndicatorAt(state, now.id, '2022-12-31', past);
  assert.equal(currentIndicator(state).value, 12);
  setAt(state, null);
  assert.equal(currentIndicator(state), now);
});

test('extrudedLayerIds names the drawn extruded layers', () => {
  assert.deepEqual(extrudedLayerIds([{ id: 'a', extruded: true }, { id: 'b' }, { id: 'c', extruded: true, visible: false }]), ['a']);
});
