/* Data access: requests to the serving origin with the API key, and the page's early requests
 * (window.__cimPrefetch, started by the page before the deck.gl bundle is parsed). */

/** Features per request of a base layer (the district outline, the town boundaries). */
export const BASE_LIMIT = 1000;

/** Return the request headers carrying `apiKey` (none without one). */
export function authHeaders(apiKey) {
  return apiKey ? { 'X-API-Key': apiKey } : {};
}

/** Return the URL of a base layer's features (the same URL the page's early requests use). */
export function itemsUrl(config, layerId) {
  return `${config.endpoints.items.replace('{id}', layerId)}?limit=${BASE_LIMIT}`;
}

/** Return the URL of one feature. */
export function featureUrl(config, layerId, fid) {
  return config.endpoints.item.replace('{id}', layerId).replace('{fid}', encodeURIComponent(fid));
}

/** Return the URL of an address search. */
export function searchUrl(config, q) {
  return `${config.endpoints.search}?q=${encodeURIComponent(q)}`;
}

/** Return the PNG tile template of `raster` from a /rasters answer, made origin-relative (null when absent). */
export function rasterTemplate(listing, raster) {
  const wanted = raster.id.replace(/_raster$/, '');
  const entry = ((listing && listing.rasters) || []).find((r) => r.id === wanted);
  const link = entry && (entry.links || []).find((l) => l.type === 'image/png');
  return link ? link.href.replace(/^https?:\/\/[^/]+/, '') : null;
}

/** Return the value legend URL of a raster's PNG tile template (/rasters/{name}/legend beside its tiles). */
export function rasterLegendUrl(tiles) {
  return tiles ? tiles.replace(/\/tiles\/[^/]+\/\{z\}\/\{x\}\/\{y\}\.png$/, '/legend') : null;
}

/**
 * Return the JSON at `url`, sent with `apiKey`.
 *
 * A request the page made early (without a key) is used once instead of asking again.
 */
export async function getJSON(url, apiKey, prefetch = globalThis.__cimPrefetch) {
  const early = prefetch && prefetch[url];
  if (early && !apiKey) {
    delete prefetch[url];
    return early;
  }
  const response = await fetch(url, { headers: authHeaders(apiKey) });
  if (!response.ok) throw new Error(`${response.status} ${url}`);
  return response.json();
}

/** Return the image of a raster tile (null for an empty tile, 204). */
export async function fetchTileImage(url, apiKey, signal) {
  const response = await fetch(url, { headers: authHeaders(apiKey), signal });
  if (response.status === 204) return null;
  if (!response.ok) throw new Error(`${response.status} ${url}`);
  return createImageBitmap(await response.blob());
}
