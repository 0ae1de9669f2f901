import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DEFAULT_RAMP, NODATA } from '../../cim_service/static/js/colour.js';
import {
  BUNDLE_MAX_REQUESTS, BUNDLE_PREFIX, bundled, bundleProps, choroplethAccessor, deckLayerProps, drawnLayerIds,
  columnsOpacity, extrudedLayerIds, extrusionProps, layerProps, MARKER_ID, pendingTileLayers, pickedLayerId, SHAPES_ZOOM_OFFSET,
  standsAsColumns, visibleOutline,
} from '../../cim_service/static/js/layers.js';
import { createState } from '../../cim_service/static/js/state.js';
import { indicator, pageConfig, townCollection } from './fixtures.mjs';

const hooks = [];
const env = { classes: {}, loaders: ['mvt-loader'], tileHooks: (id) => { hooks.push(id); return { onViewportLoad: id }; } };
const spec = (state, id) => state.config.deck.layers.find((s) => s.id === id);

function loadedState(config = pageConfig()) {
  const state = createState(config);
  state.base.jiezhen = townCollection();
  state.base.qu = townCollection();
  state.indicators = [indicator()];
  state.indicatorId = 'camera_density';
  return state;
}

test('the town boundaries layer (by role) is a choropleth fill and a LineLayer outline', () => {
  const state = loadedState();
  const [fill, outline] = layerProps(spec(state, 'jiezhen'), state, env);
  assert.equal(fill['@@type'], 'GeoJsonLayer');
  assert.equal(fill.data, state.base.jiezhen);
  assert.equal(fill.stroked, false);
  assert.deepEqual(fill.updateTriggers.getFillColor, ['camera_density', null]);
  assert.equal(outline['@@type'], 'LineLayer');
  assert.equal(outline.id, 'jiezhen__outline');
  assert.equal(outline.data.length, 8);
  assert.deepEqual(outline.getColor, [90, 90, 90, 255]);
  assert.equal(outline.visible, true);
});

test('the district outline (by role) is a LineLayer at least lineWidthMinPixels wide', () => {
  const state = loadedState();
  const outline = layerProps(spec(state, 'qu'), state, env);
  assert.equal(outline['@@type'], 'LineLayer');
  assert.equal(outline.id, 'qu');
  assert.equal(outline.getWidth, 2);
  assert.equal(outline.pickable, false);
  assert.deepEqual(outline.getSourcePosition([[1, 2], [3, 4]]), [1, 2]);
});

test('before the base data arrives the base layers draw nothing', () => {
  const state = createState(pageConfig());
  const [fill, outline] = layerProps(spec(state, 'jiezhen'), state, env);
  assert.deepEqual(fill.data, []);
  assert.deepEqual(outline.data, []);
});

test('roles, not ids, decide which layer is drawn as base', () => {
  const state = loadedState(pageConfig({ roles: { district_outline: 'dots' } }));
  state.base.dots = townCollection();
  assert.equal(layerProps(spec(state, 'dots'), state, env)['@@type'], 'LineLayer');
  const towns = layerProps(spec(state, 'jiezhen'), state, env);
  assert.equal(towns['@@type'], 'GeoJsonLayer', 'without the role the layer is an ordinary one');
  assert.equal(towns.loaders, env.loaders);
});

test('the choropleth colours towns by the selected indicator, matched by name', () => {
  const state = loadedState();
  const fill = choroplethAccessor(state);
  const [gumei, qibao] = townCollection().features;
  assert.deepEqual(fill(gumei), [...DEFAULT_RAMP.met[2], 190], '古美路街道 takes the row of 古美街道');
  assert.deepEqual(fill(qibao), [...DEFAULT_RAMP.not_met[2], 190], 'the town furthest behind is the darkest red');
  state.layers.jiezhen.style.ramp = { met: [[0, 0, 255], [0, 0, 99]], not_met: [[9, 9, 9], [1, 1, 1]] };
  assert.deepEqual(choroplethAccessor(state)(qibao), [1, 1, 1, 190], 'the catalog\'s ramp of the town layer');
  delete state.layers.jiezhen.style.ramp;
  assert.equal(fill({ properties: { name: '马桥镇' } }), NODATA);
  assert.equal(fill({ properties: {} }), NODATA);
  state.selectedTown = '七宝镇';
  assert.equal(choroplethAccessor(state)(qibao)[3], 240);
});

