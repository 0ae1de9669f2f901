import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cssColor, NODATA, RAMP, rampColor, swatchColor, townFill, valueRange } from '../../cim_service/static/js/colour.js';

test('valueRange spans the numeric town values and defaults to [0, 1]', () => {
  assert.deepEqual(valueRange({ towns: [{ value: 3 }, { value: null }, { value: -2 }, { value: 'x' }] }), [-2, 3]);
  assert.deepEqual(valueRange({ towns: [] }), [0, 1]);
  assert.deepEqual(valueRange(null), [0, 1]);
});

test('rampColor picks the ramp by status and the step by the value', () => {
  assert.deepEqual(rampColor('met', 0, [0, 10]), [...RAMP.met[0], 190]);
  assert.deepEqual(rampColor('met', 10, [0, 10]), [...RAMP.met[2], 190]);
  assert.deepEqual(rampColor('not_met', 5, [0, 10]), [...RAMP.not_met[1], 190]);
  assert.deepEqual(rampColor('no_data', 10, [0, 10]), [...RAMP.not_met[2], 190], 'anything but met is not met');
});

test('rampColor clamps values outside the range and takes the middle of an empty range', () => {
  assert.deepEqual(rampColor('met', -50, [0, 10]), [...RAMP.met[0], 190]);
  assert.deepEqual(rampColor('met', 99, [0, 10]), [...RAMP.met[2], 190]);
  assert.deepEqual(rampColor('met', 7, [7, 7]), [...RAMP.met[1], 190]);
});

test('townFill: no data is grey, the selected town is more opaque, the ramp is left as it was', () => {
  assert.equal(townFill(null, [0, 1], null), NODATA);
  assert.equal(townFill({ town: 'a', value: null }, [0, 1], null), NODATA);
  const row = { town: '七宝镇', value: 1, status: 'met' };
  assert.equal(townFill(row, [0, 1], null)[3], 190);
  assert.equal(townFill(row, [0, 1], '七宝镇')[3], 240);
  assert.equal(townFill(row, [0, 1], '华漕镇')[3], 190);
  assert.deepEqual(RAMP.met[2], [35, 139, 69]);
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
