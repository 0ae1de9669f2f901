import assert from 'node:assert/strict';
import { test } from 'node:test';

import { latToTileY, lonToTileX, providerTiles, providerUrl, tileBox, tileCorners } from '../../cim_service/static/js/basemap.js';
import { chartGeometry, chartSvg, escapeMarkup, yearOf } from '../../cim_service/static/js/chart.js';
import { gcj02Offset, gcj02ToWgs84, wgs84ToGcj02 } from '../../cim_service/static/js/gcj02.js';
import { aggregateRadius, AGGREGATE_MAX_PX, aggregateProps } from '../../cim_service/static/js/layers.js';
import { aggregated } from '../../cim_service/static/js/state.js';

// GCJ-02 positions of WGS84 points as cim_service/core/crs.py wgs84_to_gcj02 gives them (the reference: the
// map's correction must be the service's own transform)
const REFERENCE = [
  [[121.385, 31.108], [121.38963348886757, 31.106095919816838]],
  [[121.5, 31.0], [121.50441174552998, 30.997856614970047]],
  [[121.25, 31.25], [121.25442741943505, 31.247986304013146]],
];

test('wgs84ToGcj02 is the service\'s transform; outside China nothing moves', () => {
  for (const [wgs, gcj] of REFERENCE) {
    const got = wgs84ToGcj02(...wgs);
    assert.ok(Math.abs(got[0] - gcj[0]) < 1e-9 && Math.abs(got[1] - gcj[1]) < 1e-9, `${wgs} -> ${got}`);
  }
  assert.deepEqual(wgs84ToGcj02(2.35, 48.85), [2.35, 48.85]);
  assert.deepEqual(gcj02Offset(2.35, 48.85), [0, 0]);
});

test('gcj02ToWgs84 is the exact inverse (well under a millimetre)', () => {
  for (const [wgs, gcj] of REFERENCE) {
    const back = gcj02ToWgs84(...gcj);
    assert.ok(Math.abs(back[0] - wgs[0]) < 1e-9 && Math.abs(back[1] - wgs[1]) < 1e-9, `${gcj} -> ${back}`);
  }
});

test('a GCJ-02 basemap tile is drawn at the WGS84 positions of its corners; a WGS84 one where it is', () => {
  const bbox = { west: 121.38, south: 31.1, east: 121.39, north: 31.11 };
  assert.deepEqual(tileCorners(bbox, 'wgs84'), [[121.38, 31.1], [121.38, 31.11], [121.39, 31.11], [121.39, 31.1]]);
  const moved = tileCorners(bbox, 'gcj02');
  assert.equal(moved.length, 4);
  for (const [i, [lon, lat]] of moved.entries()) {
    const [gx, gy] = wgs84ToGcj02(lon, lat);
    const [ex, ey] = tileCorners(bbox, 'wgs84')[i];
    assert.ok(Math.abs(gx - ex) < 1e-9 && Math.abs(gy - ey) < 1e-9, 'each corner is the WGS84 of the GCJ-02 corner');
  }
  assert.ok(moved[0][0] < 121.38 - 0.004, 'in Minhang the GCJ-02 offset is about 0.0046° east');
});

test('aggregates: below the zoom points are drawn from, symbols grow with the count, capped', () => {
  const state = { config: { points_from_zoom: 14 } };
  assert.equal(aggregated(state, { zoom: 10.7 }), true);
  assert.equal(aggregated(state, { zoom: 14 }), false);
  assert.equal(aggregated(state, null), false);
  assert.equal(aggregated({ config: {} }, { zoom: 3 }), false, 'without the zoom in the configuration, never');
  assert.equal(aggregateRadius(1, 3), 3, 'one point: the layer\'s own radius');
  assert.equal(aggregateRadius(undefined, 3), 3);
  assert.ok(aggregateRadius(16, 3) > 3 && aggregateRadius(16, 3) < aggregateRadius(40, 3));
  assert.equal(aggregateRadius(64, 3), AGGREGATE_MAX_PX);
  assert.equal(aggregateRadius(5000, 3), AGGREGATE_MAX_PX, 'never larger than a cell');
  const props = aggregateProps({ is_point: true, style: { radius: 2 } }, { getPointRadius: 4 });
  assert.equal(props.getPointRadius({ properties: { count: 1 } }), 4);
  assert.deepEqual(aggregateProps({ is_point: false }, {}), {});
});

test('chartGeometry: the values, the target line and the on-track mark of a trajectory', () => {
  const area = { target: 180, on_track: false, values: [
    { date: '2020-12-31', value: 10 }, { date: '2021-12-31', value: null }, { date: '2022-12-31', value: 40 },
  ] };
  const g = chartGeometry(area, 2025);
  assert.equal(yearOf('2022-12-31'), 2022);
  assert.equal(g.dots.length, 2, 'a year without a value has no dot');
  assert.match(g.path, /^M[\d.]+,[\d.]+ L[\d.]+,[\d.]+$/);
  assert.equal(g.years.length, 6, '2020 to the target year 2025');
  assert.equal(g.due, g.years[5].x);
  assert.ok(g.target.y < g.dots[1].y && g.dots[1].y < g.dots[0].y, 'the target above the values, the values rising');
  assert.equal(g.onTrack, false);
  assert.equal(chartGeometry({ target: 1, values: [] }, 2025), null);
  assert.equal(chartGeometry({ values: [{ date: '2025-12-31', value: 3 }], on_track: true }, 2025).target, null);
});

test('chartSvg: the markup of a chart, its labels escaped', () => {
  const g = chartGeometry({ target: 5, on_track: true, values: [{ date: '2020-12-31', value: 1 }, { date: '2021-12-31', value: 6 }] }, 2022);
  const svg = chartSvg(g, '<目标>');
  assert.match(svg, /^<svg class="trajectory"[^>]* data-on-track="true">/);
  assert.equal((svg.match(/<circle /g) || []).length, 2);
  assert.match(svg, /class="target-line"/);
  assert.match(svg, /&#60;目标&#62;/);
  assert.ok(!svg.includes('<目标>'));
  assert.match(svg, /class="on-track"[^>]*>✓</);
  assert.ok(!/https?:/.test(svg), 'no namespace URL: the HTML parser gives <svg> its namespace');
  assert.equal(escapeMarkup(`a&"'`), 'a&#38;&#34;&#39;');
});

test('a GCJ-02 provider covers a map tile with the provider tiles holding its GCJ-02 box', () => {
  const z = 16;
  const x = Math.floor(lonToTileX(121.385, z));
  const y = Math.floor(latToTileY(31.108, z));
  const box = tileBox(x, y, z);
  assert.ok(box.west < 121.385 && 121.385 < box.east && box.south < 31.108 && 31.108 < box.north);
  assert.deepEqual(providerTiles({ x, y, z }, 'wgs84').map((t) => [t.x, t.y]), [[x, y]]);
  const tiles = providerTiles({ x, y, z }, 'gcj02');
  assert.ok(tiles.length >= 1 && tiles.length <= 4, tiles.length);
  assert.ok(tiles.every((t) => t.x >= x && t.y >= y), 'in Minhang GCJ-02 lies east and south of WGS84');
  assert.equal(providerUrl('http://p/{z}/{x}/{y}.png', { x: 1, y: 2, z: 3 }), 'http://p/3/1/2.png');
});
