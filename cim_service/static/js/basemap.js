/* The operator's external basemap (CIM_BASEMAP_URL): where each of its tiles is drawn. A WGS84 provider's tile
 * covers its own box; a GCJ-02 provider's tile shows the places whose GCJ-02 coordinates fall in the box, so its
 * corners are moved to their WGS84 positions (our own GCJ-02 code, gcj02.js) and our layers land on its streets.
 * Pure: no DOM. */
import { gcj02ToWgs84 } from '#cim/gcj02.js';

/**
 * Return the corners of a basemap tile drawn on the map (deck.gl BitmapLayer bounds: bottom-left, top-left,
 * top-right, bottom-right, WGS84) from the tile's box {west, south, east, north} and the provider's datum.
 */
export function tileCorners(bbox, crs) {
  const { west, south, east, north } = bbox;
  const corners = [[west, south], [west, north], [east, north], [east, south]];
  return crs === 'gcj02' ? corners.map(([lon, lat]) => gcj02ToWgs84(lon, lat)) : corners;
}
