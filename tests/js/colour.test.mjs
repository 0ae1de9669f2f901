import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  choroplethScale, cssColor, DEFAULT_RAMP, rampGradient, FILL_ALPHA, legendClasses, NODATA, scaleColor, SELECTED_ALPHA, sideEnds, sideStep,
  swatchColor, townFill, valueRange,
} from '../../cim_service/static/js/colour.js';

test('valueRange spans the numeric town values and defaults to [0, 1]', () => {
  assert.deepEqual(valueRange({ towns: [{ value: 3 }, { value: null }, { value: -2 }, { value: 'x' }] }), [-2, 3]);
  assert.deepEqual(valueRange({ towns: [] }), [0, 1]);
  assert.deepEqual(valueRange(null), [0, 1]);
});

const density = {
  id: 'density', unit: '个/km²', target: 180,
  towns: [
    { town: 'a', value: 30, target: 180, status: 'not_met' },
    { town: 'b', value: 170, target: 180, status: 'not_met' },
    { town: 'c', value: 185, target: 180, status: 'met' },
    { town: 'd', value: 420, target: 180, status: 'met' },
    { town: 'e', value: null, target: 180, status: 'no_data' },
  ],
};

test('the scale breaks at the target: short of it spans to the worst town, beyond it to the best', () => {
  const scale = choroplethScale(density, null);
  assert.equal(scale.target, 180);
  assert.equal(scale.relative, false);
  assert.equal(scale.worst, 30);
  assert.equal(scale.best, 420);
  assert.equal(scale.ramp, DEFAULT_RAMP, 'without a catalog ramp the default one');
  const classes = legendClasses(scale);
  assert.equal(classes.length, 6);
  assert.deepEqual(classes.map((c) => c.side), ['not_met', 'not_met', 'not_met', 'met', 'met', 'met']);
  const near = (range, expected) => range.every((v, i) => Math.abs(v - expected[i]) < 1e-9);
  assert.equal(scale.nearShort, 170);
  assert.equal(scale.nearMet, 185);
  assert.ok(near(classes[0].range, [30, 170 - 140 * 2 / 3]), 'the darkest red holds the towns furthest behind');
  assert.ok(near(classes[2].range, [170 - 140 / 3, 180]), 'the lightest red reaches the target');
  assert.ok(near(classes[3].range, [180, 185 + 235 / 3]), 'the lightest green starts at the target');
  assert.ok(near(classes[5].range, [420 - 235 / 3, 420]));
  assert.notDeepEqual(classes[2].colour, classes[3].colour, 'the two sides of the target never look alike');
});

test('scaleColor: near the target light, far from it dark, the side by status; no value is no colour', () => {
  const scale = choroplethScale(density, null);
  const [a, b, c, d, e] = density.towns;
  assert.deepEqual(scaleColor(scale, a), DEFAULT_RAMP.not_met[2]);
  assert.deepEqual(scaleColor(scale, b), DEFAULT_RAMP.not_met[0]);
  assert.deepEqual(scaleColor(scale, c), DEFAULT_RAMP.met[0]);
  assert.deepEqual(scaleColor(scale, d), DEFAULT_RAMP.met[2]);
  assert.equal(scaleColor(scale, e), null);
});

test('town targets that differ (counts by area) make the scale the share of each town\'s own target', () => {
  const counts = { target: 70000, towns: [
    { town: 'a', value: 50, target: 100, status: 'not_met' },
    { town: 'b', value: 300, target: 200, status: 'met' },
  ] };
  const scale = choroplethScale(counts, null);
  assert.equal(scale.relative, true);
  assert.equal(scale.target, 100);
  assert.equal(scale.worst, 50);
  assert.equal(scale.best, 150);
  assert.deepEqual(scaleColor(scale, counts.towns[1]), DEFAULT_RAMP.met[2], 'a side of one town runs from the target');
});

test('lower is better (events): the worst town has the most, the ramps come from the catalog', () => {
  const ramp = { met: [[0, 0, 255], [0, 0, 128]], not_met: [[255, 255, 0], [128, 128, 0]] };
  const events = { lower_is_better: true, towns: [
    { town: 'a', value: 9, target: 5, status: 'not_met' },
    { town: 'b', value: 1, target: 5, status: 'met' },
  ] };
  const scale = choroplethScale(events, ramp);
  assert.equal(scale.worst, 9);
  assert.equal(scale.best, 1);
  assert.deepEqual(scaleColor(scale, events.towns[0]), [128, 128, 0]);
  assert.deepEqual(scaleColor(scale, events.towns[1]), [0, 0, 128]);
  assert.equal(sideStep(5, 5, 9, 3), 0);
  assert.equal(sideStep(9, 5, 9, 3), 2);
  assert.equal(sideStep(7, 7, 7, 3), 0, 'an empty side takes its first step');
  assert.deepEqual(sideEnds(scale, true), [5, 1]);
});

test('townFill: no data is grey, the selected town is more opaque', () => {
  const scale = choroplethScale(density, null);
  assert.equal(townFill(null, scale, null), NODATA);
  assert.equal(townFill(density.towns[4], scale, null), NODATA);
  assert.equal(townFill(density.towns[0], scale, null)[3], FILL_ALPHA);
  assert.equal(townFill(density.towns[0], scale, 'a')[3], SELECTED_ALPHA);
  assert.equal(townFill(density.towns[0], scale, 'b')[3], FILL_ALPHA);
});

test('swatchColor shows lines and unfilled areas by their line colour, the rest by the fill', () => {
  const style = { fill: [1, 2, 3, 200], line: [7, 8, 9, 255] };
  assert.equal(swatchColor({ geometry: 'MultiLineString', is_point: false, style }), 'rgb(7,8,9)');
  assert.equal(swatchColor({ geometry: 'MultiPolygon', is_point: false, style: { ...style, fill: [1, 2, 3, 0] } }), 'rgb(7,8,9)');
  assert.equal(swatchColor({ geometry: 'MultiPolygon', is_point: false, style }), 'rgb(1,2,3)');
  assert.equal(swatchColor({ geometry: 'Point', is_point: true, style: { ...style, fill: [1, 2, 3, 0] } }), 'rgb(1,2,3)');
  assert.equal(swatchColor({}), 'rgb(128,128,128)');
  assert.equal(cssColor([10, 20, 30, 40]), 'rgb(10,20,30)');
});

test('a raster legend\'s stops make the gradient its tiles are drawn with, lowest value at the left', () => {
  const legend = { min: 0, max: 200, stops: [{ value: 0, color: '#440154' }, { value: 50, color: '#3b528b' },
    { value: 200, color: '#fde725' }] };
  assert.equal(rampGradient(legend), 'linear-gradient(to right, #440154 0%, #3b528b 25%, #fde725 100%)');
  assert.equal(rampGradient({ stops: [{ value: 1, color: '#000000' }] }), null);
  assert.equal(rampGradient(null), null);
});
