/* Geometry helpers: boundary segments, bounds, and views that fit a box into the map. Pure: no DOM. */

/** Width of the world in pixels at zoom 0 (deck.gl's MapView, 512-pixel tiles). */
const WORLD_PX = 512;
const segmentCache = new WeakMap();

/**
 * Return the ring edges of a collection's (Multi)Polygons as [[from, to], ...] (cached per collection).
 *
 * Boundaries are drawn as LineLayer segments, not as the GeoJsonLayer's PathLayer stroke: in software WebGL
 * (SwiftShader) the first PathLayer frame of the district and town outlines blocked the page for ~0.7 s and
 * every later frame cost ~50 ms more; 1-2 px segments look the same.
 */
export function ringSegments(collection) {
  if (!collection || !collection.features) return [];
  if (!segmentCache.has(collection)) {
    const out = [];
    for (const feature of collection.features) {
      const g = feature.geometry;
      const polygons = !g ? [] : g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
      for (const ring of polygons.flat()) for (let i = 1; i < ring.length; i++) out.push([ring[i - 1], ring[i]]);
    }
    segmentCache.set(collection, out);
  }
  return segmentCache.get(collection);
}

/** Return the Web Mercator y (radians) of a latitude in degrees. */
export function mercatorY(lat) {
  return Math.log(Math.tan(Math.PI / 4 + (lat * Math.PI) / 360));
}

/** Return the view centred on bbox [w, s, e, n] whose zoom fits it into `fill` of a width × height map. */
export function fitBounds(bbox, width, height, fill = 0.92) {
  const [w, s, e, n] = bbox;
  const zx = Math.log2((fill * width * 360) / ((e - w) * WORLD_PX));
  const zy = Math.log2((fill * height * 2 * Math.PI) / ((mercatorY(n) - mercatorY(s)) * WORLD_PX));
  return { longitude: (w + e) / 2, latitude: (s + n) / 2, zoom: Math.min(zx, zy), pitch: 0, bearing: 0 };
}

/** Return [w, s, e, n] of a GeoJSON geometry's coordinates. */
export function geometryBounds(geometry) {
  let w = 180, s = 90, e = -180, n = -90;
  const walk = (c) => {
    if (typeof c[0] === 'number') {
      w = Math.min(w, c[0]); e = Math.max(e, c[0]); s = Math.min(s, c[1]); n = Math.max(n, c[1]);
    } else c.forEach(walk);
  };
  walk(geometry.coordinates);
  return [w, s, e, n];
}

/** Return the view centred on a geometry whose zoom fits its width into `fill` of the map (at most maxZoom). */
export function geometryView(geometry, width, fill = 0.8, maxZoom = 16) {
  const [w, s, e, n] = geometryBounds(geometry);
  const zoom = Math.min(maxZoom, Math.log2((fill * width * 360) / (Math.max(e - w, 1e-4) * WORLD_PX)));
  return { longitude: (w + e) / 2, latitude: (s + n) / 2, zoom };
}

/** Return a FeatureCollection of one point with `properties`. */
export function pointCollection(longitude, latitude, properties = {}) {
  return {
    type: 'FeatureCollection',
    features: [{ type: 'Feature', properties, geometry: { type: 'Point', coordinates: [longitude, latitude] } }],
  };
}

/** Metres per CSS pixel of a Web Mercator view at `latitude` and `zoom` (deck.gl: 512 px tiles). */
export function metresPerPixel(latitude, zoom) {
  return (40075016.686 * Math.cos((latitude * Math.PI) / 180)) / (512 * 2 ** zoom);
}

/** Return the scale bar of a view: the round length (1, 2 or 5 × 10^n m) that fits in `maxPx`, its width. */
export function scaleBar(latitude, zoom, maxPx = 120) {
  const mpp = metresPerPixel(latitude, zoom);
  const most = mpp * maxPx;
  const magnitude = 10 ** Math.floor(Math.log10(most));
  const step = [5, 2, 1].find((m) => m * magnitude <= most) || 1;
  const metres = step * magnitude;
  return { metres, px: Math.round(metres / mpp), label: metres >= 1000 ? `${metres / 1000} km` : `${metres} m` };
}
