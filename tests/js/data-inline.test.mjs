import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  authHeaders, featureUrl, getJSON, itemsUrl, rasterLegendUrl, rasterTemplate, searchUrl,
} from '../../cim_service/static/js/data.js';
import {
  EMPTY_COLLECTION, inlineBase, inlineLayer, inlineLayerProps, searchInline,
} from '../../cim_service/static/js/inline.js';
import { pageConfig } from './fixtures.mjs';

test('URLs of the features API and the search', () => {
  const config = pageConfig();
  assert.equal(itemsUrl(config, 'jiezhen'), '/collections/jiezhen/items?limit=1000');
  assert.equal(featureUrl(config, 'dots', 'a/b 1'), '/collections/dots/items/a%2Fb%201');
  assert.equal(searchUrl(config, '莲花南路1500弄 & 1'), `/map/search?q=${encodeURIComponent('莲花南路1500弄 & 1')}`);
});

test('authHeaders sends the key as X-API-Key, nothing without one', () => {
  assert.deepEqual(authHeaders('cim_abc'), { 'X-API-Key': 'cim_abc' });
  assert.deepEqual(authHeaders(''), {});
});

test('rasterTemplate finds the raster\'s PNG tiles and makes them origin-relative', () => {
  const listing = {
    rasters: [
      { id: 'other', links: [{ type: 'image/png', href: 'http://127.0.0.1:8000/rasters/other/{z}.png' }] },
      { id: 'density', links: [
        { type: 'application/json', href: 'http://127.0.0.1:8000/rasters/density' },
        { type: 'image/png', href: 'http://127.0.0.1:8000/rasters/density/tiles/WebMercatorQuad/{z}/{x}/{y}.png' },
      ] },
    ],
  };
  const raster = { id: 'density_raster' };
  assert.equal(rasterTemplate(listing, raster), '/rasters/density/tiles/WebMercatorQuad/{z}/{x}/{y}.png');
  assert.equal(rasterTemplate({ rasters: [{ id: 'density', links: [] }] }, raster), null);
  assert.equal(rasterTemplate({}, raster), null);
});

test('getJSON uses an early request once, and never with a key', async () => {
  const early = Promise.resolve({ early: true });
  const url = 'data:application/json,{"asked":true}';
  const prefetch = { [url]: early };
  assert.deepEqual(await getJSON(url, 'cim_key', prefetch), { asked: true }, 'a keyed request asks again');
  assert.ok(url in prefetch);
  assert.deepEqual(await getJSON(url, '', prefetch), { early: true });
  assert.ok(!(url in prefetch), 'used once');
  assert.deepEqual(await getJSON(url, '', prefetch), { asked: true });
  await assert.rejects(getJSON('data:application/json,{', '', null));
});

const point = (props, x = 121.4, y = 31.1) => ({ type: 'Feature', properties: props, geometry: { type: 'Point', coordinates: [x, y] } });

test('inlineBase reads the base collections under their layer ids', () => {
  const qu = { type: 'FeatureCollection', features: [point({ name: '闵行区' })] };
  const inline = { qu, indicators: [{ id: 'x' }], layers: {} };
  assert.equal(inlineBase(inline, 'qu'), qu);
  assert.equal(inlineBase(inline, 'jiezhen'), EMPTY_COLLECTION);
  assert.equal(inlineBase(inline, 'indicators'), EMPTY_COLLECTION, 'only feature collections');
  assert.equal(inlineBase(null, 'qu'), EMPTY_COLLECTION);
});

test('inlineLayer and inlineLayerProps draw an exported layer with its tile layer\'s style', () => {
  const dots = { type: 'FeatureCollection', features: [] };
  assert.equal(inlineLayer({ layers: { dots } }, 'dots'), dots);
  assert.equal(inlineLayer({ layers: {} }, 'dots'), null);
  const props = inlineLayerProps({ '@@type': 'MVTLayer', id: 'dots', data: '/tiles', minZoom: 10, maxZoom: 16,
    getFillColor: [1, 2, 3, 4], tileSize: 512 }, dots);
  assert.deepEqual(props, { '@@type': 'GeoJsonLayer', pointType: 'circle', data: dots, id: 'dots', getFillColor: [1, 2, 3, 4] });
});

test('searchInline finds exported points by their attribute text', () => {
  const inline = {
    layers: {
      addresses: { features: [point({ full_address: '上海市闵行区莲花南路1500弄', road: '莲花南路' }, 121.41, 31.12)] },
      stations: { features: [point({ name: '莲花路站' }), { properties: { name: '莲花' }, geometry: { type: 'Polygon', coordinates: [] } }] },
    },
  };
  assert.deepEqual(searchInline(inline, '莲花南路'), [{ label: '上海市闵行区莲花南路1500弄', longitude: 121.41, latitude: 31.12 }]);
  assert.deepEqual(searchInline(inline, '莲花').map((h) => h.label), ['上海市闵行区莲花南路1500弄', '莲花路站']);
  assert.equal(searchInline(inline, '莲花', 1).length, 1);
  assert.deepEqual(searchInline(inline, '七宝'), []);
  assert.deepEqual(searchInline({}, 'x'), []);
});

test('a raster\'s value legend is found beside its PNG tiles', () => {
  assert.equal(rasterLegendUrl('/rasters/camera_density/tiles/WebMercatorQuad/{z}/{x}/{y}.png'),
    '/rasters/camera_density/legend');
  assert.equal(rasterLegendUrl(null), null);
});
