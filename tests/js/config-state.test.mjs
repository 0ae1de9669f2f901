import assert from 'node:assert/strict';
import { test } from 'node:test';

import { addLayerDefaults, baseLayerIds, isRasterLayer, isTileLayer, layerIndex, roleLayer } from '../../cim_service/static/js/config.js';
import { allowed, applyConfig, available, baseLoaded, createState, currentIndicator } from '../../cim_service/static/js/state.js';
import { indicator, pageConfig } from './fixtures.mjs';

test('roles name the base layers; a role no readable layer plays is absent', () => {
  const config = pageConfig();
  assert.equal(roleLayer(config, 'town_boundaries'), 'jiezhen');
  assert.equal(roleLayer(config, 'standard_addresses'), null);
  assert.deepEqual(baseLayerIds(config), ['qu', 'jiezhen']);
  assert.deepEqual(baseLayerIds(pageConfig({ roles: { town_boundaries: 'jiezhen' } })), ['jiezhen']);
  assert.deepEqual(baseLayerIds({ ...pageConfig(), roles: undefined }), []);
});

test('layerIndex describes every layer and the raster, public by default', () => {
  const index = layerIndex(pageConfig());
  assert.deepEqual(Object.keys(index), ['qu', 'jiezhen', 'dots', 'secret', 'density_raster']);
  assert.equal(index.density_raster.access, 'public');
  assert.deepEqual(index.density_raster.style.fill, [250, 160, 40, 200]);
  assert.equal(index.density_raster.title_en, 'Density');
});

test('tile layers are the MVT and raster layers', () => {
  const types = pageConfig().deck.layers.map((s) => [s.id, isTileLayer(s), isRasterLayer(s)]);
  assert.deepEqual(types.slice(0, 3), [['jiezhen', false, false], ['density_raster', true, true], ['dots', true, false]]);
});

test('addLayerDefaults adds declared defaults without overriding a choice', () => {
  const visible = { dots: false };
  const opacity = { dots: 0.2 };
  addLayerDefaults(pageConfig().deck.layers, visible, opacity);
  assert.equal(visible.dots, false);
  assert.equal(opacity.dots, 0.2);
  assert.equal(visible.hidden, false);
  assert.equal(visible.qu, true);
  assert.equal(opacity.density_raster, 0.6);
  assert.equal(opacity.qu, 1);
});

test('createState takes visibility and opacity from the deck spec', () => {
  const state = createState(pageConfig());
  assert.equal(state.lang, 'zh');
  assert.equal(state.apiKey, '');
  assert.deepEqual(state.visible, { jiezhen: true, density_raster: false, dots: true, hidden: false, secret: false, qu: true });
  assert.equal(state.opacity.density_raster, 0.6);
  assert.equal(state.indicatorsLoaded, false);
});

test('allowed: public layers always, the others only with a key', () => {
  const state = createState(pageConfig());
  assert.equal(allowed(state, 'dots'), true);
  assert.equal(allowed(state, 'secret'), false);
  assert.equal(allowed(state, 'unknown'), true, 'layers the page does not describe are not locked');
  state.apiKey = 'k';
  assert.equal(allowed(state, 'secret'), true);
});

test('applyConfig takes a key\'s layers in place and keeps the user\'s choices', () => {
  const config = pageConfig();
  const state = createState(config);
  state.visible.dots = false;
  const keyed = pageConfig();
  keyed.layers.push({ id: 'people_like', title_zh: '人', title_en: 'P', group: '一标多实', access: 'restricted' });
  keyed.deck.layers.splice(2, 0, { '@@type': 'MVTLayer', id: 'people_like', visible: false });
  keyed.groups['一标多实'] = { title_zh: '一标多实', title_en: 'Addresses & residents' };
  applyConfig(state, keyed);
  assert.equal(state.config, config, 'window.CIM_CONFIG is updated in place');
  assert.equal(config.layers, keyed.layers);
  assert.equal(config.groups['一标多实'].title_en, 'Addresses & residents');
  assert.equal(state.layers.people_like.access, 'restricted');
  assert.equal(state.visible.dots, false);
  assert.equal(state.visible.people_like, false);
  assert.ok('density_raster' in state.layers);
});

test('currentIndicator and baseLoaded follow the state', () => {
  const state = createState(pageConfig());
  assert.equal(currentIndicator(state), null);
  state.indicators = [indicator()];
  state.indicatorId = 'camera_density';
  assert.equal(currentIndicator(state).unit, '个/km²');
  assert.equal(baseLoaded(state), false);
  state.base.qu = { type: 'FeatureCollection', features: [] };
  assert.equal(baseLoaded(state), false);
  state.base.jiezhen = { type: 'FeatureCollection', features: [] };
  assert.equal(baseLoaded(state), true);
});

test('available: everything live; in the export, base layers and exported layers only', () => {
  assert.equal(available(createState(pageConfig()), 'hidden'), true);
  const exported = createState(pageConfig({ inline: { layers: { dots: { type: 'FeatureCollection', features: [] } } } }));
  assert.equal(available(exported, 'dots'), true);
  assert.equal(available(exported, 'qu'), true);
  assert.equal(available(exported, 'jiezhen'), true);
  assert.equal(available(exported, 'hidden'), false);
  assert.equal(available(exported, 'density_raster'), false);
});