test('vector tile layers carry the MVT loader, the API key and the tile hooks', () => {
  const state = loadedState();
  hooks.length = 0;
  const dots = layerProps(spec(state, 'dots'), state, env);
  assert.equal(dots['@@type'], 'MVTLayer');
  assert.deepEqual(dots.loaders, ['mvt-loader']);
  assert.deepEqual(dots.loadOptions, { core: { worker: false, fetch: { headers: {} } } });
  assert.equal(dots.onViewportLoad, 'dots');
  assert.deepEqual(hooks, ['dots']);
  state.apiKey = 'cim_key';
  const keyed = layerProps(spec(state, 'dots'), state, env);
  assert.deepEqual(keyed.loadOptions.core.fetch.headers, { 'X-API-Key': 'cim_key' });
  assert.equal(keyed.updateTriggers.getTileData, 'cim_key');
});

test('a layer with a height field is extruded by that field; the others are flat', () => {
  const config = pageConfig();
  config.layers.push({ id: 'blocks', title_zh: '建筑', title_en: 'Blocks', group: '三维', access: 'public',
    geometry: 'MultiPolygon', height_field: 'height_m', fields: [] });
  config.deck.layers.push({ '@@type': 'MVTLayer', id: 'blocks', visible: true, data: '/collections/blocks/tiles/x' });
  config.public_layers.push('blocks');
  const state = loadedState(config);
  const blocks = layerProps(spec(state, 'blocks'), state, env);
  assert.equal(blocks.extruded, true);
  assert.equal(blocks.getElevation({ properties: { height_m: 54.5 } }), 54.5);
  assert.equal(blocks.getElevation({ properties: {} }), 0);
  assert.equal(blocks.getElevation({ properties: { height_m: -3 } }), 0);
  assert.equal(layerProps(spec(state, 'dots'), state, env).extruded, undefined);
  assert.deepEqual(extrusionProps({ id: 'flat' }), {});
  const gap = { id: 'gap', style: { columns: { field: 'deficit', metres_per_unit: 2 } } };
  assert.deepEqual(extrusionProps(gap, false), {}, 'columns stand in the 3D view only');
  const columns = extrusionProps(gap, true);
  assert.equal(columns.extruded, true);
  assert.equal(columns.getElevation({ properties: { deficit: 30 } }), 60, 'field × metres per unit');
  assert.equal(columns.getElevation({ properties: { deficit: -4 } }), 0);
  assert.equal(columnsOpacity(gap, true), 1, 'opaque as the flat cells unless the layer says');
  const light = { id: 'gap', style: { columns: { field: 'deficit', metres_per_unit: 2, opacity: 0.4 } } };
  assert.equal(columnsOpacity(light, true), 0.4);
  assert.equal(columnsOpacity(light, false), 1, 'the flat cells of the 2D view keep their opacity');
  assert.equal(columnsOpacity({ id: 'blocks', height_field: 'h' }, true), 1);
  assert.equal(standsAsColumns(gap, true), true);
  assert.equal(standsAsColumns(gap, false), false, 'flat cells in 2D: a click on one shows the cell');
  assert.equal(standsAsColumns({ id: 'blocks', height_field: 'h', style: gap.style }, true), false);
  assert.equal(standsAsColumns(undefined, true), false);
});

test('hidden and locked tile layers are left out (deck.gl would still fetch their tiles)', () => {
  const state = loadedState();
  assert.equal(layerProps(spec(state, 'hidden'), state, env), null);
  state.visible.secret = true;
  assert.equal(layerProps(spec(state, 'secret'), state, env), null, 'a non-public layer needs a key');
  state.apiKey = 'k';
  assert.equal(layerProps(spec(state, 'secret'), state, env)['@@type'], 'MVTLayer');
});

test('the raster layer waits for its tile URL', () => {
  const state = loadedState();
  state.visible.density_raster = true;
  assert.equal(layerProps(spec(state, 'density_raster'), state, env), null);
  state.rasterUrl = '/rasters/density/tiles/WebMercatorQuad/{z}/{x}/{y}.png';
  const raster = layerProps(spec(state, 'density_raster'), state, env);
  assert.equal(raster.data, state.rasterUrl);
  assert.equal(raster.opacity, 0.6);
  assert.equal(typeof raster.getTileData, 'function');
  assert.equal(raster.renderSubLayers({ data: null }), null);
});

