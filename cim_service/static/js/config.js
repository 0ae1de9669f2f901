/* Reading the page configuration (window.CIM_CONFIG, built by webmap/page.py): layers, roles, deck spec.
 * Layer ids come only from here: the page names roles (the parts a layer plays), never layers. Pure: no DOM. */

/** The roles the page draws itself (from GeoJSON items, not tiles): role names of the catalog. */
export const ROLE = {
  district: 'district_outline',
  towns: 'town_boundaries',
};

/** Return the id of the layer playing `role`, or null when no layer the caller may read plays it. */
export function roleLayer(config, role) {
  return (config.roles && config.roles[role]) || null;
}

/** Return the ids of the base layers (district outline, town boundaries) the configuration has. */
export function baseLayerIds(config) {
  return Object.values(ROLE).map((role) => roleLayer(config, role)).filter(Boolean);
}

/** Return the layer descriptions keyed by id, the camera-density raster included. */
export function layerIndex(config) {
  const index = Object.fromEntries(config.layers.map((l) => [l.id, l]));
  if (config.raster) {
    index[config.raster.id] = Object.assign({ access: 'public', style: { fill: [250, 160, 40, 200] } }, config.raster);
  }
  return index;
}

/** Return whether a deck layer spec draws tiles from the service (vector or raster). */
export function isTileLayer(spec) {
  return spec['@@type'] === 'MVTLayer' || spec['@@type'] === 'TileLayer';
}

/** Return whether a deck layer spec is the raster tile layer. */
export function isRasterLayer(spec) {
  return spec['@@type'] === 'TileLayer';
}

/** Add the declared visibility and opacity of every deck layer not yet in `visible` / `opacity`. */
export function addLayerDefaults(deckLayers, visible, opacity) {
  for (const spec of deckLayers) {
    if (!(spec.id in visible)) {
      visible[spec.id] = spec.visible !== false;
      opacity[spec.id] = typeof spec.opacity === 'number' ? spec.opacity : 1;
    }
  }
}
