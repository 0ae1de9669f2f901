/* deck.gl layer props from the deck spec and the state: the town choropleth and the boundary outlines (by role),
 * vector tile layers (with the API key), the raster tiles, the export's inlined layers, the search marker.
 * Props carry their class in '@@type' (deck.js makes the layers). No DOM. */
import { providerTiles, providerUrl } from '#cim/basemap.js';
import { choroplethScale, townFill } from '#cim/colour.js';
import { atUrl, isRasterLayer, isTileLayer, layerIndex, ROLE, roleLayer } from '#cim/config.js';
import { authHeaders, fetchTileImage } from '#cim/data.js';
import { ringSegments } from '#cim/geometry.js';
import { lookupTown, townValues } from '#cim/indicators.js';
import { inlineLayer, inlineLayerProps } from '#cim/inline.js';
import { allowed, currentIndicator } from '#cim/state.js';

export const MARKER_ID = '__search_marker';
export const OUTLINE_SUFFIX = '__outline';

/** Return the choropleth fill accessor of the selected indicator (town features matched by name). */
export function choroplethAccessor(state) {
  const ind = currentIndicator(state);
  const rows = townValues(ind);
  const scale = townScale(state, ind);
  return (feature) => townFill(lookupTown(rows, feature.properties && feature.properties.name), scale, state.selectedTown);
}

/** Return the choropleth scale of indicator `ind` with the town layer's ramps (`style.ramp` of the catalog). */
export function townScale(state, ind) {
  const meta = state.layers[roleLayer(state.config, ROLE.towns)];
  return choroplethScale(ind, meta && meta.style && meta.style.ramp);
}

/** Return LineLayer props drawing the ring edges of `collection` with the line style of `spec`. */
export function outlineProps(spec, id, common, collection) {
  return Object.assign({
    '@@type': 'LineLayer', id, data: ringSegments(collection), pickable: false,
    getSourcePosition: (s) => s[0], getTargetPosition: (s) => s[1], getColor: spec.getLineColor,
    getWidth: Math.max(spec.getLineWidth || 1, spec.lineWidthMinPixels || 0), widthUnits: 'pixels',
  }, common);
}

function rasterProps(spec, state, env) {
  return Object.assign({}, spec, env.tileHooks(spec.id), {
    data: state.rasterUrl,
    getTileData: ({ url, signal }) => fetchTileImage(url, state.apiKey, signal),
    renderSubLayers: (props) => {
      if (!props.data) return null;
      const { west, south, east, north } = props.tile.bbox;
      return new env.classes.BitmapLayer(props, { data: null, image: props.data, bounds: [west, south, east, north] });
    },
  });
}

/** Return the extrusion props of a layer that declares a height field (its tiles carry the height), or, in the
 * 3D view (`view3d`), of one whose polygons stand as columns of a number field (style.columns), else {}. */
export function extrusionProps(meta, view3d = false) {
  const columns = meta && meta.style && meta.style.columns;
  if (!meta || (!meta.height_field && !(view3d && columns))) return {};
  const [field, scale] = meta.height_field ? [meta.height_field, 1] : [columns.field, columns.metres_per_unit];
  return {
    extruded: true, wireframe: false,
    getElevation: (f) => Math.max(0, scale * (Number(f.properties && f.properties[field]) || 0)),
    material: { ambient: 0.5, diffuse: 0.55, shininess: 8, specularColor: [40, 40, 40] },
  };
}

/** Return whether a layer stands as columns (its style's `columns`: an area per value, extruded by a field) in
 * the view (only the 3D view raises them; a layer with a height field is extruded by that instead). */
export function standsAsColumns(meta, view3d = false) {
  return Boolean(view3d && meta && meta.style && meta.style.columns && !meta.height_field);
}

/** Return the opacity factor of a layer's features in the view: its columns' (style.columns.opacity) in the 3D
 * view, else 1. */
export function columnsOpacity(meta, view3d = false) {
  const opacity = standsAsColumns(meta, view3d) ? meta.style.columns.opacity : undefined;
  return typeof opacity === 'number' ? opacity : 1;
}

/** Radius (px) of a thinned tile's cell holding `count` points at which the symbols stop growing, and the
 * count that reaches it (a cell is 8 px wide: larger symbols would hide their neighbours). */