test('the export draws its inlined layers as GeoJSON and nothing else', () => {
  const dots = { type: 'FeatureCollection', features: [] };
  const state = loadedState(pageConfig({ inline: { layers: { dots } } }));
  const props = layerProps(spec(state, 'dots'), state, env);
  assert.equal(props['@@type'], 'GeoJsonLayer');
  assert.equal(props.data, dots);
  assert.equal(props.pointType, 'circle');
  assert.equal(layerProps(spec(state, 'hidden'), state, env), null);
  assert.equal(layerProps(spec(state, 'qu'), state, env)['@@type'], 'LineLayer');
});

test('deckLayerProps keeps the spec order and puts the search marker on top', () => {
  const state = loadedState();
  assert.deepEqual(deckLayerProps(state, env).map((p) => p.id), ['jiezhen', 'jiezhen__outline', 'dots', 'qu']);
  state.marker = { type: 'FeatureCollection', features: [] };
  assert.equal(deckLayerProps(state, env).at(-1).id, MARKER_ID);
});

test('pendingTileLayers: visible tile layers whose viewport has not loaded', () => {
  const state = loadedState();
  const metrics = { tilesLoaded: {} };
  assert.deepEqual(pendingTileLayers(state, metrics).map((s) => s.id), ['dots']);
  state.visible.density_raster = true;
  assert.deepEqual(pendingTileLayers(state, metrics).map((s) => s.id), ['dots'], 'the raster counts once it has a URL');
  state.rasterUrl = '/r/{z}/{x}/{y}.png';
  assert.deepEqual(pendingTileLayers(state, metrics).map((s) => s.id), ['density_raster', 'dots']);
  metrics.tilesLoaded = { dots: 1, density_raster: 2 };
  assert.deepEqual(pendingTileLayers(state, metrics), []);
  assert.deepEqual(pendingTileLayers(loadedState(pageConfig({ inline: { layers: {} } })), { tilesLoaded: {} }), []);
});

test('in the 3D view the visible vector layers come bundled from the multi-layer tiles, split by MVT layer', () => {
  const config = pageConfig();
  config.endpoints.tiles = '/tiles/WebMercatorQuad/{z}/{x}/{y}';
  config.deck.layers.unshift({ '@@type': 'MVTLayer', id: 'water', visible: true, data: '/collections/water/tiles/x',
    getFillColor: [1, 2, 3, 255], minZoom: 0 });
  config.layers.push({ id: 'water', title_zh: '水', title_en: 'Water', group: '底图', access: 'public',
    geometry: 'MultiPolygon', is_point: false, basemap: true, style: { fill: [1, 2, 3, 255] }, fields: [] });
  const state = loadedState(config);
  assert.equal(bundled(state), false, 'the 2D view asks each layer');
  state.view3d = true;
  assert.equal(bundled(state), true);
  hooks.length = 0;
  const props = deckLayerProps(state, env);
  const ids = props.map((p) => p.id);
  assert.deepEqual(ids, [`${BUNDLE_PREFIX}under`, 'jiezhen', 'jiezhen__outline', `${BUNDLE_PREFIX}points`, 'qu']);
  const [under, , , over] = props;
  assert.deepEqual(under.members, ['water'], 'under the choropleth: the basemap');
  assert.deepEqual(over.members, ['dots'], 'over it: the data (hidden and locked layers left out)');
  assert.equal(over.data, '/tiles/WebMercatorQuad/{z}/{x}/{y}?collections=dots');
  assert.equal(over.binary, false);
  // every tile of a pitched view is asked at once; areas come one zoom coarser, points at the view's zoom
  assert.ok(BUNDLE_MAX_REQUESTS >= 24 && under.maxRequests === BUNDLE_MAX_REQUESTS && over.maxRequests === BUNDLE_MAX_REQUESTS);
  assert.equal(under.zoomOffset, SHAPES_ZOOM_OFFSET);
  assert.ok(SHAPES_ZOOM_OFFSET < 0);
  assert.equal(over.zoomOffset, 0, 'point tiles below z14 are thinned: the points keep the view zoom');
  assert.deepEqual(hooks, [['water'], ['dots']], 'the tile hooks record every member');
  assert.deepEqual(drawnLayerIds(props), ['water', 'jiezhen', 'jiezhen__outline', 'dots', 'qu']);
  const made = [];
  const classes = { GeoJsonLayer: function GeoJsonLayer(...args) { made.push(Object.assign({}, ...args)); } };
  const sub = bundleProps(state, Object.assign({}, env, { classes }), [spec(state, 'dots')], 'x')
    .renderSubLayers({ id: 'b', data: [{ properties: { layerName: 'dots', count: 4 } }, { properties: { layerName: 'zz' } }] });
  assert.equal(sub.length, 1);
  assert.equal(made[0].id, 'b-dots');
  assert.equal(made[0].data.length, 1, 'a member draws the features of its own MVT layer only');
  assert.deepEqual(made[0].parameters, { depthTest: false }, 'points stand above the buildings in 3D');
  assert.equal(made[0].stroked, false, 'a layer without outlines draws none');
  assert.equal(pickedLayerId(`${BUNDLE_PREFIX}over`, { properties: { layerName: 'dots' } }), 'dots');
  assert.equal(pickedLayerId('dots', { properties: { layerName: 'zz' } }), 'dots');
  assert.deepEqual(extrudedLayerIds([{ extrudedMembers: ['b'] }, { id: 'c', extruded: true }, { id: 'd' }]), ['b', 'c']);
  state.at = '2022-12-31';
  assert.equal(bundled(state), false, 'a day of the time slider asks each layer as of then');
});

