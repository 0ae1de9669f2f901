import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cellText, featureLabel, featureTitle, fieldRows, formatValue, statusKey } from '../../cim_service/static/js/format.js';

test('formatValue separates thousands from 100 on and rounds to two decimals below', () => {
  assert.equal(formatValue(69061), '69,061');
  assert.equal(formatValue(1234.5), '1,235');
  assert.equal(formatValue(-150.2), '-150');
  assert.equal(formatValue(50.466), '50.47');
  assert.equal(formatValue(0.9), '0.9');
  assert.equal(formatValue(0), '0');
});

test('formatValue shows missing values as a dash and other values as text', () => {
  assert.equal(formatValue(null), '—');
  assert.equal(formatValue(undefined), '—');
  assert.equal(formatValue('n/a'), 'n/a');
});

test('cellText shows objects as JSON and missing values as a dash', () => {
  assert.equal(cellText({ a: 1 }), '{"a":1}');
  assert.equal(cellText(false), 'false');
  assert.equal(cellText(0), '0');
  assert.equal(cellText(null), '—');
});

test('statusKey keeps met / not_met and calls anything else unknown', () => {
  assert.equal(statusKey('met'), 'met');
  assert.equal(statusKey('not_met'), 'not_met');
  assert.equal(statusKey('no_data'), 'unknown');
  assert.equal(statusKey(undefined), 'unknown');
});

const towns = {
  title_zh: '街镇', title_en: 'Towns', label_field: 'name',
  fields: [{ name: 'name', title_zh: '街镇名称', title_en: 'Name' }, { name: 'code', title_zh: '统计代码', title_en: 'NBS code' }],
};

test('featureTitle joins the layer title and the label field', () => {
  assert.equal(featureTitle(towns, { name: '七宝镇' }, 'zh'), '街镇 · 七宝镇');
  assert.equal(featureTitle(towns, { name: '七宝镇' }, 'en'), 'Towns · 七宝镇');
  assert.equal(featureTitle(towns, {}, 'zh'), '街镇');
  assert.equal(featureTitle(undefined, { name: 'x' }, 'zh'), '');
});

test('featureLabel takes the English label field on the EN switch, the Chinese one otherwise or when it is empty', () => {
  const roads = { ...towns, label_field_en: 'name_en' };
  assert.equal(featureLabel(roads, { name: '沪闵路', name_en: 'Humin Road' }, 'en'), 'Humin Road');
  assert.equal(featureLabel(roads, { name: '沪闵路', name_en: 'Humin Road' }, 'zh'), '沪闵路');
  assert.equal(featureLabel(roads, { name: '沪闵路', name_en: null }, 'en'), '沪闵路');
  assert.equal(featureLabel(towns, { name: '七宝镇', name_en: 'Qibao' }, 'en'), '七宝镇');
  assert.equal(featureTitle(roads, { name: '沪闵路', name_en: 'Humin Road' }, 'en'), 'Towns · Humin Road');
});

test('fieldRows lists declared fields by title first, then other properties, never internal ones', () => {
  const props = { extra: 1, code: '310112102', id: 7, layerName: 'towns', count: 3, name: '七宝镇' };
  assert.deepEqual(fieldRows(towns, props, 'zh'), [['街镇名称', '七宝镇'], ['统计代码', '310112102'], ['extra', 1]]);
  assert.deepEqual(fieldRows(towns, props, 'en')[0], ['Name', '七宝镇']);
  assert.deepEqual(fieldRows(undefined, { a: null }, 'zh'), [['a', null]]);
});
