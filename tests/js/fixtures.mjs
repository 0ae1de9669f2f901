// Small page configurations shaped like webmap/page.py build_page_config's, for the module tests. The layer
// ids are deliberately not the catalog's: the modules must find every layer through config.roles.

export function pageConfig({ inline = null, roles = { district_outline: 'qu', town_boundaries: 'jiezhen' } } = {}) {
  const layers = [
    { id: 'qu', title_zh: '区界', title_en: 'District', group: '基础', access: 'public', geometry: 'MultiPolygon',
      is_point: false, label_field: 'name', style: { fill: [0, 0, 0, 0], line: [40, 40, 40, 255] }, fields: [] },
    { id: 'jiezhen', title_zh: '街镇', title_en: 'Towns', group: '基础', access: 'public', geometry: 'MultiPolygon',
      is_point: false, label_field: 'name', style: { fill: [220, 220, 220, 60], line: [90, 90, 90, 255] },
      fields: [{ name: 'name', title_zh: '街镇名称', title_en: 'Name' }] },
    { id: 'dots', title_zh: '点', title_en: 'Dots', group: '感知设施', access: 'public', geometry: 'Point',
      is_point: true, label_field: null, style: { fill: [220, 50, 50, 200], line: [255, 255, 255, 200] }, fields: [] },
    { id: 'secret', title_zh: '内部', title_en: 'Internal', group: '一标多实', access: 'internal', geometry: 'Point',
      is_point: true, label_field: null, style: { fill: [0, 150, 136, 170], line: [255, 255, 255, 200] }, fields: [] },
  ];
  const deck = {
    layers: [
      { '@@type': 'GeoJsonLayer', id: 'jiezhen', visible: true, getLineColor: [90, 90, 90, 255], getLineWidth: 1 },
      { '@@type': 'TileLayer', id: 'density_raster', visible: false, opacity: 0.6 },
      { '@@type': 'MVTLayer', id: 'dots', visible: true, data: '/collections/dots/tiles/WebMercatorQuad/{z}/{x}/{y}' },
      { '@@type': 'MVTLayer', id: 'hidden', visible: false, data: '/collections/hidden/tiles/WebMercatorQuad/{z}/{x}/{y}' },
      { '@@type': 'MVTLayer', id: 'secret', visible: false, data: '/collections/secret/tiles/WebMercatorQuad/{z}/{x}/{y}' },
      { '@@type': 'GeoJsonLayer', id: 'qu', visible: true, getLineColor: [40, 40, 40, 255], getLineWidth: 2,
        lineWidthMinPixels: 2 },
    ],
    views: [{ '@@type': 'MapView', controller: true }],
  };
  return {
    title_zh: '地图', title_en: 'Map',
    district_bbox: [121.235, 30.977, 121.572, 31.262],
    layers,
    roles,
    groups: { 基础: { title_zh: '基础', title_en: 'Base' }, 感知设施: { title_zh: '感知设施', title_en: 'Sensing' } },
    public_layers: ['qu', 'jiezhen', 'dots'],
    raster: { id: 'density_raster', title_zh: '密度', title_en: 'Density', group: '指标缺口', visible: false, opacity: 0.6 },
    deck,
    endpoints: {
      items: '/collections/{id}/items', item: '/collections/{id}/items/{fid}', indicators: '/indicators',
      search: '/map/search', config: '/map/config', rasters: '/rasters',
    },
    inline,
  };
}

export const square = (x, y, d = 1) => [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]];

export function townCollection() {
  return {
    type: 'FeatureCollection',
    features: [
      { type: 'Feature', properties: { name: '古美路街道' }, geometry: { type: 'Polygon', coordinates: [square(121.3, 31.1, 0.1)] } },
      { type: 'Feature', properties: { name: '七宝镇' }, geometry: { type: 'MultiPolygon', coordinates: [[square(121.4, 31.1, 0.05)]] } },
    ],
  };
}

export function indicator() {
  return {
    id: 'camera_density', title_zh: '视频监控密度', title_en: 'Camera density', unit: '个/km²', value: 40, target: 180,
    status: 'not_met',
    towns: [
      { town: '古美街道', value: 200, target: 180, status: 'met' },
      { town: '七宝镇', value: 20, target: 180, status: 'not_met' },
      { town: '马桥镇', value: null, target: 180, status: 'no_data' },
    ],
  };
}
