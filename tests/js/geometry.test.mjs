import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  fitBounds, geometryBounds, geometryView, mercatorY, pointCollection, ringSegments,
} from '../../cim_service/static/js/geometry.js';
import { square } from './fixtures.mjs';

test('ringSegments gives every edge of every ring, holes and multipolygons included', () => {
  const fc = {
    type: 'FeatureCollection',
    features: [
      { geometry: { type: 'Polygon', coordinates: [square(0, 0, 4), square(1, 1, 1)] } },
      { geometry: { type: 'MultiPolygon', coordinates: [[square(10, 0)], [square(20, 0)]] } },
      { geometry: { type: 'Point', coordinates: [5, 5] } },
      { geometry: null },
    ],
  };
  const segments = ringSegments(fc);
  assert.equal(segments.length, 4 * 4);
  assert.deepEqual(segments[0], [[0, 0], [4, 0]]);
  assert.deepEqual(segments[4], [[1, 1], [2, 1]]);
  assert.deepEqual(segments.at(-1), [[20, 1], [20, 0]]);
  assert.equal(ringSegments(fc), segments, 'segments are computed once per collection');
  assert.deepEqual(ringSegments(null), []);
  assert.deepEqual(ringSegments({ type: 'FeatureCollection', features: [] }), []);
});

test('mercatorY is zero at the equator and odd', () => {
  assert.ok(Math.abs(mercatorY(0)) < 1e-12);
  assert.ok(Math.abs(mercatorY(31) + mercatorY(-31)) < 1e-12);
  assert.ok(Math.abs(mercatorY(45) - Math.log(Math.tan((3 * Math.PI) / 8))) < 1e-12);
});

test('fitBounds centres the box and fits its binding side into 92 % of the map', () => {
  const bbox = [121.235, 30.977, 121.572, 31.262];
  for (const [width, height] of [[1600, 900], [900, 1600], [1366, 768]]) {
    const view = fitBounds(bbox, width, height);
    assert.equal(view.longitude, (bbox[0] + bbox[2]) / 2);
    assert.equal(view.latitude, (bbox[1] + bbox[3]) / 2);
    assert.equal(view.pitch, 0);
    const scale = 512 * 2 ** view.zoom;
    const wPx = ((bbox[2] - bbox[0]) / 360) * scale;
    const hPx = ((mercatorY(bbox[3]) - mercatorY(bbox[1])) / (2 * Math.PI)) * scale;
    assert.ok(wPx <= 0.92 * width + 1e-6 && hPx <= 0.92 * height + 1e-6, `${wPx} x ${hPx} in ${width} x ${height}`);
    assert.ok(Math.abs(wPx - 0.92 * width) < 1e-6 || Math.abs(hPx - 0.92 * height) < 1e-6);
  }
});

test('geometryBounds walks nested coordinates', () => {
  assert.deepEqual(geometryBounds({ type: 'MultiPolygon', coordinates: [[square(1, 2)], [square(-3, 5, 2)]] }), [-3, 2, 2, 7]);
  assert.deepEqual(geometryBounds({ type: 'Point', coordinates: [121.4, 31.1] }), [121.4, 31.1, 121.4, 31.1]);
});

test('geometryView fits the width into 80 % of the map and stops at zoom 16', () => {
  const view = geometryView({ type: 'Polygon', coordinates: [square(121.3, 31.1, 0.1)] }, 1000);
  assert.ok(Math.abs(view.longitude - 121.35) < 1e-9 && Math.abs(view.latitude - 31.15) < 1e-9);
  assert.ok(Math.abs((0.1 / 360) * 512 * 2 ** view.zoom - 800) < 1e-6);
  assert.equal(geometryView({ type: 'Point', coordinates: [121.4, 31.1] }, 1000).zoom, 16);
});

test('pointCollection is one point feature', () => {
  assert.deepEqual(pointCollection(121.4, 31.1, { label: 'x' }), {
    type: 'FeatureCollection',
    features: [{ type: 'Feature', properties: { label: 'x' }, geometry: { type: 'Point', coordinates: [121.4, 31.1] } }],
  });
});
