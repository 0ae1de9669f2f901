import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  groupTitle, localText, localTitle, localUnit, otherLanguage, STRINGS, translate,
} from '../../cim_service/static/js/i18n.js';

test('both languages have every interface string', () => {
  assert.deepEqual(Object.keys(STRINGS.zh).sort(), Object.keys(STRINGS.en).sort());
  for (const lang of ['zh', 'en']) for (const [k, v] of Object.entries(STRINGS[lang])) assert.ok(v, `${lang}.${k}`);
});

test('translate falls back to the key, and to Chinese for an unknown language', () => {
  assert.equal(translate('zh', 'layers'), '图层');
  assert.equal(translate('en', 'layers'), 'Layers');
  assert.equal(translate('en', 'no-such-key'), 'no-such-key');
  assert.equal(translate('fr', 'layers'), '图层');
  assert.equal(otherLanguage('zh'), 'en');
  assert.equal(otherLanguage('en'), 'zh');
});

test('localTitle reads title_* (or name_*) in the language', () => {
  const cameras = { title_zh: '视频监控', title_en: 'Video cameras' };
  assert.equal(localTitle(cameras, 'zh'), '视频监控');
  assert.equal(localTitle(cameras, 'en'), 'Video cameras');
  assert.equal(localTitle({ name_zh: '七宝镇', name_en: 'Qibao Town' }, 'en'), 'Qibao Town');
  assert.equal(localTitle({}, 'en'), '');
  assert.equal(localTitle(null, 'zh'), '');
});

test('groupTitle comes from the configuration, else the group name', () => {
  const groups = { 交通: { title_zh: '交通', title_en: 'Transport' } };
  assert.equal(groupTitle(groups, '交通', 'en'), 'Transport');
  assert.equal(groupTitle(groups, '交通', 'zh'), '交通');
  assert.equal(groupTitle(groups, '新组', 'en'), '新组');
  assert.equal(groupTitle(undefined, '交通', 'en'), '交通');
});

test('localText prefers the Chinese text except in English', () => {
  assert.equal(localText('缺口', 'gap', 'zh'), '缺口');
  assert.equal(localText('缺口', 'gap', 'en'), 'gap');
  assert.equal(localText(null, 'gap', 'zh'), 'gap');
  assert.equal(localText(null, null, 'zh'), '');
});

test('indicator units read in English on the EN switch, the catalog\'s unit in Chinese', () => {
  assert.equal(localUnit('个/平方公里', 'zh'), '个/平方公里');
  assert.equal(localUnit('个/平方公里', 'en'), 'per km²');
  assert.equal(localUnit('个', 'en'), '');
  assert.equal(localUnit('起', 'en'), 'events');
  assert.equal(localUnit('%', 'en'), '%');
  assert.equal(localUnit('吨', 'en'), '吨', 'an unknown unit is shown as the catalog gives it');
  assert.equal(localUnit(null, 'en'), '');
});
