/* The static export's inlined data (config.inline, written by webmap/export.py): the base collections under
 * their layer ids, `layers` (the other exported layers) and `indicators`. Pure: no DOM, no deck.gl. */

/** Deck props of a tile layer that mean nothing for inlined GeoJSON. */
const TILE_ONLY_PROPS = ['minZoom', 'maxZoom', 'uniqueIdProperty', 'loadOptions', 'tileSize', 'data', '@@type'];
export const EMPTY_COLLECTION = Object.freeze({ type: 'FeatureCollection', features: Object.freeze([]) });

/** Return the inlined collection of a base layer (an empty one when the export has none). */
export function inlineBase(inline, layerId) {
  const value = inline && layerId ? inline[layerId] : null;
  return value && value.type === 'FeatureCollection' ? value : EMPTY_COLLECTION;
}

/** Return the inlined collection of a (non-base) exported layer, or null. */
export function inlineLayer(inline, layerId) {
  return (inline && inline.layers && inline.layers[layerId]) || null;
}

/** Return the GeoJsonLayer props that draw an exported layer with the style of its tile layer spec. */
export function inlineLayerProps(spec, collection) {
  const out = { '@@type': 'GeoJsonLayer', pointType: 'circle', data: collection };
  for (const [k, v] of Object.entries(spec)) if (!TILE_ONLY_PROPS.includes(k)) out[k] = v;
  return out;
}

/** Return up to `limit` exported points whose attribute text contains `q`, as search results. */
export function searchInline(inline, q, limit = 10) {
  const hits = [];
  for (const fc of Object.values((inline && inline.layers) || {})) {
    for (const f of fc.features) {
      const text = Object.values(f.properties || {}).join(' ');
      if (text.includes(q) && f.geometry && f.geometry.type === 'Point') {
        const [longitude, latitude] = f.geometry.coordinates;
        hits.push({ label: f.properties.full_address || text, longitude, latitude });
      }
    }
  }
  return hits.slice(0, limit);
}
