/* GCJ-02 ("Mars coordinates", the datum of AMap/Tencent-style tile services) in the browser: the same transform
 * as cim_service/core/crs.py (Krasovsky constants, the China box, the exact inverse by fixed-point iteration),
 * so our WGS84 layers and a GCJ-02 basemap line up. Pure: no DOM. */

const A = 6378245.0;
const EE = 0.00669342162296594323;
/** The customary "inside China" box (lon_min, lat_min, lon_max, lat_max); the offset is zero outside it. */
export const CHINA_BBOX = [72.004, 0.8293, 137.8347, 55.8271];

function transformLat(x, y) {
  let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320.0 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
  return r;
}

function transformLon(x, y) {
  let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
  return r;
}

/** Return whether [lon, lat] is inside the China box. */
export function inChina(lon, lat) {
  const [w, s, e, n] = CHINA_BBOX;
  return lon >= w && lon <= e && lat >= s && lat <= n;
}

/** Return the GCJ-02 offset [dlon, dlat] (degrees) at WGS84 lon, lat; [0, 0] outside China. */
export function gcj02Offset(lon, lat) {
  if (!inChina(lon, lat)) return [0, 0];
  const rawLat = transformLat(lon - 105.0, lat - 35.0);
  const rawLon = transformLon(lon - 105.0, lat - 35.0);
  const radLat = (lat / 180.0) * Math.PI;
  const magic = 1 - EE * Math.sin(radLat) ** 2;
  const sqrtMagic = Math.sqrt(magic);
  const dlat = (rawLat * 180.0) / (((A * (1 - EE)) / (magic * sqrtMagic)) * Math.PI);
  const dlon = (rawLon * 180.0) / ((A / sqrtMagic) * Math.cos(radLat) * Math.PI);
  return [dlon, dlat];
}

/** Return the GCJ-02 [lon, lat] of a WGS84 position. */
export function wgs84ToGcj02(lon, lat) {
  const [dlon, dlat] = gcj02Offset(lon, lat);
  return [lon + dlon, lat + dlat];
}

/** Return the WGS84 [lon, lat] of a GCJ-02 position (the exact inverse: iterated until the step < `tol`°). */
export function gcj02ToWgs84(lon, lat, tol = 1e-10, maxIter = 30) {
  if (!inChina(lon, lat)) return [lon, lat];
  let x = lon;
  let y = lat;
  for (let i = 0; i < maxIter; i += 1) {
    const [gx, gy] = wgs84ToGcj02(x, y);
    const sx = gx - lon;
    const sy = gy - lat;
    x -= sx;
    y -= sy;
    if (Math.max(Math.abs(sx), Math.abs(sy)) < tol) break;
  }
  return [x, y];
}