export const AGGREGATE_MAX_PX = 8;
export const AGGREGATE_FULL_COUNT = 64;

/**
 * Return the radius (px) of a point feature standing for `count` points (below the zoom points are drawn from,
 * a tile's feature is one grid cell with the count of its points; from it on, count is 1): the symbol's area
 * grows with the count (proportional symbols), never below the layer's own radius nor above AGGREGATE_MAX_PX.
 */
export function aggregateRadius(count, radius) {
  const n = Math.max(1, Math.min(AGGREGATE_FULL_COUNT, Number(count) || 1));
  return Math.max(radius, AGGREGATE_MAX_PX * Math.sqrt(n / AGGREGATE_FULL_COUNT));
}

/** Return the proportional-symbol props of a point layer (radius from each feature's `count`), else {}. */
export function aggregateProps(meta, spec) {
  if (!meta || !meta.is_point) return {};
  const radius = typeof spec.getPointRadius === 'number' ? spec.getPointRadius : (meta.style && meta.style.radius) || 3;
  return { getPointRadius: (f) => aggregateRadius(f.properties && f.properties.count, radius), pointRadiusUnits: 'pixels' };
}

function mvtProps(spec, state, env) {
  const meta = layerIndex(state.config)[spec.id];
  return Object.assign({}, spec, env.tileHooks(spec.id), extrusionProps(meta, state.view3d),
    aggregateProps(meta, spec), {
    data: atUrl(spec.data, meta, state.at),
    loaders: env.loaders,
    loadOptions: { core: { worker: false, fetch: { headers: authHeaders(state.apiKey) } } },
    updateTriggers: { getTileData: state.apiKey },
  });
}

/**
 * Return the props of one deck spec layer (a list for the towns: fill and outline), or null to leave it out.
 *
 * `env` gives `tileHooks(id)` (metrics), `classes` (deck.gl layer classes) and `loaders` (MVT).
 */
export function layerProps(spec, state, env) {
  const id = spec.id;
  const common = { visible: state.visible[id] && allowed(state, id),
    opacity: state.opacity[id] * columnsOpacity(state.layers[id], state.view3d) };
  if (id === roleLayer(state.config, ROLE.towns)) {
    const towns = state.base[id];
    // in the 3D view the choropleth is a wash over the basemap, the buildings standing out of it
    const fill = Object.assign({}, spec, common, state.view3d ? { opacity: common.opacity * 0.3 } : {}, {
      data: towns || [], stroked: false, getFillColor: choroplethAccessor(state),
      updateTriggers: { getFillColor: [state.indicatorId, state.selectedTown] },
    });
    return [fill, outlineProps(spec, `${id}${OUTLINE_SUFFIX}`, common, towns)];
  }
  if (id === roleLayer(state.config, ROLE.district)) return outlineProps(spec, id, common, state.base[id]);
  const inline = state.config.inline;
  if (inline) {
    const collection = inlineLayer(inline, id);
    return collection ? Object.assign(inlineLayerProps(spec, collection), extrusionProps(state.layers[id], state.view3d), common)
      : null;
  }
  if (!common.visible) return null; // hidden tile layers would still fetch tiles: leave them out
  if (isRasterLayer(spec)) return state.rasterUrl ? Object.assign(rasterProps(spec, state, env), common) : null;
  return Object.assign(mvtProps(spec, state, env), common);
}

/** Return the props of the search result marker, or null without one. */
export function markerProps(state) {
  if (!state.marker) return null;
  return {
    '@@type': 'GeoJsonLayer', id: MARKER_ID, data: state.marker, pointType: 'circle',
    getFillColor: [255, 193, 7, 230], getLineColor: [13, 43, 78, 255], getPointRadius: 9,
    pointRadiusUnits: 'pixels', lineWidthUnits: 'pixels', getLineWidth: 3, stroked: true,
  };
}

/** Provider tiles kept (their images, by URL): a GCJ-02 provider's tile covers parts of up to four map tiles. */
const BASEMAP_CACHE_SIZE = 256;
const basemapImages = new Map();

