/* Flying to a place beside the panels: the place (a town's boundary) fills the part of the map that the panels,
 * controls and legend over it leave free (fit.js), at any pitch and bearing. The last flight's target and free
 * area are recorded in window.__cimMetrics.fly. */
import { $ } from '#cim/dom.js';
import { fitInto, freeRect, geometryPoints, screenBox } from '#cim/fit.js';

/** Return the rectangles (map pixels) of what is shown over the map: panels, controls, legend, time bar. */
export function overlayRects() {
  const map = $('map').getBoundingClientRect();
  const out = [];
  for (const el of $('map').children) {
    if (el.id === 'deck-container' || el.id === 'status' || el.hidden) continue;
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) continue;
    out.push({ id: el.id, left: r.left - map.left, top: r.top - map.top, right: r.right - map.left,
      bottom: r.bottom - map.top });
  }
  return out;
}

/** Fly to `geometry` so that it fills the free part of the map; return the camera flown to (null before the
 * first frame). */
export function flyToGeometry(app, geometry, duration = 800) {
  const now = app.deck.getViewports()[0];
  const points = geometryPoints(geometry);
  if (!now || !points.length) return null;
  const Viewport = now.constructor; // deck.gl's WebMercatorViewport (the bundle does not export it)
  const { width, height } = now;
  const free = freeRect(width, height, overlayRects());
  const viewport = (view) => new Viewport(Object.assign({ width, height }, view));
  const start = { longitude: now.longitude, latitude: now.latitude, zoom: now.zoom, pitch: now.pitch,
    bearing: now.bearing };
  const target = fitInto(viewport, start, points, free);
  const box = screenBox(points, (p) => viewport(target).project(p));
  app.metrics.fly = { target, free, box, points: points.length };
  app.flyTo(target, duration);
  return target;
}

/** Return the corners [lon, lat] of a bbox [w, s, e, n]. */
export function bboxCorners([w, s, e, n]) {
  return [[w, s], [e, s], [e, n], [w, n]];
}

/** Return the camera `view` (its pitch and bearing kept) zoomed and moved until `points` fill `fill` of the part
 * of the map the overlays leave free: the operations screen opens on the whole district at its pitched camera.
 * The viewport is the deck's own view's (deck.gl's MapView: the same projection as its frames); before the deck
 * has a view (or with a map of no size) null is returned. Return {target, free, box} (the camera, the free part,
 * the points' screen box there). */
export function fitOpening(deck, width, height, view, points, fill = 0.94) {
  const mapView = [].concat(deck.props.views || [])[0];
  if (!mapView || typeof mapView.makeViewport !== 'function' || !width || !height || !points.length) return null;
  const viewport = (v) => mapView.makeViewport({ width, height, viewState: v });
  const free = freeRect(width, height, overlayRects());
  const target = fitInto(viewport, view, points, free, { fill });
  return { target, free, box: screenBox(points, (p) => viewport(target).project(p)) };
}
