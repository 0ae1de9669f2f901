/* The operator's external basemap (CIM_BASEMAP_URL): which of its tiles cover a tile of the map and where each is
 * drawn. A WGS84 provider's tile is the map's tile. A GCJ-02 provider's tile shows the places whose GCJ-02
 * coordinates fall in its box: a map tile (a WGS84 box) is covered by the 1-4 provider tiles holding the GCJ-02
 * positions of its box, each drawn with its corners moved to their WGS84 positions (our own GCJ-02 code,
 * gcj02.js), so our layers land on the provider's streets and no strip of the view is left bare.
 * Pure: no DOM. */
import { gcj02ToWgs84, wgs84ToGcj02 } from '#cim/gcj02.js';

/** Return the x of the tile column holding `lon` at zoom `z` (Web Mercator). */
export function lonToTileX(lon, z) {
  return ((lon + 180) / 360) * 2 ** z;
}

/** Return the y of the tile row holding `lat` at zoom `z` (Web Mercator, rows from the north). */
export function latToTileY(lat, z) {
  const rad = (lat * Math.PI) / 180;
  return ((1 - Math.log(Math.tan(rad) + 1 / Math.cos(rad)) / Math.PI) / 2) * 2 ** z;
}

/** Return the box {west, south, east, north} (degrees) of tile x, y, z. */
export function tileBox(x, y, z) {
  const n = 2 ** z;
  const lat = (row) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * row) / n))) * 180) / Math.PI;
  return { west: (x / n) * 360 - 180, east: ((x + 1) / n) * 360 - 180, north: lat(y), south: lat(y + 1) };
}

/**
 * Return the corners of a basemap tile drawn on the map (deck.gl BitmapLayer bounds: bottom-left, top-left,
 * top-right, bottom-right, WGS84) from the tile's box {west, south, east, north} and the provider's datum.
 */
export function tileCorners(bbox, crs) {
  const { west, south, east, north } = bbox;
  const corners = [[west, south], [west, north], [east, north], [east, south]];
  return crs === 'gcj02' ? corners.map(([lon, lat]) => gcj02ToWgs84(lon, lat)) : corners;
}

/** Return the provider tiles ({x, y, z, corners}) that cover the map tile x, y, z of a provider in `crs`. */
export function providerTiles(index, crs) {
  const { x, y, z } = index;
  if (crs !== 'gcj02') return [{ x, y, z, corners: tileCorners(tileBox(x, y, z), crs) }];
  const box = tileBox(x, y, z);
  const corners = [[box.west, box.south], [box.west, box.north], [box.east, box.north], [box.east, box.south]]
    .map(([lon, lat]) => wgs84ToGcj02(lon, lat));
  const xs = corners.map(([lon]) => Math.floor(lonToTileX(lon, z)));
  const ys = corners.map(([, lat]) => Math.floor(latToTileY(lat, z)));
  const max = 2 ** z - 1;
  const out = [];
  for (let ty = Math.max(0, Math.min(...ys)); ty <= Math.min(max, Math.max(...ys)); ty += 1) {
    for (let tx = Math.max(0, Math.min(...xs)); tx <= Math.min(max, Math.max(...xs)); tx += 1) {
      out.push({ x: tx, y: ty, z, corners: tileCorners(tileBox(tx, ty, z), crs) });
    }
  }
  return out;
}

/** Return the URL of a provider tile from its XYZ template. */
export function providerUrl(template, tile) {
  return template.replace('{z}', tile.z).replace('{x}', tile.x).replace('{y}', tile.y);
}