function basemapImage(url, signal) {
  if (!basemapImages.has(url)) {
    const image = fetchTileImage(url, '', signal); // never our API key to another host
    image.catch(() => basemapImages.delete(url));
    basemapImages.set(url, image);
    if (basemapImages.size > BASEMAP_CACHE_SIZE) basemapImages.delete(basemapImages.keys().next().value);
  }
  return basemapImages.get(url);
}

/** Return the props of the external basemap's tile layer (under everything), or null without one. */
export function basemapProps(state, env) {
  const basemap = state.config.basemap;
  if (!basemap || state.config.inline || state.visible[basemap.id] === false) return null;
  return Object.assign({}, env.tileHooks(basemap.id), {
    '@@type': 'TileLayer', id: basemap.id, data: basemap.url, tileSize: 256, minZoom: 0, maxZoom: 18,
    pickable: false,
    getTileData: ({ index }) => Promise.all(providerTiles(index, basemap.crs).map((tile) =>
      basemapImage(providerUrl(basemap.url, tile)).then((image) => ({ image, corners: tile.corners })))),
    renderSubLayers: (props) => (props.data || []).filter((d) => d.image).map((d, i) =>
      new env.classes.BitmapLayer(props, { id: `${props.id}-${i}`, data: null, image: d.image, bounds: d.corners })),
  });
}

/** Id prefix of the layers drawing several catalog layers from the multi-layer tiles (the 3D view). */
export const BUNDLE_PREFIX = '__tiles_';
/** Props of a tile layer spec that belong to the tile layer, not to the features drawn from its tiles. */
const TILE_LAYER_PROPS = ['@@type', 'id', 'data', 'visible', 'minZoom', 'maxZoom', 'maxRequests', 'autoHighlight',
  'highlightColor', 'uniqueIdProperty', 'loadOptions', 'loaders', 'onViewportLoad', 'onTileError', 'updateTriggers'];

/** Return whether the tiles of the visible vector layers come bundled from the multi-layer endpoint: in the 3D
 * view of the live page, at present (a day of the time slider asks each layer as of then). */
export function bundled(state) {
  return Boolean(state.view3d && !state.config.inline && !state.at && state.config.endpoints.tiles);
}

/** Return whether a layer spec draws outlines one can see (a width and a colour that is not transparent). */
export function visibleOutline(spec) {
  const colour = spec.getLineColor;
  const transparent = Array.isArray(colour) && colour.length === 4 && colour[3] === 0;
  return Boolean(spec.stroked) && (spec.getLineWidth || 0) > 0 && !transparent;
}

function memberProps(spec, meta, state) {
  const out = {};
  for (const [k, v] of Object.entries(spec)) if (!TILE_LAYER_PROPS.includes(k)) out[k] = v;
  // in 3D the points (sensors, alerts) stand above the buildings: drawn over them, not hidden behind them
  const above = meta && meta.is_point ? { parameters: { depthTest: false } } : {};
  // outlines of width 0 or transparent (the basemap's areas) would still cost a draw per tile
  return Object.assign(out, extrusionProps(meta, state.view3d), aggregateProps(meta, spec), above,
    { opacity: state.opacity[spec.id] * columnsOpacity(meta, state.view3d), pointType: 'circle',
      stroked: visibleOutline(spec) });
}

/** Concurrent tile requests of a bundle: more than the tiles of a pitched 1920×1080 view (24 at z14), so that
 * every tile of the view is asked at once (a request held back waits for the next frame, seconds in software
 * WebGL while the first frames compile their pipelines). */
export const BUNDLE_MAX_REQUESTS = 64;
/** Zoom offset of a bundle of areas and lines: its tiles are one zoom level coarser than the view's (z13 at
 * the 3D view's z14.2), a quarter as many tiles, requests and draws, simplified to a pixel of the coarser tile
 * (about 1.2 m at z13). Point layers keep the view's zoom (below z14 their tiles are thinned to counted cells). */
export const SHAPES_ZOOM_OFFSET = -1;

/**
 * Return the props of one MVTLayer drawing the catalog layers `specs` from the multi-layer tiles
 * (/tiles/WebMercatorQuad/{z}/{x}/{y}?collections=…): one request per tile for all of them, the features split by
 * their MVT layer (`layerName`) into a GeoJsonLayer each, with that layer's style.
 */
