import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  defaultIndicatorId, indicatorList, lookupTown, townFeature, townStem, townValues,
} from '../../cim_service/static/js/indicators.js';
import { indicator, townCollection } from './fixtures.mjs';

test('townValues keys the town rows by name', () => {
  const rows = townValues(indicator());
  assert.deepEqual(Object.keys(rows), ['古美街道', '七宝镇', '马桥镇']);
  assert.equal(rows['七宝镇'].value, 20);
  assert.deepEqual(townValues(null), {});
});

test('townStem drops the level word', () => {
  assert.equal(townStem('七宝镇'), '七宝');
  assert.equal(townStem('古美路街道'), '古美路');
  assert.equal(townStem('莘庄工业区'), '莘庄');
  assert.equal(townStem('镇'), '');
});

test('lookupTown matches exactly, then official and colloquial names on their stem', () => {
  const rows = townValues(indicator());
  assert.equal(lookupTown(rows, '七宝镇').value, 20);
  assert.equal(lookupTown(rows, '古美路街道').town, '古美街道', '古美路街道 is 古美街道');
  assert.equal(lookupTown({ 古美路街道: 1 }, '古美街道'), 1);
  assert.equal(lookupTown(rows, '华漕镇'), null);
  assert.equal(lookupTown(rows, '镇'), null, 'a stem under two characters matches nothing');
  assert.equal(lookupTown(rows, ''), null);
  assert.equal(lookupTown(rows, undefined), null);
});

test('indicatorList reads a list or an object with indicators', () => {
  assert.deepEqual(indicatorList([{ id: 'a' }]), [{ id: 'a' }]);
  assert.deepEqual(indicatorList({ indicators: [{ id: 'b' }] }), [{ id: 'b' }]);
  assert.deepEqual(indicatorList({}), []);
  assert.deepEqual(indicatorList(null), []);
});

test('defaultIndicatorId keeps the current one, else takes the first with town values', () => {
  const list = [{ id: 'total', towns: [] }, { id: 'density', towns: [{ town: 'x' }] }];
  assert.equal(defaultIndicatorId(list, null), 'density');
  assert.equal(defaultIndicatorId(list, 'total'), 'total');
  assert.equal(defaultIndicatorId(list, 'gone'), 'density');
  assert.equal(defaultIndicatorId([{ id: 'only' }], null), 'only');
  assert.equal(defaultIndicatorId([], 'x'), null);
});

test('townFeature finds a town boundary by an indicator row name', () => {
  const fc = townCollection();
  assert.equal(townFeature(fc, '古美街道').properties.name, '古美路街道');
  assert.equal(townFeature(fc, '七宝镇').geometry.type, 'MultiPolygon');
  assert.equal(townFeature(fc, '马桥镇'), undefined);
  assert.equal(townFeature(undefined, '七宝镇'), undefined);
  // two towns sharing a stem: each name finds its own boundary, whichever comes first
  const two = { type: 'FeatureCollection', features: ['莘庄工业区', '莘庄镇'].map((name) => ({ type: 'Feature',
    properties: { name }, geometry: null })) };
  assert.equal(townFeature(two, '莘庄镇').properties.name, '莘庄镇');
  assert.equal(townFeature(two, '莘庄工业区').properties.name, '莘庄工业区');
});
