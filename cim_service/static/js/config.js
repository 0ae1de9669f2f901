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

/** Return the ids of the basemap layers, the extruded ones (a height field) and those standing as columns in 3D
 * (style.columns: gap layers): what the 3D view shows. */
export function contextLayerIds(config) {
  return config.layers.filter((l) => l.basemap || l.height_field || (l.style && l.style.columns)).map((l) => l.id);
}

/** Return whether the layer `meta` can be read as of the end of `day` (Asia/Shanghai): it keeps history and
 * that history had begun by then (the service refuses an earlier `at=`). */
export function readableAt(meta, day) {
  if (!meta || !meta.history || !meta.history_begins) return false;
  return Date.parse(meta.history_begins) <= Date.parse(`${day}T23:59:59+08:00`);
}

/** Return `url` as of `day` (`at=`) for a layer readable then; unchanged without a day, or for a layer without
 * history then (it is drawn as it is now). */
export function atUrl(url, meta, day) {
  if (!day || !readableAt(meta, day)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}at=${encodeURIComponent(day)}`;
}

/** Return the days of the time slider: the 31st of December of each year of `config.time_years`. */
export function timeDays(config) {
  const [first, last] = config.time_years || [];
  const days = [];
  for (let y = first; y <= last; y += 1) days.push(`${y}-12-31`);
  return days;
}