export function bundleProps(state, env, specs, key) {
  const ids = specs.map((s) => s.id);
  const inputs = [env, state.config.endpoints.tiles, state.apiKey, state.view3d, ...specs,
    ...ids.map((id) => state.opacity[id])];
  const kept = keptBundles.get(state) || new Map();
  keptBundles.set(state, kept);
  const last = kept.get(key);
  if (last && last.inputs.length === inputs.length && last.inputs.every((v, i) => v === inputs[i])) return last.props;
  const props = makeBundleProps(state, env, specs, key, ids);
  kept.set(key, { inputs, props });
  return props;
}

/** The props last made of each bundle (by state, then bundle key), with what they were made of: the map redraws
 * on every label placement (every 150 ms while the camera moves), and new props (a new members array, new load
 * options) would make deck.gl build every tile's sub-layers again, their data split anew, every building
 * tessellated again. Props that are the same objects change nothing. */
const keptBundles = new WeakMap();

function makeBundleProps(state, env, specs, key, ids) {
  const metas = layerIndex(state.config);
  const hooks = env.tileHooks(ids);
  const drawn = drawnMembers(specs, metas, state);
  return Object.assign({}, hooks, {
    '@@type': 'MVTLayer', id: `${BUNDLE_PREFIX}${key}`, members: ids,
    extrudedMembers: ids.filter((id) => extrusionProps(metas[id], state.view3d).extruded),
    data: `${state.config.endpoints.tiles}?collections=${ids.map(encodeURIComponent).join(',')}`,
    binary: false, pickable: true, autoHighlight: false,
    minZoom: Math.min(...specs.map((s) => s.minZoom || 0)), maxZoom: Math.max(...specs.map((s) => s.maxZoom || 16)),
    maxRequests: BUNDLE_MAX_REQUESTS,
    zoomOffset: specs.some((s) => metas[s.id] && metas[s.id].is_point) ? 0 : SHAPES_ZOOM_OFFSET,
    loaders: env.loaders,
    loadOptions: { core: { worker: false, fetch: { headers: authHeaders(state.apiKey) } } },
    updateTriggers: { getTileData: state.apiKey },
    renderSubLayers: (props) => {
      const byLayer = {};
      for (const f of props.data || []) {
        const name = f.properties && f.properties.layerName;
        (byLayer[name] = byLayer[name] || []).push(f);
      }
      return drawn.filter((g) => g.ids.some((id) => byLayer[id])).map((g) => new env.classes.GeoJsonLayer(props,
        g.props, { id: `${props.id}-${g.ids.join('+')}`, data: [].concat(...g.ids.map((id) => byLayer[id] || [])) }));
    },
  });
}

/** Props of a member's features that may differ feature by feature (deck.gl accessors): members that differ only
 * in these are drawn by one layer per tile. */
const FEATURE_PROPS = ['getFillColor', 'getLineColor', 'getLineWidth', 'getPointRadius', 'getElevation'];

function layerLevelKey(props, meta) {
  if (meta && meta.live) return null; // the live page restyles its sensors' sub-layers by member: drawn alone
  const rest = Object.entries(props).filter(([k]) => !FEATURE_PROPS.includes(k));
  if (rest.some(([, v]) => typeof v === 'function')) return null; // not comparable: drawn alone
  return JSON.stringify(rest.sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Return the layers a bundle draws of each tile, in drawing order: [{ids, props}], the members (`ids`, in the
 * deck spec's order) with their GeoJsonLayer props. Neighbouring members whose props differ only in their
 * features' colours, widths, radii and heights (FEATURE_PROPS: e.g. the point layers, or the basemap's areas) are
 * drawn by one layer, its accessors answering by each feature's MVT layer (`layerName`): in software WebGL every
 * draw costs, and the 3D view's point bundle drew five tiny layers a tile (68 of the frame's 116 draws). Their
 * features are drawn in the members' order, as the layers were, so the pixels are the same. A live layer (its
 * sensors coloured by status, live.js) is drawn alone, its sub-layer named by the member as before.
 */