test('in 3D the areas and lines over the choropleth and the points come in two bundles, in the deck order', () => {
  const config = pageConfig();
  config.endpoints.tiles = '/tiles/WebMercatorQuad/{z}/{x}/{y}';
  // buildings (extruded areas) over the choropleth, before the points as in the deck spec
  config.deck.layers.splice(2, 0, { '@@type': 'MVTLayer', id: 'blocks', visible: true, data: '/collections/blocks/tiles/x',
    stroked: true, getLineWidth: 1, getLineColor: [150, 150, 150, 200] });
  config.layers.push({ id: 'blocks', title_zh: '建筑', title_en: 'Blocks', group: '三维', access: 'public',
    geometry: 'MultiPolygon', is_point: false, height_field: 'height_m', style: { fill: [215, 215, 210, 235] }, fields: [] });
  const state = loadedState(config);
  state.view3d = true;
  const props = deckLayerProps(state, env);
  assert.deepEqual(props.map((p) => p.id), ['jiezhen', 'jiezhen__outline', `${BUNDLE_PREFIX}over`, `${BUNDLE_PREFIX}points`, 'qu']);
  const [, , shapes, points] = props;
  assert.deepEqual(shapes.members, ['blocks']);
  assert.deepEqual(points.members, ['dots']);
  assert.deepEqual(shapes.extrudedMembers, ['blocks']);
  assert.equal(shapes.zoomOffset, SHAPES_ZOOM_OFFSET, 'areas one zoom coarser: a quarter of the tiles');
  assert.equal(points.zoomOffset, 0);
  assert.deepEqual(drawnLayerIds(props), ['jiezhen', 'jiezhen__outline', 'blocks', 'dots', 'qu']);
  const made = [];
  const classes = { GeoJsonLayer: function GeoJsonLayer(...args) { made.push(Object.assign({}, ...args)); } };
  bundleProps(state, Object.assign({}, env, { classes }), [spec(state, 'blocks')], 'x')
    .renderSubLayers({ id: 'b', data: [{ properties: { layerName: 'blocks', height_m: 30 } }] });
  assert.equal(made[0].extruded, true);
  assert.equal(made[0].stroked, true, 'visible outlines are kept');
});

test('an outline is drawn only with a width and a colour that shows', () => {
  assert.equal(visibleOutline({ stroked: true, getLineWidth: 1, getLineColor: [1, 2, 3, 200] }), true);
  assert.equal(visibleOutline({ stroked: true, getLineWidth: 1 }), true);
  assert.equal(visibleOutline({ stroked: true, getLineWidth: 0, getLineColor: [1, 2, 3, 200] }), false);
  assert.equal(visibleOutline({ stroked: true, getLineWidth: 2, getLineColor: [0, 0, 0, 0] }), false);
  assert.equal(visibleOutline({ stroked: false, getLineWidth: 2, getLineColor: [1, 2, 3, 255] }), false);
});

