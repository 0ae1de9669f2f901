import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  createMetrics, isTileRequest, MAX_FRAMES, recordFrame, tileHooks,
} from '../../cim_service/static/js/metrics.js';

test('createMetrics publishes every metric the tests and bench_map.py read', () => {
  const page = {};
  const metrics = createMetrics(page);
  assert.equal(page.__cimMetrics, metrics);
  assert.deepEqual(metrics, {
    firstRenderMs: null, firstMeaningfulPaintMs: null, fmpFrameCommittedMs: null,
    tileRequests: 0, tileErrors: 0, tilesLoaded: {}, frames: [], renders: 0,
    view: null, drawnLayers: [], extrudedLayers: [], fmpLayers: null, scaleBar: null, at: null, atTileRequests: 0,
    indicatorAtRequests: 0, kpis: [], legend: null, townPanel: null, pixelRatio: 1, resolutionSwitches: 0,
  });
});

test('the first meaningful paint is the first frame once everything is loaded, committed at the next frame', () => {
  const metrics = createMetrics({});
  const scheduled = [];
  const nextFrame = (callback) => scheduled.push(callback);
  let ready = false;
  recordFrame(metrics, 100.4, () => ready, nextFrame, () => 999);
  assert.equal(metrics.firstRenderMs, 100.4);
  assert.equal(metrics.firstMeaningfulPaintMs, null);
  assert.equal(scheduled.length, 0);
  ready = true;
  metrics.drawnLayers = ['towns', 'roads'];
  recordFrame(metrics, 250, () => ready, nextFrame, () => 400);
  assert.equal(metrics.firstMeaningfulPaintMs, 250);
  metrics.drawnLayers.push('labels');
  assert.deepEqual(metrics.fmpLayers, ['towns', 'roads'], 'the layers that paint drew, kept as they were then');
  assert.equal(metrics.fmpFrameCommittedMs, null, 'committed only when the next frame starts');
  scheduled[0]();
  assert.equal(metrics.fmpFrameCommittedMs, 400);
  recordFrame(metrics, 300, () => true, nextFrame, () => 500);
  assert.equal(metrics.firstMeaningfulPaintMs, 250, 'recorded once');
  assert.equal(scheduled.length, 1);
  assert.equal(metrics.firstRenderMs, 100.4);
  assert.equal(metrics.renders, 3);
  assert.deepEqual(metrics.frames, [100, 250, 300]);
});

test('frame times are kept for the first frames only; renders counts them all', () => {
  const metrics = createMetrics({});
  for (let i = 0; i < MAX_FRAMES + 50; i++) recordFrame(metrics, i, () => false, () => {}, () => 0);
  assert.equal(metrics.frames.length, MAX_FRAMES);
  assert.equal(metrics.renders, MAX_FRAMES + 50);
});

test('tile hooks record the loaded viewport and count failed tiles', () => {
  const metrics = createMetrics({});
  const failures = [];
  const hooks = tileHooks(metrics, 'dots', (id, error) => failures.push([id, error.message]));
  hooks.onViewportLoad();
  assert.equal(typeof metrics.tilesLoaded.dots, 'number');
  hooks.onTileError(new Error('502'));
  hooks.onTileError(new Error('504'));
  assert.equal(metrics.tileErrors, 2);
  assert.deepEqual(failures, [['dots', '502'], ['dots', '504']]);
  tileHooks(metrics, ['a', 'b'], () => {}).onViewportLoad();
  assert.ok(typeof metrics.tilesLoaded.a === 'number' && typeof metrics.tilesLoaded.b === 'number',
    'a bundle of layers records each');
});

test('tile requests are the vector and raster tile URLs', () => {
  assert.ok(isTileRequest('http://127.0.0.1:8000/collections/cameras/tiles/WebMercatorQuad/11/1713/837'));
  assert.ok(isTileRequest('/rasters/camera_density/tiles/WebMercatorQuad/11/1713/837.png'));
  assert.ok(!isTileRequest('/map/static/js/layers.js'));
  assert.ok(!isTileRequest('/collections/towns/items?limit=1000'));
});