export function drawnMembers(specs, metas, state) {
  const groups = [];
  for (const s of specs) {
    const props = memberProps(s, metas[s.id], state);
    const key = layerLevelKey(props, metas[s.id]);
    const last = groups[groups.length - 1];
    if (last && key !== null && last.key === key) { last.ids.push(s.id); last.members.push(props); continue; }
    groups.push({ key, ids: [s.id], members: [props] });
  }
  return groups.flatMap(({ ids, members }) => {
    const merged = members.length > 1 ? mergedProps(ids, members) : null;
    return merged ? [{ ids, props: merged }] : ids.map((id, i) => ({ ids: [id], props: members[i] }));
  });
}

function mergedProps(ids, members) {
  const out = Object.assign({}, members[0]);
  for (const k of FEATURE_PROPS) {
    const values = members.map((m) => m[k]);
    if (values.every((v) => v === undefined)) continue;
    const same = values.every((v) => typeof v !== 'function' && JSON.stringify(v) === JSON.stringify(values[0]));
    if (same) { out[k] = values[0]; continue; }
    if (values.some((v) => v === undefined)) return null; // a member with the layer's default: drawn alone
    const byId = Object.fromEntries(ids.map((id, i) => [id, values[i]]));
    const fallback = values[0];
    out[k] = (f, info) => {
      const v = byId[f && f.properties && f.properties.layerName];
      const value = v === undefined ? fallback : v;
      return typeof value === 'function' ? value(f, info) : value;
    };
  }
  return out;
}

/** Return the id of the catalog layer of a picked object: its top-level layer's, or, for a bundle of layers, the
 * MVT layer its feature came from. */
export function pickedLayerId(rootLayerId, object) {
  if (rootLayerId && rootLayerId.startsWith(BUNDLE_PREFIX)) return (object && object.properties && object.properties.layerName) || null;
  return rootLayerId;
}

/** Return the props of every layer to draw, in the deck spec's order, the search marker on top (in the 3D view
 * the vector layers come bundled from the multi-layer tiles: those under the choropleth (the basemap), the areas
 * and lines over it (buildings, columns, roads), and the points over those, each bundle one request per tile). */
export function deckLayerProps(state, env) {
  let layers;
  if (bundled(state)) {
    const towns = roleLayer(state.config, ROLE.towns);
    const metas = layerIndex(state.config);
    const groups = { under: [], over: [], points: [] };
    let side = 'under';
    layers = [];
    for (const spec of state.config.deck.layers) {
      if (spec.id === towns) side = 'over';
      const vector = spec['@@type'] === 'MVTLayer' && state.visible[spec.id] && allowed(state, spec.id);
      if (!vector) { layers.push(...[].concat(layerProps(spec, state, env))); continue; }
      // over the choropleth the points come in a bundle of their own, at the view's zoom (the deck spec draws
      // points after areas and lines, so the order is kept)
      const group = side === 'over' && metas[spec.id] && metas[spec.id].is_point ? 'points' : side;
      if (!groups[group].length) layers.push(group); // where the bundle is drawn: at its first member
      groups[group].push(spec);
    }
    layers = layers.map((p) => (typeof p === 'string' ? bundleProps(state, env, groups[p], p) : p));
  } else {
    layers = state.config.deck.layers.flatMap((spec) => layerProps(spec, state, env));
  }
  layers.unshift(basemapProps(state, env));
  layers.push(markerProps(state));
  return layers.filter(Boolean);
}

/** Return the catalog layer ids drawn by `props` in drawing order (a bundle stands for its members). */
export function drawnLayerIds(props) {
  return props.flatMap((p) => p.members || [p.id]);
}

/** Return the visible tile layers whose viewport has not loaded yet (none in the export: it has no tiles). */
export function pendingTileLayers(state, metrics) {
  if (state.config.inline) return [];
  return state.config.deck.layers.filter((s) => isTileLayer(s) && state.visible[s.id] && allowed(state, s.id)
    && !metrics.tilesLoaded[s.id] && (!isRasterLayer(s) || state.rasterUrl));
}

/** Return the ids of the drawn layers that are extruded (what window.__cimMetrics reports of the 3D view). */
export function extrudedLayerIds(props) {
  return props.filter((p) => p.visible !== false)
    .flatMap((p) => (p.extrudedMembers ? p.extrudedMembers : p.extruded ? [p.id] : []));
}