test('a bundle redrawn with nothing changed keeps its props (deck.gl then keeps every tile\'s sub-layers)', () => {
  const config = pageConfig();
  config.endpoints.tiles = '/tiles/WebMercatorQuad/{z}/{x}/{y}';
  const state = loadedState(config);
  state.view3d = true;
  const first = deckLayerProps(state, env).find((p) => p.id === `${BUNDLE_PREFIX}points`);
  const again = deckLayerProps(state, env).find((p) => p.id === `${BUNDLE_PREFIX}points`);
  assert.equal(again, first, 'the same props object: no new members array, load options or sub-layer data');
  state.opacity.dots = 0.5;
  const dimmed = deckLayerProps(state, env).find((p) => p.id === `${BUNDLE_PREFIX}points`);
  assert.notEqual(dimmed, first, 'a member\'s opacity changes the bundle');
  state.apiKey = 'k';
  const keyed = deckLayerProps(state, env).find((p) => p.id === `${BUNDLE_PREFIX}points`);
  assert.notEqual(keyed, dimmed);
  assert.deepEqual(keyed.loadOptions.core.fetch.headers, { 'X-API-Key': 'k' });
});

test('members differing only in their features\' colours and radii are drawn by one layer a tile, in member order', () => {
  const config = pageConfig();
  config.endpoints.tiles = '/tiles/WebMercatorQuad/{z}/{x}/{y}';
  const dots = config.deck.layers.find((s) => s.id === 'dots');
  Object.assign(dots, { getFillColor: [220, 50, 50, 200], getPointRadius: 3 });
  config.deck.layers.splice(3, 0, { '@@type': 'MVTLayer', id: 'pins', visible: true, data: '/collections/pins/tiles/x',
    getFillColor: [0, 90, 200, 255], getPointRadius: 5 });
  config.layers.push({ id: 'pins', title_zh: '钉', title_en: 'Pins', group: '感知设施', access: 'public', geometry: 'Point',
    is_point: true, style: { fill: [0, 90, 200, 255], radius: 5 }, fields: [] });
  const state = loadedState(config);
  state.view3d = true;
  const points = deckLayerProps(state, env).find((p) => p.id === `${BUNDLE_PREFIX}points`);
  assert.deepEqual(points.members, ['dots', 'pins']);
  const made = [];
  const classes = { GeoJsonLayer: function GeoJsonLayer(...args) { made.push(Object.assign({}, ...args)); } };
  const specs = [spec(state, 'dots'), spec(state, 'pins')];
  const pin = { properties: { layerName: 'pins', count: 1 } };
  const dot = { properties: { layerName: 'dots', count: 64 } };
  const sub = bundleProps(state, Object.assign({}, env, { classes }), specs, 'm').renderSubLayers({ id: 'b', data: [pin, dot] });
  assert.equal(sub.length, 1, 'one draw for both point layers');
  assert.equal(made[0].id, 'b-dots+pins');
  assert.deepEqual(made[0].data, [dot, pin], 'drawn in the deck spec order of the members');
  assert.deepEqual(made[0].getFillColor(dot), [220, 50, 50, 200]);
  assert.deepEqual(made[0].getFillColor(pin), [0, 90, 200, 255]);
  assert.equal(made[0].getPointRadius(pin), 5, 'each member\'s own radius');
  assert.equal(made[0].getPointRadius(dot), 8, 'and its counted cells grown as before');
  assert.deepEqual(made[0].parameters, { depthTest: false });
  // a member whose layer-level props differ (here its opacity) is drawn alone
  state.opacity.pins = 0.5;
  made.length = 0;
  const apart = bundleProps(state, Object.assign({}, env, { classes }), specs, 'm').renderSubLayers({ id: 'b', data: [pin, dot] });
  assert.deepEqual(apart.length, 2);
  assert.deepEqual(made.map((m) => [m.id, m.data.length, m.opacity]), [['b-dots', 1, 1], ['b-pins', 1, 0.5]]);
  // a live layer (sensors restyled by status, live.js finds its sub-layer by member) is drawn alone too
  state.opacity.pins = 1;
  state.layers.pins.live = true;
  made.length = 0;
  bundleProps(state, Object.assign({}, env, { classes }), specs, 'm').renderSubLayers({ id: 'b', data: [pin, dot] });
  assert.deepEqual(made.map((m) => m.id), ['b-dots', 'b-pins']);
});
